"""Write a :class:`~napari_cf_iap.volume.Volume` as a DICOM MR series (one file per slice).

Used for counterfactual outputs (``derived_from`` set: ``ImageType`` DERIVED\\SECONDARY, a
reference to the source series, same study/patient/frame of reference) and by the simulator's
dataset writer for "acquired" series (ORIGINAL\\PRIMARY). Writes are atomic.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from ..errors import InputError
from ..volume import Volume
from .atomic import atomic_directory
from .dicom_tags import InvalidValue, apply_iap_to_dataset, format_ds, safe_get

#: Patient and study attributes copied from a source header so the output joins its study.
_STUDY_KEYWORDS = (
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "PatientPosition",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
    "ReferringPhysicianName",
)
_UINT16_MAX = 65535


def encode_pixels(data: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Stored 16-bit pixels plus (slope, intercept) so that ``stored * slope + intercept ~ data``.

    Integer-valued data that fits uint16/int16 is stored exactly (slope 1, intercept 0); other
    data is spread over the full uint16 range (error at most ``slope / 2``).
    """
    if not np.all(np.isfinite(data)):
        raise InputError("the volume contains NaN or inf; it cannot be written as DICOM")
    low, high = float(data.min()), float(data.max())
    integral = np.issubdtype(data.dtype, np.integer) or bool(np.all(data == np.round(data)))
    if integral and low >= 0 and high <= _UINT16_MAX:
        return data.astype(np.uint16), 1.0, 0.0
    if integral and low >= -32768 and high <= 32767:
        return data.astype(np.int16), 1.0, 0.0
    intercept = float(format_ds(low))
    slope = float(format_ds((high - low) / _UINT16_MAX)) if high > low else 1.0
    if slope <= 0:  # tiny ranges that round to 0 in a decimal string
        slope = float(format_ds(max((high - low) / _UINT16_MAX, 1e-10)))
    stored = np.round((data.astype(np.float64) - intercept) / slope)
    return np.clip(stored, 0, _UINT16_MAX).astype(np.uint16), slope, intercept


def _slice_geometry(volume: Volume) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, ...]]:
    """Row cosine, column cosine, slice step vector and spacing (dz, dy, dx) from the affine."""
    affine = volume.affine
    step, col_vec, row_vec = affine[:3, 0], affine[:3, 1], affine[:3, 2]
    spacing = tuple(float(np.linalg.norm(v)) for v in (step, col_vec, row_vec))
    if min(spacing) <= 0:
        raise InputError(f"the volume affine is degenerate (axis lengths {spacing})")
    row, col = row_vec / spacing[2], col_vec / spacing[1]
    normal = np.cross(row, col)
    if abs(np.dot(row, col)) > 1e-4 or abs(abs(np.dot(step / spacing[0], normal)) - 1) > 1e-4:
        raise InputError(
            "the volume affine is sheared or its axes are not orthogonal; DICOM slices cannot "
            "represent it. Resample the volume to an orthogonal grid first"
        )
    return row, col, step, spacing


def _source_header(volume: Volume | None) -> Dataset | None:
    if volume is None:
        return None
    header = volume.metadata.get("_dicom_header")
    return header if isinstance(header, Dataset) else None


def _first(*values: Any) -> Any:
    return next((v for v in values if v not in (None, "")), None)


