"""Medical-image input/output: DICOM, NIfTI, NRRD masks, and atomic writes.

Public functions are imported lazily so that ``import napari_cf_iap.io`` stays cheap
(pydicom, nibabel and pynrrd load on first use).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "read_volume": "reader",
    "is_supported_path": "reader",
    "read_dicom": "dicom_series",
    "list_series": "dicom_scan",
    "SeriesInfo": "dicom_scan",
    "write_dicom_series": "dicom_write",
    "iap_from_dataset": "dicom_tags",
    "apply_iap_to_dataset": "dicom_tags",
    "read_nifti": "nifti",
    "write_nifti": "nifti",
    "read_nrrd": "nrrd_geometry",
    "read_duke_masks": "nrrd_masks",
    "write_duke_mask_nrrd": "nrrd_masks",
    "read_labels_nrrd": "nrrd_masks",
    "write_labels_nrrd": "nrrd_masks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
