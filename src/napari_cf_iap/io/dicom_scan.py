"""Find DICOM image series in a folder tree and describe each frame they hold.

Non-DICOM files are skipped quietly; files that look like DICOM but cannot be parsed are
reported in :attr:`DicomScan.problems`. Only headers are read here (no pixel data).
"""

from __future__ import annotations

import gzip
import io
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from ..errors import InputError
from ..iap.record import IAPRecord
from .dicom_frame import PHASE_TAGS, Frame
from .dicom_geometry import split_phases
from .dicom_tags import functional_group_value, iap_from_dataset
from .limits import check_voxel_count

_SKIP_NAMES = {"DICOMDIR", "Thumbs.db"}

#: Tags that place and describe the pixels. A value pydicom cannot convert (wrong VR or length,
#: broken sequence) makes the file corrupt; IAP tags instead count as missing.
STRUCTURAL_TAGS = (
    "SOPClassUID",
    "SOPInstanceUID",
    "SeriesInstanceUID",
    "StudyInstanceUID",
    "FrameOfReferenceUID",
    "SeriesNumber",
    "SeriesDescription",
    "Modality",
    "PatientID",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "SliceThickness",
    "SpacingBetweenSlices",
    "RescaleSlope",
    "RescaleIntercept",
    "PerFrameFunctionalGroupsSequence",
    "SharedFunctionalGroupsSequence",
    *PHASE_TAGS,
)


@dataclass
class SeriesInfo:
    """What a folder holds for one SeriesInstanceUID (headers only)."""

    series_uid: str
    description: str
    series_number: int | None
    modality: str
    study_uid: str | None
    patient_id: str | None
    paths: list[Path]
    frames: list[Frame]
    header: Dataset
    iap: IAPRecord
    missing_tags: list[str]
    phases: list[str] = field(default_factory=list)
    problem: str | None = None

    @property
    def n_files(self) -> int:
        return len(self.paths)

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    def label(self) -> str:
        """One line for listings: number, description, size, phases and UID."""
        number = f"#{self.series_number} " if self.series_number is not None else ""
        phases = f", {len(self.phases)} phases" if len(self.phases) > 1 else ""
        problem = f" [cannot load: {self.problem}]" if self.problem else ""
        desc = self.description or "(no description)"
        size = f"{self.n_frames} images{phases}"
        return f"{number}{desc!r}: {size} (series_uid={self.series_uid}){problem}"


@dataclass
class DicomScan:
    """Result of scanning a folder: the image series and the files that could not be used."""

    series: list[SeriesInfo]
    problems: list[tuple[Path, str]]
    non_image: list[Path]


def _open_bytes(path: Path) -> Any:
    if path.name.lower().endswith(".gz"):
        with gzip.open(path, "rb") as fh:
            return io.BytesIO(fh.read())
    return path


def _has_dicom_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _looks_like_raw_dicom(path: Path) -> bool:
    """A file without the 128-byte preamble that starts with a group 0002/0008 tag."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head[:2] in (b"\x02\x00", b"\x08\x00") and len(head) == 4


def read_dataset(path: Path, *, stop_before_pixels: bool) -> Dataset | None:
    """Parse a DICOM file (optionally gzip-compressed); ``None`` if it is not DICOM at all.

    Raises :class:`InputError` naming the file when it is DICOM but corrupt or unreadable.
    """
    is_gz = path.name.lower().endswith(".gz")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return pydicom.dcmread(_open_bytes(path), stop_before_pixels=stop_before_pixels)
            except InvalidDicomError:
                if _has_dicom_magic(path):
                    raise
                if is_gz or not _looks_like_raw_dicom(path):
                    return None
                ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=True)
                if "SOPClassUID" not in ds and "Modality" not in ds:
                    return None
                return ds
    except (OSError, gzip.BadGzipFile, EOFError) as exc:
        if is_gz and isinstance(exc, gzip.BadGzipFile):
            return None
        raise InputError(f"cannot read DICOM file {path}: {exc}") from exc
    except Exception as exc:  # pydicom raises many types for corrupt files
        raise InputError(f"DICOM file {path} is corrupt or truncated: {exc}") from exc


def _floats(value: Any, n: int) -> np.ndarray | None:
    if value is None:
        return None
    try:
        out = np.array([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        return None
    return out if out.shape == (n,) and np.all(np.isfinite(out)) else None


def _number(value: Any, default: float) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out if np.isfinite(out) else default


def whole_number(value: Any) -> int | None:
    """An integer tag value, or ``None`` when it is absent, empty or not a whole number."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if not np.isfinite(number) or number != int(number):
        return None
    return int(number)


