"""``cf-iap-train export RUN_DIR``: (re)write ``RUN_DIR/bundle`` from one of the run's checkpoints.

Useful while a long run is still going (export ``last``), after a run whose final export
failed, or to ship a particular checkpoint. The weights are the checkpoint's ``state_dict``,
which holds the EMA weights when the run kept an EMA.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from napari_cf_iap.errors import InputError
from napari_cf_iap.iap import IAPVocabulary

from .export import checkpoint_state, export_bundle
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
        "data": {
            "store": saved.get("store"),
            "store_meta": {k: v for k, v in store_meta.items() if k != "skipped"},
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
