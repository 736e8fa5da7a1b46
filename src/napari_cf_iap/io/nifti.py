"""NIfTI volumes with a BIDS-style JSON sidecar carrying the IAPs.

Axis conventions: our arrays are (z, y, x) with an affine to patient LPS mm; NIfTI arrays are
(i, j, k) = (x, y, z) with an affine to RAS mm. ``nifti = F @ ours @ P`` with
``F = diag(-1, -1, 1, 1)`` (LPS <-> RAS) and ``P`` swapping index 0 and 2.
BIDS stores EchoTime and RepetitionTime in seconds; the IAP record uses milliseconds.
"""

from __future__ import annotations

import contextlib
import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IAPValueError, InputError
from ..iap.record import IAPRecord
from ..volume import Volume
from .atomic import atomic_path, check_writable
from .limits import check_voxel_count

_LPS_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_SWAP_ZX = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float)

#: IAP field -> (BIDS sidecar key, factor from sidecar units to IAP units).
BIDS_KEYS = {
    "manufacturer": ("Manufacturer", None),
    "model_name": ("ManufacturersModelName", None),
    "field_strength": ("MagneticFieldStrength", None),
    "scan_options": ("ScanOptions", None),
    "flip_angle": ("FlipAngle", None),
    "slice_thickness": ("SliceThickness", None),
    "echo_time": ("EchoTime", 1000.0),
    "repetition_time": ("RepetitionTime", 1000.0),
}


def nifti_affine_from_volume(affine: np.ndarray) -> np.ndarray:
    """Our (z, y, x) -> LPS affine as a NIfTI (i, j, k) -> RAS affine."""
    return _LPS_RAS @ np.asarray(affine, dtype=float) @ _SWAP_ZX


def volume_affine_from_nifti(affine: np.ndarray) -> np.ndarray:
    """A NIfTI (i, j, k) -> RAS affine as our (z, y, x) -> LPS affine."""
    return _LPS_RAS @ np.asarray(affine, dtype=float) @ _SWAP_ZX


def sidecar_path(path: str | Path) -> Path:
    """``scan.nii.gz`` -> ``scan.json``."""
    path = Path(path)
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return path.with_name(name[: -len(suffix)] + ".json")
    return path.with_suffix(".json")


def iap_from_sidecar(sidecar: dict[str, Any]) -> tuple[IAPRecord, list[str]]:
    """IAP record from BIDS sidecar keys, and the BIDS keys that are absent or invalid."""
    values: dict[str, Any] = {}
    invalid: dict[str, str] = {}
    for name, (key, factor) in BIDS_KEYS.items():
        value = sidecar.get(key)
        if value is None or (
            isinstance(value, str) and not value.strip() and name != "scan_options"
        ):
            continue
        try:
            if factor is not None:
                value = round(float(value) * factor, 6)
            IAPRecord.create(**{name: value})
        except (IAPValueError, TypeError, ValueError):
            invalid[key] = str(value)
            continue
        values[name] = value
    record = IAPRecord.create(**values, extras={"invalid_tags": invalid} if invalid else {})
    missing = [key for name, (key, _) in BIDS_KEYS.items() if getattr(record, name) is None]
    return record, missing


def sidecar_from_iap(record: IAPRecord) -> dict[str, Any]:
    """BIDS sidecar entries for the known IAPs of ``record`` (times in seconds)."""
    out: dict[str, Any] = {}
    for name, (key, factor) in BIDS_KEYS.items():
        value = getattr(record, name)
        if value is None:
            continue
        out[key] = round(value / factor, 9) if factor is not None else value
    return out


def merge_iap(base: IAPRecord, override: IAPRecord) -> IAPRecord:
    """``base`` with every known (non-``None``) value of ``override`` taking precedence."""
    changes = {k: v for k, v in override.to_dict().items() if v is not None and k != "extras"}
    return IAPRecord.create(
        **{**base.to_dict(), **changes, "extras": {**base.extras, **override.extras}}
    )