def _number_of_frames(path: Path, ds: Dataset) -> int:
    """NumberOfFrames (1 when absent); :class:`InputError` when it is not a positive integer."""
    raw = ds.get("NumberOfFrames")
    if raw is None or raw == "":
        return 1
    n = whole_number(raw)
    if n is None or n < 1:
        raise InputError(
            f"{path} has an invalid NumberOfFrames {str(raw)!r}; the header is corrupt"
        )
    return n


def frames_of(path: Path, ds: Dataset) -> list[Frame]:
    """The frames of one header: one for a classic file, NumberOfFrames for Enhanced MR."""
    shape = (whole_number(ds.get("Rows")) or 0, whole_number(ds.get("Columns")) or 0)
    n_frames = _number_of_frames(path, ds)
    check_voxel_count((n_frames, *shape), path)
    sop_uid = str(ds.get("SOPInstanceUID", path.name))
    for_uid = ds.get("FrameOfReferenceUID")
    for_uid = str(for_uid) if for_uid else None
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        frames = []
        for i in range(n_frames):

            def fg(seq: str, kw: str, i: int = i) -> Any:
                return functional_group_value(ds, seq, kw, i)

            spacing = _floats(fg("PixelMeasuresSequence", "PixelSpacing"), 2)
            tags = {
                "TemporalPositionIndex": fg("FrameContentSequence", "TemporalPositionIndex"),
                "StackID": fg("FrameContentSequence", "StackID"),
                "EchoNumbers": fg("MREchoSequence", "EffectiveEchoTime"),
            }
            frames.append(
                Frame(
                    path=path,
                    frame=i,
                    sop_uid=sop_uid,
                    position=_floats(fg("PlanePositionSequence", "ImagePositionPatient"), 3),
                    orientation=_floats(
                        fg("PlaneOrientationSequence", "ImageOrientationPatient"), 6
                    ),
                    pixel_spacing=None if spacing is None else (spacing[0], spacing[1]),
                    shape=shape,
                    slope=_number(
                        fg("PixelValueTransformationSequence", "RescaleSlope"),
                        _number(ds.get("RescaleSlope"), 1.0),
                    ),
                    intercept=_number(
                        fg("PixelValueTransformationSequence", "RescaleIntercept"),
                        _number(ds.get("RescaleIntercept"), 0.0),
                    ),
                    frame_of_reference=for_uid,
                    phase_tags={k: v for k, v in tags.items() if v is not None},
                )
            )
        return frames
    if n_frames > 1:
        raise InputError(
            f"{path} is a multi-frame image without per-frame geometry "
            "(no functional groups); convert it to single-frame DICOM or NIfTI first"
        )
    spacing = _floats(ds.get("PixelSpacing"), 2)
    tags = {k: ds.get(k) for k in PHASE_TAGS if ds.get(k) not in (None, "")}
    return [
        Frame(
            path=path,
            frame=None,
            sop_uid=sop_uid,
            position=_floats(ds.get("ImagePositionPatient"), 3),
            orientation=_floats(ds.get("ImageOrientationPatient"), 6),
            pixel_spacing=None if spacing is None else (spacing[0], spacing[1]),
            shape=shape,
            slope=_number(ds.get("RescaleSlope"), 1.0),
            intercept=_number(ds.get("RescaleIntercept"), 0.0),
            frame_of_reference=for_uid,
            phase_tags=tags,
        )
    ]


