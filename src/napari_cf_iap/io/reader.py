"""One entry point that loads any supported medical image: DICOM, NIfTI or NRRD.

This is what the napari reader and the CLI call.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..iap.record import IAPRecord
from ..volume import Volume

NIFTI_SUFFIXES = (".nii", ".nii.gz")
NRRD_SUFFIXES = (".nrrd", ".nhdr")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima", ".dcm.gz")
SUPPORTED = "a DICOM folder or file (.dcm, .ima, .dcm.gz), NIfTI (.nii, .nii.gz) or NRRD (.nrrd)"
_FOLDER_PROBE_LIMIT = 500


def _has_dicom_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if path.is_dir():
        return "dicom"
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(NRRD_SUFFIXES):
        return "nrrd"
    if name.endswith(DICOM_SUFFIXES) or (path.is_file() and _has_dicom_magic(path)):
        return "dicom"
    return None


def _folder_has_dicom(folder: Path) -> bool:
    seen = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = Path(root) / name
            if name.lower().endswith(DICOM_SUFFIXES) or _has_dicom_magic(path):
                return True
            seen += 1
            if seen >= _FOLDER_PROBE_LIMIT:
                return False
    return False


def is_supported_path(path: str | Path) -> bool:
    """Cheap check (suffix or DICOM magic; folders: contains a DICOM file)."""
    path = Path(path)
    if path.is_dir():
        return _folder_has_dicom(path)
    return path.is_file() and _kind(path) is not None


def read_volume(
    path: str | Path,
    *,
    series_uid: str | None = None,
    phase: int | None = None,
    iap: IAPRecord | None = None,
    progress: Callable[[int, int], Any] | None = None,
) -> Volume:
    """Load ``path`` as a Volume, choosing the reader by folder/suffix/DICOM magic.

    ``series_uid``/``phase`` select a DICOM series and time point; ``iap`` fills in or overrides
    IAPs (e.g. for NIfTI without a sidecar). Label NRRDs (Slicer segmentations) come back with
    ``metadata['layer_type'] == 'labels'``.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist")
    kind = _kind(path)
    if kind == "nifti":
        from .nifti import read_nifti

        return read_nifti(path, iap=iap)
    if kind == "nrrd":
        volume = _read_nrrd_any(path)
    elif kind == "dicom":
        from .dicom_series import read_dicom

        volume = read_dicom(path, series_uid=series_uid, phase=phase, progress=progress)
    else:
        raise InputError(f"cannot read {path.name}: supported inputs are {SUPPORTED}")
    if iap is not None:
        from .nifti import merge_iap

        volume.iap = merge_iap(volume.iap, iap)
        volume.metadata["missing_iaps"] = volume.iap.missing()
    return volume


def _read_nrrd_any(path: Path) -> Volume:
    from .nrrd_geometry import read_nrrd, read_nrrd_header
    from .nrrd_masks import read_labels_nrrd, segments_of

    header = read_nrrd_header(path)
    if segments_of(header) or path.name.lower().endswith(".seg.nrrd"):
        volume = read_labels_nrrd(path)
        volume.metadata["layer_type"] = "labels"
        return volume
    return read_nrrd(path)
