"""npe2 reader: DICOM folder/file, NIfTI (+ JSON sidecar), Duke/our NRRD masks as Labels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CfIapError
from . import core_api
from .layer_metadata import image_layer_kwargs, labels_layer_kwargs

LayerData = tuple[Any, dict[str, Any], str]
NIFTI_SUFFIXES = (".nii", ".nii.gz")
NRRD_SUFFIXES = (".nrrd", ".nhdr")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
#: SeriesDescription our Labels writer puts into NIfTI sidecars (read back as Labels).
LABELS_DESCRIPTION = "Segmentation labels (0 background, 1 fat, 2 FGT)"


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if path.is_dir():
        return "dicom"
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(NRRD_SUFFIXES):
        return "nrrd"
    if name.endswith(DICOM_SUFFIXES) or (path.is_file() and _has_dicom_preamble(path)):
        return "dicom"  # DICOM files often have no extension
    return None


def _has_dicom_preamble(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def get_reader(path: str | list[str]) -> Callable[[Any], list[LayerData]] | None:
    """Return a reader for one path we understand, else ``None`` (napari tries other plugins)."""
    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    return read_layers if _kind(Path(path)) else None


def read_layers(path: str | list[str]) -> list[LayerData]:
    """Read ``path`` into napari layer data tuples (errors keep their clear message)."""
    if isinstance(path, list | tuple):
        path = path[0]
    path = Path(path)
    kind = _kind(path)
    if kind == "nrrd":
        return [labels_layer_data(path)]
    volume = core_api.read_volume(path)
    if kind == "nifti" and _looks_like_labels(volume):
        return [_labels_from_volume(volume, _stem(path))]
    return [image_layer_data(volume, _stem(path))]


def image_layer_data(volume: Any, name: str) -> LayerData:
    kwargs = image_layer_kwargs(volume, name)
    missing = volume.iap.missing()
    if missing:
        from napari.utils.notifications import show_warning

        show_warning(
            f"{name}: IAPs missing from the file: {', '.join(missing)}. Enter them in the "
            "Counterfactual widget's 'Source IAPs' before generating."
        )
    return (volume.data, kwargs, "image")


def _labels_from_volume(volume: Any, name: str) -> LayerData:
    data = np.asarray(volume.data).astype(np.uint8)
    kwargs = labels_layer_kwargs(
        volume.spacing, volume.affine, name, volume_metadata=dict(volume.metadata)
    )
    return (data, kwargs, "labels")


def labels_layer_data(path: Path) -> LayerData:
    """A Labels layer from a Duke ``.seg.nrrd`` mask or an NRRD written by our writer."""
    masks = core_api.read_labels_nrrd(path)
    data, spacing, affine = masks.data, masks.spacing, masks.affine
    kwargs = labels_layer_kwargs(spacing, affine, _stem(path), source_path=str(path))
    return (np.asarray(data).astype(np.uint8), kwargs, "labels")


def _looks_like_labels(volume: Any) -> bool:
    """Our own label NIfTIs, or small-integer volumes with no IAPs at all."""
    if volume.metadata.get("series_description") == LABELS_DESCRIPTION:
        return True
    data = np.asarray(volume.data)
    if not np.issubdtype(data.dtype, np.integer) or len(volume.iap.missing()) < 8:
        return False
    return data.max(initial=0) <= 16 and np.unique(data).size <= 16


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".seg.nrrd", *NIFTI_SUFFIXES, *NRRD_SUFFIXES, *DICOM_SUFFIXES):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


__all__ = ["get_reader", "read_layers", "CfIapError"]
