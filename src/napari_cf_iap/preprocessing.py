"""The paper's slice preprocessing (Appendix A.1) as an invertible transform.

Recipe: drop the first and last ``drop_slices`` slices, resize every slice to ``size`` x
``size`` (anisotropic, no crop; bilinear with antialiasing), then rescale intensities so that
the ``low_pct`` percentile maps to 0 and the ``high_pct`` percentile to 1, without clipping.

Percentiles are taken **per slice** by default (``per='slice'``): the model is 2D and sees one
slice at a time, the authors' sampler re-applies the same 10th/99th rescaling to each predicted
2D x0 (``method-facts.md``), and MONAI's ``ScaleIntensityRangePercentiles`` applied to a 2D
slice sample does exactly this. ``per='volume'`` uses one pair of percentiles for the stack.
Percentiles are computed after resizing, so the model input has them at exactly 0 and 1.
With ``store_size`` set (bundles trained from a slice store at another size), slices are
resized to the store size, normalised there and then resized to ``size``: exactly the path
the training data took, which matters because the IAP predictor reads noise texture.

A constant slice (high == low percentile) is shifted by its value but not scaled (scale 1),
so it maps to 0 and the inverse is still exact; ``PreprocessState.constant`` marks it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .errors import InputError
from .volume import Volume

_EPS = 1e-5  # relative span below which a slice counts as constant (float32)


@dataclass(frozen=True)
class PreprocessConfig:
    """Settings of the paper's preprocessing (defaults are the paper's)."""

    size: int = 224
    drop_slices: int = 20
    low_pct: float = 10.0
    high_pct: float = 99.0
    per: Literal["slice", "volume"] = "slice"
    #: resample through this size first and normalise there (as a training slice store
    #: did), then resize to ``size``; None = straight to ``size``
    store_size: int | None = None

    def __post_init__(self) -> None:
        if self.size < 1:
            raise InputError(f"size must be >= 1, got {self.size}")
        if self.drop_slices < 0:
            raise InputError(f"drop_slices must be >= 0, got {self.drop_slices}")
        if not 0 <= self.low_pct < self.high_pct <= 100:
            raise InputError(
                f"need 0 <= low_pct < high_pct <= 100, got {self.low_pct}, {self.high_pct}"
            )
        if self.per not in ("slice", "volume"):
            raise InputError(f"per must be 'slice' or 'volume', got {self.per!r}")


@dataclass(frozen=True)
class SliceScale:
    """Intensity mapping of one slice: ``normalised = (x - low) / scale``."""

    low: float
    scale: float
    constant: bool = False


@dataclass
class PreprocessState:
    """Everything :func:`postprocess` needs to undo :func:`preprocess_volume`."""

    config: PreprocessConfig
    original_shape: tuple[int, int, int]
    start: int
    stop: int
    dropped: bool
    lows: np.ndarray
    scales: np.ndarray
    constant: np.ndarray
    source: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_slices(self) -> int:
        return self.stop - self.start

    def slice_scale(self, i: int) -> SliceScale:
        """Intensity mapping of kept slice ``i``."""
        return SliceScale(float(self.lows[i]), float(self.scales[i]), bool(self.constant[i]))


def _check_finite(array: np.ndarray) -> None:
    if not np.all(np.isfinite(array)):
        raise InputError("the image contains NaN or inf values; fix or mask them first")


def resize_slices(slices: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a stack (n, H, W) to (n, *shape): bilinear, antialiased, float32."""
    slices = np.asarray(slices, dtype=np.float32)
    if slices.shape[1:] == tuple(shape):
        return slices.copy()
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        tensor = torch.from_numpy(np.ascontiguousarray(slices))[:, None]
        out = F.interpolate(
            tensor, size=tuple(shape), mode="bilinear", align_corners=False, antialias=True
        )
    return out[:, 0].numpy()


