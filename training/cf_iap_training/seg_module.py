"""Lightning module of the fat/FGT segmenter (MONAI residual UNet, 3 classes).

Loss (method-facts): MONAI ``DiceLoss(softmax=True, to_onehot_y=True)``; AdamW. Validation:
MONAI ``DiceMetric`` per class (fat, FGT) and their mean ``val_dice`` (monitored, with early
stopping in ``train.py``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from monai.metrics import DiceMetric

from napari_cf_iap.models.config import SegmenterConfig
from napari_cf_iap.models.segmenter import Segmenter

from .module_base import TrainingModule


class SegModule(TrainingModule):
    """Trains a :class:`Segmenter`; ``self.model`` is bundled."""

    kind = "seg"

    def __init__(
        self,
        config: dict[str, Any],
        preset: dict[str, Any],
        vocabulary: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.config = SegmenterConfig.from_dict(config)
        self.preset = dict(preset)
        self.model = Segmenter(self.config)
        self.loss = DiceLoss(softmax=True, to_onehot_y=True)
        self.dice = DiceMetric(include_background=False, reduction="mean_batch")

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, _, labels = batch
        loss = self.loss(self.model(images).float(), labels[:, None])
        self.log("train_loss", loss, prog_bar=True, batch_size=images.shape[0])
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        images, _, labels = batch
        logits = self.model(images).float()
        self.log(
            "val_loss",
            self.loss(logits, labels[:, None]),
            batch_size=images.shape[0],
            sync_dist=True,
        )
        n = self.config.out_channels
        pred = F.one_hot(logits.argmax(1), n).permute(0, 3, 1, 2)
        true = F.one_hot(labels, n).permute(0, 3, 1, 2)
        self.dice(pred, true)

    def on_validation_epoch_end(self) -> None:
        per_class = torch.nan_to_num(self.dice.aggregate().float(), nan=0.0).to(self.device)
        self.dice.reset()
        self.log("val_dice_fat", per_class[0], sync_dist=True)
        self.log("val_dice_fgt", per_class[1], sync_dist=True)
        self.log("val_dice", per_class.mean(), prog_bar=True, sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.model.parameters(),
            lr=float(self.preset["lr"]),
            weight_decay=float(self.preset["weight_decay"]),
        )
