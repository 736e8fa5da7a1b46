"""A size guard: refuse images whose header claims more voxels than is sane, before allocating.

A corrupt header (e.g. Rows = Columns = 65535, NumberOfFrames = 2**31 - 1, or NIfTI/NRRD sizes
in the tens of thousands) must give a clear error, not a MemoryError, a swap storm or a loop
over billions of frames. The limit is ``2**31`` voxels (8 GiB as float32); set the environment
variable ``CF_IAP_MAX_VOXELS`` to raise or lower it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable

from ..errors import InputError

ENV_VAR = "CF_IAP_MAX_VOXELS"
DEFAULT_MAX_VOXELS = 2**31


def max_voxels() -> int:
    """The current limit (``CF_IAP_MAX_VOXELS`` if set to a positive integer, else 2**31)."""
    text = os.environ.get(ENV_VAR, "").strip()
    if not text:
        return DEFAULT_MAX_VOXELS
    try:
        value = int(float(text))
    except (ValueError, OverflowError):
        value = 0
    if value <= 0:
        raise InputError(f"{ENV_VAR}={text!r} must be a positive integer number of voxels")
    return value


def check_voxel_count(shape: Iterable[int], source: object) -> None:
    """Raise :class:`InputError` if an image of ``shape`` would exceed :func:`max_voxels`."""
    dims = [int(s) for s in shape]
    count = math.prod(max(d, 0) for d in dims)
    limit = max_voxels()
    if count > limit:
        size = " x ".join(str(d) for d in dims)
        raise InputError(
            f"{source} claims an image of {size} = {count:,} voxels, more than the limit of "
            f"{limit:,}; the header is probably corrupt. If the image really is this large, "
            f"raise the limit with the environment variable {ENV_VAR}"
        )