def _series_dataset(
    volume: Volume,
    *,
    series_description: str,
    derived_from: Volume | None,
    patient_id: str | None,
    patient_name: Any,
    study_uid: str | None,
    series_number: int | None,
    pixel_info: tuple[np.ndarray, float, float],
) -> Dataset:
    """The attributes shared by every slice of the new series."""
    ds = Dataset()
    source_meta = derived_from.metadata if derived_from is not None else {}
    own_meta = volume.metadata
    header = _source_header(derived_from) or _source_header(volume)
    if header is not None:
        for keyword in _STUDY_KEYWORDS:
            value = safe_get(header, keyword)
            if value is not None and not isinstance(value, InvalidValue):
                setattr(ds, keyword, value)
    now = datetime.datetime.now()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = MRImageStorage
    ds.Modality = "MR"
    ds.PatientID = str(
        _first(patient_id, source_meta.get("patient_id"), own_meta.get("patient_id"), "ANONYMOUS")
    )
    ds.PatientName = _first(patient_name, ds.get("PatientName"), ds.PatientID)
    ds.StudyInstanceUID = _first(
        study_uid, source_meta.get("study_uid"), own_meta.get("study_uid"), generate_uid()
    )
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = _first(
        source_meta.get("frame_of_reference_uid"),
        own_meta.get("frame_of_reference_uid"),
        generate_uid(),
    )
    ds.PositionReferenceIndicator = ""
    ds.SeriesNumber = (
        int(series_number) if series_number is not None else (1001 if derived_from else 1)
    )
    ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    for keyword in (
        "StudyDate",
        "StudyTime",
        "StudyID",
        "AccessionNumber",
        "ReferringPhysicianName",
    ):
        if keyword not in ds:
            setattr(ds, keyword, ds.SeriesDate if keyword == "StudyDate" else "")
    if "PatientBirthDate" not in ds:
        ds.PatientBirthDate = ""
    if "PatientSex" not in ds:
        ds.PatientSex = ""
    description = series_description
    if derived_from is not None:
        ds.ImageType = ["DERIVED", "SECONDARY"]
        if "counterfactual" not in description.lower():
            description = f"Counterfactual: {description}"
        ds.DerivationDescription = description[:1024]
        ds.ImageComments = (
            "Counterfactual image generated by napari-cf-iap; not for diagnostic use. "
            + description
        )[:10240]
        if source_meta.get("series_uid"):
            ref = Dataset()
            ref.SeriesInstanceUID = str(source_meta["series_uid"])
            ds.ReferencedSeriesSequence = Sequence([ref])
    else:
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SeriesDescription = description[:64]
    ds.ScanningSequence = "GR"
    ds.SequenceVariant = "SP"
    ds.MRAcquisitionType = "3D"
    apply_iap_to_dataset(ds, volume.iap)
    if "ScanOptions" not in ds:
        ds.ScanOptions = ""

    row, col, _, spacing = _slice_geometry(volume)
    stored, slope, intercept = pixel_info
    ds.ImageOrientationPatient = [format_ds(v) for v in (*row, *col)]
    ds.PixelSpacing = [format_ds(spacing[1]), format_ds(spacing[2])]
    ds.SpacingBetweenSlices = format_ds(spacing[0])
    if "SliceThickness" not in ds:
        ds.SliceThickness = format_ds(spacing[0])
    ds.Rows, ds.Columns = int(stored.shape[1]), int(stored.shape[2])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if stored.dtype == np.int16 else 0
    ds.RescaleSlope = format_ds(slope)
    ds.RescaleIntercept = format_ds(intercept)
    ds.RescaleType = "US"
    low, high = np.percentile(volume.data, [1, 99.5]) if volume.data.size else (0.0, 1.0)
    ds.WindowCenter = format_ds((low + high) / 2)
    ds.WindowWidth = format_ds(max(high - low, 1e-3))
    ds.BurnedInAnnotation = "NO"
    return ds


def write_dicom_series(
    volume: Volume,
    out_dir: str | Path,
    *,
    series_description: str,
    derived_from: Volume | None = None,
    patient_id: str | None = None,
    patient_name: Any = None,
    study_uid: str | None = None,
    series_number: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], Any] | None = None,
) -> Path:
    """Write ``volume`` as a new MR Image Storage series in ``out_dir``; return ``out_dir``.

    Geometry comes from the volume affine (ImagePositionPatient per slice, orientation,
    PixelSpacing, SpacingBetweenSlices) and IAP tags from ``volume.iap``; SliceThickness is the
    IAP slice thickness when known, else the slice spacing. With ``derived_from`` the series is
    marked DERIVED\\SECONDARY and joins the source's study, patient and frame of reference.
    Float data is stored as uint16 with RescaleSlope/Intercept. ``progress(done, total)`` is
    called per slice; an exception (e.g. :class:`~napari_cf_iap.errors.CancelledError`) leaves
    no output behind. A left-handed volume (slice axis against row x column) reads back with
    its slice axis reversed, at the same physical positions.
    """
    out_dir = Path(out_dir)
    if not series_description or not series_description.strip():
        raise InputError("series_description must not be empty")
    pixel_info = encode_pixels(np.asarray(volume.data))
    shared = _series_dataset(
        volume,
        series_description=series_description,
        derived_from=derived_from,
        patient_id=patient_id,
        patient_name=patient_name,
        study_uid=study_uid,
        series_number=series_number,
        pixel_info=pixel_info,
    )
    row, col, step, _ = _slice_geometry(volume)
    normal = np.cross(row, col)
    origin = volume.affine[:3, 3]
    stored = pixel_info[0]
    source_uids = list(derived_from.metadata.get("sop_instance_uids") or []) if derived_from else []
    source_class = (
        str(derived_from.metadata.get("sop_class_uid") or MRImageStorage) if derived_from else ""
    )
    n = stored.shape[0]
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        for k in range(n):
            ds = Dataset()
            ds.update(shared)
            ds.SOPInstanceUID = generate_uid()
            ds.InstanceNumber = k + 1
            position = origin + k * step
            ds.ImagePositionPatient = [format_ds(v) for v in position]
            ds.SliceLocation = format_ds(float(np.dot(position, normal)))
            if len(source_uids) == n:
                item = Dataset()
                item.ReferencedSOPClassUID = source_class
                item.ReferencedSOPInstanceUID = source_uids[k]
                ds.SourceImageSequence = Sequence([item])
            ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = ds.SOPClassUID
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta = meta
            ds.save_as(tmp / f"IM{k + 1:05d}.dcm", enforce_file_format=True)
            if progress is not None:
                progress(k + 1, n)
    return out_dir
