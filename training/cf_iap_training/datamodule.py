"""Which store rows each model trains and validates on, as a Lightning DataModule.

- ``cddgm`` and ``iap``: train on every original slice of ``train`` patients (with and without
  masks); validate on ``val`` patients without masks (any ``val`` patient if there are none).
  Test patients are never seen.
- ``seg``: train on ``train`` patients with masks, plus their counterfactual copies when
  ``with_augmentations`` is set; validate on masked ``val`` patients.

Validation may be empty (tiny stores): training then runs without validation.
"""

from __future__ import annotations

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from napari_cf_iap.errors import InputError
from napari_cf_iap.iap import IAPVocabulary

from .dataset import SliceDataset
from .slice_store import COUNTERFACTUAL, ORIGINAL, SliceStore


def select_rows(
    store: SliceStore, model: str, with_augmentations: bool = False
) -> tuple[list[int], list[int]]:
    """(train rows, val rows) of ``model`` (see the module docstring)."""
    if not store.splits():
        raise InputError(
            f"{store.path} has no splits yet; run `cf-iap-train split {store.path}` first"
        )
    if model == "seg":
        sources = (ORIGINAL, COUNTERFACTUAL) if with_augmentations else ORIGINAL
        train = store.select(split="train", has_mask=True, source=sources)
        val = store.select(split="val", has_mask=True)
        if not train:
            raise InputError(
                f"{store.path} has no masked training slices; the segmenter needs masks"
            )
        return train, val
    train = store.select(split="train")
    val = store.select(split="val", has_mask=False) or store.select(split="val")
    if not train:
        raise InputError(f"{store.path} has no training slices; check the split")
    return train, val


class StoreDataModule(pl.LightningDataModule):
    """Train/val loaders over a slice store for one model kind."""

    def __init__(
        self,
        store: SliceStore,
        model: str,
        vocabulary: IAPVocabulary,
        image_size: int,
        batch_size: int,
        *,
        flip: bool = True,
        with_augmentations: bool = False,
        num_workers: int = 0,
    ):
        super().__init__()
        self.store = store
        self.train_rows, self.val_rows = select_rows(store, model, with_augmentations)
        self.vocabulary = vocabulary
        self.image_size = image_size
        self.batch_size = batch_size
        self.flip = flip
        self.num_workers = num_workers

    def _loader(self, rows: list[int], train: bool) -> DataLoader:
        dataset = SliceDataset(
            self.store, rows, self.image_size, self.vocabulary, flip=self.flip and train
        )
        return DataLoader(
            dataset,
            batch_size=min(self.batch_size, len(dataset)) if not train else self.batch_size,
            shuffle=train,
            drop_last=train and len(dataset) >= self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_rows, True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_rows, False) if self.val_rows else []
