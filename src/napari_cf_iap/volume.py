"""The in-memory image type shared by readers, the simulator, models and writers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError
from .iap.record import IAPRecord


def affine_from_geometry(
    origin: np.ndarray,
    row_cosine: np.ndarray,
    col_cosine: np.ndarray,
    spacing: tuple[float, float, float],
) -> np.ndarray:
    """4x4 affine mapping array index (z, y, x, 1) to patient LPS millimetres.

    ``row_cosine`` is DICOM ImageOrientationPatient[:3] (direction of increasing column x),
    ``col_cosine`` is [3:] (direction of increasing row y); the slice axis is their cross product.
    ``spacing`` is (slice spacing, row spacing, column spacing) in mm.
    """
    row_cosine = np.asarray(row_cosine, dtype=float)
    col_cosine = np.asarray(col_cosine, dtype=float)
    normal = np.cross(row_cosine, col_cosine)
    dz, dy, dx = spacing
    affine = np.eye(4)
    affine[:3, 0] = normal * dz
    affine[:3, 1] = col_cosine * dy
    affine[:3, 2] = row_cosine * dx
    affine[:3, 3] = np.asarray(origin, dtype=float)
    return affine


@dataclass
class Volume:
    """A 3D scalar volume in (slice, row, column) order with its geometry and IAPs.

    ``spacing`` is (slice spacing, row spacing, column spacing) in mm; ``affine`` maps array
    indices (z, y, x, 1) to patient LPS mm (see :func:`affine_from_geometry`).
    ``metadata`` holds provenance such as the source path, SeriesInstanceUID and missing tags.
    """

    data: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    affine: np.ndarray = field(default_factory=lambda: np.eye(4))
    iap: IAPRecord = field(default_factory=IAPRecord)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.data.ndim != 3:
            raise InputError(
                f"expected a 3D (slice, row, column) volume, got shape {self.data.shape}; "
                "2D images need a leading slice axis, RGB and 4D data are not supported"
            )
        if any(s <= 0 for s in self.data.shape):
            raise InputError(f"volume has an empty axis: shape {self.data.shape}")
        self.spacing = tuple(float(s) for s in self.spacing)  # type: ignore[assignment]
        self.affine = np.asarray(self.affine, dtype=float)
        if self.affine.shape != (4, 4):
            raise InputError(f"affine must be 4x4, got {self.affine.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    def with_data(self, data: np.ndarray, **changes: Any) -> Volume:
        """A copy with new voxel data (same shape) and optionally other fields changed."""
        fields_ = {
            "spacing": self.spacing,
            "affine": self.affine.copy(),
            "iap": self.iap,
            "metadata": dict(self.metadata),
        }
        fields_.update(changes)
        return Volume(data=data, **fields_)
