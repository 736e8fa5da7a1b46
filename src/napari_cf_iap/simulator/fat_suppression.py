"""Spectral fat suppression with a spatially varying efficiency (``mri-physics.md``, "Fat").

Fat signal is multiplied by (1 - eta(r)). eta is about 0.85-0.98 where B0 is well shimmed and
falls off towards the lateral and inferior breast edges and the axilla, more so at 3 T.
Enabled by the scan options FS, SFS (Siemens) or SAT_GEMS (GE).
"""

from __future__ import annotations

import numpy as np

from .anatomy import SubjectParams
from .noise_fields import SmoothGrid, substream
from .vendor_effects import scan_option_tokens

FAT_SAT_OPTIONS = frozenset({"FS", "SFS", "SAT_GEMS"})
#: Efficiency in the well-shimmed centre: inside the reference range 0.85-0.98.
ETA_CENTRE = {"FS": (0.92, 0.97), "SFS": (0.94, 0.98)}
#: Relative strength of the fall-off at 3 T versus 1.5 T (assumed).
FALLOFF_3T = 1.5


def fat_sat_enabled(scan_options: str | None) -> bool:
    """True when the scan options ask for fat saturation (FS, SFS or SAT_GEMS)."""
    return bool(scan_option_tokens(scan_options) & FAT_SAT_OPTIONS)


def fat_sat_efficiency(
    grid: SmoothGrid,
    params: SubjectParams,
    field_strength: float,
    scan_options: str | None,
    seed: int,
) -> np.ndarray:
    """eta(r) on ``grid``, in [0.2, 0.99]: the fraction of fat signal removed.

    eta = eta_centre - s * (0.25 lateral + 0.15 inferior + 0.30 axilla + 0.05 |shim|), with
    s = 1 at 1.5 T rising to FALLOFF_3T at 3 T. ``lateral`` rises from 0 at 40 % of each
    breast's radius to 1 at its lateral edge, ``inferior`` likewise below the breast centre,
    ``axilla`` in the superior-lateral corner; ``shim`` is a seeded smooth B0-offset field.
    """
    tokens = scan_option_tokens(scan_options)
    kind = "SFS" if "SFS" in tokens else "FS"
    rng = substream(seed, "fat-sat")
    eta0 = rng.uniform(*ETA_CENTRE[kind])
    s = 1.0 + (FALLOFF_3T - 1.0) * float(np.clip((field_strength - 1.5) / 1.5, 0.0, 1.0))
    z, x = grid.z, grid.x
    drop = grid.full(0.0)
    for b in params.breasts:
        side = np.sign(b.center_x)
        out = side * (x - b.center_x) / b.radius_x  # 0 at the breast axis, 1 at its lateral edge
        up = (z - b.center_z) / b.radius_z
        near = np.exp(-(((x - b.center_x) / (1.6 * b.radius_x)) ** 2))
        lateral = (np.clip(out - 0.4, 0.0, 0.9) / 0.6) ** 2
        inferior = (np.clip(-up - 0.4, 0.0, 0.9) / 0.6) ** 2
        axilla = np.clip(up - 0.3, 0.0, 0.8) * np.clip(out - 0.3, 0.0, 0.8) / 0.49
        drop += near * (0.25 * lateral + 0.15 * inferior + 0.30 * axilla)
    drop += 0.05 * np.abs(grid.random(rng, (3, 4, 4)))
    return np.clip(eta0 - s * drop, 0.2, 0.99).astype(np.float32)
