"""Two typical protocols of the Duke-like mix, used wherever one fixed example is needed.

The sample data, the ``cf-iap demo`` job and the simulator figure all show the same
GE 1.5 T and Siemens 3 T acquisitions (values inside the ranges of ``protocols.py``).
"""

from __future__ import annotations

from ..iap.record import IAPRecord

GE_15T = IAPRecord.create(
    manufacturer="GE MEDICAL SYSTEMS",
    model_name="SIGNA HDx",
    field_strength=1.5,
    scan_options="FAST_GEMS\\SAT_GEMS\\ACC_GEMS\\PFP\\FS",
    flip_angle=10.0,
    slice_thickness=1.1,
    echo_time=2.3,
    repetition_time=4.9,
)

SIEMENS_3T = IAPRecord.create(
    manufacturer="SIEMENS",
    model_name="Skyra",
    field_strength=3.0,
    scan_options="PFP\\FS",
    flip_angle=10.0,
    slice_thickness=1.0,
    echo_time=1.45,
    repetition_time=4.0,
)
