"""Segment a volume into background / fat / FGT with a segmenter bundle."""

from __future__ import annotations

import numpy as np

from ..volume import Volume
from .bundle_access import BundleLike, get_bundle
from .requests import ProgressCallback, StopCheck


def segment(
    volume: Volume,
    bundle: BundleLike = None,
    *,
    device: str = "auto",
    batch_size: int = 16,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> np.ndarray:
    """(z, y, x) uint8 labels in the source geometry: 0 background, 1 fat, 2 FGT."""
    from ..models.segmenter import segment_volume

    loaded = get_bundle("segmenter", bundle, device)
    return segment_volume(
        loaded.model,
        volume,
        loaded.preprocessing,
        batch_size=batch_size,
        device=device,
        progress=progress,
        should_stop=should_stop,
    )
