"""Lightning module of the IAP predictor (ResNet-18 with a flat output in the vocabulary layout).

Loss (method-facts): the sum of inverse-frequency-weighted cross-entropies over the categorical
IAPs plus MSE over the continuous ones (the core's ``iap_loss``), weights from the training
rows. AdamW. Metrics: top-1 accuracy per categorical IAP, manufacturer accuracy (implied by
the predicted model) and MSE of the continuous IAPs (in units of value / dataset maximum).
"""

from __future__ import annotations

from typing import Any

import torch

from napari_cf_iap.iap import IAPVocabulary
from napari_cf_iap.models.config import IAPPredictorConfig
from napari_cf_iap.models.iap_predictor import IAPPredictor, iap_loss

from .module_base import TrainingModule


def manufacturer_index(vocabulary: IAPVocabulary) -> torch.Tensor:
    """For each model category, the index of its manufacturer in ``vocabulary.manufacturers``."""
    makers = vocabulary.manufacturers
    return torch.tensor(
        [
            makers.index(vocabulary.model_manufacturer[m])
            for m in vocabulary.categories["model_name"]
        ]
    )


def iap_accuracy(
    raw: torch.Tensor, target: torch.Tensor, vocabulary: IAPVocabulary
) -> dict[str, torch.Tensor]:
    """Top-1 accuracy per categorical IAP and of the manufacturer; MSE per continuous IAP."""
    out: dict[str, torch.Tensor] = {}
    for slot in vocabulary.slots:
        pred, true = raw[:, slot.start : slot.stop], target[:, slot.start : slot.stop]
        if slot.categorical:
            pred_idx, true_idx = pred.argmax(1), true.argmax(1)
            out[f"acc_{slot.name}"] = (pred_idx == true_idx).float().mean()
            if slot.name == "model_name":
                makers = manufacturer_index(vocabulary).to(raw.device)
                out["acc_manufacturer"] = (makers[pred_idx] == makers[true_idx]).float().mean()
        else:
            out[f"mse_{slot.name}"] = torch.mean((pred.float() - true.float()) ** 2)
    return out


class IAPModule(TrainingModule):
    """Trains an :class:`IAPPredictor`; ``self.model`` is bundled."""

    kind = "iap"

    def __init__(
        self,
        config: dict[str, Any],
        preset: dict[str, Any],
        vocabulary: dict[str, Any],
        class_weights: dict[str, list[float]] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.config = IAPPredictorConfig.from_dict(config)
        self.preset = dict(preset)
        self.vocabulary = IAPVocabulary.from_dict(vocabulary)
        self.model = IAPPredictor(self.config)
        self.class_weights = {k: torch.tensor(v) for k, v in (class_weights or {}).items()}

    def _loss(self, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return iap_loss(raw.float(), target, self.vocabulary, self.class_weights or None)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, target, _ = batch
        raw = self.model(images)
        loss = self._loss(raw, target)
        n = images.shape[0]
        self.log("train_loss", loss, prog_bar=True, batch_size=n)
        self.log(
            "train_acc_manufacturer",
            iap_accuracy(raw, target, self.vocabulary)["acc_manufacturer"],
            batch_size=n,
        )
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        images, target, _ = batch
        raw = self.model(images)
        n = images.shape[0]
        self.log("val_loss", self._loss(raw, target), prog_bar=True, batch_size=n, sync_dist=True)
        for name, value in iap_accuracy(raw, target, self.vocabulary).items():
            self.log(
                f"val_{name}",
                value,
                batch_size=n,
                sync_dist=True,
                prog_bar=name == "acc_manufacturer",
            )

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.model.parameters(),
            lr=float(self.preset["lr"]),
            weight_decay=float(self.preset["weight_decay"]),
        )
