"""Millimetre coordinates of the phantom grid (the frame the anatomy and smooth maps share).

Axes are (z, y, x): z inferior -> superior with 0 at the centre, y from the anterior edge of the
field of view, x patient right -> left with 0 at the centre (see ``anatomy``).
"""

from __future__ import annotations

import numpy as np


def grid_coordinates(
    shape: tuple[int, int, int], voxel_mm: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """z (mm, 0 at the centre, + superior), y (mm from the anterior FOV edge), x (mm, + left)."""
    nz, ny, nx = shape
    dz, dy, dx = voxel_mm
    z = ((np.arange(nz) - (nz - 1) / 2.0) * dz).astype(np.float32)
    y = ((np.arange(ny) + 0.5) * dy).astype(np.float32)
    x = ((np.arange(nx) - (nx - 1) / 2.0) * dx).astype(np.float32)
    return z, y, x
