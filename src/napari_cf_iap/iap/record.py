"""A typed record of the image acquisition parameters (IAP) of one MRI acquisition."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .normalise import (
    normalise_field_strength,
    normalise_manufacturer,
    normalise_model_name,
    normalise_scan_options,
    to_float,
)

CATEGORICAL_IAPS = ("model_name", "field_strength", "scan_options")
CONTINUOUS_IAPS = ("flip_angle", "slice_thickness", "echo_time", "repetition_time")
IAP_NAMES = ("manufacturer", *CATEGORICAL_IAPS, *CONTINUOUS_IAPS)

#: Human-readable labels and units, for tables and widgets.
IAP_LABELS = {
    "manufacturer": "Manufacturer",
    "model_name": "Model",
    "field_strength": "Field strength (T)",
    "scan_options": "Scan options",
    "flip_angle": "Flip angle (deg)",
    "slice_thickness": "Slice thickness (mm)",
    "echo_time": "TE (ms)",
    "repetition_time": "TR (ms)",
}


@dataclass(frozen=True)
class IAPRecord:
    """IAPs of one acquisition, normalised (nominal field strength, canonical vendor name).

    Any field may be ``None`` when unknown; :meth:`missing` lists those.
    ``scan_options`` is the DICOM ScanOptions joined with a backslash ('' = none).
    """

    manufacturer: str | None = None
    model_name: str | None = None
    field_strength: float | None = None
    scan_options: str | None = None
    flip_angle: float | None = None
    slice_thickness: float | None = None
    echo_time: float | None = None
    repetition_time: float | None = None
    extras: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def create(cls, **values: Any) -> IAPRecord:
        """Build a record from raw values (any vendor spelling), normalising each one."""
        known = {f.name for f in fields(cls)} - {"extras"}
        extras = dict(values.pop("extras", {}) or {})
        extras.update({k: v for k, v in values.items() if k not in known})
        scan = values.get("scan_options")
        return cls(
            manufacturer=normalise_manufacturer(values.get("manufacturer")),
            model_name=normalise_model_name(values.get("model_name")),
            field_strength=normalise_field_strength(values.get("field_strength")),
            scan_options=None if scan is None else normalise_scan_options(scan),
            flip_angle=to_float(values.get("flip_angle"), "flip angle"),
            slice_thickness=to_float(values.get("slice_thickness"), "slice thickness"),
            echo_time=to_float(values.get("echo_time"), "echo time"),
            repetition_time=to_float(values.get("repetition_time"), "repetition time"),
            extras=extras,
        )

    def missing(self) -> list[str]:
        """Names of the IAPs that are unknown."""
        return [name for name in IAP_NAMES if getattr(self, name) is None]

    def is_complete(self) -> bool:
        return not self.missing()

    def with_values(self, **values: Any) -> IAPRecord:
        """A copy with some IAPs changed (values are normalised)."""
        merged = {**self.to_dict(), **values}
        return IAPRecord.create(**merged)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (extras included under ``extras``)."""
        data = asdict(self)
        data["extras"] = dict(self.extras)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IAPRecord:
        return cls.create(**dict(data))

    def summary(self) -> str:
        """One line, e.g. ``SIEMENS Skyra 3T FS FA12 ST1.0 TE1.4 TR4.2``."""
        parts = [
            self.manufacturer or "?",
            self.model_name or "?",
            f"{self.field_strength:g}T" if self.field_strength else "?T",
            self.scan_options or "-",
            f"FA{self.flip_angle:g}" if self.flip_angle is not None else "FA?",
            f"ST{self.slice_thickness:.2g}" if self.slice_thickness is not None else "ST?",
            f"TE{self.echo_time:.3g}" if self.echo_time is not None else "TE?",
            f"TR{self.repetition_time:.3g}" if self.repetition_time is not None else "TR?",
        ]
        return " ".join(parts)


__all__ = ["IAPRecord", "CATEGORICAL_IAPS", "CONTINUOUS_IAPS", "IAP_NAMES", "IAP_LABELS", "replace"]