def _scales(lows: np.ndarray, highs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    span = highs - lows
    constant = span <= _EPS * np.maximum(1.0, np.abs(highs))
    return np.where(constant, 1.0, span), constant


def normalise_slice(
    image: np.ndarray, low_pct: float = 10.0, high_pct: float = 99.0
) -> tuple[np.ndarray, SliceScale]:
    """Percentile-rescale one 2D slice (low -> 0, high -> 1, no clipping)."""
    image = np.asarray(image, dtype=np.float32)
    _check_finite(image)
    low, high = np.percentile(image, [low_pct, high_pct])
    scale, constant = _scales(np.array([low]), np.array([high]))
    result = SliceScale(float(low), float(scale[0]), bool(constant[0]))
    return ((image - result.low) / result.scale).astype(np.float32), result


def denormalise_slice(normalised: np.ndarray, scale: SliceScale) -> np.ndarray:
    """Inverse of :func:`normalise_slice`."""
    return (np.asarray(normalised, dtype=np.float32) * scale.scale + scale.low).astype(np.float32)


def preprocess_volume(
    volume: Volume | np.ndarray, config: PreprocessConfig | None = None
) -> tuple[np.ndarray, PreprocessState]:
    """Slices ready for the model, float32 (n, size, size), and the state to invert them.

    If the volume has no more than ``2 * drop_slices`` slices, all are kept and
    ``state.dropped`` is False. The input is not modified; ``state.source`` references it so
    that :func:`postprocess` can restore the dropped slices.
    """
    config = config or PreprocessConfig()
    data = volume.data if isinstance(volume, Volume) else np.asarray(volume)
    if data.ndim != 3 or min(data.shape) < 1:
        raise InputError(f"expected a (slices, rows, columns) volume, got shape {data.shape}")
    _check_finite(data)
    n = data.shape[0]
    drop = config.drop_slices
    dropped = n > 2 * drop and drop > 0
    start, stop = (drop, n - drop) if dropped else (0, n)
    stage = config.store_size or config.size
    resized = resize_slices(data[start:stop], (stage, stage))
    pcts = [config.low_pct, config.high_pct]
    if config.per == "slice":
        lows, highs = np.percentile(resized.reshape(len(resized), -1), pcts, axis=1)
    else:
        low, high = np.percentile(resized, pcts)
        lows, highs = np.full(len(resized), low), np.full(len(resized), high)
    scales, constant = _scales(lows, highs)
    out = (resized - lows[:, None, None].astype(np.float32)) / scales[:, None, None].astype(
        np.float32
    )
    if stage != config.size:  # the affine intensity map commutes with (linear) resizing
        out = resize_slices(out, (config.size, config.size))
    state = PreprocessState(
        config=config,
        original_shape=tuple(int(s) for s in data.shape),  # type: ignore[arg-type]
        start=start,
        stop=stop,
        dropped=dropped,
        lows=lows.astype(np.float64),
        scales=scales.astype(np.float64),
        constant=constant,
        source=data,
    )
    return out.astype(np.float32), state


def postprocess(
    slices: np.ndarray,
    state: PreprocessState,
    *,
    original: np.ndarray | None = None,
    full: bool = True,
) -> np.ndarray:
    """Undo :func:`preprocess_volume`: original intensity scale and slice size, float32.

    With ``full`` the result has the original volume shape, the dropped slices copied from
    ``original`` (default: the preprocessed input kept in ``state.source``); otherwise only
    the kept slices are returned.
    """
    slices = np.asarray(slices, dtype=np.float32)
    size = state.config.size
    if slices.shape != (state.n_slices, size, size):
        raise InputError(
            f"expected slices of shape {(state.n_slices, size, size)}, got {slices.shape}"
        )
    _check_finite(slices)
    restored = slices * state.scales[:, None, None].astype(np.float32) + state.lows[
        :, None, None
    ].astype(np.float32)
    restored = resize_slices(restored, state.original_shape[1:])
    if not full:
        return restored
    base = original if original is not None else state.source
    if base is None:
        raise InputError("the original volume is needed to restore the dropped slices")
    if tuple(base.shape) != state.original_shape:
        raise InputError(f"original has shape {base.shape}, expected {state.original_shape}")
    result = np.asarray(base, dtype=np.float32).copy()
    result[state.start : state.stop] = restored
    return result


@dataclass
class SliceState:
    """What :func:`postprocess_slice` needs to undo :func:`preprocess_slice`."""

    original_shape: tuple[int, int]
    scale: SliceScale


def preprocess_slice(
    image: np.ndarray, config: PreprocessConfig | None = None
) -> tuple[np.ndarray, SliceState]:
    """One 2D slice resized and percentile-normalised (for live previews)."""
    config = config or PreprocessConfig()
    image = np.asarray(image)
    if image.ndim != 2:
        raise InputError(f"expected a 2D slice, got shape {image.shape}")
    _check_finite(image)
    resized = resize_slices(image[None], (config.size, config.size))[0]
    normalised, scale = normalise_slice(resized, config.low_pct, config.high_pct)
    return normalised, SliceState((int(image.shape[0]), int(image.shape[1])), scale)


def postprocess_slice(normalised: np.ndarray, state: SliceState) -> np.ndarray:
    """Inverse of :func:`preprocess_slice`: original intensity scale and size."""
    normalised = np.asarray(normalised, dtype=np.float32)
    if normalised.ndim != 2:
        raise InputError(f"expected a 2D slice, got shape {normalised.shape}")
    _check_finite(normalised)
    restored = denormalise_slice(normalised, state.scale)
    return resize_slices(restored[None], state.original_shape)[0]