def read_nifti(path: str | Path, iap: IAPRecord | None = None) -> Volume:
    """Load a NIfTI volume; IAPs come from ``<name>.json`` (BIDS keys) and then from ``iap``.

    Values set in ``iap`` override the sidecar. A missing sidecar is not an error: the record is
    empty and ``metadata['missing_tags']`` lists every BIDS key. 4D images with more than one
    volume are refused.
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file")
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise InputError(f"cannot read NIfTI file {path}: {exc or type(exc).__name__}") from exc
    check_voxel_count(img.shape, path)
    try:
        raw = np.asanyarray(img.dataobj)
    except Exception as exc:
        raise InputError(
            f"cannot read the voxels of NIfTI file {path} ({exc or type(exc).__name__}); "
            "the file is truncated or corrupt"
        ) from exc
    if raw.dtype.fields is not None:
        raise InputError(f"{path} holds RGB/structured voxels; only scalar volumes are supported")
    if raw.ndim == 2:
        raw = raw[:, :, None]
    while raw.ndim > 3 and raw.shape[-1] == 1:
        raw = raw[..., 0]
    if raw.ndim != 3:
        raise InputError(
            f"{path} has shape {raw.shape}; only 3D volumes are supported (split 4D series first)"
        )
    if raw.dtype == np.float64 and np.issubdtype(img.get_data_dtype(), np.integer):
        raw = raw.astype(np.float32)  # scaled integers: float32 is enough
    data = np.ascontiguousarray(raw.transpose(2, 1, 0))
    affine = volume_affine_from_nifti(img.affine)
    spacing = tuple(float(np.linalg.norm(affine[:3, i])) for i in range(3))

    sidecar_file = sidecar_path(path)
    sidecar: dict[str, Any] = {}
    if sidecar_file.is_file():
        try:
            sidecar = json.loads(sidecar_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"sidecar {sidecar_file} is not valid JSON: {exc}") from exc
        if not isinstance(sidecar, dict):
            raise InputError(f"sidecar {sidecar_file} must hold a JSON object")
    record, missing = iap_from_sidecar(sidecar)
    if iap is not None:
        record = merge_iap(record, iap)
        missing = [key for name, (key, _) in BIDS_KEYS.items() if getattr(record, name) is None]
    metadata: dict[str, Any] = {
        "format": "nifti",
        "source_paths": [str(path)],
        "sidecar": str(sidecar_file) if sidecar else None,
        "series_description": sidecar.get("SeriesDescription", ""),
        "missing_tags": missing,
        "missing_iaps": record.missing(),
    }
    for key, meta_key in (("SeriesInstanceUID", "series_uid"), ("StudyInstanceUID", "study_uid")):
        if sidecar.get(key):
            metadata[meta_key] = sidecar[key]
    return Volume(data=data, spacing=spacing, affine=affine, iap=record, metadata=metadata)


def write_nifti(
    volume: Volume,
    path: str | Path,
    *,
    overwrite: bool = False,
    series_description: str | None = None,
    derived_from: Volume | None = None,
) -> Path:
    """Write ``volume`` to ``path`` (.nii or .nii.gz) plus a BIDS-style ``.json`` sidecar.

    Both files appear together or not at all; existing files are refused unless
    ``overwrite``. ``derived_from`` marks the output as a counterfactual of that source.
    Returns ``path``.
    """
    import nibabel as nib

    path = Path(path)
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        raise InputError(f"NIfTI output must end in .nii or .nii.gz, got {path.name}")
    if not np.all(np.isfinite(volume.data)):
        raise InputError("the volume contains NaN or inf; it cannot be written")
    sidecar_file = sidecar_path(path)
    check_writable(path, overwrite)
    check_writable(sidecar_file, overwrite)

    data = np.asarray(volume.data)
    if data.dtype == bool:
        data = data.astype(np.uint8)
    elif data.dtype == np.float16:
        data = data.astype(np.float32)
    affine = nifti_affine_from_volume(volume.affine)
    img = nib.Nifti1Image(np.ascontiguousarray(data.transpose(2, 1, 0)), affine)
    img.header.set_xyzt_units("mm")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    description = series_description or volume.metadata.get("series_description") or ""
    if derived_from is not None and "counterfactual" not in description.lower():
        description = f"Counterfactual: {description}".rstrip(": ")
    img.header["descrip"] = description.encode("ascii", "replace")[:79]

    sidecar: dict[str, Any] = {"Modality": "MR", **sidecar_from_iap(volume.iap)}
    if description:
        sidecar["SeriesDescription"] = description
    if derived_from is not None:
        sidecar["ImageType"] = ["DERIVED", "SECONDARY"]
        sidecar["DerivedFrom"] = {
            "series_uid": derived_from.metadata.get("series_uid"),
            "source_paths": list(derived_from.metadata.get("source_paths") or [])[:1],
        }
    else:
        for meta_key, key in (
            ("series_uid", "SeriesInstanceUID"),
            ("study_uid", "StudyInstanceUID"),
        ):
            if volume.metadata.get(meta_key):
                sidecar[key] = volume.metadata[meta_key]
    payload = img.to_bytes()
    if path.name.lower().endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=6, mtime=0)

    with contextlib.ExitStack() as stack:
        image_tmp = stack.enter_context(atomic_path(path, overwrite=overwrite))
        sidecar_tmp = stack.enter_context(atomic_path(sidecar_file, overwrite=overwrite))
        image_tmp.write_bytes(payload)
        sidecar_tmp.write_text(json.dumps(sidecar, indent=2) + "\n")
    return path
