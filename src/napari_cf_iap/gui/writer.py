"""npe2 writers: image layers to a derived DICOM series or NIfTI + sidecar, Labels to NIfTI/NRRD.

Each writer gets ``(path, data, meta)`` from napari; geometry and IAPs come from the layer
metadata written by our reader/widgets. Outputs are written atomically by the core and are
never overwritten (delete the old output or choose another name).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..iap import IAPRecord
from . import core_api
from .label_colors import TISSUE_NAMES
from .layer_metadata import source_of, volume_from_state
from .reader import LABELS_DESCRIPTION

DICOM_SUFFIXES = (".dcm", ".dicom")


def _description(meta: dict[str, Any], volume: Any) -> str:
    metadata = meta.get("metadata") or {}
    if "source_iap" in metadata:
        return f"Counterfactual {volume.iap.summary()}"[:64]
    return str(metadata.get("volume_metadata", {}).get("series_description") or meta["name"])[:64]


def write_image_dicom(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write an image layer as a DICOM series in a folder (``scan.dcm`` -> folder ``scan``).

    A counterfactual layer becomes a DERIVED series carrying the target IAP tags and joins the
    source's study.
    """
    out = Path(path)
    if out.name.lower().endswith(DICOM_SUFFIXES):
        out = out.with_suffix("")
    volume = volume_from_state(data, meta)
    written = core_api.write_dicom_series(
        volume,
        out,
        series_description=_description(meta, volume),
        derived_from=source_of(volume, meta),
    )
    return [str(written)]


def write_image_nifti(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write an image layer as ``.nii``/``.nii.gz`` plus a JSON sidecar with the IAPs."""
    volume = volume_from_state(data, meta)
    written = core_api.write_nifti(
        volume,
        path,
        series_description=_description(meta, volume),
        derived_from=source_of(volume, meta),
    )
    return [str(written)]


def _labels_volume(data: Any, meta: dict[str, Any]) -> Any:
    labels = np.asarray(data)
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"labels layer {meta.get('name')!r} must hold integers")
    return volume_from_state(labels, meta, iap=IAPRecord())


def write_labels_nifti(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a Labels layer as NIfTI (uint8) plus a sidecar that marks it as labels."""
    volume = _labels_volume(data, meta)
    volume = volume.with_data(np.asarray(volume.data).astype(np.uint8))
    written = core_api.write_nifti(volume, path, series_description=LABELS_DESCRIPTION)
    return [str(written)]


def write_labels_nrrd(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a Labels layer as a 3D Slicer segmentation (``.seg.nrrd`` / ``.nrrd``)."""
    volume = _labels_volume(data, meta)
    written = core_api.write_labels_nrrd(volume.data, volume, path, names=TISSUE_NAMES)
    return [str(written)]
