"""Ground-truth fidelity of a counterfactual on simulated data (where the truth is known).

Volumes from different acquisitions have arbitrary intensity scales, so every comparison is
made after the paper's per-slice percentile normalisation (10th -> 0, 99th -> 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FAT, FGT = 1, 2


def normalise_per_slice(data: np.ndarray, low: float = 10.0, high: float = 99.0) -> np.ndarray:
    """Each slice's ``low`` percentile to 0 and ``high`` percentile to 1 (no clipping)."""
    data = np.asarray(data, dtype=np.float64)
    flat = data.reshape(len(data), -1)
    lows, highs = np.percentile(flat, [low, high], axis=1)
    span = np.where(highs - lows > 1e-12, highs - lows, 1.0)
    return (data - lows[:, None, None]) / span[:, None, None]


def fat_fgt_ratio(data: np.ndarray, labels: np.ndarray) -> float:
    """Mean fat intensity over mean FGT intensity (NaN when a tissue is absent)."""
    fat, fgt = labels == FAT, labels == FGT
    if not fat.any() or not fgt.any():
        return float("nan")
    return float(np.mean(data[fat]) / max(np.mean(data[fgt]), 1e-12))


def masked_mae(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute difference, inside ``mask`` when given."""
    diff = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    return float(diff[mask].mean() if mask is not None else diff.mean())


@dataclass
class FidelityReport:
    """How a counterfactual compares with the true re-acquisition and with doing nothing."""

    mae_edit: float
    mae_nothing: float
    ratio_source: float
    ratio_edit: float
    ratio_truth: float

    @property
    def beats_nothing(self) -> bool:
        return self.mae_edit < self.mae_nothing

    @property
    def contrast_moves_towards_truth(self) -> bool:
        return abs(self.ratio_edit - self.ratio_truth) < abs(self.ratio_source - self.ratio_truth)


def fidelity(
    source: np.ndarray, edit: np.ndarray, truth: np.ndarray, labels: np.ndarray
) -> FidelityReport:
    """Compare ``edit`` and ``source`` with ``truth`` inside the breast (labels 1 and 2)."""
    src, ed, tr = (normalise_per_slice(v) for v in (source, edit, truth))
    breast = labels > 0
    return FidelityReport(
        mae_edit=masked_mae(ed, tr, breast),
        mae_nothing=masked_mae(src, tr, breast),
        ratio_source=fat_fgt_ratio(src, labels),
        ratio_edit=fat_fgt_ratio(ed, labels),
        ratio_truth=fat_fgt_ratio(tr, labels),
    )
