"""Tables 3 and 4 plus ground truth: the cDDGM over steps x guidance against two baselines.

Rows: "Without cDDGM" (the unedited test images, scored against the shuffled target IAPs —
the paper's baseline row), "Histogram matching" (each image matched to its donor image, which
was acquired with the target IAPs) and one row per (steps, guidance) setting. Every row gets
the Table 3 metrics, the Table 4 fooling scores and, on simulated data, the ground-truth
SSIM/PSNR/MAE/contrast-ratio error; a setting *counts* only if it beats both baselines on
ground-truth SSIM and PSNR (``beats_baselines``).

Noise seeds are per slice and shared by all settings, so settings differ only in
(steps, guidance). ``examples`` keeps the first few slices of every row for the figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_cf_iap.iap import IAPRecord

from ..slice_store import SliceStore
from .baselines import do_nothing, histogram_match
from .edit_set import build_edit_set
from .features import make_extractor
from .ground_truth import truth_slices
from .scoring import (
    HIST_MATCH,
    NO_EDIT,
    Scorer,
    beats_baselines,
    bundle_label,
    edit_with_bundle,
    setting_name,
)

PAPER_STEPS = (25, 50, 75)
PAPER_GUIDANCE = (3.0, 5.0, 7.0)
Progress = Callable[[str], None]


def example_indices(patients: Sequence[str], count: int) -> list[int]:
    """Up to ``count`` slice indices, one per patient first (in order), then the rest."""
    firsts = [i for i, p in enumerate(patients) if p not in patients[:i]]
    rest = [i for i in range(len(patients)) if i not in firsts]
    return (firsts + rest)[: max(0, count)]


def short_label(record: IAPRecord) -> str:
    """``model field T, FA`` of a record, for figure labels."""
    return f"{record.model_name} {record.field_strength:g}T FA{record.flip_angle:g}"


def run_sweep(
    store: SliceStore | str | Path,
    cddgm: Any,
    predictor: Any,
    *,
    steps: Sequence[int] = PAPER_STEPS,
    guidance: Sequence[float] = PAPER_GUIDANCE,
    split: str = "test",
    per_patient: int | None = 8,
    features: str | None = None,
    sim_dir: str | Path | None = None,
    sampler: str = "ddpm",
    seed: int = 0,
    batch_size: int = 16,
    device: str = "cpu",
    n_examples: int = 4,
    log: Progress | None = None,
) -> dict[str, Any]:
    """Run the grid; return ``{"rows": [...], "examples": {...}, ...}`` (module docstring)."""
    from napari_cf_iap.bundles import load_bundle

    say = log or (lambda message: None)
    store = store if isinstance(store, SliceStore) else SliceStore.open(store)
    if not hasattr(cddgm, "model"):
        cddgm = load_bundle(cddgm, device=device, kind="cddgm")
    if not hasattr(predictor, "model"):
        predictor = load_bundle(predictor, device=device, kind="iap_predictor")
    started = time.time()
    edit_set = build_edit_set(
        store, int(cddgm.config.image_size), split=split, per_patient=per_patient, seed=seed
    )
    say(f"edit set: {len(edit_set)} slices of {edit_set.info['patients']} test patients")
    truth = truth_slices(store, edit_set, sim_dir)
    say("ground truth: " + (truth.source if truth else "none (not a simulated dataset)"))
    extractor = make_extractor(features, predictor, device=device)
    scorer = Scorer(edit_set, predictor, extractor, truth, device=device)
    pick = example_indices(edit_set.patients, n_examples)
    examples: dict[str, np.ndarray] = {
        "original": edit_set.images[pick],
        "donor": edit_set.donor_images[pick],
    }
    if truth is not None:
        examples["truth"] = truth.images[pick]
    rows = []
    for name, images in (
        (NO_EDIT, do_nothing(edit_set.images)),
        (HIST_MATCH, histogram_match(edit_set.images, edit_set.donor_images)),
    ):
        rows.append(scorer.score(name, images) | {"kind": "baseline"})
        examples[name] = images[pick]
    for s in steps:
        for g in guidance:
            t0 = time.time()
            edited = edit_with_bundle(
                cddgm, edit_set, s, g, sampler=sampler, batch_size=batch_size, device=device
            )
            row = scorer.score(setting_name(s, g), edited)
            row.update(kind="cddgm", steps=int(s), guidance=float(g), seconds=time.time() - t0)
            rows.append(row)
            examples[row["method"]] = edited[pick]
            say(f"{row['method']}: {row['seconds']:.0f} s")
    baselines = [r for r in rows if r["kind"] == "baseline"]
    for row in rows:
        if row["kind"] == "cddgm":
            row["beats_baselines"] = beats_baselines(row, baselines)
    return {
        "rows": rows,
        "examples": examples,
        "example_targets": [short_label(edit_set.target_records[i]) for i in pick],
        "example_sources": [short_label(edit_set.source_records[i]) for i in pick],
        "edit_set": edit_set.info,
        "feature_extractor": extractor.name,
        "ground_truth": truth.source if truth else None,
        "cddgm": f"{bundle_label(cddgm)} ("
        f"{cddgm.config.context_mode}, {cddgm.config.image_size}x{cddgm.config.image_size})",
        "predictor": bundle_label(predictor),
        "sampler": sampler,
        "seconds": time.time() - started,
    }
