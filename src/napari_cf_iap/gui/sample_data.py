"""Sample data: one simulated subject scanned on a GE 1.5 T and a Siemens 3 T protocol.

Both volumes come from the core simulator (same phantom, pixel-aligned), with the ground-truth
fat/FGT masks. They are small (32 x 128 x 128), computed in about a second, and need no
download; the pair is cached so the second sample appears instantly.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ..simulator.reference_protocols import GE_15T, SIEMENS_3T
from .reader import image_layer_data, labels_layer_data

SHAPE = (32, 128, 128)
SEED = 7


@lru_cache(maxsize=1)
def _pair() -> tuple[Any, Any]:
    from ..simulator import sample_pair

    return sample_pair(SEED, SHAPE, iap_a=GE_15T, iap_b=SIEMENS_3T)


def _layers(acquisition: Any, name: str) -> list[tuple[Any, dict[str, Any], str]]:
    volume = acquisition.volume
    image = image_layer_data(volume, name)
    labels = labels_layer_data(volume.with_data(acquisition.labels), f"{name} tissue masks")
    labels[1]["metadata"]["ground_truth"] = True
    return [image, labels]


def sample_ge_15t() -> list[tuple[Any, dict[str, Any], str]]:
    """Simulated GE 1.5 T scan plus its fat/FGT masks."""
    return _layers(_pair()[0], "GE 1.5T (simulated)")


def sample_siemens_3t() -> list[tuple[Any, dict[str, Any], str]]:
    """The same subject on a simulated Siemens 3 T protocol plus its masks."""
    return _layers(_pair()[1], "Siemens 3T (simulated)")
