"""Typed requests and progress reports shared by the CLI, the GUI and training."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..iap.record import IAPRecord

#: ``progress(done, total, message)``; called from the worker thread.
ProgressCallback = Callable[[int, int, str], None]
#: ``should_stop() -> bool``; checked once per diffusion step / slice chunk.
StopCheck = Callable[[], bool]


@dataclass
class CounterfactualRequest:
    """What to render: the target IAPs and the guidance settings.

    ``steps`` is the SDEdit noise level t0 (of the 1000-step schedule). ``sampler`` is
    ``"ddpm"`` (the paper: t0 ancestral steps) or ``"ddim"`` (``ddim_steps`` deterministic steps
    to the same noise level). ``slices`` selects slice indices (``None`` = whole volume).
    ``edit_mode`` is ``"sdedit"`` (the paper's Algorithm 1: the denoised target rendering is
    the result) or ``"twin"`` (the same noise is also denoised towards the source's own IAPs
    and only the difference is applied: anatomy and noise are kept, twice the compute; needs
    the source IAPs). ``None`` for steps/guidance/edit_mode/sampler/ddim_steps means "the
    bundle's recommended default" (``inference_defaults``; without one: DDPM, 10 DDIM steps).
    """

    target: IAPRecord
    steps: int | None = None
    guidance: float | None = None
    sampler: str | None = None
    ddim_steps: int | None = None
    seed: int = 0
    slices: Sequence[int] | None = None
    allow_extrapolation: bool = False
    batch_size: int = 8
    detail_transfer: bool = True
    edit_mode: str | None = None
    extra: dict = field(default_factory=dict)
