"""Slice selection and model-resolution stacks shared by the volume-level jobs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..preprocessing import resize_slices
from ..volume import Volume


def select_slices(volume: Volume, slices: Sequence[int] | None) -> list[int]:
    """Validated, sorted, unique slice indices (``None`` = every slice)."""
    n = volume.shape[0]
    if slices is None:
        return list(range(n))
    chosen = sorted({int(i) for i in slices})
    bad = [i for i in chosen if not 0 <= i < n]
    if bad:
        raise InputError(f"slice indices {bad} are outside the volume (0..{n - 1})")
    if not chosen:
        raise InputError("no slices selected")
    return chosen


@dataclass
class ModelStack:
    """Slices resized to the model's size and percentile-normalised, with the inverse."""

    images: np.ndarray  # (n, size, size) float32, normalised
    lows: np.ndarray  # (n,)
    scales: np.ndarray  # (n,)
    original_hw: tuple[int, int]

    def restore(self, normalised: np.ndarray) -> np.ndarray:
        """Model-space slices back to the source size and intensity scale."""
        scaled = normalised * self.scales[:, None, None] + self.lows[:, None, None]
        return resize_slices(scaled.astype(np.float32), self.original_hw)

    def restore_delta(self, normalised: np.ndarray) -> np.ndarray:
        """The change ``normalised - images`` at the source size and intensity scale."""
        delta = (normalised - self.images) * self.scales[:, None, None]
        return resize_slices(delta.astype(np.float32), self.original_hw)


def to_model_stack(
    volume: Volume, indices: Sequence[int], size: int, low_pct: float, high_pct: float
) -> ModelStack:
    """Resize the chosen slices to ``size``² and map each slice's percentiles to 0 and 1."""
    data = np.asarray(volume.data[list(indices)], dtype=np.float32)
    if not np.all(np.isfinite(data)):
        raise InputError("the image contains NaN or inf values; fix or mask them before running")
    resized = resize_slices(data, (size, size))
    lows, highs = np.percentile(resized.reshape(len(resized), -1), [low_pct, high_pct], axis=1)
    span = highs - lows
    constant = span <= 1e-8 * np.maximum(1.0, np.abs(highs))
    if np.all(constant):
        raise InputError("the selected slices are constant (no contrast); nothing to process")
    scales = np.where(constant, 1.0, span)
    images = (resized - lows[:, None, None]) / scales[:, None, None]
    return ModelStack(images.astype(np.float32), lows, scales, tuple(data.shape[1:]))
