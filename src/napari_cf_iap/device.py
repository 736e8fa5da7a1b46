"""Pick the compute device and the matching autocast context.

``resolve_device("auto")`` prefers CUDA, then Apple MPS, then the CPU. The environment
variable ``CF_IAP_DEVICE`` (e.g. ``cpu``, ``cuda:1``) overrides ``"auto"``; an explicit
device argument always wins. bf16 autocast is used on CUDA only: on CPUs without native
bf16 it is two orders of magnitude slower (``performance-facts.md``).
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from .errors import CfIapError

if TYPE_CHECKING:
    import torch

ENV_VAR = "CF_IAP_DEVICE"


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """A usable :class:`torch.device` for ``"auto"``, ``"cpu"``, ``"cuda:0"``, ``"mps"``..."""
    import torch

    if isinstance(device, torch.device):
        return device
    name = (device or "auto").strip().lower()
    if name == "auto":
        name = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise CfIapError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise CfIapError(
            f"device {name!r} requested but CUDA is not available; use 'cpu' or 'auto'"
        )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise CfIapError(f"device {name!r} requested but MPS is not available; use 'cpu' or 'auto'")
    return resolved


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; a no-op elsewhere (full fp32)."""
    import torch

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
