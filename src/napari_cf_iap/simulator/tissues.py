"""Tissue classes of the breast phantom and their relaxation parameters per field strength.

Values marked *reference* come from ``shared/reference/mri-physics.md`` (Rakow-Penner et al.,
JMRI 2006 for breast fat/FGT T1 and T2; Stanisz 2005 and Gold 2004 for muscle and blood T1;
Ryu et al., JKSMRM for T2* at 3 T; the 1.5 T T2* values there are extrapolated). Values marked
*assumed* are not in that reference: they are plausible literature-order values chosen so the
images look like breast MRI, and they only affect tissues that are not part of the training
labels' contrast (chest wall, organs) or the thin skin/ligament structures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import IAPValueError

# Fine tissue labels of the phantom (uint8).
AIR = 0
FAT = 1
FGT = 2
SKIN = 3
LIGAMENT = 4
MUSCLE = 5
BONE = 6
LUNG = 7
BLOOD = 8
LIVER = 9

TISSUE_NAMES = {
    AIR: "air",
    FAT: "fat",
    FGT: "fibroglandular",
    SKIN: "skin",
    LIGAMENT: "Cooper's ligament",
    MUSCLE: "muscle",
    BONE: "bone (rib, sternum, spine)",
    LUNG: "lung",
    BLOOD: "heart / blood",
    LIVER: "liver",
}
N_TISSUES = len(TISSUE_NAMES)

#: Training labels (method-facts.md): 0 background/other, 1 fat/breast, 2 FGT.
TRAINING_BACKGROUND = 0
TRAINING_BREAST = 1
TRAINING_FGT = 2

#: Fine labels that count as "breast" (training label 1) when inside the breast region.
BREAST_TISSUES = (FAT, SKIN, LIGAMENT)


@dataclass(frozen=True)
class TissueParameters:
    """Relaxation at one field strength: T1 and T2* in ms, proton density (PD) in [0, 1].

    ``fat_fraction`` is the share of the PD that resonates as fat (chemical shift, fat
    suppression); the rest is water.
    """

    t1_ms: float
    t2star_ms: float
    pd: float
    fat_fraction: float = 0.0


# (T1 1.5T, T1 3T, T2* 1.5T, T2* 3T, PD, fat fraction)
_TABLE: dict[int, tuple[float, float, float, float, float, float]] = {
    # reference: Rakow-Penner 2006 (T1), Ryu (T2* 3T), 1.5T T2* extrapolated; PD 0.9-0.95
    FAT: (296.0, 367.0, 43.0, 36.0, 0.92, 1.0),
    # reference: Rakow-Penner 2006; PD ~0.8
    FGT: (1266.0, 1445.0, 33.0, 22.0, 0.80, 0.0),
    # reference T1 1008-1130 / 1412-1420 (Stanisz 2005, Gold 2004), PD ~0.9; T2* assumed
    MUSCLE: (1070.0, 1416.0, 28.0, 20.0, 0.90, 0.0),
    # reference T1 1441 / 1932 (Stanisz 2005, Gold 2004), PD ~0.9; T2* assumed
    BLOOD: (1441.0, 1932.0, 50.0, 30.0, 0.90, 0.0),
    # reference: lung / air PD ~0 (a small PD keeps the Rician floor realistic)
    LUNG: (1300.0, 1500.0, 2.0, 1.0, 0.02, 0.0),
    AIR: (1000.0, 1000.0, 1.0, 1.0, 0.0, 0.0),
    # assumed: dermis, water-rich, a little darker than FGT
    SKIN: (1000.0, 1200.0, 30.0, 20.0, 0.75, 0.0),
    # assumed: a thin collagen sheet (short T2*) sharing its voxel with fat (fat fraction 0.6)
    LIGAMENT: (1100.0, 1300.0, 8.0, 5.0, 0.75, 0.6),
    # assumed: cortical bone with fatty marrow (half of the PD is marrow fat)
    BONE: (900.0, 1100.0, 10.0, 6.0, 0.45, 0.5),
    # assumed: liver T1 586 / 809 ms (de Bazelaire 2004), T2* and PD assumed
    LIVER: (586.0, 809.0, 25.0, 15.0, 0.75, 0.03),
}

SUPPORTED_FIELD_RANGE = (1.0, 3.5)


def tissue_parameters(label: int, field_strength: float) -> TissueParameters:
    """Parameters of one tissue at ``field_strength`` tesla (linear in B0 between 1.5 and 3 T)."""
    lo, hi = SUPPORTED_FIELD_RANGE
    if not lo <= field_strength <= hi:
        raise IAPValueError(
            f"the simulator models {lo:g}-{hi:g} T, got a field strength of {field_strength:g} T; "
            "use 1.5 or 3"
        )
    t1a, t1b, t2a, t2b, pd, ff = _TABLE[label]
    w = (field_strength - 1.5) / 1.5
    return TissueParameters(
        t1_ms=t1a + w * (t1b - t1a),
        t2star_ms=max(t2a + w * (t2b - t2a), 0.5),
        pd=pd,
        fat_fraction=ff,
    )


def parameter_tables(field_strength: float) -> dict[str, np.ndarray]:
    """Lookup arrays indexed by fine label: ``t1``, ``t2star``, ``pd``, ``fat_fraction``."""
    params = [tissue_parameters(label, field_strength) for label in range(N_TISSUES)]
    return {
        "t1": np.array([p.t1_ms for p in params], dtype=np.float64),
        "t2star": np.array([p.t2star_ms for p in params], dtype=np.float64),
        "pd": np.array([p.pd for p in params], dtype=np.float64),
        "fat_fraction": np.array([p.fat_fraction for p in params], dtype=np.float64),
    }


def training_labels(fine: np.ndarray, breast_region: np.ndarray) -> np.ndarray:
    """Map fine labels to training labels.

    2 = FGT; 1 = fat, skin or Cooper's ligament inside the breast region (the breasts and the
    tissue anterior to the pectoralis, as in the Duke breast masks); 0 = everything else
    (air, chest wall, organs, and the body fat outside the breast region).
    """
    out = np.zeros(fine.shape, dtype=np.uint8)
    out[np.isin(fine, BREAST_TISSUES) & breast_region] = TRAINING_BREAST
    out[fine == FGT] = TRAINING_FGT
    return out
