"""Segmentation masks as 3D Slicer ``.seg.nrrd`` files, in the layout of the Duke supplement.

The TCIA supplement "3D Breast and FGT MRI Segmentation" ships two files per patient:
``Segmentation_Breast_MRI_NNN_Breast.seg.nrrd`` and ``..._Dense_and_Vessels.seg.nrrd``. Each
segment is described by ``SegmentN_Name``/``SegmentN_LabelValue``/``SegmentN_Layer`` header
fields; overlapping segments live in separate layers of a 4D file.

Merged training labels (``method-facts.md``): 0 background, 1 fat/breast, 2 FGT. Segments are
classified by name: "dense"/"fgt"/"glandular" -> 2; "vessel" -> 1 (vessels run through the
breast and are not fibroglandular tissue, so they count as breast); "breast"/"fat" -> 1.
In the breast file an unrecognised name counts as breast; in the dense file it is an error
unless ``segment_labels`` maps it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import InputError
from ..volume import Volume
from .atomic import atomic_path
from .nrrd_geometry import align_to_reference, nrrd_header_for, read_nrrd_file, split_nrrd_axes

BACKGROUND, BREAST, FGT = 0, 1, 2
LABEL_NAMES = {BACKGROUND: "background", BREAST: "fat/breast", FGT: "FGT"}

_DENSE_WORDS = ("dense", "fgt", "fibroglandular", "glandular")
_VESSEL_WORDS = ("vessel",)
_BREAST_WORDS = ("breast", "fat")
_COLORS = {1: "0.945 0.839 0.569", 2: "0.867 0.510 0.396"}


@dataclass(frozen=True)
class Segment:
    """One Slicer segment: its voxels are ``layers[layer] == label_value``."""

    index: int
    name: str
    label_value: int
    layer: int


def segments_of(header: dict[str, Any]) -> list[Segment]:
    """The segments declared in a seg.nrrd header, by index."""
    out = []
    for key in header:
        match = re.fullmatch(r"Segment(\d+)_Name", key)
        if not match:
            continue
        i = int(match.group(1))
        try:
            value = int(float(header.get(f"Segment{i}_LabelValue", 1)))
            layer = int(float(header.get(f"Segment{i}_Layer", 0)))
        except (TypeError, ValueError) as exc:
            raise InputError(f"segment {i} has an invalid LabelValue/Layer: {exc}") from exc
        out.append(Segment(i, str(header[key]), value, layer))
    return sorted(out, key=lambda s: s.index)


def classify_segment(name: str) -> int | None:
    """Training label for a segment name, or ``None`` if the name is not recognised."""
    text = name.lower()
    if any(w in text for w in _VESSEL_WORDS):
        return BREAST
    if any(w in text for w in _DENSE_WORDS):
        return FGT
    if any(w in text for w in _BREAST_WORDS):
        return BREAST
    return None


def _segment_masks(
    path: str | Path,
    kind: Literal["breast", "dense"],
    segment_labels: dict[str, int] | None,
) -> tuple[list[tuple[int, np.ndarray]], np.ndarray]:
    """``[(training label, boolean mask)]`` for every segment of a file, plus its affine."""
    data, header = read_nrrd_file(path)
    layers, affine = split_nrrd_axes(data, header, path)
    segments = segments_of(header)
    default = BREAST if kind == "breast" else FGT
    if not segments:
        return [(default, np.any(layers != 0, axis=0))], affine
    masks = []
    for seg in segments:
        if not 0 <= seg.layer < layers.shape[0]:
            raise InputError(
                f"{path}: segment {seg.name!r} is in layer {seg.layer}, file has {layers.shape[0]}"
            )
        label = (segment_labels or {}).get(seg.name, classify_segment(seg.name))
        if label is None:
            if kind == "breast":
                label = BREAST
            else:
                names = [s.name for s in segments]
                raise InputError(
                    f"{path}: cannot tell what segment {seg.name!r} is (segments {names}); "
                    f"recognised words: {_DENSE_WORDS + _VESSEL_WORDS + _BREAST_WORDS}. Pass "
                    "segment_labels={name: 1 or 2}"
                )
        if label not in LABEL_NAMES:
            raise InputError(f"segment label {label} for {seg.name!r} must be one of {LABEL_NAMES}")
        masks.append((label, layers[seg.layer] == seg.label_value))
    return masks, affine


def read_duke_masks(
    breast_path: str | Path,
    dense_path: str | Path | None = None,
    reference: Volume | None = None,
    *,
    segment_labels: dict[str, int] | None = None,
) -> np.ndarray:
    """Merge Duke breast and dense/vessel seg.nrrd files into labels 0/1/2, (z, y, x) uint8.

    With ``reference`` the labels are placed on its grid (axis flips/permutations and cropped
    extents are handled; any other mismatch raises :class:`InputError` naming both
    geometries). Without it the breast file's grid is used. Breast and vessels become 1, then
    dense tissue 2 on top.
    """
    breast, breast_affine = _segment_masks(breast_path, "breast", segment_labels)
    if reference is not None:
        grid_shape, grid_affine = reference.shape, reference.affine
    else:
        grid_shape, grid_affine = breast[0][1].shape, breast_affine
    parts = [(label, mask, breast_affine, breast_path) for label, mask in breast]
    if dense_path is not None:
        dense, dense_affine = _segment_masks(dense_path, "dense", segment_labels)
        parts += [(label, mask, dense_affine, dense_path) for label, mask in dense]
    labels = np.zeros(grid_shape, dtype=np.uint8)
    for wanted in (BREAST, FGT):
        for label, mask, affine, path in parts:
            if label != wanted:
                continue
            placed = align_to_reference(
                mask, affine, grid_shape, grid_affine, what=f"mask {Path(path).name}"
            )
            labels[placed] = label
    return labels


def _extent(mask: np.ndarray) -> str:
    """Slicer's SegmentN_Extent 'i0 i1 j0 j1 k0 k1' of a (z, y, x) mask."""
    if not mask.any():
        return "0 -1 0 -1 0 -1"
    bounds = []
    for axis in (2, 1, 0):  # i = x, j = y, k = z
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        bounds += [str(idx[0]), str(idx[-1])]
    return " ".join(bounds)


