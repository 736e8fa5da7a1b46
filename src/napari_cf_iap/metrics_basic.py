"""Per-tissue overlap scores between a predicted and a ground-truth label volume."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .errors import InputError


def _check(prediction: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    prediction, truth = np.asarray(prediction), np.asarray(truth)
    if prediction.shape != truth.shape:
        raise InputError(
            f"prediction shape {prediction.shape} differs from ground truth {truth.shape}; "
            "choose a ground-truth layer on the same grid"
        )
    return prediction, truth


def dice_per_label(
    prediction: np.ndarray, truth: np.ndarray, labels: Iterable[int] = (1, 2)
) -> dict[int, float]:
    """Dice ``2|P∩T| / (|P| + |T|)`` per label; NaN where the label is absent from both."""
    prediction, truth = _check(prediction, truth)
    scores = {}
    for label in labels:
        p, t = prediction == label, truth == label
        denominator = int(p.sum()) + int(t.sum())
        overlap = int(np.logical_and(p, t).sum())
        scores[int(label)] = 2.0 * overlap / denominator if denominator else float("nan")
    return scores


def accuracy_per_label(
    prediction: np.ndarray, truth: np.ndarray, labels: Iterable[int] = (1, 2)
) -> dict[int, float]:
    """Fraction of each tissue's ground-truth voxels labelled correctly (NaN if absent)."""
    prediction, truth = _check(prediction, truth)
    scores = {}
    for label in labels:
        t = truth == label
        count = int(t.sum())
        correct = float((prediction[t] == label).sum())
        scores[int(label)] = correct / count if count else float("nan")
    return scores
