"""Slice selection and model-resolution stacks shared by the volume-level jobs."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..preprocessing import PreprocessConfig, preprocess_volume, resize_slices
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


def to_model_stack(volume: Volume, indices: Sequence[int], config: PreprocessConfig) -> ModelStack:
    """The chosen slices as the model saw its training data (``config`` = the bundle's)."""
    data = np.asarray(volume.data[list(indices)], dtype=np.float32)
    images, state = preprocess_volume(data, dataclasses.replace(config, drop_slices=0))
    if np.all(state.constant):
        raise InputError("the selected slices are constant (no contrast); nothing to process")
    return ModelStack(images, state.lows, state.scales, tuple(data.shape[1:]))
