"""Copy trained bundles into the package as the plugin's default weights, with model cards.

Weights are stored as fp16 (the package ships at most 30 MB); each bundle gets the acceptance
report in its ``metrics`` and a ``MODEL_CARD.md`` saying what it is, how it was made and how
well it does, including the criteria it does not meet yet.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import platform
from pathlib import Path
from typing import Any

from napari_cf_iap.bundles.bundle import load_bundle, save_bundle
from napari_cf_iap.errors import BundleError
from napari_cf_iap.pipeline.bundle_access import DEFAULT_BUNDLES

from .acceptance import AcceptanceReport

SIZE_LIMIT_BYTES = 30 * 1024 * 1024

_KIND_TITLE = {
    "cddgm": "conditional diffusion model (cDDGM)",
    "iap_predictor": "IAP predictor (ResNet-18)",
    "segmenter": "fat/FGT segmenter (residual U-Net)",
}


def _run_facts(source: Path) -> dict[str, Any]:
    """What the run that wrote the bundle ``source`` records (``RUN_DIR/bundle``), else {}."""
    run_dir = Path(source).parent
    if not (run_dir / "run.json").is_file():
        return {}
    from ..export_run import training_facts

    with contextlib.suppress(OSError, ValueError, KeyError):
        return training_facts(run_dir)
    return {}


def _seconds(value: Any, source: str | None) -> str:
    if not isinstance(value, (int, float)):
        return "? s"
    text = f"{value:,.0f} s ({value / 3600:.1f} h"
    return text + (f", {source})" if source and source != "recorded by train" else ")")


def _slices(data: dict[str, Any]) -> str:
    count = data.get("train_slices")
    if not isinstance(count, int):
        return "? training slices"
    source = data.get("train_slices_source")
    note = f", {source}" if source and source != "recorded by train" else ""
    val = data.get("val_slices")
    val_text = f", {val} validation slices" if isinstance(val, int) else ""
    return f"{count} training slices{val_text}{note}"


def _card(
    kind: str, bundle: Any, report: AcceptanceReport, command: str, run: dict[str, Any]
) -> str:
    """The model card; ``run`` (:func:`training_facts`) fills what the provenance lacks."""
    prov = dict(bundle.provenance)
    data = dict(prov["data"]) if isinstance(prov.get("data"), dict) else {}
    if not isinstance(prov.get("train_seconds"), (int, float)) and "train_seconds" in run:
        prov["train_seconds"] = run["train_seconds"]
        prov["train_seconds_source"] = run.get("train_seconds_source")
    if not isinstance(data.get("train_slices"), int) and "train_slices" in run:
        data.update({k: run[k] for k in ("train_slices", "val_slices", "train_slices_source")})
    hardware = prov.get("hardware") if isinstance(prov.get("hardware"), dict) else {}
    verdicts = report.verdicts()
    relevant = {k: v for k, v in verdicts.items() if k.startswith(_prefix(kind))}
    lines = [
        f"# Default {_KIND_TITLE[kind]}",
        "",
        "Trained by `cf-iap-train` on the project's simulated breast-MRI dataset (no real",
        "patient data). Research use only; not a medical device.",
        "",
        "## Provenance",
        "",
        f"- data: simulated slice store `{data.get('store', '?')}` "
        f"({_slices(data)}; simulator output "
        f"`{data.get('store_meta', {}).get('source', '?')}`)",
        f"- training command: `{prov.get('command', 'see training/README.md')}`",
        f"- preset: {prov.get('preset', {}).get('name', '?')}",
        f"- optimiser steps: {prov.get('steps', '?')} ({prov.get('weights', '?')} weights)"
        + _start(prov.get("init_from")),
        "- training time / hardware: "
        f"{_seconds(prov.get('train_seconds'), prov.get('train_seconds_source'))} on "
        f"{hardware.get('platform', '?')}, {hardware.get('cpu_count', hardware.get('cpus', '?'))} "
        "CPU cores (shared with other jobs)",
        f"- config: `{bundle.config.to_dict()}`",
        f"- packaged: {_dt.date.today().isoformat()} with `{command}` on {platform.machine()}",
        "",
        "## Acceptance on held-out simulated subjects",
        "",
        "| criterion | result |",
        "| --- | --- |",
    ]
    for name, ok in relevant.items():
        state = "not measured" if ok is None else ("PASS" if ok else "**FAIL**")
        lines.append(f"| {name} | {state} |")
    lines += ["", "Measured values:", "", "```", _values(report), "```", ""]
    trained = {k: v for k, v in bundle.metrics.items() if k != "acceptance"}  # an older ship's
    if trained:
        lines += ["Validation metrics from training:", "", "```", str(trained), "```", ""]
    return "\n".join(lines)


def _start(init_from: Any) -> str:
    """The card's note on fine-tuning (``train --init-from``), else nothing."""
    if not isinstance(init_from, dict):
        return ""
    return (
        f", fine-tuned from `{init_from.get('bundle', '?')}` ({init_from.get('steps', '?')} "
        f"steps, sha256 {str(init_from.get('sha256', '?'))[:12]})"
    )


def _prefix(kind: str) -> str:
    return {"cddgm": "cddgm", "iap_predictor": "iap", "segmenter": "seg"}[kind]


def _values(report: AcceptanceReport) -> str:
    data = report.to_dict()
    data.pop("verdicts")
    return "\n".join(f"{k}: {v}" for k, v in data.items() if k != "settings") + (
        f"\nsettings: {report.settings}"
    )


def ship_bundles(
    sources: dict[str, str | Path],
    report: AcceptanceReport,
    dest: Path,
    command: str,
    cddgm_defaults: dict[str, Any] | None = None,
    note: str | None = None,
) -> dict[str, Path]:
    """Write each source bundle (by kind) as fp16 into ``dest/<default name>`` with a card.

    ``cddgm_defaults`` (e.g. ``{"steps": 75, "guidance": 5.0}``, the settings the acceptance
    check used) replace the cDDGM bundle's inference defaults, so the plugin and the CLI edit at
    the settings that were checked. ``note`` (e.g. how the settings were chosen) ends every
    card.
    """
    written = {}
    for kind, source in sources.items():
        bundle = load_bundle(source)
        if bundle.kind != kind:
            raise BundleError(f"{source} is a {bundle.kind} bundle, expected {kind}")
        metrics = {**bundle.metrics, "acceptance": report.to_dict()}
        out = save_bundle(
            bundle.model,
            bundle.config,
            dest / DEFAULT_BUNDLES[kind],
            kind=kind,
            vocab=bundle.vocab,
            preprocessing=bundle.preprocessing,
            provenance={**bundle.provenance, "shipped_from": str(source)},
            metrics=metrics,
            inference_defaults=(
                {**bundle.inference_defaults, **(cddgm_defaults or {})}
                if kind == "cddgm"
                else bundle.inference_defaults
            ),
            overwrite=True,
            weights_dtype="float16",
        )
        card = _card(kind, bundle, report, command, _run_facts(Path(source)))
        if note:
            card += f"\n## Notes\n\n{note.strip()}\n"
        (out / "MODEL_CARD.md").write_text(card)
        written[kind] = out
    total = sum(f.stat().st_size for p in written.values() for f in p.iterdir())
    if total > SIZE_LIMIT_BYTES:
        raise BundleError(f"shipped bundles take {total / 2**20:.1f} MB, over the 30 MB limit")
    return written
