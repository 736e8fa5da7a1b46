"""One 2D image of a DICOM series (:class:`Frame`) and the tags that tell its phase apart.

Shared by the folder scan (which builds frames from headers) and the geometry (which sorts,
checks and splits them), so neither has to import the other's internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Tags that can tell the time points (phases) of a multi-phase series apart, in order of trust.
PHASE_TAGS = (
    "TemporalPositionIdentifier",
    "TemporalPositionIndex",
    "AcquisitionNumber",
    "TriggerTime",
    "EchoNumbers",
    "StackID",
)


@dataclass
class Frame:
    """One 2D image of a series: a single-frame file or one frame of an Enhanced file."""

    path: Path
    frame: int | None
    sop_uid: str
    position: np.ndarray | None
    orientation: np.ndarray | None
    pixel_spacing: tuple[float, float] | None
    shape: tuple[int, int]
    slope: float
    intercept: float
    frame_of_reference: str | None
    phase_tags: dict[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        return self.path.name if self.frame is None else f"{self.path.name}[frame {self.frame + 1}]"
