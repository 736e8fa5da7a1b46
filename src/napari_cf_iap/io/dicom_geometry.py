"""Turn the frames of one DICOM series into a sorted, checked 3D stack with its affine.

Rules from ``mri-physics.md``: sort by ``dot(ImagePositionPatient, row x col)`` (never by
InstanceNumber or file name); one orientation and FrameOfReferenceUID; no duplicate positions;
uniform spacing, taken from the positions rather than SliceThickness.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..volume import affine_from_geometry
from .dicom_frame import PHASE_TAGS, Frame

_ORIENTATION_TOL = 1e-4
_POSITION_DECIMALS = 3  # positions equal to 1 micrometre are duplicates


@dataclass
class StackGeometry:
    """Frames in slice order plus the volume geometry."""

    frames: list[Frame]
    spacing: tuple[float, float, float]
    affine: np.ndarray


def _position_key(frame: Frame) -> tuple[float, ...] | None:
    if frame.position is None:
        return None
    return tuple(np.round(frame.position, _POSITION_DECIMALS))


def _has_duplicates(frames: list[Frame]) -> bool:
    keys = [_position_key(f) for f in frames]
    return len(set(keys)) != len(keys)


def _sort_value(value: Any) -> tuple[int, Any]:
    try:
        return (0, float(value))
    except (TypeError, ValueError):
        return (1, str(value))


def split_phases(frames: list[Frame]) -> list[tuple[str, list[Frame]]]:
    """Split a multi-phase series into time points; one ``('all', frames)`` if positions are unique.

    Tries :data:`PHASE_TAGS` in order and uses the first tag whose groups each have unique
    slice positions and the same number of slices.
    """
    if len(frames) <= 1 or not _has_duplicates(frames):
        return [("all", frames)]
    for tag in PHASE_TAGS:
        values = [f.phase_tags.get(tag) for f in frames]
        if any(v is None for v in values):
            continue
        groups: dict[Any, list[Frame]] = defaultdict(list)
        for frame, value in zip(frames, values, strict=True):
            groups[_sort_value(value)].append(frame)
        if len(groups) < 2 or len({len(g) for g in groups.values()}) != 1:
            continue
        if any(_has_duplicates(g) for g in groups.values()):
            continue
        return [
            (f"{tag}={key[1]:g}" if key[0] == 0 else f"{tag}={key[1]}", groups[key])
            for key in sorted(groups)
        ]
    keys = [_position_key(f) for f in frames]
    dup = next(k for k in keys if keys.count(k) > 1)
    names = [f.label() for f, k in zip(frames, keys, strict=True) if k == dup][:4]
    raise InputError(
        f"duplicate slice position {[float(v) for v in dup] if dup else 'unknown'} in {names}; "
        "the series is "
        f"neither single-phase nor separable by {', '.join(PHASE_TAGS)}. Remove duplicate files "
        "or load the files of one phase from their own folder"
    )


def _one_value(frames: list[Frame], attr: str, what: str, *, tol: float | None = None) -> Any:
    first = getattr(frames[0], attr)
    for frame in frames[1:]:
        value = getattr(frame, attr)
        same = (
            value == first
            if tol is None
            else (value is None) == (first is None)
            and (value is None or np.allclose(value, first, atol=tol))
        )
        if not same:
            raise InputError(
                f"slices of one series have different {what}: {frames[0].label()} has {first}, "
                f"{frame.label()} has {value}; the folder mixes stacks, so split it"
            )
    return first


def stack_geometry(frames: list[Frame], default_slice_spacing: float = 1.0) -> StackGeometry:
    """Sort ``frames`` along the slice normal, check them, and compute spacing and affine.

    ``default_slice_spacing`` is used for a single slice (SpacingBetweenSlices or SliceThickness).
    """
    if not frames:
        raise InputError("no image frames to stack")
    shape = _one_value(frames, "shape", "image sizes (Rows, Columns)")
    if min(shape) <= 0:
        raise InputError(f"{frames[0].label()} has no image size (Rows/Columns {shape})")
    _one_value(frames, "frame_of_reference", "FrameOfReferenceUID")
    orientation = _one_value(frames, "orientation", "orientations", tol=_ORIENTATION_TOL)
    pixel_spacing = _one_value(frames, "pixel_spacing", "PixelSpacing", tol=1e-4)
    dy, dx = pixel_spacing if pixel_spacing is not None else (1.0, 1.0)
    if orientation is None:
        if len(frames) > 1:
            raise InputError(
                f"{frames[0].label()} lacks ImageOrientationPatient; a multi-slice series "
                "cannot be sorted without it"
            )
        orientation = np.array([1.0, 0, 0, 0, 1.0, 0])
    row, col = orientation[:3], orientation[3:]
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    normal = np.cross(row, col)
    if len(frames) == 1:
        position = frames[0].position
        origin = np.zeros(3) if position is None else position
        spacing = (float(default_slice_spacing), float(dy), float(dx))
        return StackGeometry(frames, spacing, affine_from_geometry(origin, row, col, spacing))

    missing = [f.label() for f in frames if f.position is None]
    if missing:
        raise InputError(f"{missing[:3]} lack ImagePositionPatient; cannot sort the slices")
    order = sorted(frames, key=lambda f: float(np.dot(f.position, normal)))
    depth = np.array([np.dot(f.position, normal) for f in order])
    gaps = np.diff(depth)
    dups = np.flatnonzero(gaps < 10.0**-_POSITION_DECIMALS)
    if dups.size:
        i = int(dups[0])
        raise InputError(
            f"duplicate slice position {depth[i]:.3f} mm: {order[i].label()} and "
            f"{order[i + 1].label()}; remove the duplicate or split the phases"
        )
    median = float(np.median(gaps))
    tol = max(0.01 * median, 1e-3)
    bad = np.flatnonzero(np.abs(gaps - median) > tol)
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"non-uniform slice spacing: gaps range {gaps.min():.4g}-{gaps.max():.4g} mm "
            f"(median {median:.4g}); first irregular gap {gaps[i]:.4g} mm between "
            f"{order[i].label()} and {order[i + 1].label()}. A slice may be missing or the "
            "folder mixes stacks"
        )
    dz = float((depth[-1] - depth[0]) / (len(order) - 1))
    origin = order[0].position
    offsets = np.array([f.position - origin for f in order]) - np.outer(depth - depth[0], normal)
    if np.abs(offsets).max() > max(0.05 * dz, 0.01):
        raise InputError(
            "slice positions do not lie along the slice normal (gantry tilt or sheared stack, "
            f"in-plane offset up to {np.abs(offsets).max():.3g} mm); such series are not supported"
        )
    spacing = (dz, float(dy), float(dx))
    return StackGeometry(order, spacing, affine_from_geometry(origin, row, col, spacing))
