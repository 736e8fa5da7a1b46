"""The IAP vocabulary: categories, continuous maxima, vector order, encode/decode.

Vector layout (documented, fixed): one-hot ``model_name`` | one-hot ``field_strength`` |
one-hot ``scan_options`` | ``flip_angle/max`` | ``slice_thickness/max`` | ``echo_time/max`` |
``repetition_time/max``. The manufacturer is implied by the model (``method-facts.md``).
Dividing by the maximum (not min-max) keeps every real value above zero, so the all-zero
vector is free to mean "unconditional" for classifier-free guidance.

The IAP predictor's raw output uses the same layout, with logits in the categorical blocks.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IAPValueError
from . import duke_defaults
from .normalise import field_strength_label, normalise_field_strength
from .record import CATEGORICAL_IAPS, CONTINUOUS_IAPS, IAPRecord


class IAPExtrapolationWarning(UserWarning):
    """A continuous IAP lies outside the range seen in training and was encoded anyway."""


#: IAP -> (``cf-iap --target`` key, BIDS sidecar key) for the "how to supply it" hint.
_SUPPLY_KEYS = {
    "manufacturer": ("manufacturer", "Manufacturer"),
    "model_name": ("model", "ManufacturersModelName"),
    "field_strength": ("field", "MagneticFieldStrength"),
    "scan_options": ("scan_options", "ScanOptions"),
    "flip_angle": ("fa", "FlipAngle"),
    "slice_thickness": ("st", "SliceThickness"),
    "echo_time": ("te", "EchoTime"),
    "repetition_time": ("tr", "RepetitionTime"),
}


def missing_iaps_message(missing: Iterable[str]) -> str:
    """Names the unknown IAPs and the three ways to supply them (GUI, CLI, NIfTI sidecar)."""
    names = list(missing)
    cli = " ".join(f"--target {_SUPPLY_KEYS[n][0]}=VALUE" for n in names if n in _SUPPLY_KEYS)
    bids = ", ".join(_SUPPLY_KEYS[n][1] for n in names if n in _SUPPLY_KEYS)
    return (
        f"IAPs {', '.join(names)} are missing (not in the image header, not given); supply "
        f"them: in napari enter them in the widget's IAP table, on the command line add {cli}, "
        f"or for NIfTI put {bids} in a BIDS JSON sidecar next to the image (times in seconds)"
    )


@dataclass(frozen=True)
class IAPSlot:
    """Where one IAP lives in the vector: ``vector[start:stop]``."""

    name: str
    start: int
    stop: int
    categorical: bool


@dataclass
class PredictedIAP:
    """A decoded prediction: the record plus per-category probabilities."""

    record: IAPRecord
    probabilities: dict[str, dict[str, float]] = field(default_factory=dict)

    def confidence(self, name: str) -> float:
        """Probability of the predicted category of a categorical IAP."""
        value = _category_of(self.record, name)
        return self.probabilities[name][value]


def _category_of(record: IAPRecord, name: str) -> str:
    value = getattr(record, name)
    if name == "field_strength" and value is not None:
        return field_strength_label(value)
    return value


@dataclass
class IAPVocabulary:
    """Categories of each categorical IAP, range and divisor of each continuous IAP."""

    categories: dict[str, list[str]]
    continuous_range: dict[str, tuple[float, float]]
    model_manufacturer: dict[str, str]
    version: int = 1

    # ---------------------------------------------------------------- construction
    def __post_init__(self) -> None:
        if list(self.categories) != list(CATEGORICAL_IAPS):
            raise IAPValueError(f"vocabulary categories must be keyed {CATEGORICAL_IAPS}")
        if list(self.continuous_range) != list(CONTINUOUS_IAPS):
            raise IAPValueError(f"vocabulary ranges must be keyed {CONTINUOUS_IAPS}")
        for name, values in self.categories.items():
            if not values or len(set(values)) != len(values):
                raise IAPValueError(f"categories of {name} must be non-empty and unique")
        self.continuous_range = {
            k: (float(a), float(b)) for k, (a, b) in self.continuous_range.items()
        }
        for name, (low, high) in self.continuous_range.items():
            if not (0 < low <= high and math.isfinite(high)):
                raise IAPValueError(f"range of {name} must satisfy 0 < min <= max, got {low, high}")

    @classmethod
    def duke_default(cls) -> IAPVocabulary:
        """The Duke-Breast-Cancer-MRI vocabulary from ``method-facts.md``."""
        return cls(
            categories={
                "model_name": list(duke_defaults.MODEL_MANUFACTURER),
                "field_strength": list(duke_defaults.FIELD_STRENGTHS),
                "scan_options": list(duke_defaults.SCAN_OPTIONS),
            },
            continuous_range=dict(duke_defaults.CONTINUOUS_RANGES),
            model_manufacturer=dict(duke_defaults.MODEL_MANUFACTURER),
        )

    @classmethod
    def from_records(cls, records: Iterable[IAPRecord]) -> IAPVocabulary:
        """Build from a dataset table (every record must be complete). Categories are sorted."""
        cats: dict[str, set[str]] = {name: set() for name in CATEGORICAL_IAPS}
        lows = {name: math.inf for name in CONTINUOUS_IAPS}
        highs = {name: -math.inf for name in CONTINUOUS_IAPS}
        makers: dict[str, str] = {}
        count = 0
        for rec in records:
            missing = rec.missing()
            if missing:
                raise IAPValueError(
                    f"record {rec.summary()} lacks {missing}; cannot build vocabulary"
                )
            count += 1
            for name in CATEGORICAL_IAPS:
                cats[name].add(_category_of(rec, name))
            for name in CONTINUOUS_IAPS:
                lows[name] = min(lows[name], getattr(rec, name))
                highs[name] = max(highs[name], getattr(rec, name))
            makers[rec.model_name] = rec.manufacturer  # type: ignore[index]
        if count == 0:
            raise IAPValueError("cannot build a vocabulary from an empty table")
        return cls(
            categories={name: sorted(values) for name, values in cats.items()},
            continuous_range={name: (lows[name], highs[name]) for name in CONTINUOUS_IAPS},
            model_manufacturer=dict(sorted(makers.items())),
        )

    # ---------------------------------------------------------------- layout
    @property
    def slots(self) -> list[IAPSlot]:
        """The vector layout, in order."""
        out, start = [], 0
        for name in CATEGORICAL_IAPS:
            n = len(self.categories[name])
            out.append(IAPSlot(name, start, start + n, True))
            start += n
        for name in CONTINUOUS_IAPS:
            out.append(IAPSlot(name, start, start + 1, False))
            start += 1
        return out

    @property
    def dim(self) -> int:
        """Length of the conditioning vector."""
        return self.slots[-1].stop

    @property
    def manufacturers(self) -> list[str]:
        return sorted(set(self.model_manufacturer.values()))

    def continuous_max(self, name: str) -> float:
        return self.continuous_range[name][1]

    def null_vector(self) -> np.ndarray:
        """The all-zero 'unconditional' vector used for classifier-free guidance."""
        return np.zeros(self.dim, dtype=np.float32)

    # ---------------------------------------------------------------- validation
    def validate(self, record: IAPRecord, *, allow_extrapolation: bool = False) -> IAPRecord:
        """Check a record against the vocabulary; return it with canonical category spellings.

        Categorical values must be known (case-insensitive match). Continuous values outside
        the training range raise :class:`IAPValueError` unless ``allow_extrapolation`` is set,
        in which case an :class:`IAPExtrapolationWarning` is emitted. Non-positive values are
        always refused.
        """
        missing = [n for n in (*CATEGORICAL_IAPS, *CONTINUOUS_IAPS) if getattr(record, n) is None]
        if missing:
            raise IAPValueError(missing_iaps_message(missing))
        canonical: dict[str, Any] = {}
        for name in CATEGORICAL_IAPS:
            value = _category_of(record, name)
            allowed = self.categories[name]
            match = next((a for a in allowed if a.lower() == str(value).lower()), None)
            if match is None:
                raise IAPValueError(
                    f"{name} {value!r} is not in this model's vocabulary; allowed: {allowed}"
                )
            canonical[name] = normalise_field_strength(match) if name == "field_strength" else match
        for name in CONTINUOUS_IAPS:
            value = getattr(record, name)
            low, high = self.continuous_range[name]
            if value <= 0:
                raise IAPValueError(f"{name} must be > 0, got {value}")
            with np.errstate(over="ignore", under="ignore"):
                scaled = np.float32(value / high)
            if not (np.isfinite(scaled) and scaled > 0):  # would read as 'unconditional' or inf
                raise IAPValueError(
                    f"{name} {value:g} is too far outside the trained range [{low:g}, {high:g}] "
                    "to be encoded; choose a value in range"
                )
            if not low <= value <= high:
                message = f"{name} {value:g} is outside the trained range [{low:g}, {high:g}]"
                if not allow_extrapolation:
                    raise IAPValueError(
                        message + "; choose a value in range or allow extrapolation"
                    )
                warnings.warn(message + " (extrapolating)", IAPExtrapolationWarning, stacklevel=2)
        manufacturer = self.model_manufacturer.get(canonical["model_name"], record.manufacturer)
        return IAPRecord(
            manufacturer=manufacturer,
            model_name=canonical["model_name"],
            field_strength=canonical["field_strength"],
            scan_options=canonical["scan_options"],
            flip_angle=record.flip_angle,
            slice_thickness=record.slice_thickness,
            echo_time=record.echo_time,
            repetition_time=record.repetition_time,
            extras=dict(record.extras),
        )

    # ---------------------------------------------------------------- encode / decode
    def encode(self, record: IAPRecord, *, allow_extrapolation: bool = False) -> np.ndarray:
        """One-hot categoricals plus value/max continuous IAPs, as float32."""
        rec = self.validate(record, allow_extrapolation=allow_extrapolation)
        vector = np.zeros(self.dim, dtype=np.float32)
        for slot in self.slots:
            if slot.categorical:
                index = self.categories[slot.name].index(_category_of(rec, slot.name))
                vector[slot.start + index] = 1.0
            else:
                vector[slot.start] = getattr(rec, slot.name) / self.continuous_max(slot.name)
        return vector

    def encode_many(self, records: Iterable[IAPRecord], **kwargs: Any) -> np.ndarray:
        rows = [self.encode(r, **kwargs) for r in records]
        return np.stack(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)

    def decode(self, vector: np.ndarray, *, logits: bool = False) -> PredictedIAP:
        """Decode a conditioning vector or a predictor output (``logits=True``) to a record.

        Categorical blocks are turned into probabilities (softmax for logits, normalised
        otherwise) and the argmax is taken; continuous values are multiplied by the maximum.
        """
        vector = np.asarray(vector, dtype=np.float64).reshape(-1)
        if vector.shape[0] != self.dim:
            raise IAPValueError(
                f"expected an IAP vector of length {self.dim}, got {vector.shape[0]}"
            )
        if not np.all(np.isfinite(vector)):
            raise IAPValueError("IAP vector contains NaN or inf")
        values: dict[str, Any] = {}
        probs: dict[str, dict[str, float]] = {}
        for slot in self.slots:
            block = vector[slot.start : slot.stop]
            if slot.categorical:
                p = np.exp(block - block.max()) if logits else np.clip(block, 0, None)
                total = p.sum()
                p = p / total if total > 0 else np.full_like(p, 1.0 / len(p))
                names = self.categories[slot.name]
                probs[slot.name] = {n: float(x) for n, x in zip(names, p, strict=True)}
                values[slot.name] = names[int(np.argmax(p))]
            else:
                values[slot.name] = float(block[0]) * self.continuous_max(slot.name)
        values["manufacturer"] = self.model_manufacturer.get(values["model_name"])
        return PredictedIAP(record=IAPRecord.create(**values), probabilities=probs)

    # ---------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "layout": [[s.name, s.start, s.stop] for s in self.slots],
            "categories": {k: list(v) for k, v in self.categories.items()},  # copies: editing
            "continuous_range": {k: list(v) for k, v in self.continuous_range.items()},
            "model_manufacturer": dict(self.model_manufacturer),  # the dict must not alter us
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IAPVocabulary:
        try:
            vocab = cls(
                categories={k: list(v) for k, v in data["categories"].items()},
                continuous_range={k: tuple(v) for k, v in data["continuous_range"].items()},
                model_manufacturer=dict(data["model_manufacturer"]),
                version=int(data.get("version", 1)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IAPValueError(f"invalid IAP vocabulary: {exc}") from exc
        return vocab

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> IAPVocabulary:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise IAPValueError(f"vocabulary is not valid JSON: {exc}") from exc

    @classmethod
    def load(cls, path: str | Path) -> IAPVocabulary:
        return cls.from_json(Path(path).read_text())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IAPVocabulary) and self.to_dict() == other.to_dict()
