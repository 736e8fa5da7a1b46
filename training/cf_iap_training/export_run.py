"""``cf-iap-train export RUN_DIR``: (re)write ``RUN_DIR/bundle`` from one of the run's checkpoints.

Useful while a long run is still going (export ``last``), after a run whose final export
failed, or to ship a particular checkpoint. The weights are the checkpoint's ``state_dict``,
which holds the EMA weights when the run kept an EMA.

:func:`training_facts` says how long a run trained and on how many slices, for the bundle's
provenance and the model card: from ``run.json`` (recorded by ``train``), else from what older
runs left behind (Lightning's ``Timer`` state in ``last.ckpt``, the CSV logs' file times, the
store's split).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from napari_cf_iap.errors import InputError
from napari_cf_iap.iap import IAPVocabulary

from .datamodule import select_rows
from .export import checkpoint_state, export_bundle, load_checkpoint
from .presets import TrainPreset
from .slice_store import SliceStore
from .train import HIGH_PCT, LOW_PCT, build_config


def find_checkpoint(run_dir: Path, which: str) -> Path:
    """``best`` (the best-on-validation file, else last), ``last``, or a path."""
    ckpts = run_dir / "checkpoints"
    if which == "last":
        path = ckpts / "last.ckpt"
    elif which == "best":
        best = sorted(ckpts.glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)
        path = best[-1] if best else ckpts / "last.ckpt"
    else:
        path = Path(which)
    if not path.is_file():
        raise InputError(f"no checkpoint {path}; has the run saved one yet?")
    return path


def _timer_seconds(run_dir: Path) -> float | None:
    """Training time in Lightning's ``Timer`` state of ``last.ckpt`` (runs with --max-time)."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return None
    with contextlib.suppress(Exception):
        timer = load_checkpoint(last, mmap=True).get("callbacks", {}).get("Timer") or {}
        seconds = float(timer["time_elapsed"]["train"])
        return seconds if seconds > 0 else None
    return None


def _log_span_seconds(run_dir: Path) -> float | None:
    """Sum over the CSV log versions (one per invocation) of first-to-last write time."""
    total = 0.0
    for version in sorted((run_dir / "logs").glob("version_*")):
        first, last = version / "hparams.yaml", version / "metrics.csv"
        if first.is_file() and last.is_file():
            total += max(0.0, last.stat().st_mtime - first.stat().st_mtime)
    return total if total > 0 else None


def training_facts(run_dir: str | Path) -> dict:
    """``train_seconds``, ``train_slices``, ``val_slices`` of a run, each with its ``*_source``.

    Seconds: ``run.json`` (the sum of the invocations ``train`` recorded) or, if larger (an
    invocation was killed before it could record), the ``Timer`` state of ``last.ckpt``;
    for older runs the CSV logs' write times (an estimate). Slices: ``run.json``, else counted
    from the store's table and split file as the data module selects them. Missing facts are
    left out.
    """
    run_dir = Path(run_dir)
    saved = json.loads((run_dir / "run.json").read_text())
    facts: dict = {}
    recorded = saved.get("train_seconds")
    timer = _timer_seconds(run_dir)
    if recorded is not None and (timer is None or float(recorded) >= timer):
        facts.update(train_seconds=float(recorded), train_seconds_source="recorded by train")
    elif timer is not None:
        facts.update(train_seconds=round(timer, 1), train_seconds_source="Lightning Timer state")
    else:
        span = _log_span_seconds(run_dir)
        if span is not None:
            facts.update(
                train_seconds=round(span, 1), train_seconds_source="estimated from log file times"
            )
    if saved.get("train_slices") is not None:
        facts.update(
            train_slices=int(saved["train_slices"]),
            val_slices=int(saved.get("val_slices") or 0),
            train_slices_source="recorded by train",
        )
    else:
        with contextlib.suppress(InputError, OSError, KeyError, ValueError):
            store = SliceStore.open(saved["store"])
            train, val = select_rows(store, saved["model"], saved.get("with_augmentations", False))
            facts.update(
                train_slices=len(train),
                val_slices=len(val),
                train_slices_source="counted from the store's current split",
            )
    return facts


def export_run(run_dir: str | Path, which: str = "best") -> Path:
    """Export the chosen checkpoint of a run as ``RUN_DIR/bundle``; return the bundle path."""
    from napari_cf_iap.bundles import build_model

    run_dir = Path(run_dir)
    run_file = run_dir / "run.json"
    if not run_file.is_file():
        raise InputError(f"{run_dir} is not a cf-iap-train run directory (no run.json)")
    saved = json.loads(run_file.read_text())
    model = saved["model"]
    preset = TrainPreset(**saved["preset"])
    vocabulary = IAPVocabulary.from_dict(saved["vocabulary"])
    config = build_config(model, preset, vocabulary)
    path = find_checkpoint(run_dir, which)
    state, info = checkpoint_state(path)
    from .export import BUNDLE_KIND

    network = build_model(BUNDLE_KIND[model], config)
    network.load_state_dict(state)
    store_meta: dict = {}
    with contextlib.suppress(InputError):
        store_meta = SliceStore.open(saved["store"]).meta
    facts = training_facts(run_dir)
    seconds = {k: facts[k] for k in ("train_seconds", "train_seconds_source") if k in facts}
    slices = {k: v for k, v in facts.items() if k.endswith("slices") or k == "train_slices_source"}
    preprocessing = {
        "size": preset.image_size,
        "low_pct": LOW_PCT,
        "high_pct": HIGH_PCT,
        "clip": False,
        "store_size": store_meta.get("size"),
        "drop_slices": store_meta.get("drop_slices"),
    }
    provenance = {
        "command": saved.get("command"),
        "export_command": f"cf-iap-train export {run_dir} --checkpoint {which}",
        "model": model,
        "preset": preset.to_dict(),
        "steps": info["global_step"],
        "weights": f"checkpoint {path.name} at step {info['global_step']}",
        **seconds,  # the whole run's training time so far
        "data": {
            "store": saved.get("store"),
            "store_meta": {k: v for k, v in store_meta.items() if k != "skipped"},
            **slices,
        },
    }
    summary = run_dir / "summary.json"
    metrics = json.loads(summary.read_text()).get("metrics", {}) if summary.is_file() else {}
    return export_bundle(
        run_dir / "bundle",
        model,
        network.eval(),
        config,
        vocabulary,
        preprocessing=preprocessing,
        provenance=provenance,
        metrics=metrics,
    )
