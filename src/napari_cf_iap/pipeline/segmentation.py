"""Segment a volume into background / fat / FGT with a segmenter bundle."""

from __future__ import annotations

import numpy as np

from ..errors import CancelledError
from ..volume import Volume
from .bundle_access import BundleLike, get_bundle
from .requests import ProgressCallback, StopCheck
from .slices import check_finite


def segment(
    volume: Volume,
    bundle: BundleLike = None,
    *,
    device: str = "auto",
    batch_size: int = 16,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> np.ndarray:
    """(z, y, x) uint8 labels in the source geometry: 0 background, 1 fat, 2 FGT.

    The slices stream through in chunks of ``batch_size`` (preprocessed, segmented and
    written one chunk at a time), so memory beyond the labels does not grow with the count.
    """
    from ..models.segmenter import segment_volume

    loaded = get_bundle("segmenter", bundle, device)
    n = volume.shape[0]
    check_finite(volume, range(n))  # refuse NaN/inf before any work
    per_volume = dict(loaded.preprocessing or {}).get("per", "slice") == "volume"
    chunk = n if per_volume else max(1, int(batch_size))  # volume percentiles need them all
    out = np.empty(volume.shape, dtype=np.uint8)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        part = volume if (start, stop) == (0, n) else volume.with_data(volume.data[start:stop])

        def report(done: int, _total: int, message: str, offset: int = start) -> None:
            if progress is not None:
                progress(offset + done, n, message)

        try:
            out[start:stop] = segment_volume(
                loaded.model,
                part,
                loaded.preprocessing,
                batch_size=batch_size,
                device=device,
                progress=report,
                should_stop=should_stop,
            )
        except CancelledError:
            raise CancelledError(f"segmentation cancelled after {start} of {n} slices") from None
    return out
