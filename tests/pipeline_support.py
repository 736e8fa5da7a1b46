"""Shared inputs of the pipeline tests: a target protocol and a small random volume."""

from __future__ import annotations

import numpy as np

from napari_cf_iap.iap import IAPRecord
from napari_cf_iap.volume import Volume

TARGET = IAPRecord.create(
    manufacturer="SIEMENS",
    model_name="Skyra",
    field_strength=3.0,
    scan_options="FS",
    flip_angle=10,
    slice_thickness=1.0,
    echo_time=1.5,
    repetition_time=4.5,
)


def gamma_volume(n: int = 7, hw: tuple[int, int] = (40, 48), seed: int = 0) -> Volume:
    """``n`` slices of gamma-distributed intensities on an anisotropic, axis-aligned grid."""
    rng = np.random.default_rng(seed)
    data = rng.gamma(2.0, 100.0, size=(n, *hw)).astype(np.float32)
    return Volume(data, spacing=(2.0, 0.7, 0.8), affine=np.diag([2.0, 0.7, 0.8, 1.0]))
