"""A Duke-like mix of pre-contrast fat-saturated 3D T1 gradient-echo protocols.

Category strings (models, scan options, FA set {7, 8, 10, 12}, ST 0.9-2.5 mm, TE 1.25-2.76 ms,
TR 3.54-7.40 ms, matrix 320/448/512) are the Duke ones from ``method-facts.md`` and
:mod:`napari_cf_iap.iap.duke_defaults`. Which model carries which values, and the weights, are an
assumed plausible mix (GE about 60 %, Siemens about 40 %), not the real Duke frequencies.

Scanners report the field differently (``mri-physics.md``): Siemens the true field (1.494 or
2.8936 T), GE the nominal one (1.5 or 3 T). The normalised :class:`IAPRecord` holds the nominal
field; the reported value is kept in ``record.extras["reported_field_strength"]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..iap.duke_defaults import MODEL_MANUFACTURER, SCAN_OPTIONS
from ..iap.normalise import GE, SIEMENS, normalise_manufacturer
from ..iap.record import IAPRecord
from .vendor_effects import ACQUIRED_MATRIX, REPORTED_MATRIX

#: What each vendor writes into MagneticFieldStrength for a nominal field.
REPORTED_FIELD = {SIEMENS: {1.5: 1.494, 3.0: 2.8936}, GE: {1.5: 1.5, 3.0: 3.0}}


@dataclass(frozen=True)
class Protocol:
    """One scanner + sequence setup; TE and TR are drawn per patient from their ranges."""

    manufacturer: str
    model_name: str
    field_strength: float  # nominal tesla
    scan_options: str
    flip_angles: tuple[float, ...]
    slice_thicknesses: tuple[float, ...]
    echo_time: tuple[float, float]
    repetition_time: tuple[float, float]
    rows: int  # reported matrix
    acquisition_matrix: int  # acquired in-plane matrix
    weight: float = 1.0


def _p(maker, model, field, options, fa, st, te, tr, weight, rows=None, acq=None) -> Protocol:
    return Protocol(
        manufacturer=maker,
        model_name=model,
        field_strength=field,
        scan_options=options,
        flip_angles=tuple(fa),
        slice_thicknesses=tuple(st),
        echo_time=te,
        repetition_time=tr,
        rows=rows or REPORTED_MATRIX[maker],
        acquisition_matrix=acq or ACQUIRED_MATRIX[maker],
        weight=weight,
    )


_S = SCAN_OPTIONS
DUKE_LIKE_PROTOCOLS: tuple[Protocol, ...] = (
    _p(GE, "SIGNA HDx", 1.5, _S[0], (10,), (1.1, 1.2), (2.20, 2.50), (4.60, 5.20), 0.11),
    _p(GE, "SIGNA HDx", 3.0, _S[0], (10, 12), (1.1,), (1.50, 1.90), (3.90, 4.60), 0.09),
    _p(GE, "Signa HDxt", 1.5, _S[1], (10,), (1.1, 1.2), (2.10, 2.60), (4.60, 5.40), 0.09),
    _p(GE, "Signa HDxt", 3.0, _S[2], (12,), (1.1, 1.2), (1.60, 2.00), (4.20, 4.80), 0.07),
    _p(GE, "SIGNA EXCITE", 1.5, _S[3], (10,), (2.0, 2.2, 2.5), (2.40, 2.76), (5.20, 6.20), 0.08),
    _p(GE, "SIGNA EXCITE", 3.0, _S[4], (12,), (1.6, 2.0), (1.80, 2.20), (4.40, 5.00), 0.04),
    _p(GE, "Optima MR450w", 1.5, _S[0], (10,), (1.0, 1.1), (2.00, 2.30), (4.40, 4.90), 0.06),
    _p(SIEMENS, "Avanto", 1.5, _S[5], (10, 12), (1.0, 1.04), (2.40, 2.76), (5.50, 7.40), 0.08),
    _p(SIEMENS, "Avanto", 1.5, _S[6], (12,), (1.0, 1.04), (2.40, 2.70), (5.40, 6.80), 0.07),
    _p(SIEMENS, "Trio", 3.0, _S[8], (7, 8), (0.9, 1.0), (1.25, 1.50), (3.54, 4.20), 0.04),
    _p(SIEMENS, "TrioTim", 3.0, _S[7], (8, 10), (1.0,), (1.30, 1.60), (3.60, 4.40), 0.08),
    _p(
        SIEMENS,
        "Skyra",
        3.0,
        _S[6],
        (8, 10),
        (1.0, 1.04),
        (1.30, 1.60),
        (3.70, 4.40),
        0.09,
        320,
        320,
    ),
)


def reported_field_strength(manufacturer: str | None, nominal: float) -> float:
    """MagneticFieldStrength as the scanner writes it (Siemens 1.494 / 2.8936, GE 1.5 / 3)."""
    table = REPORTED_FIELD.get(manufacturer or "", {})
    return float(table.get(float(nominal), nominal))


def protocol_iap(protocol: Protocol, rng: np.random.Generator) -> IAPRecord:
    """Draw one patient's IAPs from ``protocol`` (normalised record; scanner values in extras)."""
    te = round(float(rng.uniform(*protocol.echo_time)), 3)
    tr = round(float(rng.uniform(*protocol.repetition_time)), 3)
    return IAPRecord.create(
        manufacturer=protocol.manufacturer,
        model_name=protocol.model_name,
        field_strength=protocol.field_strength,
        scan_options=protocol.scan_options,
        flip_angle=float(rng.choice(protocol.flip_angles)),
        slice_thickness=float(rng.choice(protocol.slice_thicknesses)),
        echo_time=te,
        repetition_time=tr,
        extras={
            "reported_field_strength": reported_field_strength(
                protocol.manufacturer, protocol.field_strength
            ),
            "rows": protocol.rows,
            "columns": protocol.rows,
            "acquisition_matrix": protocol.acquisition_matrix,
        },
    )


def sample_protocol(
    rng: np.random.Generator,
    manufacturer: str | Sequence[str] | None = None,
    protocols: Sequence[Protocol] = DUKE_LIKE_PROTOCOLS,
) -> IAPRecord:
    """Draw IAPs from the weighted protocol mix, optionally restricted to some manufacturers.

    ``manufacturer`` accepts any spelling (``"GE"``, ``"Siemens"``) or a list of them.
    """
    chosen = _filter(protocols, manufacturer)
    weights = np.array([p.weight for p in chosen], dtype=float)
    protocol = chosen[int(rng.choice(len(chosen), p=weights / weights.sum()))]
    return protocol_iap(protocol, rng)


def _filter(
    protocols: Sequence[Protocol], manufacturer: str | Sequence[str] | None
) -> list[Protocol]:
    if not protocols:
        raise InputError("the protocol mix is empty; give at least one protocol")
    if manufacturer is None:
        return list(protocols)
    names = [manufacturer] if isinstance(manufacturer, str) else list(manufacturer)
    wanted = {normalise_manufacturer(n) for n in names}
    chosen = [p for p in protocols if p.manufacturer in wanted]
    if not chosen:
        available = sorted({p.manufacturer for p in protocols})
        raise InputError(f"no protocol for manufacturer(s) {names}; available: {available}")
    return chosen


def check_protocols() -> None:
    """Raise if a protocol uses a model or scan-option string that Duke does not have."""
    for p in DUKE_LIKE_PROTOCOLS:
        if (
            MODEL_MANUFACTURER.get(p.model_name) != p.manufacturer
            or p.scan_options not in SCAN_OPTIONS
        ):
            raise InputError(f"protocol {p} is not a Duke category")
