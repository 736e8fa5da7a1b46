"""Counterfactual editing (the paper's Algorithm 1 / SDEdit with classifier-free guidance).

``generate`` noises preprocessed slices to level ``t0 = steps`` of the 1000-step cosine
schedule and denoises them back to level 0 towards the target IAP vector:

* ``sampler="ddpm"``: t0 guided ancestral steps t0 -> t0-1 -> ... -> 0 (t0 model
  evaluations, starting *at* the noise level; the authors' loop started one step below);
* ``sampler="ddim"``: ``ddim_steps`` deterministic (``eta=0``) steps over exact levels
  ``round(linspace(t0, 0, ddim_steps + 1))``, i.e. the same noise level in fewer evaluations.

Guidance: eps = eps_u + w (eps_c - eps_u), with the conditional and unconditional (all-zero
vector) estimates from ONE batched forward pass (w = 1 or w = 0 need only one of them).
Each slice draws all its noise from its own ``torch.Generator`` (on the CPU) seeded with its
seed, so results do not depend on batch size, chunking or device. ``rescale_x0`` re-applies
the 10th/99th percentile rescaling to the predicted x0 at every step, as the authors' code
did; it is off by default because it is not part of the published algorithm.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..device import autocast_for, resolve_device
from ..errors import CancelledError, CfIapError, IAPValueError, InputError
from ..models.cddgm import ConditionalDenoiser
from .schedule import NoiseSchedule, ddim_pairs, ddpm_pairs

ProgressCallback = Callable[[int, int, str], None]
StopCheck = Callable[[], bool]
SAMPLERS = ("ddpm", "ddim")


def percentile_rescale(x: torch.Tensor, low: float = 10.0, high: float = 99.0) -> torch.Tensor:
    """Map each image's ``low`` percentile to 0 and ``high`` percentile to 1 (no clipping)."""
    flat = x.flatten(2).float()
    lo = torch.quantile(flat, low / 100.0, dim=2)[..., None, None]
    hi = torch.quantile(flat, high / 100.0, dim=2)[..., None, None]
    return ((x - lo) / torch.clamp(hi - lo, min=1e-6)).to(x.dtype)


