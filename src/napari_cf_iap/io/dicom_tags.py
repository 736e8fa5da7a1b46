"""Read and write the IAP tags of a DICOM dataset (classic and Enhanced MR).

Tag facts are in ``mri-physics.md``: MagneticFieldStrength above 100 is gauss; ScanOptions is a
multi-valued code string; Enhanced MR keeps FlipAngle/RepetitionTime in the MR timing sequence,
EffectiveEchoTime in the per-frame MR echo sequence and SliceThickness in pixel measures.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
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


class InvalidValue(str):
    """A tag value pydicom could not convert; never parses as an IAP."""


#: Value types that can never be an IAP (unconvertible, nested or undecoded binary values).
_NOT_A_VALUE = (InvalidValue, Sequence, Dataset, bytes, bytearray)


def _describe(value: Any) -> str:
    """``str(value)`` for the record's ``invalid_tags``; never raises (nested data may)."""
    try:
        return str(value)[:200]
    except Exception:  # noqa: BLE001 - printing a broken sequence converts its elements
        return f"<unreadable {type(value).__name__}>"


def _present(value: Any) -> bool:
    if value is None:
        return False
    return not (isinstance(value, str) and not value.strip())


def safe_get(ds: Dataset, keyword: str) -> Any:
    """``ds.get(keyword)``; a value pydicom cannot convert (wrong VR or length, bad number, broken
    sequence) comes back as an :class:`InvalidValue` holding the reason, never an exception."""
    try:
        return ds.get(keyword)
    except Exception as exc:  # pydicom raises many types for values invalid for their VR
        return InvalidValue(f"{keyword}: {exc}")


def _items(value: Any) -> list[Dataset]:
    """The datasets of a sequence value (an unusable value has none)."""
    if isinstance(value, Sequence):
        return [item for item in value if isinstance(item, Dataset)]
    return []


def functional_group_value(ds: Dataset, sequence: str, keyword: str, frame: int = 0) -> Any:
    """Value of ``keyword`` in a functional group of an Enhanced DICOM (per-frame wins over shared).

    Returns ``None`` when the dataset has no functional groups or the value is absent; malformed
    sequences count as absent.
    """
    groups = []
    per_frame = _items(safe_get(ds, "PerFrameFunctionalGroupsSequence"))
    if len(per_frame) > frame:
        groups.append(per_frame[frame])
    shared = _items(safe_get(ds, "SharedFunctionalGroupsSequence"))
    if shared:
        groups.append(shared[0])
    for group in groups:
        items = _items(safe_get(group, sequence))
        if items:
            value = safe_get(items[0], keyword)
            if _present(value):
                return value
    return None


def raw_iap_values(ds: Dataset) -> dict[str, Any]:
    """The IAP tag values as stored (before normalisation); absent tags are ``None``.

    ScanOptions present but empty is kept as ``''`` (the scanner used no options).
    """
    raw: dict[str, Any] = {}
    for name, keyword in IAP_TAGS.items():
        value = safe_get(ds, keyword)
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
        if isinstance(value, _NOT_A_VALUE):
            invalid[IAP_TAGS[name]] = _describe(value)
            continue
        try:
            IAPRecord.create(**{name: value})
        except IAPValueError:
            invalid[IAP_TAGS[name]] = _describe(value)
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
