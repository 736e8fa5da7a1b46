"""The IAP predictor: a MONAI ResNet-18 (basic blocks, 1 input channel) with one flat output.

The output uses the vocabulary layout (``IAPVocabulary`` docstring): logits for each
categorical block, then one regression unit per continuous IAP (value / dataset maximum).
Loss (``method-facts.md``): inverse-frequency weighted cross-entropy per categorical block
plus MSE over the continuous IAPs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.nets import ResNet
from torch import nn

from .config import IAPPredictorConfig

if TYPE_CHECKING:
    from ..iap.vocabulary import IAPVocabulary, PredictedIAP


class IAPPredictor(nn.Module):
    """``forward(images (B,1,H,W)) -> raw (B, num_outputs)``; ``features`` gives the pooled
    penultimate activations (for FID-style feature statistics)."""

    def __init__(self, config: IAPPredictorConfig) -> None:
        super().__init__()
        self.config = config
        self.resnet = ResNet(
            block="basic",
            layers=list(config.layers),
            block_inplanes=list(config.block_inplanes),
            spatial_dims=2,
            n_input_channels=config.in_channels,
            conv1_t_size=config.conv1_kernel,
            conv1_t_stride=config.conv1_stride,
            num_classes=config.num_outputs,
        )

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C) globally pooled activations before the final linear layer."""
        r = self.resnet
        x = r.act(r.bn1(r.conv1(images)))
        if not r.no_max_pool:
            x = r.maxpool(x)
        x = r.layer4(r.layer3(r.layer2(r.layer1(x))))
        return r.avgpool(x).flatten(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.resnet.fc(self.features(images))

    @torch.inference_mode()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Raw outputs (B, num_outputs) in eval mode, without gradients."""
        was_training = self.training
        self.eval()
        try:
            return self(images)
        finally:
            self.train(was_training)


def decode(raw: torch.Tensor | np.ndarray, vocab: IAPVocabulary) -> list[PredictedIAP]:
    """Decode raw predictor outputs (B, dim) into records with class probabilities."""
    array = raw.detach().float().cpu().numpy() if isinstance(raw, torch.Tensor) else np.asarray(raw)
    array = array.reshape(-1, vocab.dim) if array.ndim == 1 else array
    return [vocab.decode(row, logits=True) for row in array]


def inverse_frequency_weights(
    targets: torch.Tensor | np.ndarray, vocab: IAPVocabulary
) -> dict[str, torch.Tensor]:
    """Per-category weights ``n / (k * count)`` from encoded training vectors (N, dim).

    Categories absent from ``targets`` get weight 0 (they cannot contribute to the loss).
    """
    t = torch.as_tensor(np.asarray(targets), dtype=torch.float32)
    weights: dict[str, torch.Tensor] = {}
    for slot in vocab.slots:
        if not slot.categorical:
            continue
        counts = t[:, slot.start : slot.stop].sum(0)
        present = counts > 0
        w = torch.zeros_like(counts)
        w[present] = counts.sum() / (present.sum() * counts[present])
        weights[slot.name] = w
    return weights


def iap_loss_terms(
    raw: torch.Tensor,
    target_vec: torch.Tensor,
    vocab: IAPVocabulary,
    class_weights: dict[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """One loss per IAP: weighted CE for categorical blocks, MSE for continuous values."""
    terms: dict[str, torch.Tensor] = {}
    for slot in vocab.slots:
        pred = raw[:, slot.start : slot.stop]
        target = target_vec[:, slot.start : slot.stop]
        if slot.categorical:
            weight = None
            if class_weights is not None and slot.name in class_weights:
                weight = class_weights[slot.name].to(device=raw.device, dtype=raw.dtype)
            terms[slot.name] = F.cross_entropy(pred, target.argmax(dim=1), weight=weight)
        else:
            terms[slot.name] = F.mse_loss(pred, target.to(raw.dtype))
    return terms


def iap_loss(
    raw: torch.Tensor,
    target_vec: torch.Tensor,
    vocab: IAPVocabulary,
    class_weights: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Sum of :func:`iap_loss_terms`."""
    return torch.stack(list(iap_loss_terms(raw, target_vec, vocab, class_weights).values())).sum()
