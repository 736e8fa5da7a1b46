"""Slice selection and model-resolution stacks shared by the volume-level jobs.

The jobs stream: :func:`model_stacks` preprocesses the selected slices one chunk at a time, so
no job holds more than a chunk of full-resolution slices next to its own output, whatever
the slice count.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import CancelledError, InputError
from ..preprocessing import PreprocessConfig, preprocess_volume, resize_slices
from ..volume import Volume
from .requests import StopCheck

#: full-resolution slices preprocessed at once (bounds the float32 working copy)
PREPROCESS_CHUNK = 8


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


def rows(indices: Sequence[int]) -> slice | list[int]:
    """``indices`` as a ``slice`` when they are consecutive (a view, no copy), else a list."""
    idx = [int(i) for i in indices]
    if idx and idx == list(range(idx[0], idx[0] + len(idx))):
        return slice(idx[0], idx[0] + len(idx))
    return idx


def chunks(indices: Sequence[int], size: int) -> Iterator[list[int]]:
    """Consecutive runs of at most ``size`` of ``indices``, in order."""
    size = max(1, int(size))
    for start in range(0, len(indices), size):
        yield list(indices[start : start + size])


@dataclass
class ModelStack:
    """Slices resized to the model's size and percentile-normalised, with the inverse."""

    images: np.ndarray  # (n, size, size) float32, normalised
    lows: np.ndarray  # (n,)
    scales: np.ndarray  # (n,)
    original_hw: tuple[int, int]
    constant: np.ndarray | None = None  # (n,) bool: slice without contrast

    def restore(self, normalised: np.ndarray) -> np.ndarray:
        """Model-space slices back to the source size and intensity scale."""
        scaled = normalised * self.scales[:, None, None] + self.lows[:, None, None]
        return resize_slices(scaled.astype(np.float32), self.original_hw)

    def restore_delta(self, normalised: np.ndarray) -> np.ndarray:
        """The change ``normalised - images`` at the source size and intensity scale."""
        delta = (normalised - self.images) * self.scales[:, None, None]
        return resize_slices(delta.astype(np.float32), self.original_hw)


def to_model_stack(
    volume: Volume,
    indices: Sequence[int],
    config: PreprocessConfig,
    *,
    allow_constant: bool = False,
) -> ModelStack:
    """The chosen slices as the model saw its training data (``config`` = the bundle's).

    Full-resolution slices are read (and converted to float32) at most
    :data:`PREPROCESS_CHUNK` at a time; only the model-size result is kept.
    Raises :class:`InputError` when every chosen slice is constant, unless ``allow_constant``.
    """
    config = dataclasses.replace(config, drop_slices=0)
    size = len(indices) if config.per == "volume" else PREPROCESS_CHUNK
    parts = []
    for part in chunks(indices, size):
        data = np.asarray(volume.data[rows(part)], dtype=np.float32)  # a view where possible
        parts.append(preprocess_volume(data, config))
        del data
    images = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
    states = [p[1] for p in parts]
    constant = np.concatenate([np.asarray(s.constant, dtype=bool) for s in states])
    if not allow_constant and np.all(constant):
        raise_constant()
    return ModelStack(
        images,
        np.concatenate([s.lows for s in states]),
        np.concatenate([s.scales for s in states]),
        tuple(volume.shape[1:]),
        constant,
    )


def raise_constant() -> None:
    raise InputError("the selected slices are constant (no contrast); nothing to process")


def check_finite(volume: Volume, indices: Sequence[int], chunk: int = 16) -> None:
    """Refuse NaN/inf in the chosen slices before any work starts (float64 sums per chunk:
    finite exactly when every value is, with no full-size temporary)."""
    if not np.issubdtype(volume.data.dtype, np.floating):
        return
    for part in chunks(indices, chunk):
        block = volume.data[rows(part)]
        # the float64 sum of finite float32 values cannot overflow; float64 data can
        if not np.isfinite(np.sum(block, dtype=np.float64)) and not np.all(np.isfinite(block)):
            raise InputError("the image contains NaN or inf values; fix or mask them first")


def model_stacks(
    volume: Volume,
    indices: Sequence[int],
    config: PreprocessConfig,
    chunk: int,
    should_stop: StopCheck | None = None,
) -> Iterator[tuple[list[int], ModelStack]]:
    """Yield ``(chunk_indices, ModelStack)`` for consecutive chunks of ``indices``.

    Input problems surface before the first chunk: NaN/inf anywhere in the selection, or a
    selection whose slices are all constant. Percentiles taken over the whole selection
    (``config.per == "volume"``) need every slice at once, so that case is one chunk.
    ``should_stop()`` is checked before each chunk.
    """
    check_finite(volume, indices)
    size = len(indices) if config.per == "volume" else max(1, int(chunk))
    parts = list(chunks(indices, size))
    first = to_model_stack(volume, parts[0], config, allow_constant=True)
    if np.all(first.constant) and not any(
        not np.all(to_model_stack(volume, part, config, allow_constant=True).constant)
        for part in parts[1:]
    ):
        raise_constant()
    for n, part in enumerate(parts):
        if should_stop is not None and should_stop():
            raise CancelledError(f"cancelled after {n} of {len(parts)} slice chunks")
        stack = first if n == 0 else to_model_stack(volume, part, config, allow_constant=True)
        first = None  # type: ignore[assignment]  # let the first chunk go once used
        yield part, stack
        del stack
