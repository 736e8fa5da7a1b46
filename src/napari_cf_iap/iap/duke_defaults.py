"""The Duke-Breast-Cancer-MRI IAP categories and ranges (``method-facts.md``)."""

from __future__ import annotations

from .normalise import GE, SIEMENS

MODEL_MANUFACTURER = {
    "Avanto": SIEMENS,
    "Trio": SIEMENS,
    "TrioTim": SIEMENS,
    "Skyra": SIEMENS,
    "SIGNA EXCITE": GE,
    "SIGNA HDx": GE,
    "Signa HDxt": GE,
    "Optima MR450w": GE,
}

FIELD_STRENGTHS = ["1.5", "3"]

SCAN_OPTIONS = [
    "FAST_GEMS\\SAT_GEMS\\ACC_GEMS\\PFP\\FS",
    "FAST_GEMS\\SAT_GEMS\\MP_GEMS\\ACC_GEMS\\PFP\\FS",
    "FAST_GEMS\\SAT_GEMS\\MP_GEMS\\PFP\\FS",
    "FAST_GEMS\\SAT_GEMS\\PFP\\FS",
    "SAT_GEMS\\PFP\\FS",
    "FS",
    "PFP\\FS",
    "PFP\\SFS",
    "SFS",
]

#: (min, max) observed in Duke; the max is also the encoding divisor.
CONTINUOUS_RANGES = {
    "flip_angle": (7.0, 12.0),
    "slice_thickness": (0.9, 2.5),
    "echo_time": (1.25, 2.76),
    "repetition_time": (3.54, 7.40),
}
