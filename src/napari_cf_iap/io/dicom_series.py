"""Load one DICOM series (classic or Enhanced MR) as a :class:`~napari_cf_iap.volume.Volume`."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..volume import Volume
from .dicom_geometry import split_phases, stack_geometry
from .dicom_scan import (
    DicomScan,
    SeriesInfo,
    is_image_sop_class,
    list_series,
    read_dataset,
    scan_dicom,
    whole_number,
)
from .limits import check_voxel_count

__all__ = ["read_dicom", "list_series", "SeriesInfo"]

Progress = Callable[[int, int], Any]


def _series_listing(series: list[SeriesInfo]) -> str:
    return "\n".join(f"  - {s.label()}" for s in series)


def _choose_series(scan: DicomScan, path: Path, series_uid: str | None) -> SeriesInfo:
    found = scan.series
    if not found:
        detail = ""
        if scan.non_image:
            detail += (
                f"; {len(scan.non_image)} DICOM file(s) hold no image (e.g. {scan.non_image[0]})"
            )
        if scan.problems:
            detail += f"; {len(scan.problems)} unreadable: {scan.problems[0][1]}"
        raise InputError(f"no DICOM image series found in {path}{detail}")
    if series_uid is not None:
        for info in found:
            if info.series_uid == series_uid:
                return info
        raise InputError(
            f"series_uid {series_uid} is not in {path}; it holds:\n{_series_listing(found)}"
        )
    if len(found) > 1:
        raise InputError(
            f"{path} holds {len(found)} DICOM series; choose one by passing its series_uid "
            "(--series-uid on the command line):\n"
            f"{_series_listing(found)}"
        )
    return found[0]


def _choose_phase(info: SeriesInfo, phase: int | None) -> tuple[int, int, list]:
    phases = split_phases(info.frames)
    if phase is None:
        if len(phases) > 1:
            labels = "\n".join(f"  {i}: {label}" for i, (label, _) in enumerate(phases))
            raise InputError(
                f"series {info.series_uid} ({info.description!r}) holds {len(phases)} phases; "
                f"choose one with phase=<index>:\n{labels}"
            )
        phase = 0
    if not 0 <= phase < len(phases):
        raise InputError(f"phase {phase} out of range; series has {len(phases)} phase(s)")
    return phase, len(phases), phases[phase][1]


def _default_slice_spacing(header: Any) -> float:
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        try:
            value = float(header.get(keyword))
        except (TypeError, ValueError):
            continue
        if np.isfinite(value) and value > 0:
            return value
    return 1.0


def _load_pixels(frames: list, progress: Progress | None) -> np.ndarray:
    """Read the frames' pixel data in slice order and apply rescale slope/intercept."""
    files: dict[Path, np.ndarray] = {}
    needed = {f.path for f in frames}
    total = len(needed)
    for frame in frames:
        if frame.path in files:
            continue
        ds = read_dataset(frame.path, stop_before_pixels=False)
        if ds is not None and "PixelData" not in ds and is_image_sop_class(ds):
            raise InputError(f"{frame.path} is truncated or corrupt: its pixel data is missing")
        if ds is None or "PixelData" not in ds:
            raise InputError(
                f"{frame.path} holds no pixel data (SOP class "
                f"{getattr(ds, 'SOPClassUID', 'unknown')}); it is not an image"
            )
        samples = whole_number(ds.get("SamplesPerPixel")) or 1  # unusable: the decoder decides
        photometric = ds.get("PhotometricInterpretation")
        if not isinstance(photometric, str) or not photometric:
            photometric = "MONOCHROME2"
        if samples != 1 or not photometric.startswith("MONOCHROME"):
            raise InputError(
                f"{frame.path} is a colour image ({photometric}, {samples} sample(s) per "
                "pixel); only greyscale MR is supported"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                files[frame.path] = ds.pixel_array
        except Exception as exc:  # decoder errors come in many types
            syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
            raise InputError(
                f"cannot decode the pixel data of {frame.path} (transfer syntax {syntax}): {exc}. "
                "The file may be truncated, or a decoder plugin (pylibjpeg, gdcm) is needed"
            ) from exc
        if progress is not None:
            progress(len(files), total)
    identity = all(f.slope == 1.0 and f.intercept == 0.0 for f in frames)
    slices = []
    for frame in frames:
        pixels = files[frame.path]
        if frame.frame is not None:
            pixels = pixels[frame.frame] if pixels.ndim == 3 else pixels
        if pixels.shape != frame.shape:
            raise InputError(
                f"{frame.label()} decodes to shape {pixels.shape}, header says {frame.shape}"
            )
        if not identity:
            pixels = pixels.astype(np.float32) * np.float32(frame.slope) + np.float32(
                frame.intercept
            )
        slices.append(pixels)
    return np.stack(slices)


def read_dicom(
    path: str | Path,
    series_uid: str | None = None,
    phase: int | None = None,
    *,
    progress: Progress | None = None,
) -> Volume:
    """Load a DICOM series (``path`` is a folder, searched recursively, or one file).

    A folder with several series needs ``series_uid`` (the error lists them); a multi-phase
    series needs ``phase`` (index into the time points). Pixel values have RescaleSlope and
    RescaleIntercept applied (float32 when they are not the identity, else the stored dtype).
    ``metadata`` keys starting with ``_`` (the first header) are not JSON-serialisable.
    """
    path = Path(path)
    scan = scan_dicom(path)
    if path.is_file() and not scan.series:
        if scan.problems:
            raise InputError(scan.problems[0][1])
        if scan.non_image:
            raise InputError(f"{path} is a DICOM file without image data; it cannot be loaded")
        raise InputError(f"{path} is not a DICOM file")
    info = _choose_series(scan, path, series_uid)
    if info.problem:
        raise InputError(f"series {info.series_uid} in {path} cannot be loaded: {info.problem}")
    folders = {p.parent for p in info.paths}
    nearby = [(p, why) for p, why in scan.problems if p.parent in folders]
    if nearby:
        listing = "\n".join(f"  - {why}" for _, why in nearby[:5])
        raise InputError(
            f"{len(nearby)} corrupt DICOM file(s) sit next to series {info.series_uid}; they may "
            f"be slices of it, so it is not loaded. Repair or remove them:\n{listing}"
        )
    phase_index, n_phases, frames = _choose_phase(info, phase)
    try:
        geometry = stack_geometry(frames, _default_slice_spacing(info.header))
    except InputError as exc:
        if scan.problems:
            listing = "; ".join(f"{p.name}: {why}" for p, why in scan.problems[:3])
            raise InputError(f"{exc}. Note: unreadable files were skipped: {listing}") from exc
        raise
    check_voxel_count(
        (len(geometry.frames), *geometry.frames[0].shape), f"series {info.series_uid} in {path}"
    )
    data = _load_pixels(geometry.frames, progress)
    if scan.problems:
        warnings.warn(
            f"skipped {len(scan.problems)} unreadable DICOM file(s) in {path}: "
            f"{scan.problems[0][1]}",
            stacklevel=2,
        )
    header = info.header
    source_paths = list(dict.fromkeys(str(f.path) for f in geometry.frames))
    metadata: dict[str, Any] = {
        "format": "dicom",
        "series_uid": info.series_uid,
        "study_uid": info.study_uid,
        "patient_id": info.patient_id,
        "series_description": info.description,
        "series_number": info.series_number,
        "modality": info.modality,
        "frame_of_reference_uid": geometry.frames[0].frame_of_reference,
        "sop_class_uid": str(header.get("SOPClassUID", "")),
        "sop_instance_uids": [f.sop_uid for f in geometry.frames],
        "source_paths": source_paths,
        "phase": phase_index,
        "n_phases": n_phases,
        "missing_tags": list(info.missing_tags),
        "missing_iaps": info.iap.missing(),
        "skipped_files": [{"path": str(p), "reason": why} for p, why in scan.problems],
        "_dicom_header": header,
    }
    return Volume(
        data=data, spacing=geometry.spacing, affine=geometry.affine, iap=info.iap, metadata=metadata
    )
