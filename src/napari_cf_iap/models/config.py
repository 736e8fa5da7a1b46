"""Architecture configurations (JSON-serialisable dataclasses) with paper/small/tiny presets.

These describe *what to build*; ``models.cddgm``, ``models.iap_predictor`` and
``models.segmenter`` build the networks, and bundles store ``config.to_dict()``.
Importing this module does not import torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import BundleError

T = TypeVar("T", bound="_JsonConfig")

CONTEXT_MODES = ("single_token", "per_iap")


class _JsonConfig:
    """to_dict/from_dict for flat dataclasses whose sequence fields are tuples."""

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise BundleError(
                f"{cls.__name__}: unknown field(s) {unknown}; the bundle was written by a newer or "
                "different version of napari-cf-iap"
            )
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise BundleError(f"{cls.__name__}: invalid configuration: {exc}") from exc

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class CDDGMConfig(_JsonConfig):
    """The conditional diffusion model (MONAI ``DiffusionModelUNet`` with hybrid conditioning).

    ``context_mode``: ``"single_token"`` is the paper's cross-attention context (B, 1, D) with
    ``cross_attention_dim = D``; ``"per_iap"`` gives each IAP slot its own token (B, n_iap,
    ``token_dim``) through a small learned per-slot projection (``slot_sizes`` = the vocabulary's
    slot widths, see :func:`slot_sizes_of`). The IAP vector is also projected (Linear+SiLU) and
    added to the time embedding in both modes. The all-zero vector is the null condition.
    """

    iap_dim: int
    image_size: int = 224
    in_channels: int = 1
    out_channels: int = 1
    channels: tuple[int, ...] = (64, 64, 128, 128, 256, 256)
    attention_levels: tuple[bool, ...] = (False, False, True, False, True, False)
    num_res_blocks: int = 2
    num_head_channels: int = 8
    transformer_num_layers: int = 1
    norm_num_groups: int = 32
    context_mode: str = "single_token"
    slot_sizes: tuple[int, ...] | None = None
    token_dim: int = 32
    num_train_timesteps: int = 1000
    schedule: str = "cosine"
    prediction_type: str = "epsilon"
    cond_dropout: float = 0.15

    def __post_init__(self) -> None:
        problems = []
        if self.iap_dim <= 0:
            problems.append(f"iap_dim must be > 0, got {self.iap_dim}")
        if len(self.channels) != len(self.attention_levels):
            problems.append("channels and attention_levels must have the same length")
        if any(c % self.norm_num_groups for c in self.channels):
            problems.append(
                f"every channel count must be a multiple of norm_num_groups={self.norm_num_groups}"
            )
        if self.context_mode not in CONTEXT_MODES:
            problems.append(
                f"context_mode must be one of {CONTEXT_MODES}, got {self.context_mode!r}"
            )
        if self.context_mode == "per_iap" and (
            not self.slot_sizes or sum(self.slot_sizes) != self.iap_dim
        ):
            problems.append("context_mode 'per_iap' needs slot_sizes summing to iap_dim")
        if self.prediction_type != "epsilon":
            problems.append("only prediction_type 'epsilon' is supported")
        if not 0.0 <= self.cond_dropout < 1.0:
            problems.append("cond_dropout must be in [0, 1)")
        if problems:
            raise BundleError("invalid CDDGMConfig: " + "; ".join(problems))

    @property
    def cross_attention_dim(self) -> int:
        return self.iap_dim if self.context_mode == "single_token" else self.token_dim

    @property
    def num_context_tokens(self) -> int:
        return 1 if self.context_mode == "single_token" else len(self.slot_sizes or ())

    @classmethod
    def paper(cls, iap_dim: int, **overrides: Any) -> CDDGMConfig:
        """The authors' network: 6 levels, attention at levels 3 and 5, 224x224."""
        return cls(iap_dim=iap_dim, **overrides)

    @classmethod
    def small(cls, iap_dim: int, image_size: int = 64, **overrides: Any) -> CDDGMConfig:
        """A 6.6 M-parameter network (attention at the last two levels) for CPU training."""
        base: dict[str, Any] = dict(
            image_size=image_size,
            channels=(32, 64, 64, 128),
            attention_levels=(False, False, True, True),
        )
        base.update(overrides)
        return cls(iap_dim=iap_dim, **base)

    @classmethod
    def tiny(cls, iap_dim: int, **overrides: Any) -> CDDGMConfig:
        """A toy network for tests (32x32, two levels)."""
        base: dict[str, Any] = dict(
            image_size=32,
            channels=(8, 16),
            attention_levels=(False, True),
            num_res_blocks=1,
            num_head_channels=4,
            norm_num_groups=8,
            token_dim=8,
        )
        base.update(overrides)
        return cls(iap_dim=iap_dim, **base)


