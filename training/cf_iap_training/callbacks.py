"""Callbacks that keep a long run safe: an atomic ``last.ckpt`` and a usable bundle at any time."""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, WeightAveraging


def averaged_network(trainer: pl.Trainer, pl_module: pl.LightningModule) -> torch.nn.Module:
    """The network to export: the EMA copy of ``pl_module.model`` if an EMA is kept, else itself."""
    for callback in trainer.callbacks:
        if isinstance(callback, WeightAveraging) and callback._average_model is not None:
            return callback._average_model.module.model
    return pl_module.model


class LastCheckpoint(Callback):
    """Save ``last.ckpt`` every ``every_n_steps`` steps, at the end and on Ctrl-C, atomically.

    It must come *after* the EMA callback in the callback list, so that a checkpoint taken at
    the end of a batch includes that step's EMA update. The final save happens at the end of
    the last epoch (Lightning ends the epoch when it stops), before the EMA callback copies the
    averaged weights into the model in ``on_train_end``.
    """

    def __init__(self, dirpath: str | Path, every_n_steps: int):
        self.path = Path(dirpath) / "last.ckpt"
        self.every_n_steps = max(1, int(every_n_steps))
        self._saved_step = -1

    def save(self, trainer: pl.Trainer) -> None:
        if trainer.global_step == self._saved_step:
            return
        tmp = self.path.with_name(".last.ckpt.part")
        trainer.save_checkpoint(tmp, weights_only=False)  # collective under DDP; rank 0 writes
        if trainer.is_global_zero:
            os.replace(tmp, self.path)
        trainer.strategy.barrier("last_checkpoint")
        self._saved_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step > 0 and trainer.global_step % self.every_n_steps == 0:
            self.save(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.save(trainer)  # normally a no-op: already saved at the end of the epoch

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, KeyboardInterrupt):
            self.save(trainer)


class PeriodicBundle(Callback):
    """Export the (EMA) network as a bundle every ``every_n_steps`` steps (rank 0 only).

    ``export(network, step)`` writes the bundle; a failure is reported as a warning and never
    stops the training.
    """

    def __init__(self, every_n_steps: int, export: Callable[[torch.nn.Module, int], Any]):
        self.every_n_steps = max(1, int(every_n_steps))
        self.export = export

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if step == 0 or step % self.every_n_steps or not trainer.is_global_zero:
            return
        try:
            network = copy.deepcopy(averaged_network(trainer, pl_module)).cpu().eval()
            self.export(network, step)
        except Exception as exc:  # noqa: BLE001 - a failed export must not kill a long run
            warnings.warn(f"periodic bundle export at step {step} failed: {exc}", stacklevel=1)
