"""Physics-based breast-MRI acquisition simulator (Qt-free core).

Procedural prone axial breast anatomy (:func:`make_phantom`) rendered as a fat-saturated 3D
spoiled-gradient-echo acquisition under any IAPs (:func:`acquire`), with a Duke-like protocol
mix (:func:`sample_protocol`). The same phantom under two IAP sets is a pixel-aligned
ground-truth counterfactual pair (:func:`sample_pair`). See ``docs/simulator.md``.
"""

from __future__ import annotations

from ..iap.record import IAPRecord
from .acquisition import AcquisitionOptions, SimulatedAcquisition, acquire
from .anatomy import DENSITY_FGT_RANGES, Phantom, make_phantom
from .noise_fields import substream
from .protocols import DUKE_LIKE_PROTOCOLS, Protocol, reported_field_strength, sample_protocol
from .version import SIMULATOR_VERSION


def simulate_volume(
    seed: int,
    iap: IAPRecord | None = None,
    shape: tuple[int, int, int] = (64, 256, 256),
    *,
    density: str | None = None,
) -> SimulatedAcquisition:
    """One subject (phantom ``seed``) acquired with ``iap`` (drawn from the Duke-like mix if
    ``None``), noise seeded by the same ``seed``."""
    phantom = make_phantom(seed, shape, density=density)
    if iap is None:
        iap = sample_protocol(substream(seed, "protocol"))
    return acquire(phantom, iap, seed=seed)


def sample_pair(
    seed: int,
    shape: tuple[int, int, int] = (64, 256, 256),
    *,
    iap_a: IAPRecord | None = None,
    iap_b: IAPRecord | None = None,
    density: str | None = None,
) -> tuple[SimulatedAcquisition, SimulatedAcquisition]:
    """The same anatomy under two protocols (default: one GE and one Siemens from the mix).

    Both acquisitions share the phantom, grid, labels and noise seed; only IAP-driven contrast
    and style differ.
    """
    phantom = make_phantom(seed, shape, density=density)
    rng = substream(seed, "pair-protocols")
    if iap_a is None:
        iap_a = sample_protocol(rng, "GE")
    if iap_b is None:
        iap_b = sample_protocol(rng, "SIEMENS")
    return acquire(phantom, iap_a, seed=seed), acquire(phantom, iap_b, seed=seed)


__all__ = [
    "AcquisitionOptions",
    "DENSITY_FGT_RANGES",
    "DUKE_LIKE_PROTOCOLS",
    "Phantom",
    "Protocol",
    "SIMULATOR_VERSION",
    "SimulatedAcquisition",
    "acquire",
    "make_phantom",
    "reported_field_strength",
    "sample_pair",
    "sample_protocol",
    "simulate_volume",
]
