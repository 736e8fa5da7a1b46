"""NRRD geometry (space directions/origin) in the project's (z, y, x) -> LPS convention.

pynrrd reads in Fortran order, so array axes are the NRRD axes (i, j, k) = (x, y, z); the
project's arrays are (z, y, x). ``space`` may be left-posterior-superior (LPS, Slicer's
default for seg.nrrd) or right-anterior-superior (RAS), converted by negating x and y.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..volume import Volume
from .limits import check_voxel_count

_LPS_NAMES = {"left-posterior-superior", "lps"}
_RAS_NAMES = {"right-anterior-superior", "ras"}


def read_nrrd_file(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """``nrrd.read`` with errors turned into :class:`InputError`."""
    import nrrd

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file")
    sizes = read_nrrd_header(path).get("sizes")
    if sizes is not None:
        check_voxel_count(np.atleast_1d(sizes), path)
    try:
        data, header = nrrd.read(str(path), index_order="F")
    except Exception as exc:  # pynrrd raises NRRDError, ValueError, zlib errors, ...
        raise InputError(f"cannot read NRRD file {path}: {exc}") from exc
    return np.asarray(data), dict(header)


def read_nrrd_header(path: str | Path) -> dict[str, Any]:
    """The header of an NRRD file (no voxel data), errors as :class:`InputError`."""
    import nrrd

    try:
        return dict(nrrd.read_header(str(path)))
    except Exception as exc:
        raise InputError(f"cannot read NRRD header of {path}: {exc}") from exc


def split_nrrd_axes(
    data: np.ndarray, header: dict[str, Any], path: str | Path
) -> tuple[np.ndarray, np.ndarray]:
    """Layers ``(L, z, y, x)`` and the (z, y, x) -> LPS affine of an NRRD array.

    A non-spatial axis (``space directions`` 'none', e.g. Slicer's multi-layer 'list' axis)
    becomes the layer axis; 3D files have one layer. Files without ``space directions`` get
    unit spacing from ``spacings`` (if any) and the identity orientation.
    """
    directions = header.get("space directions")
    if directions is None:
        spacings = np.asarray(header.get("spacings", [1.0] * data.ndim), dtype=float)
        spatial_axes = [i for i in range(data.ndim) if np.isfinite(spacings[i])][-3:]
        directions = np.full((data.ndim, 3), np.nan)
        for row, axis in enumerate(spatial_axes):
            directions[axis] = np.eye(3)[row] * spacings[axis]
    directions = np.asarray(directions, dtype=float)
    spatial = [i for i in range(data.ndim) if np.all(np.isfinite(directions[i]))]
    other = [i for i in range(data.ndim) if i not in spatial]
    if len(spatial) != 3 or len(other) > 1:
        raise InputError(
            f"{path}: expected 3 spatial axes plus at most one layer axis, got sizes "
            f"{data.shape} with space directions {directions.tolist()}"
        )
    layers = data.transpose(other + spatial) if other else data[None]
    layers = np.ascontiguousarray(layers.transpose(0, 3, 2, 1))  # (L, i, j, k) -> (L, k, j, i)
    space = str(header.get("space", "left-posterior-superior")).lower()
    origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=float)
    dirs = directions[spatial]  # rows: i, j, k
    if space in _RAS_NAMES:
        flip = np.array([-1.0, -1.0, 1.0])
        dirs, origin = dirs * flip, origin * flip
    elif space not in _LPS_NAMES:
        raise InputError(f"{path}: NRRD space {space!r} is not supported (use LPS or RAS)")
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 2] = dirs[2], dirs[1], dirs[0]
    affine[:3, 3] = origin
    return layers, affine


def nrrd_header_for(affine: np.ndarray) -> dict[str, Any]:
    """``space``/``space directions``/``space origin`` fields for a (z, y, x) -> LPS affine."""
    affine = np.asarray(affine, dtype=float)
    return {
        "space": "left-posterior-superior",
        "space directions": np.stack([affine[:3, 2], affine[:3, 1], affine[:3, 0]]),
        "space origin": affine[:3, 3].copy(),
        "kinds": ["domain", "domain", "domain"],
    }


def align_to_reference(
    array: np.ndarray,
    affine: np.ndarray,
    ref_shape: tuple[int, ...],
    ref_affine: np.ndarray,
    *,
    what: str,
) -> np.ndarray:
    """Place ``array`` (z, y, x) with ``affine`` onto the grid ``ref_shape``/``ref_affine``.

    Accepts identical grids and grids that differ by axis permutation/flip and a whole-voxel
    offset (e.g. a cropped segmentation); anything else raises :class:`InputError`.
    """
    ref_shape = tuple(int(s) for s in ref_shape)
    mapping = np.linalg.inv(np.asarray(ref_affine, dtype=float)) @ np.asarray(affine, dtype=float)
    linear, shift = mapping[:3, :3], mapping[:3, 3]
    rounded, shift_int = np.round(linear), np.round(shift)
    is_perm = (
        np.allclose(linear, rounded, atol=1e-3)
        and np.all(np.abs(rounded).sum(axis=0) == 1)
        and np.all(np.abs(rounded).sum(axis=1) == 1)
    )

    def mismatch(note: str = "") -> InputError:
        return InputError(_mismatch(array.shape, affine, ref_shape, ref_affine, what) + note)

    if not is_perm or not np.allclose(shift, shift_int, atol=1e-2):
        raise mismatch()
    order = [int(np.flatnonzero(rounded[a])[0]) for a in range(3)]
    signs = [int(rounded[a, order[a]]) for a in range(3)]
    moved = array.transpose(order)
    offsets = []
    for a in range(3):
        if signs[a] < 0:
            moved = np.flip(moved, axis=a)
            offsets.append(int(shift_int[a]) - (moved.shape[a] - 1))
        else:
            offsets.append(int(shift_int[a]))
    if tuple(offsets) == (0, 0, 0) and moved.shape == ref_shape:
        return np.ascontiguousarray(moved)
    out = np.zeros(ref_shape, dtype=array.dtype)
    src, dst = [], []
    for a in range(3):
        lo, hi = max(offsets[a], 0), min(offsets[a] + moved.shape[a], ref_shape[a])
        if hi <= lo:
            raise mismatch(" (no overlap)")
        dst.append(slice(lo, hi))
        src.append(slice(lo - offsets[a], hi - offsets[a]))
    inside = moved[tuple(src)]
    if np.count_nonzero(inside) != np.count_nonzero(moved):
        raise mismatch(" (labels outside the image)")
    out[tuple(dst)] = inside
    return out


def _mismatch(
    shape: tuple[int, ...],
    affine: np.ndarray,
    ref_shape: tuple[int, ...],
    ref_affine: np.ndarray,
    what: str,
) -> str:
    def describe(shape: tuple[int, ...], affine: np.ndarray) -> str:
        affine = np.asarray(affine, dtype=float)
        spacing = np.linalg.norm(affine[:3, :3], axis=0)
        return (
            f"shape {tuple(shape)}, origin {np.round(affine[:3, 3], 3).tolist()}, "
            f"spacing {np.round(spacing, 4).tolist()}"
        )

    return (
        f"{what} does not match the image geometry: {what} {describe(shape, affine)}; image "
        f"{describe(ref_shape, ref_affine)}. Use the segmentation made on this series"
    )


def read_nrrd(path: str | Path) -> Volume:
    """Load a scalar 3D NRRD image as a Volume (4D/multi-layer files are refused)."""
    data, header = read_nrrd_file(path)
    layers, affine = split_nrrd_axes(data, header, path)
    if layers.shape[0] != 1:
        raise InputError(
            f"{path} has {layers.shape[0]} layers; read segmentations with read_labels_nrrd"
        )
    spacing = tuple(float(np.linalg.norm(affine[:3, i])) for i in range(3))
    metadata = {"format": "nrrd", "source_paths": [str(path)], "missing_iaps": []}
    volume = Volume(data=layers[0], spacing=spacing, affine=affine, metadata=metadata)
    volume.metadata["missing_iaps"] = volume.iap.missing()
    return volume
