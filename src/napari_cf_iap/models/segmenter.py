"""The fat/FGT segmenter (MONAI residual UNet, 2D) and slice-by-slice volume inference.

Labels: 0 background, 1 fat/breast, 2 FGT. :func:`segment_volume` segments *every* slice of
the volume (the first/last slices dropped for training are still segmented, so the mask
covers the whole source volume), in chunks of ``batch_size`` slices: each slice is resized
to the network size and percentile-normalised, the class probabilities are resized back to
the original in-plane size, and the argmax is taken there. The output has the source
geometry: shape (z, y, x) of the input, dtype uint8.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.nets import UNet
from torch import nn

from ..device import autocast_for, resolve_device
from ..errors import CancelledError
from ..volume import Volume
from .config import SegmenterConfig

LABELS = {0: "background", 1: "fat", 2: "fgt"}


class Segmenter(nn.Module):
    """``forward(images (B,1,H,W)) -> logits (B,3,H,W)``."""

    def __init__(self, config: SegmenterConfig) -> None:
        super().__init__()
        self.config = config
        self.unet = UNet(
            spatial_dims=2,
            in_channels=config.in_channels,
            out_channels=config.out_channels,
            channels=tuple(config.channels),
            strides=tuple(config.strides),
            num_res_units=config.num_res_units,
            norm=config.norm,
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.unet(images)


def _setting(cfg: Any, name: str, default: Any) -> Any:
    if cfg is None:
        return default
    if isinstance(cfg, Mapping):
        return cfg.get(name, default)
    return getattr(cfg, name, default)


def _slices_to_input(
    slices: np.ndarray, size: int, low_pct: float, high_pct: float
) -> torch.Tensor:
    """(n, y, x) raw slices -> (n, 1, size, size): bilinear resize, per-slice percentile scaling.

    A private stand-in for ``napari_cf_iap.preprocessing`` (same rule: low percentile -> 0,
    high percentile -> 1, no clipping); swap in the shared functions once they exist.
    """
    x = torch.from_numpy(np.ascontiguousarray(slices, dtype=np.float32)).unsqueeze(1)
    flat = x.flatten(1)
    low = torch.quantile(flat, low_pct / 100.0, dim=1).view(-1, 1, 1, 1)
    high = torch.quantile(flat, high_pct / 100.0, dim=1).view(-1, 1, 1, 1)
    x = (x - low) / torch.clamp(high - low, min=1e-6)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
    return x


@torch.inference_mode()
def segment_volume(
    model: Segmenter,
    volume: Volume,
    preprocess_cfg: Any = None,
    *,
    batch_size: int = 16,
    device: str | torch.device = "auto",
    progress: Callable[[int, int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> np.ndarray:
    """Segment every slice of ``volume``; return a (z, y, x) uint8 label map (0, 1, 2).

    ``preprocess_cfg`` is a ``PreprocessConfig`` or a mapping with ``size``, ``low_pct`` and
    ``high_pct`` (defaults: the model's image size, 10, 99). ``progress(done, total, message)``
    is called after each chunk; ``should_stop()`` is checked before each chunk and raises
    :class:`CancelledError`.
    """
    dev = resolve_device(device)
    size = int(_setting(preprocess_cfg, "size", model.config.image_size))
    low_pct = float(_setting(preprocess_cfg, "low_pct", 10.0))
    high_pct = float(_setting(preprocess_cfg, "high_pct", 99.0))
    model = model.to(dev).eval()
    data = volume.data
    n, h, w = data.shape
    out = np.zeros((n, h, w), dtype=np.uint8)
    batch_size = max(1, int(batch_size))
    for start in range(0, n, batch_size):
        if should_stop is not None and should_stop():
            raise CancelledError(f"segmentation cancelled after {start} of {n} slices")
        stop = min(n, start + batch_size)
        x = _slices_to_input(data[start:stop], size, low_pct, high_pct).to(dev)
        with autocast_for(dev):
            logits = model(x)
        probs = torch.softmax(logits.float(), dim=1)
        if probs.shape[-2:] != (h, w):
            probs = F.interpolate(probs, size=(h, w), mode="bilinear", align_corners=False)
        out[start:stop] = probs.argmax(dim=1).to(torch.uint8).cpu().numpy()
        if progress is not None:
            progress(stop, n, "segmenting slices")
    return out
