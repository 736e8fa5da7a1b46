"""The test slices to edit, their target IAPs and the images those IAPs were borrowed from.

Method-facts: the test-set target IAPs are a shuffle of the IAPs of other test images, and
"SSIM shuffled" compares an edit with the image whose IAPs it borrowed. Here the shuffle is
a random cyclic permutation of the test *patients* (a derangement), so every slice borrows the
IAPs of another patient's series — IAPs are constant within a series, so this is the paper's
per-image shuffle with the guarantee that a slice never borrows from its own patient. The
borrowed ("donor") image is the donor patient's slice at the same relative position.

``per_patient`` evenly spaced slices are taken from each patient (all when ``None``); images
are resized from the store size to ``size`` (the cDDGM's input size) exactly as training does.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from napari_cf_iap.errors import InputError
from napari_cf_iap.iap import IAPRecord, IAPVocabulary

from ..dataset import resize_image
from ..slice_store import ORIGINAL, SliceStore


def load_images(store: SliceStore, rows: Any, size: int) -> np.ndarray:
    """Store slices ``rows`` resized to (size, size): (N, size, size) float32."""
    rows = [int(r) for r in rows]
    if not rows:
        return np.zeros((0, size, size), dtype=np.float32)
    stack = np.stack([np.array(store.image(r), dtype=np.float32) for r in rows])
    return resize_image(torch.from_numpy(stack), size).numpy()


def slice_seed(seed: int, row: int) -> int:
    """The noise seed of one test slice (the same for every sweep setting: paired results)."""
    return int(np.random.SeedSequence([int(seed), int(row), 7]).generate_state(1)[0] >> 1)


@dataclass
class EditSet:
    """Test slices (``rows``) with their target IAPs and donor images, at ``size``."""

    rows: np.ndarray
    patients: list[str]
    donor_rows: np.ndarray
    donor_patients: list[str]
    source_records: list[IAPRecord]
    target_records: list[IAPRecord]
    images: np.ndarray
    donor_images: np.ndarray
    seeds: list[int]
    size: int
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    def target_vectors(self, vocab: IAPVocabulary) -> np.ndarray:
        """Target IAPs encoded with ``vocab`` (continuous values may extrapolate)."""
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return vocab.encode_many(self.target_records, allow_extrapolation=True)

    def pairs(self) -> list[tuple[str, str]]:
        """(patient, donor patient) pairs, in order of first appearance."""
        return list(OrderedDict.fromkeys(zip(self.patients, self.donor_patients, strict=True)))


def _spaced(items: list[int], count: int | None) -> list[int]:
    if count is None or count >= len(items):
        return list(items)
    picks = np.unique(np.round(np.linspace(0, len(items) - 1, max(1, count))).astype(int))
    return [items[i] for i in picks]


def build_edit_set(
    store: SliceStore,
    size: int,
    *,
    split: str = "test",
    per_patient: int | None = None,
    seed: int = 0,
) -> EditSet:
    """The edit set of ``split`` (module docstring); needs at least two patients."""
    by_patient: dict[str, list[int]] = OrderedDict()
    for row in store.rows:
        if row["source"] == ORIGINAL and row["split"] == split:
            by_patient.setdefault(row["patient"], []).append(row["row"])
    if len(by_patient) < 2:
        raise InputError(
            f"{store.path}: the {split!r} split has {len(by_patient)} patient(s); the shuffled "
            "target IAPs need at least two (simulate more patients or re-split)"
        )
    chosen = {
        p: _spaced(sorted(rs, key=lambda r: store.rows[r]["slice_index"]), per_patient)
        for p, rs in by_patient.items()
    }
    rng = np.random.default_rng(seed)
    order = [str(p) for p in rng.permutation(sorted(chosen))]
    donor_of = {p: order[(i + 1) % len(order)] for i, p in enumerate(order)}
    rows, donors, patients, donor_patients = [], [], [], []
    for patient in sorted(chosen):
        mine, theirs = chosen[patient], chosen[donor_of[patient]]
        for k, row in enumerate(mine):
            position = k / max(1, len(mine) - 1) if len(mine) > 1 else 0.5
            rows.append(row)
            donors.append(theirs[int(round(position * (len(theirs) - 1)))])
            patients.append(patient)
            donor_patients.append(donor_of[patient])
    return EditSet(
        rows=np.asarray(rows, dtype=np.int64),
        patients=patients,
        donor_rows=np.asarray(donors, dtype=np.int64),
        donor_patients=donor_patients,
        source_records=[store.record(r) for r in rows],
        target_records=[store.record(r) for r in donors],
        images=load_images(store, rows, size),
        donor_images=load_images(store, donors, size),
        seeds=[slice_seed(seed, r) for r in rows],
        size=int(size),
        info={
            "split": split,
            "patients": len(chosen),
            "slices": len(rows),
            "per_patient": per_patient,
            "seed": seed,
            "shuffle": "cyclic derangement of patients",
        },
    )
