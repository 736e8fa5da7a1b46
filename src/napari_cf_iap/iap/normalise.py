"""Normalisation of IAP values as scanners and spreadsheets spell them.

Facts from ``mri-physics.md`` / ``method-facts.md``: Siemens reports the true field (1.494 T,
2.8936 T) and GE the nominal one (1.5 T, 3 T); some old files store gauss; ScanOptions is a
multi-valued code string that pydicom returns as ``str``, ``MultiValue`` or ``''``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ..errors import IAPValueError

GE = "GE MEDICAL SYSTEMS"
SIEMENS = "SIEMENS"

_MANUFACTURER_ALIASES = {
    "ge": GE,
    "ge medical systems": GE,
    "ge healthcare": GE,
    "general electric": GE,
    "siemens": SIEMENS,
    "siemens healthineers": SIEMENS,
    "siemens healthcare": SIEMENS,
    "siemens ag": SIEMENS,
    "philips": "Philips",
    "philips medical systems": "Philips",
    "philips healthcare": "Philips",
    "toshiba": "TOSHIBA",
    "canon": "CANON",
}

NOMINAL_FIELDS = (0.2, 0.35, 0.5, 1.0, 1.5, 3.0, 7.0)
MIN_FIELD_TESLA = 1e-3  # below any MRI scanner (ultra-low-field systems use ~6.5 mT)
_FIELD_TOLERANCE = 0.06  # relative; 2.8936 T is 3.5 % below 3 T


def normalise_manufacturer(value: object) -> str | None:
    """Map vendor spellings to one canonical name (``SIEMENS``, ``GE MEDICAL SYSTEMS``, ...)."""
    if value is None:
        return None
    text = " ".join(str(value).split())
    if not text:
        return None
    key = text.lower()
    if key in _MANUFACTURER_ALIASES:
        return _MANUFACTURER_ALIASES[key]
    for alias, canonical in _MANUFACTURER_ALIASES.items():
        if key.startswith(alias + " "):
            return canonical
    return text


def normalise_field_strength(value: object) -> float | None:
    """Return the nominal field strength in tesla (1.494 -> 1.5, 2.8936 -> 3.0, 15000 G -> 1.5)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        tesla = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError) as exc:
        raise IAPValueError(f"field strength {value!r} is not a number") from exc
    if not math.isfinite(tesla) or tesla <= 0:
        raise IAPValueError(f"field strength {value!r} must be a positive finite number of tesla")
    if tesla > 100:  # stored in gauss
        tesla /= 1e4
    if tesla < MIN_FIELD_TESLA:
        raise IAPValueError(f"field strength {value!r} is not a plausible MRI field in tesla")
    for nominal in NOMINAL_FIELDS:
        if abs(tesla - nominal) <= _FIELD_TOLERANCE * nominal:
            return nominal
    return round(tesla, 4)


def field_strength_label(tesla: float) -> str:
    """Category label of a nominal field strength: 1.5 -> '1.5', 3.0 -> '3'."""
    return f"{tesla:g}"


def normalise_scan_options(value: object) -> str:
    """Join ScanOptions values with a backslash; '' when there are none."""
    if value is None:
        return ""
    if isinstance(value, str):
        parts: Iterable[object] = value.replace("/", "\\").split("\\")
    elif isinstance(value, Iterable):
        parts = value
    else:
        parts = [value]
    cleaned = [str(p).strip() for p in parts]
    return "\\".join(p for p in cleaned if p)


def normalise_model_name(value: object) -> str | None:
    """Collapse whitespace in ManufacturerModelName; keep the vendor's capitalisation."""
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def to_float(value: object, name: str) -> float | None:
    """Parse a numeric IAP, refusing NaN/inf with an :class:`IAPValueError`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError) as exc:
        raise IAPValueError(f"{name} {value!r} is not a number") from exc
    if not math.isfinite(number):
        raise IAPValueError(f"{name} must be finite, got {value!r}")
    return number
