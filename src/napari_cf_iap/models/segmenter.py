"""The fat/FGT segmenter (MONAI residual UNet, 2D) and slice-by-slice volume inference.

Labels: 0 background, 1 fat/breast, 2 FGT. :func:`segment_volume` segments *every* slice of
the volume (the first/last slices dropped for training are still segmented, so the mask
covers the whole source volume), in chunks of ``batch_size`` slices: each slice is resized
to the network size and percentile-normalised, the class probabilities are resized back to
the original in-plane size, and the argmax is taken there. Preprocessing is
``napari_cf_iap.preprocessing.preprocess_volume`` with ``drop_slices=0``. The output has the
source geometry: shape (z, y, x) of the input, dtype uint8.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.nets import UNet
from torch import nn

from ..device import autocast_for, resolve_device
from ..errors import CancelledError, InputError
from ..preprocessing import PreprocessConfig, preprocess_volume
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


def _preprocess_config(cfg: Any, image_size: int) -> PreprocessConfig:
    """A ``PreprocessConfig`` from a config, a mapping (e.g. a bundle's) or ``None``."""
    if isinstance(cfg, PreprocessConfig):
        return cfg
    if cfg is None:
        return PreprocessConfig(size=image_size)
    if not isinstance(cfg, Mapping):
        raise InputError(f"preprocess_cfg must be a PreprocessConfig or a mapping, got {cfg!r}")
    names = {f.name for f in dataclasses.fields(PreprocessConfig)}
    return PreprocessConfig(**{k: v for k, v in cfg.items() if k in names})


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

    ``preprocess_cfg`` is a ``PreprocessConfig`` or a mapping such as a bundle's
    ``preprocessing`` (default: the paper's rule at the model's image size); its
    ``drop_slices`` is ignored here. ``progress(done, total, message)``
    is called after each chunk; ``should_stop()`` is checked before each chunk and raises
    :class:`CancelledError`.
    """
    dev = resolve_device(device)
    config = dataclasses.replace(
        _preprocess_config(preprocess_cfg, model.config.image_size), drop_slices=0
    )
    slices, _ = preprocess_volume(volume, config)  # every slice, model size, percentile-scaled
    model = model.to(dev).eval()
    n, h, w = volume.shape
    out = np.zeros((n, h, w), dtype=np.uint8)
    batch_size = max(1, int(batch_size))
    for start in range(0, n, batch_size):
        if should_stop is not None and should_stop():
            raise CancelledError(f"segmentation cancelled after {start} of {n} slices")
        stop = min(n, start + batch_size)
        x = torch.from_numpy(slices[start:stop]).unsqueeze(1).to(dev)
        with autocast_for(dev):
            logits = model(x)
        probs = torch.softmax(logits.float(), dim=1)
        if probs.shape[-2:] != (h, w):
            probs = F.interpolate(probs, size=(h, w), mode="bilinear", align_corners=False)
        out[start:stop] = probs.argmax(dim=1).to(torch.uint8).cpu().numpy()
        if progress is not None:
            progress(stop, n, "segmenting slices")
    return out
