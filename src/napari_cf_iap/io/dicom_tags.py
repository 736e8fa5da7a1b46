"""Read and write the IAP tags of a DICOM dataset (classic and Enhanced MR).

Tag facts are in ``mri-physics.md``: MagneticFieldStrength above 100 is gauss; ScanOptions is a
multi-valued code string; Enhanced MR keeps FlipAngle/RepetitionTime in the MR timing sequence,
EffectiveEchoTime in the per-frame MR echo sequence and SliceThickness in pixel measures.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset
from pydicom.valuerep import DSfloat

from ..errors import IAPValueError
from ..iap.record import IAPRecord

#: IAP field -> DICOM keyword of the classic (single-frame) tag.
IAP_TAGS = {
    "manufacturer": "Manufacturer",
    "model_name": "ManufacturerModelName",
    "field_strength": "MagneticFieldStrength",
    "scan_options": "ScanOptions",
    "flip_angle": "FlipAngle",
    "slice_thickness": "SliceThickness",
    "echo_time": "EchoTime",
    "repetition_time": "RepetitionTime",
}

#: Enhanced MR: IAP field -> (functional group sequence, keyword inside it).
_FUNCTIONAL_GROUP_TAGS = {
    "flip_angle": ("MRTimingAndRelatedParametersSequence", "FlipAngle"),
    "repetition_time": ("MRTimingAndRelatedParametersSequence", "RepetitionTime"),
    "echo_time": ("MREchoSequence", "EffectiveEchoTime"),
    "slice_thickness": ("PixelMeasuresSequence", "SliceThickness"),
}


class _InvalidValue(str):
    """A tag value pydicom could not convert; never parses as an IAP."""


def _present(value: Any) -> bool:
    if value is None:
        return False
    return not (isinstance(value, str) and not value.strip())


def functional_group_value(ds: Dataset, sequence: str, keyword: str, frame: int = 0) -> Any:
    """Value of ``keyword`` in a functional group of an Enhanced DICOM (per-frame wins over shared).

    Returns ``None`` when the dataset has no functional groups or the value is absent.
    """
    groups = []
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and len(per_frame) > frame:
        groups.append(per_frame[frame])
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        groups.append(shared[0])
    for group in groups:
        seq = group.get(sequence)
        if seq:
            value = seq[0].get(keyword)
            if _present(value):
                return value
    return None


def raw_iap_values(ds: Dataset) -> dict[str, Any]:
    """The IAP tag values as stored (before normalisation); absent tags are ``None``.

    ScanOptions present but empty is kept as ``''`` (the scanner used no options).
    """
    raw: dict[str, Any] = {}
    for name, keyword in IAP_TAGS.items():
        try:
            value = ds.get(keyword)
        except (ValueError, TypeError) as exc:  # value invalid for its VR (strict pydicom config)
            value = _InvalidValue(str(exc))
        if name == "scan_options":
            raw[name] = None if value is None else value
        else:
            raw[name] = value if _present(value) else None
    for name, (sequence, keyword) in _FUNCTIONAL_GROUP_TAGS.items():
        if raw[name] is None:
            raw[name] = functional_group_value(ds, sequence, keyword)
    return raw


def iap_from_dataset(ds: Dataset) -> tuple[IAPRecord, list[str]]:
    """IAP record of a dataset and the DICOM keywords of the IAP tags it lacks.

    A tag whose value cannot be parsed (e.g. a non-numeric FlipAngle) counts as missing; its raw
    value is kept in ``record.extras['invalid_tags']``.
    """
    raw = raw_iap_values(ds)
    values: dict[str, Any] = {}
    invalid: dict[str, str] = {}
    for name, value in raw.items():
        if value is None:
            continue
        try:
            IAPRecord.create(**{name: value})
        except IAPValueError:
            invalid[IAP_TAGS[name]] = str(value)
            continue
        values[name] = value
    extras = {"invalid_tags": invalid} if invalid else {}
    record = IAPRecord.create(**values, extras=extras)
    missing = [IAP_TAGS[name] for name in IAP_TAGS if getattr(record, name) is None]
    return record, missing


def format_ds(value: float) -> DSfloat:
    """A decimal-string value that fits DICOM's 16 characters."""
    return DSfloat(float(value), auto_format=True)


def apply_iap_to_dataset(ds: Dataset, record: IAPRecord) -> Dataset:
    """Write the IAPs of ``record`` into the classic tags of ``ds`` (in place; returns ``ds``).

    Unknown (``None``) IAPs remove the tag so that a reader reports them as missing.
    """
    for name, keyword in IAP_TAGS.items():
        value = getattr(record, name)
        if value is None:
            if keyword in ds:
                del ds[keyword]
            continue
        if name == "scan_options":
            parts = [p for p in value.split("\\") if p]
            ds.ScanOptions = parts if len(parts) > 1 else (parts[0] if parts else "")
        elif name in ("manufacturer", "model_name"):
            setattr(ds, keyword, str(value))
        else:
            setattr(ds, keyword, format_ds(value))
    return ds