@dataclass(frozen=True)
class IAPPredictorConfig(_JsonConfig):
    """ResNet (MONAI ``ResNet``, basic blocks) with one flat output in the vocabulary layout.

    ``num_outputs`` equals ``IAPVocabulary.dim``: logits per categorical block followed by one
    unit per continuous IAP (value / dataset maximum).
    """

    num_outputs: int
    image_size: int = 224
    in_channels: int = 1
    layers: tuple[int, ...] = (2, 2, 2, 2)
    block_inplanes: tuple[int, ...] = (64, 128, 256, 512)
    conv1_kernel: int = 7
    conv1_stride: int = 2

    def __post_init__(self) -> None:
        if self.num_outputs <= 0:
            raise BundleError(
                f"invalid IAPPredictorConfig: num_outputs must be > 0, got {self.num_outputs}"
            )
        if len(self.layers) != len(self.block_inplanes):
            raise BundleError(
                "invalid IAPPredictorConfig: layers and block_inplanes differ in length"
            )

    @classmethod
    def paper(cls, num_outputs: int, **overrides: Any) -> IAPPredictorConfig:
        """ResNet-18 at 224x224 (Konz & Mazurowski)."""
        return cls(num_outputs=num_outputs, **overrides)

    @classmethod
    def small(cls, num_outputs: int, image_size: int = 64, **overrides: Any) -> IAPPredictorConfig:
        base: dict[str, Any] = dict(image_size=image_size, block_inplanes=(32, 64, 128, 256))
        base.update(overrides)
        return cls(num_outputs=num_outputs, **base)

    @classmethod
    def tiny(cls, num_outputs: int, **overrides: Any) -> IAPPredictorConfig:
        base: dict[str, Any] = dict(
            image_size=32, layers=(1, 1, 1, 1), block_inplanes=(4, 8, 8, 16)
        )
        base.update(overrides)
        return cls(num_outputs=num_outputs, **base)


@dataclass(frozen=True)
class SegmenterConfig(_JsonConfig):
    """MONAI residual ``UNet`` (2D): background 0, fat/breast 1, FGT 2."""

    image_size: int = 224
    in_channels: int = 1
    out_channels: int = 3
    channels: tuple[int, ...] = (32, 64, 128, 256, 512, 512)
    strides: tuple[int, ...] = (2, 2, 2, 2, 2)
    num_res_units: int = 2
    norm: str = "batch"

    def __post_init__(self) -> None:
        if len(self.strides) != len(self.channels) - 1:
            raise BundleError("invalid SegmenterConfig: need len(strides) == len(channels) - 1")

    @classmethod
    def paper(cls, **overrides: Any) -> SegmenterConfig:
        return cls(**overrides)

    @classmethod
    def small(cls, image_size: int = 64, **overrides: Any) -> SegmenterConfig:
        base: dict[str, Any] = dict(
            image_size=image_size, channels=(16, 32, 64, 128), strides=(2, 2, 2)
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def tiny(cls, **overrides: Any) -> SegmenterConfig:
        base: dict[str, Any] = dict(
            image_size=32, channels=(4, 8, 16), strides=(2, 2), num_res_units=1
        )
        base.update(overrides)
        return cls(**base)


def slot_sizes_of(vocab: Any) -> tuple[int, ...]:
    """The width of each IAP slot of an :class:`IAPVocabulary` (for ``context_mode='per_iap'``)."""
    return tuple(slot.stop - slot.start for slot in vocab.slots)


CONFIG_TYPES: dict[str, type[_JsonConfig]] = {
    "cddgm": CDDGMConfig,
    "iap_predictor": IAPPredictorConfig,
    "segmenter": SegmenterConfig,
}
