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


def _fsync(path: Path) -> None:
    """Flush a file or directory to disk (best effort: not every file system allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LastCheckpoint(Callback):
    """Save ``last.ckpt`` every ``every_n_steps`` steps, at the end and on Ctrl-C, atomically.

    The checkpoint holds everything a resume needs: weights, optimiser, EMA, loop progress and
    the training loader's position (:class:`~.data_order.ResumableDataLoader`).

    It must come *after* the EMA callback in the callback list, so that a checkpoint taken at
    the end of a batch includes that step's EMA update, and behind Lightning's
    ``ModelCheckpoint`` (call :meth:`run_last` once the Trainer exists), so that a save after
    validation records the best model chosen there. When validation runs at a save step, the
    save waits for it: Lightning skips the validation of the step a checkpoint was taken in
    when it resumes, so a pre-validation save would make a resumed run miss it. The final save
    happens at the end of the last epoch (Lightning ends the epoch when it stops), before the
    EMA callback copies the averaged weights into the model in ``on_train_end``.
    """

    def __init__(self, dirpath: str | Path, every_n_steps: int):
        self.path = Path(dirpath) / "last.ckpt"
        self.every_n_steps = max(1, int(every_n_steps))
        self._saved: tuple[int, str] | None = None
        self._after_validation = False

    def run_last(self, trainer: pl.Trainer) -> None:
        """Move this callback behind all others (Lightning puts ``ModelCheckpoint`` last)."""
        trainer.callbacks = [c for c in trainer.callbacks if c is not self] + [self]

    def save(self, trainer: pl.Trainer, when: str = "step") -> None:
        if self._saved == (trainer.global_step, when):
            return
        tmp = self.path.with_name(".last.ckpt.part")
        trainer.save_checkpoint(tmp, weights_only=False)  # collective under DDP; rank 0 writes
        if trainer.is_global_zero:
            _fsync(tmp)  # the bytes are on disk before the name points at them
            os.replace(tmp, self.path)
            _fsync(self.path.parent)
        trainer.strategy.barrier("last_checkpoint")
        self._saved = (trainer.global_step, when)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step > 0 and trainer.global_step % self.every_n_steps == 0:
            if _validation_due(trainer):
                self._after_validation = True
            else:
                self.save(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._after_validation and not trainer.sanity_checking:
            self._after_validation = False
            self.save(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._after_validation = False
        self.save(trainer, "epoch")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.save(trainer, "epoch")  # normally a no-op: already saved at the end of the epoch

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, KeyboardInterrupt):
            self.save(trainer, "interrupt")


def _validation_due(trainer: pl.Trainer) -> bool:
    """Whether Lightning validates after the batch that just ended (False if unknown)."""
    loop = trainer.fit_loop.epoch_loop
    try:
        return bool(loop._should_check_val_fx(trainer.fit_loop._data_fetcher)) and not getattr(
            loop, "_skip_next_val", False
        )
    except Exception:  # noqa: BLE001 - a private Lightning API; saving early is the safe default
        return False


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
