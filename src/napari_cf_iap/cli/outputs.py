"""Writing CLI results: images as derived DICOM or NIfTI, labels as NIfTI or NRRD."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..volume import Volume
from .common import is_nifti


def counterfactual_description(volume: Volume) -> str:
    return f"Counterfactual IAP: {volume.iap.summary()}"[:64]


def write_image(result: Volume, out: Path, *, source: Volume, overwrite: bool) -> Path:
    """A derived DICOM series (folder) or NIfTI + JSON sidecar, chosen by the suffix."""
    from ..io import write_dicom_series, write_nifti

    description = counterfactual_description(result)
    if is_nifti(out):
        return write_nifti(
            result, out, overwrite=overwrite, series_description=description, derived_from=source
        )
    return write_dicom_series(
        result, out, series_description=description, derived_from=source, overwrite=overwrite
    )


def write_labels(labels: np.ndarray, reference: Volume, out: Path, *, overwrite: bool) -> Path:
    """Labels as NIfTI (.nii/.nii.gz) or Slicer seg.nrrd (anything else, e.g. .nrrd)."""
    from ..io import write_labels_nrrd, write_nifti

    if is_nifti(out):
        return write_nifti(reference.with_data(labels.astype(np.uint8)), out, overwrite=overwrite)
    return write_labels_nrrd(labels, reference, out, overwrite=overwrite)
