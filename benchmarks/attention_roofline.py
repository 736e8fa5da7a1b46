"""How fast a cDDGM's attention can run on this device, and what that caps the forward pass at.

The paper config's attention has 8-channel heads (``num_head_channels=8``): its two matmuls
per head (scores = Q Kᵀ, output = P V) have an inner dimension of 8 or a thin 8-column
output, shapes at which no BLAS reaches its large-matmul rate. This module times, on the
largest attention of a config (the highest-resolution attention level), the kernel the
product runs (PyTorch SDPA) and those two matmuls alone (no softmax; they write the whole
score matrix, which SDPA's blocked kernel avoids, so on a CPU they are slower than SDPA), and
turns the faster kernel's rate into a roofline for the whole forward pass: convolutions and
linear layers at the full matmul ceiling, attention at that rate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from napari_cf_iap.models.config import CDDGMConfig

SDPA = "attention: SDPA (the product's kernel)"
MATMULS = "attention: its two matmuls only (no softmax)"
#: the bare matmuls are skipped when their score matrix would be larger (a batch of 16 paper
#: images on a GPU: 16 x 16 x 3136² floats = 10 GB)
MAX_SCORE_BYTES = 2 * 2**30


@dataclass(frozen=True)
class AttentionShape:
    heads: int
    tokens: int
    head_dim: int

    @property
    def flop(self) -> float:
        """Multiply-adds x 2 of Q Kᵀ and P V for one image (what the FLOP counter counts)."""
        return 4.0 * self.heads * self.tokens**2 * self.head_dim

    def describe(self) -> str:
        return f"{self.heads} heads x {self.tokens} tokens x {self.head_dim} channels"


def largest_attention(config: CDDGMConfig) -> AttentionShape:
    """The self-attention at the highest-resolution attention level of ``config``."""
    levels = [i for i, on in enumerate(config.attention_levels) if on]
    if not levels:
        raise ValueError("this configuration has no attention level")
    level = min(levels)
    side = config.image_size // 2**level
    channels = config.channels[level]
    return AttentionShape(
        channels // config.num_head_channels, side * side, config.num_head_channels
    )


def attention_kernels(
    shape: AttentionShape, device: torch.device, batch: int = 1
) -> dict[str, Callable[[], torch.Tensor]]:
    """The product's SDPA call and the bare matmuls on random Q, K, V of ``shape`` (the
    matmuls only while their score matrix stays under :data:`MAX_SCORE_BYTES`)."""
    gen = torch.Generator("cpu").manual_seed(2)
    size = (batch, shape.heads, shape.tokens, shape.head_dim)
    q, k, v = (torch.randn(size, generator=gen).to(device) for _ in range(3))
    kt = k.transpose(-1, -2).contiguous()

    def sdpa() -> torch.Tensor:
        with torch.inference_mode():
            return F.scaled_dot_product_attention(q, k, v)

    def matmuls() -> torch.Tensor:
        with torch.inference_mode():
            return (q @ kt) @ v

    kernels: dict[str, Callable[[], torch.Tensor]] = {SDPA: sdpa}
    if 4 * batch * shape.heads * shape.tokens**2 <= MAX_SCORE_BYTES:
        kernels[MATMULS] = matmuls
    return kernels


def roofline_fraction(
    total_flop: float, attention_flop: float, ceiling: float, attention_rate: float
) -> float:
    """The best fraction of ``ceiling`` a forward pass can reach when everything but its
    attention runs at ``ceiling`` and its attention at ``attention_rate`` (same units)."""
    seconds = (total_flop - attention_flop) / ceiling + attention_flop / attention_rate
    return total_flop / seconds / ceiling
