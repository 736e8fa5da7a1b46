"""Which store rows each model trains and validates on, as a Lightning DataModule.

- ``cddgm`` and ``iap``: train on every original slice of ``train`` patients (with and without
  masks); validate on ``val`` patients without masks (any ``val`` patient if there are none).
  Test patients are never seen.
- ``seg``: train on ``train`` patients with masks, plus their counterfactual copies when
  ``with_augmentations`` is set; validate on masked ``val`` patients.

Validation may be empty (tiny stores): training then runs without validation.

The training loader is resumable (:mod:`.data_order`): its order depends only on (``seed``,
epoch), each DDP rank takes its shard, and ``last.ckpt`` records how far the epoch got.
"""

from __future__ import annotations

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from napari_cf_iap.errors import InputError
from napari_cf_iap.iap import IAPVocabulary

from .data_order import ResumableDataLoader, ResumableSampler
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
        seed: int = 0,
    ):
        super().__init__()
        self.store = store
        self.train_rows, self.val_rows = select_rows(store, model, with_augmentations)
        self.vocabulary = vocabulary
        self.image_size = image_size
        self.batch_size = batch_size
        self.flip = flip
        self.num_workers = num_workers
        self.seed = int(seed)

    def _dataset(self, rows: list[int], train: bool) -> SliceDataset:
        return SliceDataset(
            self.store, rows, self.image_size, self.vocabulary, flip=self.flip and train
        )

    def _batches_done(self) -> int | None:
        """Batches of the current epoch the Lightning loop has trained (None outside fit)."""
        trainer = self.trainer
        if trainer is None:
            return None
        return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)

    def train_dataloader(self) -> ResumableDataLoader:
        dataset = self._dataset(self.train_rows, True)
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = ResumableSampler(dataset, seed=self.seed, num_replicas=world, rank=rank)
        return ResumableDataLoader(
            dataset,
            sampler=sampler,
            batches_done=self._batches_done,
            batch_size=self.batch_size,
            drop_last=sampler.num_samples >= self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader | list:
        if not self.val_rows:
            return []
        dataset = self._dataset(self.val_rows, False)
        return DataLoader(
            dataset,
            batch_size=min(self.batch_size, len(dataset)),
            shuffle=False,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
