"""Table 1: the IAP predictor on the test split (top-1 accuracy, MSE in physical units)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from napari_cf_iap.errors import InputError

from ..slice_store import ORIGINAL, SliceStore
from .edit_set import load_images
from .metrics import iap_scores
from .scoring import bundle_label, predict_raw


def run_table1(
    store: SliceStore | str | Path,
    predictor: Any,
    *,
    split: str = "test",
    max_slices: int | None = None,
    device: str = "cpu",
    batch: int = 64,
) -> dict[str, Any]:
    """Score the predictor bundle on every original ``split`` slice (or ``max_slices`` of them,
    evenly spaced) against the slices' own IAPs."""
    from napari_cf_iap.bundles import load_bundle

    store = store if isinstance(store, SliceStore) else SliceStore.open(store)
    if not hasattr(predictor, "model"):
        predictor = load_bundle(predictor, device=device, kind="iap_predictor")
    rows = [r["row"] for r in store.rows if r["source"] == ORIGINAL and r["split"] == split]
    if not rows:
        raise InputError(f"{store.path} has no {split!r} slices; run `cf-iap-train split`")
    if max_slices and len(rows) > max_slices:
        rows = [rows[i] for i in np.linspace(0, len(rows) - 1, max_slices).round().astype(int)]
    size = int(predictor.config.image_size)
    raws = []
    for start in range(0, len(rows), 256):  # bounded memory for large test splits
        images = load_images(store, rows[start : start + 256], size)
        raws.append(predict_raw(predictor, images, device=device, batch=batch).numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = iap_scores(np.concatenate(raws), [store.record(r) for r in rows], predictor.vocab)
    return {
        "split": split,
        "slices": len(rows),
        "patients": len({store.rows[r]["patient"] for r in rows}),
        "predictor": bundle_label(predictor),
        "scores": scores,
    }
