"""The 1000-step cosine noise schedule and explicit DDPM / DDIM update rules.

Convention: a *level* ``t`` runs over 0..T (T = 1000). Level 0 is the clean image
(``abar_0 = 1``); level ``t >= 1`` is MONAI's timestep index ``t - 1``
(``abar_t = scheduler.alphas_cumprod[t - 1]``), which is also the integer fed to the network.
So "noise to t0 = 50 and run 50 ancestral steps to 0" uses model timesteps 49, 48, ..., 0,
exactly like MONAI's ``DDPMScheduler.step`` on the full schedule (the last step, from MONAI
index 0, returns the clean estimate). With the cosine schedule sqrt(1 - abar_t) is 0.050,
0.089 and 0.128 at t = 25, 50, 75.

The alphas come from MONAI's ``DDPMScheduler`` (MONAI >= 1.5 clips the cosine betas to
[0, 0.999]; the authors clipped alphas to [1e-4, 0.9999], which differs only at t near T).
The update rules are written here with explicit (t, t_prev) pairs because MONAI's schedulers
are only right on the full schedule (``performance-facts.md``).

DDPM ancestral step (Ho et al. 2020, eq. 11, with the paper's typo fixed)::

    x_{t-1} = 1/sqrt(alpha_t) * (x_t - beta_t / sqrt(1 - abar_t) * eps) + sigma_t * z
    sigma_t^2 = beta_tilde_t = (1 - abar_{t-1}) / (1 - abar_t) * beta_t

implemented in the equivalent x0-parametrisation (posterior mean of q(x_{t-1} | x_t, x0_hat)),
so that an optional transform of the predicted x0 can be applied as the authors did.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

X0Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class NoiseSchedule:
    """``betas[k]`` and ``alphas_cumprod[k]`` for MONAI indices k = 0..T-1 (float64, CPU)."""

    betas: torch.Tensor
    alphas_cumprod: torch.Tensor

    @classmethod
    def from_monai(cls, num_train_timesteps: int = 1000, schedule: str = "cosine") -> NoiseSchedule:
        """The schedule of MONAI's ``DDPMScheduler(num_train_timesteps, schedule)``."""
        from monai.networks.schedulers import DDPMScheduler

        sched = DDPMScheduler(
            num_train_timesteps=num_train_timesteps, schedule=schedule, clip_sample=False
        )
        return cls(
            betas=sched.betas.double().cpu(), alphas_cumprod=sched.alphas_cumprod.double().cpu()
        )

    @property
    def num_train_timesteps(self) -> int:
        return int(self.betas.shape[0])

    # ------------------------------------------------------------------ scalars per level
    def abar(self, t: int) -> float:
        """abar_t for level t in 0..T (abar_0 = 1)."""
        self._check_level(t)
        return 1.0 if t == 0 else float(self.alphas_cumprod[t - 1])

    def beta(self, t: int) -> float:
        """beta_t for level t in 1..T."""
        self._check_level(t, low=1)
        return float(self.betas[t - 1])

    def posterior_variance(self, t: int) -> float:
        """beta_tilde_t = (1 - abar_{t-1}) / (1 - abar_t) * beta_t, the DDPM step variance."""
        return (1.0 - self.abar(t - 1)) / (1.0 - self.abar(t)) * self.beta(t)

    @staticmethod
    def model_timestep(t: int) -> int:
        """The integer fed to the network at level t (MONAI index t - 1)."""
        return t - 1

    def _check_level(self, t: int, low: int = 0) -> None:
        if not low <= t <= self.num_train_timesteps:
            raise ValueError(f"level {t} outside [{low}, {self.num_train_timesteps}]")

    # ------------------------------------------------------------------ tensors
    def add_noise(self, x0: torch.Tensor, t: int, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) z."""
        a = self.abar(t)
        return math.sqrt(a) * x0 + math.sqrt(1.0 - a) * noise

    def predict_x0(self, x_t: torch.Tensor, eps: torch.Tensor, t: int) -> torch.Tensor:
        """x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)."""
        a = self.abar(t)
        return (x_t - math.sqrt(1.0 - a) * eps) / math.sqrt(a)

    def posterior_mean(self, x0_hat: torch.Tensor, x_t: torch.Tensor, t: int) -> torch.Tensor:
        """Mean of q(x_{t-1} | x_t, x0_hat) (Ho et al. eq. 7)."""
        a_t, a_prev, beta = self.abar(t), self.abar(t - 1), self.beta(t)
        c0 = math.sqrt(a_prev) * beta / (1.0 - a_t)
        ct = math.sqrt(1.0 - beta) * (1.0 - a_prev) / (1.0 - a_t)
        return c0 * x0_hat + ct * x_t

    def ddpm_step(
        self,
        x_t: torch.Tensor,
        eps: torch.Tensor,
        t: int,
        noise: torch.Tensor | None,
        x0_transform: X0Transform | None = None,
    ) -> torch.Tensor:
        """One ancestral step from level t to t-1; ``noise`` is ignored at t = 1 (variance 0)."""
        x0_hat = self.predict_x0(x_t, eps, t)
        if x0_transform is not None:
            x0_hat = x0_transform(x0_hat)
        mean = self.posterior_mean(x0_hat, x_t, t)
        if t == 1 or noise is None:
            return mean
        return mean + math.sqrt(self.posterior_variance(t)) * noise

    def ddim_step(
        self,
        x_t: torch.Tensor,
        eps: torch.Tensor,
        t: int,
        t_prev: int,
        noise: torch.Tensor | None = None,
        eta: float = 0.0,
        x0_transform: X0Transform | None = None,
    ) -> torch.Tensor:
        """DDIM update (Song et al. 2021, eq. 12) from level t to any t_prev < t.

        ``eta = 0`` is deterministic; ``eta = 1`` with t_prev = t - 1 is the DDPM step.
        """
        if not 0 <= t_prev < t:
            raise ValueError(f"DDIM needs 0 <= t_prev < t, got t={t}, t_prev={t_prev}")
        a_t, a_prev = self.abar(t), self.abar(t_prev)
        x0_hat = self.predict_x0(x_t, eps, t)
        if x0_transform is not None:
            x0_hat = x0_transform(x0_hat)
            eps = (x_t - math.sqrt(a_t) * x0_hat) / math.sqrt(1.0 - a_t)
        sigma = eta * math.sqrt((1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev))
        out = math.sqrt(a_prev) * x0_hat + math.sqrt(max(0.0, 1.0 - a_prev - sigma**2)) * eps
        if sigma > 0 and noise is not None:
            out = out + sigma * noise
        return out


def ddpm_pairs(t0: int) -> list[tuple[int, int]]:
    """(t, t-1) for t = t0..1: t0 model evaluations, ending at the clean level 0."""
    return [(t, t - 1) for t in range(t0, 0, -1)]


def ddim_pairs(t0: int, num_steps: int) -> list[tuple[int, int]]:
    """``num_steps`` (at most t0) (t, t_prev) pairs from level t0 down to exactly 0.

    Levels are ``round(linspace(t0, 0, num_steps + 1))``; they are strictly decreasing
    because num_steps <= t0.
    """
    if t0 <= 0:
        return []
    n = max(1, min(int(num_steps), t0))
    levels = torch.linspace(float(t0), 0.0, n + 1, dtype=torch.float64).round().long().tolist()
    return list(zip(levels[:-1], levels[1:], strict=True))
