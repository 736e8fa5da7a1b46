"""Patient-level train/val/test splits by iterative multilabel stratification (``iterstrat``).

Method-facts: split by patient, never by slice, stratified on the categorical IAPs; 75/10/15
for patients without masks and 75/25 for patients with masks; categories with two or fewer
patients go to train. Deviation, documented: to early-stop the segmenter without touching its
test set, ``mask_val`` (default 0.10) of the masked patients is taken out of their 75 % train
share as ``val`` (so 65/10/25). ``mask_val=0`` gives the paper's exact 75/25.

The stratification labels of a patient are the one-hot manufacturer, model, field strength and
scan options of its series. Fractions apply to the patients left after the rare ones are put in
train. Splitting is seeded and deterministic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from napari_cf_iap.errors import InputError

from .slice_store import ORIGINAL, SliceStore

STRATIFY_ON = ("manufacturer", "model_name", "field_strength", "scan_options")
UNMASKED_FRACTIONS = {"train": 0.75, "val": 0.10, "test": 0.15}
MASKED_FRACTIONS = {"train": 0.75, "test": 0.25}
RARE_MAX = 2


def _shuffle_split(
    items: list[str], labels: np.ndarray, fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """Split ``items`` into (rest, held) with ``fraction`` held out, stratified on ``labels``."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    n_held = int(round(fraction * len(items)))
    if n_held < 1 or n_held >= len(items):
        return list(items), []
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=n_held, random_state=seed)
    rest_idx, held_idx = next(splitter.split(np.zeros((len(items), 1)), labels))
    return [items[i] for i in sorted(rest_idx)], [items[i] for i in sorted(held_idx)]


def stratified_split(
    categories: Mapping[str, Mapping[str, str]],
    fractions: Mapping[str, float],
    seed: int = 0,
    rare_max: int = RARE_MAX,
) -> dict[str, str]:
    """Assign every patient in ``categories`` (patient -> {iap: category}) to a split.

    ``fractions`` must contain ``train`` and sum to 1. Patients having a category shared by
    ``rare_max`` or fewer patients go to ``train``; the others are split by iterative
    stratification, holding out the non-train splits one after another (smallest first).
    """
    if "train" not in fractions or abs(sum(fractions.values()) - 1) > 1e-6:
        raise InputError(f"split fractions must include train and sum to 1, got {dict(fractions)}")
    patients = sorted(categories)
    keys = sorted({(k, v) for cats in categories.values() for k, v in cats.items()})
    counts = Counter((k, v) for cats in categories.values() for k, v in cats.items())
    rare = [
        p for p in patients if any(counts[(k, v)] <= rare_max for k, v in categories[p].items())
    ]
    pool = [p for p in patients if p not in set(rare)]
    assignment = {p: "train" for p in rare}
    column = {key: i for i, key in enumerate(keys)}

    def onehot(items: list[str]) -> np.ndarray:
        y = np.zeros((len(items), max(1, len(keys))), dtype=np.int64)
        for i, p in enumerate(items):
            for k, v in categories[p].items():
                y[i, column[(k, v)]] = 1
        return y

    remaining, remaining_share = pool, 1.0
    for offset, name in enumerate(
        sorted((n for n in fractions if n != "train"), key=fractions.get)
    ):
        share = fractions[name] / remaining_share
        remaining, held = _shuffle_split(remaining, onehot(remaining), share, seed + offset)
        assignment.update({p: name for p in held})
        remaining_share -= fractions[name]
    assignment.update({p: "train" for p in remaining})
    assert set(assignment) == set(patients)
    return assignment


def patient_categories(store: SliceStore) -> tuple[dict[str, dict[str, str]], dict[str, bool]]:
    """Per original patient: its categorical IAPs (as strings) and whether it has a mask.

    A patient prepared with several series (``prepare --every-series``) is stratified by its
    first series (the store keeps a patient's series in series-number order).
    """
    categories: dict[str, dict[str, str]] = {}
    masked: dict[str, bool] = {}
    for row in store.rows:
        if row["source"] != ORIGINAL:
            continue
        patient = row["patient"]
        if patient not in categories:
            categories[patient] = {
                k: f"{row[k]:g}" if isinstance(row[k], float) else str(row[k]) for k in STRATIFY_ON
            }
        masked[patient] = masked.get(patient, False) or bool(row["has_mask"])
    return categories, masked


def split_store(
    store: SliceStore,
    seed: int = 0,
    *,
    unmasked: Mapping[str, float] | None = None,
    masked: Mapping[str, float] | None = None,
    mask_val: float = 0.10,
    rare_max: int = RARE_MAX,
) -> tuple[Path, dict[str, Any]]:
    """Split a store's patients, save ``splits.json`` and the table's split column."""
    categories, has_mask = patient_categories(store)
    if not categories:
        raise InputError(f"{store.path} has no original slices; run `prepare` first")
    unmasked = dict(unmasked or UNMASKED_FRACTIONS)
    if masked is None:
        masked = dict(MASKED_FRACTIONS)
        if mask_val > 0:
            masked = {"train": masked["train"] - mask_val, "val": mask_val, "test": masked["test"]}
    groups = {"unmasked": (False, unmasked), "masked": (True, masked)}
    assignment: dict[str, str] = {}
    summary: dict[str, Any] = {}
    for offset, (group, (flag, fractions)) in enumerate(groups.items()):
        members = {p: c for p, c in categories.items() if has_mask[p] == flag}
        part = (
            stratified_split(members, fractions, seed + 100 * offset, rare_max) if members else {}
        )
        overlap = set(part) & set(assignment)
        assert not overlap, f"patients {sorted(overlap)} in two groups"
        assignment.update(part)
        summary[group] = {
            "fractions": dict(fractions),
            "patients": dict(Counter(part.values())),
        }
    sets = {
        name: {p for p, s in assignment.items() if s == name} for name in set(assignment.values())
    }
    names = sorted(sets)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not sets[a] & sets[b], f"patients in both {a} and {b}: {sets[a] & sets[b]}"
    info = {"seed": seed, "rare_max": rare_max, "stratify_on": list(STRATIFY_ON), "groups": summary}
    return store.set_splits(assignment, info), info


def split_counts(store: SliceStore) -> dict[str, int]:
    """Number of original slices per split (for reports)."""
    return dict(Counter(r["split"] for r in store.rows if r["source"] == ORIGINAL))
