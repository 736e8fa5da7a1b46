"""Lightning module of the conditional diffusion model (cDDGM).

Loss: epsilon-prediction MSE of DDPM (Ho et al. 2020) on MONAI's 1000-step cosine schedule
(the alphas of :class:`napari_cf_iap.sampling.schedule.NoiseSchedule`, so training and the
sampler share one schedule). The IAP vector is replaced by the null (zero) vector with
probability ``cond_dropout`` (0.15, classifier-free guidance). AdamW. An EMA of the weights
is kept by Lightning's ``EMAWeightAveraging`` callback (see ``train.py``); the bundle holds
the EMA weights.

Timesteps are MONAI indices k in [0, T): x_k = sqrt(abar_k) x0 + sqrt(1 - abar_k) eps, and k is
what the network sees (the sampler's level t = k + 1). With ``t_max`` set, a fraction
``t_focus`` of the batch draws k from [0, t_max) (the SDEdit range) and the rest from [0, T).

Validation is deterministic (fixed noise and timesteps per batch index) and logs
``val_loss`` (training timestep distribution), ``val_loss_edit`` (k < 75, where edits at
the default steps work) and ``val_cond_effect``: how far the IAP condition moves the x0
estimate at those timesteps, mean |x0(own IAPs) - x0(null)| in image units. A model that
ignores its condition (the first thousands of CPU steps, measured) scores about 0 there, and
then no guidance can edit anything.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from napari_cf_iap.models.cddgm import ConditionalDenoiser, cfg_dropout
from napari_cf_iap.models.config import CDDGMConfig
from napari_cf_iap.sampling.schedule import NoiseSchedule

from .module_base import TrainingModule

EDIT_T_MAX = 75


class CDDGMModule(TrainingModule):
    """Trains a :class:`ConditionalDenoiser`; ``self.model`` is the network that is bundled."""

    kind = "cddgm"

    def __init__(self, config: dict[str, Any], preset: dict[str, Any], vocabulary: dict[str, Any]):
        super().__init__()
        self.save_hyperparameters()
        self.config = CDDGMConfig.from_dict(config)
        self.preset = dict(preset)
        self.model = ConditionalDenoiser(self.config)
        schedule = NoiseSchedule.from_monai(self.config.num_train_timesteps, self.config.schedule)
        self.register_buffer("abar", schedule.alphas_cumprod.float(), persistent=False)
        self.num_timesteps = schedule.num_train_timesteps

    # ------------------------------------------------------------------ noise
    def sample_timesteps(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """MONAI timestep indices for a batch (see the module docstring)."""
        dev = generator.device if generator is not None else self.abar.device
        full = torch.randint(0, self.num_timesteps, (n,), generator=generator, device=dev)
        t_max = self.preset.get("t_max")
        if not t_max:
            return full.to(self.abar.device)
        t_max = min(int(t_max), self.num_timesteps)
        low = torch.randint(0, t_max, (n,), generator=generator, device=dev)
        focus = torch.rand((n,), generator=generator, device=dev) < float(
            self.preset.get("t_focus", 0.8)
        )
        return torch.where(focus, low, full).to(self.abar.device)

    def denoising_loss(
        self,
        x0: torch.Tensor,
        iap: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor,
        drop: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """MSE between the true and the predicted noise at timesteps ``t``."""
        a = self.abar[t].view(-1, 1, 1, 1).to(x0.dtype)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        cond = cfg_dropout(iap, drop, generator) if drop > 0 else iap
        eps = self.model(x_t, t, cond)
        return F.mse_loss(eps.float(), noise.float())

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x0, iap, _ = batch
        gen = self.step_generator()  # seeded by (run seed, step, rank): resumes exactly
        t = self.sample_timesteps(x0.shape[0], gen)
        noise = torch.randn(x0.shape, generator=gen, device=gen.device, dtype=x0.dtype).to(x0)
        loss = self.denoising_loss(
            x0, iap, t, noise, drop=float(self.preset["cond_dropout"]), generator=gen
        )
        self.log("train_loss", loss, prog_bar=True, batch_size=x0.shape[0])
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x0, iap, _ = batch
        n = x0.shape[0]
        gen = torch.Generator(device="cpu").manual_seed(10_000 + batch_idx)
        noise = torch.randn(x0.shape, generator=gen).to(x0)
        t = self.sample_timesteps(n, gen)
        self.log(
            "val_loss",
            self.denoising_loss(x0, iap, t, noise),
            prog_bar=True,
            batch_size=n,
            sync_dist=True,
        )
        t_edit = torch.randint(0, EDIT_T_MAX, (n,), generator=gen).to(self.abar.device)
        self.log(
            "val_loss_edit",
            self.denoising_loss(x0, iap, t_edit, noise),
            batch_size=n,
            sync_dist=True,
        )
        self.log(
            "val_cond_effect",
            self.condition_effect(x0, iap, t_edit, noise),
            batch_size=n,
            sync_dist=True,
        )

    def condition_effect(self, x0: torch.Tensor, iap: torch.Tensor, t: torch.Tensor, noise):
        """Mean |x0 estimate with the IAPs - x0 estimate with the null vector| at ``t``."""
        a = self.abar[t].view(-1, 1, 1, 1).to(x0.dtype)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        gap = self.model(x_t, t, iap) - self.model(x_t, t, torch.zeros_like(iap))
        return ((1 - a).sqrt() / a.sqrt() * gap).abs().mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.model.parameters(),
            lr=float(self.preset["lr"]),
            weight_decay=float(self.preset["weight_decay"]),
        )