def is_image_dataset(ds: Dataset) -> bool:
    """True for datasets describing pixel images (they carry Rows and Columns)."""
    return "Rows" in ds and "Columns" in ds


def is_image_sop_class(ds: Dataset) -> bool:
    """True when the SOP class is an image storage class (MR, Enhanced MR, CT, ...)."""
    uid = ds.get("SOPClassUID")
    return bool(uid) and "Image Storage" in getattr(uid, "name", "")


def unreadable_value_problem(path: Path, ds: Dataset) -> str | None:
    """Why a header is unusable because a structural tag cannot be converted, or None."""
    for keyword in STRUCTURAL_TAGS:
        try:
            ds.get(keyword)
        except Exception as exc:  # pydicom raises many types for values invalid for their VR
            first = str(exc).split(". ")[0]
            return (
                f"DICOM file {path} is corrupt: its {keyword} value cannot be read ({first}); "
                "repair or remove the file"
            )
    return None


def truncation_problem(path: Path, ds: Dataset) -> str | None:
    """Why a parsed header looks truncated (pydicom stops silently at end of file), or None."""
    if "SOPClassUID" not in ds:
        return f"DICOM file {path} is corrupt or truncated: its header ends before SOPClassUID"
    if is_image_sop_class(ds) and not is_image_dataset(ds):
        return f"DICOM file {path} is truncated: an image without Rows/Columns"
    return None


def _candidate_files(folder: Path) -> list[Path]:
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.name not in _SKIP_NAMES:
            out.append(path)
    return out


def _series_info(uid: str, entries: list[tuple[Path, Dataset]]) -> SeriesInfo:
    header = entries[0][1]
    frames: list[Frame] = []
    problem = None
    try:
        for path, ds in entries:
            frames.extend(frames_of(path, ds))
    except InputError as exc:
        problem = str(exc)
    record, missing = iap_from_dataset(header)
    number = header.get("SeriesNumber")
    info = SeriesInfo(
        series_uid=uid,
        description=str(header.get("SeriesDescription", "") or ""),
        series_number=whole_number(number),
        modality=str(header.get("Modality", "") or ""),
        study_uid=str(header.get("StudyInstanceUID")) if header.get("StudyInstanceUID") else None,
        patient_id=str(header.get("PatientID")) if header.get("PatientID") else None,
        paths=[p for p, _ in entries],
        frames=frames,
        header=header,
        iap=record,
        missing_tags=missing,
        problem=problem,
    )
    if problem is None:
        try:
            info.phases = [label for label, _ in split_phases(frames)]
        except InputError as exc:
            info.problem = str(exc)
    return info


def scan_dicom(path: str | Path) -> DicomScan:
    """Read the headers of every DICOM file under ``path`` (a folder, or one file)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist")
    files = [path] if path.is_file() else _candidate_files(path)
    groups: dict[str, list[tuple[Path, Dataset]]] = defaultdict(list)
    problems: list[tuple[Path, str]] = []
    non_image: list[Path] = []
    for file in files:
        try:
            ds = read_dataset(file, stop_before_pixels=True)
        except InputError as exc:
            problems.append((file, str(exc)))
            continue
        if ds is None:
            continue
        problem = truncation_problem(file, ds) if _has_dicom_magic(file) else None
        problem = problem or unreadable_value_problem(file, ds)
        if problem:
            problems.append((file, problem))
            continue
        if not is_image_dataset(ds):
            non_image.append(file)
            continue
        uid = ds.get("SeriesInstanceUID")
        key = str(uid) if uid else f"(no SeriesInstanceUID in {file.parent})"
        groups[key].append((file, ds))
    series = [_series_info(uid, entries) for uid, entries in groups.items()]
    series.sort(
        key=lambda s: (s.study_uid or "", s.series_number or 0, s.description, s.series_uid)
    )
    return DicomScan(series=series, problems=problems, non_image=non_image)


def list_series(folder: str | Path) -> list[SeriesInfo]:
    """The DICOM image series under ``folder`` (recursive), sorted by study and series number."""
    return scan_dicom(folder).series
