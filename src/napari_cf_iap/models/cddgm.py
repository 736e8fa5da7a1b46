"""The conditional denoiser: MONAI ``DiffusionModelUNet`` with the paper's hybrid conditioning.

Hybrid conditioning (``method-facts.md``): the float IAP vector ``f`` (length D)

1. goes through ``Linear(D, 4*channels[0], bias=False) + SiLU`` and is added to the time
   embedding. MONAI is built with ``num_class_embeds=1`` and its ``class_embedding`` replaced
   by that projection; the vector is passed as ``class_labels`` and MONAI adds it for us;
2. is the cross-attention context: (B, 1, D) for ``"single_token"`` (the paper), or one token
   per IAP slot (B, n_iap, token_dim) for ``"per_iap"``.

The all-zero vector is the unconditional (null) condition of classifier-free guidance.
Attention uses PyTorch SDPA (``use_flash_attention=True``) with ``dropout_cattn=0``: fused
attention applies dropout even in eval mode (``performance-facts.md``).
"""

from __future__ import annotations

import torch
from monai.networks.nets import DiffusionModelUNet
from torch import nn

from .config import CDDGMConfig


def build_unet(config: CDDGMConfig, *, use_flash_attention: bool = True) -> DiffusionModelUNet:
    """The MONAI UNet with its class embedding replaced by the IAP projection.

    ``use_flash_attention=False`` gives MONAI's default (unfused) attention, the same weights
    and state-dict keys; only the benchmarks' naive reference uses it.
    """
    unet = DiffusionModelUNet(
        spatial_dims=2,
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        num_res_blocks=config.num_res_blocks,
        channels=tuple(config.channels),
        attention_levels=tuple(config.attention_levels),
        norm_num_groups=config.norm_num_groups,
        num_head_channels=config.num_head_channels,
        with_conditioning=True,
        transformer_num_layers=config.transformer_num_layers,
        cross_attention_dim=config.cross_attention_dim,
        num_class_embeds=1,
        dropout_cattn=0.0,
        use_flash_attention=use_flash_attention,
    )
    unet.class_embedding = nn.Sequential(
        nn.Linear(config.iap_dim, 4 * config.channels[0], bias=False), nn.SiLU()
    )
    return unet


class PerIAPContext(nn.Module):
    """One learned projection per IAP slot: (B, D) -> (B, n_slots, token_dim).

    Each slot (a one-hot block or one continuous value) gets its own ``Linear(width, token_dim)``;
    its bias doubles as the learned token of the null (all-zero) condition.
    """

    def __init__(self, slot_sizes: tuple[int, ...], token_dim: int) -> None:
        super().__init__()
        self.slot_sizes = tuple(int(s) for s in slot_sizes)
        self.proj = nn.ModuleList(nn.Linear(size, token_dim) for size in self.slot_sizes)

    def forward(self, iap_vec: torch.Tensor) -> torch.Tensor:
        blocks = torch.split(iap_vec, list(self.slot_sizes), dim=-1)
        return torch.stack([p(b) for p, b in zip(self.proj, blocks, strict=True)], dim=1)


class ConditionalDenoiser(nn.Module):
    """``forward(x, t, iap_vec) -> eps``: the noise estimate for noisy images ``x`` at steps ``t``.

    ``x`` is (B, in_channels, H, W), ``t`` (B,) integer MONAI timestep indices (0..T-1),
    ``iap_vec`` (B, D) float (zeros = unconditional).
    """

    def __init__(self, config: CDDGMConfig) -> None:
        super().__init__()
        self.config = config
        self.unet = build_unet(config)
        self.context_proj = (
            PerIAPContext(tuple(config.slot_sizes or ()), config.token_dim)
            if config.context_mode == "per_iap"
            else None
        )

    def context(self, iap_vec: torch.Tensor) -> torch.Tensor:
        """The cross-attention context for a batch of IAP vectors."""
        if self.context_proj is None:
            return iap_vec.unsqueeze(1)
        return self.context_proj(iap_vec)

    def forward(self, x: torch.Tensor, t: torch.Tensor, iap_vec: torch.Tensor) -> torch.Tensor:
        iap_vec = iap_vec.to(dtype=x.dtype)
        return self.unet(x=x, timesteps=t, context=self.context(iap_vec), class_labels=iap_vec)


def cfg_dropout(
    iap_vec: torch.Tensor, p: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Replace whole IAP vectors by the null (zero) vector with probability ``p`` (training)."""
    if p <= 0:
        return iap_vec
    device = generator.device if generator is not None else iap_vec.device
    keep = torch.rand((iap_vec.shape[0], 1), generator=generator, device=device)
    return iap_vec * (keep >= p).to(device=iap_vec.device, dtype=iap_vec.dtype)