def write_labels_nrrd(
    labels: np.ndarray,
    reference: Volume,
    out_path: str | Path,
    *,
    names: dict[int, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write integer labels (z, y, x) on ``reference``'s grid as a single-layer seg.nrrd.

    Every non-zero label value becomes a Slicer segment (``names`` maps value -> name).
    """
    import nrrd

    labels = np.asarray(labels)
    if labels.shape != reference.shape:
        raise InputError(f"labels shape {labels.shape} differs from the image {reference.shape}")
    if not np.issubdtype(labels.dtype, np.integer) and labels.dtype != bool:
        raise InputError(f"labels must be integers, got {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise InputError("label values must lie in 0..255")
    stored = labels.astype(np.uint8)
    header: dict[str, Any] = {
        **nrrd_header_for(reference.affine),
        "encoding": "gzip",
        "Segmentation_MasterRepresentation": "Binary labelmap",
        "Segmentation_ContainedRepresentationNames": "Binary labelmap|",
        "Segmentation_ReferenceImageExtentOffset": "0 0 0",
    }
    for n, value in enumerate(int(v) for v in np.unique(stored) if v != 0):
        name = (names or {}).get(value) or LABEL_NAMES.get(value, f"Label {value}")
        header.update(
            {
                f"Segment{n}_ID": f"Segment_{value}",
                f"Segment{n}_Name": name,
                f"Segment{n}_NameAutoGenerated": "0",
                f"Segment{n}_LabelValue": str(value),
                f"Segment{n}_Layer": "0",
                f"Segment{n}_Color": _COLORS.get(value, "0.5 0.5 0.5"),
                f"Segment{n}_ColorAutoGenerated": "0",
                f"Segment{n}_Extent": _extent(stored == value),
                f"Segment{n}_Tags": "|",
            }
        )
    with atomic_path(out_path, overwrite=overwrite) as tmp:
        nrrd.write(
            str(tmp), np.ascontiguousarray(stored.transpose(2, 1, 0)), header, index_order="F"
        )
    return Path(out_path)


def write_duke_mask_nrrd(
    labels: np.ndarray,
    reference: Volume,
    out_path: str | Path,
    *,
    kind: Literal["breast", "dense"],
    overwrite: bool = False,
) -> Path:
    """Write one Duke-supplement style file from 0/1/2 labels.

    ``kind='breast'``: segment "Breast" = labels >= 1; ``kind='dense'``: segment "Dense" =
    labels == 2 (the simulator has no separate vessel segment). Label value 1, layer 0.
    """
    labels = np.asarray(labels)
    if kind == "breast":
        mask, name = labels >= BREAST, "Breast"
    elif kind == "dense":
        mask, name = labels == FGT, "Dense"
    else:
        raise InputError(f"kind must be 'breast' or 'dense', got {kind!r}")
    return write_labels_nrrd(
        mask.astype(np.uint8), reference, out_path, names={1: name}, overwrite=overwrite
    )


def read_labels_nrrd(path: str | Path, reference: Volume | None = None) -> Volume:
    """Read any label NRRD as a Volume of integer labels (segments keep their LabelValue).

    Multi-layer files are merged in segment order (later segments win where they overlap).
    With ``reference`` the labels are placed on its grid.
    """
    data, header = read_nrrd_file(path)
    layers, affine = split_nrrd_axes(data, header, path)
    segments = segments_of(header)
    if segments:
        top = max(s.label_value for s in segments)
        merged = np.zeros(layers.shape[1:], dtype=np.uint8 if top < 256 else np.uint16)
        for seg in segments:
            if 0 <= seg.layer < layers.shape[0]:
                merged[layers[seg.layer] == seg.label_value] = seg.label_value
    elif layers.shape[0] == 1 and np.issubdtype(layers.dtype, np.integer):
        merged = layers[0]
    else:
        raise InputError(f"{path} is not a label image (no segments, not a 3D integer array)")
    if reference is not None:
        merged = align_to_reference(
            merged, affine, reference.shape, reference.affine, what=Path(path).name
        )
        affine = reference.affine
    spacing = tuple(float(np.linalg.norm(affine[:3, i])) for i in range(3))
    metadata = {
        "format": "nrrd",
        "source_paths": [str(path)],
        "segments": [{"name": s.name, "label_value": s.label_value} for s in segments],
    }
    return Volume(data=merged, spacing=spacing, affine=affine, metadata=metadata)