class CounterfactualSampler:
    """Guided SDEdit with a :class:`ConditionalDenoiser`.

    ``vocab`` (optional) is only used to check the vector length. ``model_calls`` counts
    network forward passes (one per guided step).
    """

    def __init__(
        self,
        model: ConditionalDenoiser,
        vocab: Any = None,
        device: str | torch.device = "auto",
        schedule: NoiseSchedule | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        config = model.config
        self.iap_dim = int(config.iap_dim)
        if vocab is not None and vocab.dim != self.iap_dim:
            raise IAPValueError(
                f"the model expects IAP vectors of length {self.iap_dim} but the vocabulary has "
                f"{vocab.dim}; use the vocabulary stored in the model's bundle"
            )
        self.vocab = vocab
        self.schedule = schedule or NoiseSchedule.from_monai(
            config.num_train_timesteps, config.schedule
        )
        self.model_calls = 0

    # ------------------------------------------------------------------ one guided estimate
    def guided_eps(
        self,
        x: torch.Tensor,
        t: int,
        cond: torch.Tensor,
        guidance: float,
        extra_input: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """eps_u + w (eps_c - eps_u) at level t (>= 1), both estimates in one batched forward."""
        b = x.shape[0]
        if guidance == 1.0:
            xs, cs = x, cond
        elif guidance == 0.0:
            xs, cs = x, torch.zeros_like(cond)
        else:
            xs, cs = torch.cat([x, x]), torch.cat([cond, torch.zeros_like(cond)])
        if extra_input is not None:
            xs = torch.cat([xs, extra_input.repeat(xs.shape[0] // b, 1, 1, 1)], dim=1)
        ts = torch.full(
            (xs.shape[0],), self.schedule.model_timestep(t), dtype=torch.long, device=x.device
        )
        with autocast_for(self.device):
            out = self.model(xs, ts, cs).float()
        self.model_calls += 1
        if out.shape[0] == b:
            return out
        eps_c, eps_u = out[:b], out[b:]
        return eps_u + guidance * (eps_c - eps_u)

    # ------------------------------------------------------------------ the edit
    def generate(
        self,
        x0: torch.Tensor | np.ndarray,
        target_vec: torch.Tensor | np.ndarray,
        *,
        steps: int = 50,
        guidance: float = 3.0,
        sampler: str = "ddpm",
        ddim_steps: int = 10,
        eta: float = 0.0,
        seeds: Sequence[int] | None = None,
        batch_size: int = 8,
        progress: ProgressCallback | None = None,
        should_stop: StopCheck | None = None,
        rescale_x0: bool = False,
        extra_input: torch.Tensor | np.ndarray | None = None,
        reference_vec: torch.Tensor | np.ndarray | None = None,
    ) -> torch.Tensor:
        """Edit preprocessed slices ``x0`` (B, 1, H, W) towards ``target_vec`` ((B, D) or (D,)).

        ``steps`` is the noise level t0 (of 1000); 0 returns a copy of the input.
        ``seeds`` gives one seed per slice (default 0..B-1). ``batch_size`` slices are denoised
        at a time (2x that many images per forward pass). ``progress(done, total, message)``
        is called after every step; ``should_stop()`` is checked before every step and raises
        :class:`CancelledError`. ``extra_input`` (B, C', H, W) is concatenated to the network
        input of both passes (models trained with a segmentation channel). Returns a float32
        CPU tensor shaped like ``x0``; inputs are not modified.

        ``reference_vec`` (the source's own IAPs, (B, D) or (D,)) makes it a *twin* edit: each
        slice is denoised twice from the same noised start with the same noise draws, towards
        the target and towards the reference, and ``x0 + (target rendering - reference
        rendering)`` is returned. Noise and anatomy the two renderings share cancel; only the
        change the condition causes is applied (twice the compute).
        """
        x0_t = self._check_images(x0)
        b = x0_t.shape[0]
        cond = self._check_target(target_vec, b)
        reference = None if reference_vec is None else self._check_target(reference_vec, b)
        extra = self._check_extra(extra_input, x0_t)
        seeds = self._check_seeds(seeds, b)
        pairs = self._pairs(steps, sampler, ddim_steps)
        if not math.isfinite(guidance):
            raise CfIapError(f"guidance must be a finite number, got {guidance}")
        if not pairs:
            return x0_t.clone()
        batch_size = max(1, int(batch_size))
        n_chunks = -(-b // batch_size)
        total = n_chunks * len(pairs)
        transform = percentile_rescale if rescale_x0 else None
        done = 0
        out = torch.empty_like(x0_t)
        twin = reference is not None
        with torch.inference_mode():
            for start in range(0, b, batch_size):
                stop = min(b, start + batch_size)
                gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds[start:stop]]
                shape = tuple(x0_t.shape[1:])

                def draw(gens: list[torch.Generator] = gens, shape: tuple = shape) -> torch.Tensor:
                    noise = torch.stack([torch.randn(shape, generator=g) for g in gens])
                    if twin:  # both renderings of a slice get the same draw
                        noise = torch.cat([noise, noise])
                    return noise.to(self.device)

                x0_c = x0_t[start:stop].to(self.device)
                c = cond[start:stop].to(self.device)
                e = None if extra is None else extra[start:stop].to(self.device)
                if twin:  # the twin: same start, same noise, own IAPs
                    x0_c = torch.cat([x0_c, x0_c])
                    c = torch.cat([c, reference[start:stop].to(self.device)])
                    e = None if e is None else torch.cat([e, e])
                x = self.schedule.add_noise(x0_c, pairs[0][0], draw())
                for t, t_prev in pairs:
                    if should_stop is not None and should_stop():
                        raise CancelledError(
                            f"counterfactual generation cancelled after {done} of {total} steps"
                        )
                    eps = self.guided_eps(x, t, c, guidance, e)
                    if sampler == "ddpm":
                        noise = draw() if t_prev > 0 else None
                        x = self.schedule.ddpm_step(x, eps, t, noise, transform)
                    else:
                        noise = draw() if (eta > 0 and t_prev > 0) else None
                        x = self.schedule.ddim_step(x, eps, t, t_prev, noise, eta, transform)
                    done += 1
                    if progress is not None:
                        progress(done, total, f"{sampler} step {done}/{total}")
                if twin:
                    n = stop - start
                    x = x0_c[:n] + (x[:n] - x[n:])
                out[start:stop] = x.float().cpu()
        return out

    def step_count(self, steps: int, sampler: str = "ddpm", ddim_steps: int = 10) -> int:
        """Model evaluations per slice for these settings (validated like :meth:`generate`)."""
        return len(self._pairs(steps, sampler, ddim_steps))

    # ------------------------------------------------------------------ validation
    def _pairs(self, steps: int, sampler: str, ddim_steps: int) -> list[tuple[int, int]]:
        steps = int(steps)
        limit = self.schedule.num_train_timesteps
        if not 0 <= steps <= limit:
            raise CfIapError(f"steps (noise level) must be in [0, {limit}], got {steps}")
        if sampler not in SAMPLERS:
            raise CfIapError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if sampler == "ddim" and int(ddim_steps) < 1:
            raise CfIapError(f"ddim_steps must be >= 1, got {ddim_steps}")
        return ddpm_pairs(steps) if sampler == "ddpm" else ddim_pairs(steps, ddim_steps)

    def _check_images(self, x0: torch.Tensor | np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(x0) if not isinstance(x0, torch.Tensor) else x0)
        if x.ndim != 4:
            raise InputError(f"expected slices shaped (B, C, H, W), got {tuple(x.shape)}")
        levels = len(self.model.config.channels) - 1
        if x.shape[-1] % 2**levels or x.shape[-2] % 2**levels:
            raise InputError(
                f"slice size {tuple(x.shape[-2:])} must be divisible by {2**levels}; "
                f"preprocess to {self.model.config.image_size}x{self.model.config.image_size}"
            )
        if not torch.isfinite(x).all():
            raise InputError("input slices contain NaN or inf")
        return x.detach().to("cpu", torch.float32)

    def _check_target(self, target: torch.Tensor | np.ndarray, b: int) -> torch.Tensor:
        vec = torch.as_tensor(
            np.asarray(target) if not isinstance(target, torch.Tensor) else target
        )
        vec = vec.detach().to("cpu", torch.float32)
        if vec.ndim == 1:
            vec = vec.unsqueeze(0).expand(b, -1)
        if vec.shape != (b, self.iap_dim):
            raise IAPValueError(
                f"target IAP vector must be ({self.iap_dim},) or ({b}, {self.iap_dim}), "
                f"got {tuple(vec.shape)}"
            )
        if not torch.isfinite(vec).all():
            raise IAPValueError("target IAP vector contains NaN or inf")
        return vec.contiguous()

    def _check_extra(
        self, extra: torch.Tensor | np.ndarray | None, x0: torch.Tensor
    ) -> torch.Tensor | None:
        want = self.model.config.in_channels - x0.shape[1]
        if extra is None:
            if want != 0:
                raise InputError(
                    f"the model takes {self.model.config.in_channels} input channels but the "
                    f"slices have {x0.shape[1]}; pass the other {want} as extra_input "
                    "(e.g. a segmentation)"
                )
            return None
        e = torch.as_tensor(np.asarray(extra) if not isinstance(extra, torch.Tensor) else extra)
        e = e.detach().to("cpu", torch.float32)
        if (
            e.ndim != 4
            or e.shape[0] != x0.shape[0]
            or e.shape[1] != want
            or e.shape[2:] != x0.shape[2:]
        ):
            raise InputError(
                f"extra_input must be ({x0.shape[0]}, {want}, H, W), got {tuple(e.shape)}"
            )
        return e

    @staticmethod
    def _check_seeds(seeds: Sequence[int] | None, b: int) -> list[int]:
        if seeds is None:
            return list(range(b))
        seeds = [int(s) for s in seeds]
        if len(seeds) != b:
            raise CfIapError(f"need one seed per slice: got {len(seeds)} seeds for {b} slices")
        return seeds
