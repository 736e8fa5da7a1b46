"""Behaviour shared by the three Lightning modules."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.rank_zero import rank_zero_warn

from .data_order import mix_seed

_GLOBAL_STREAM, _STEP_STREAM = 0, 1


class TrainingModule(pl.LightningModule):
    """Base class: ``self.model`` is the network that gets bundled.

    Randomness of a training step depends only on (``rng_seed``, global step, rank): the global
    RNG is reseeded before every step (dropout and anything else drawing from it) and
    :meth:`step_generator` gives a generator for explicit draws (diffusion noise, timesteps,
    CFG dropout). So a run resumed from ``last.ckpt`` repeats the steps of an uninterrupted one.

    ``--max-time`` limits each invocation, not the sum over resumes: the Timer state is dropped
    from a checkpoint when it is loaded (Lightning would otherwise stop a resumed run at once).
    """

    kind = ""
    rng_seed: int = 0  # set by train.py from the run's --seed

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        torch.manual_seed(
            mix_seed(self.rng_seed, self.global_step, self.global_rank, _GLOBAL_STREAM)
        )

    def step_generator(self) -> torch.Generator:
        """A generator on the module's device seeded by (run seed, global step, rank)."""
        seed = mix_seed(self.rng_seed, self.global_step, self.global_rank, _STEP_STREAM)
        return torch.Generator(device=self.device).manual_seed(seed)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        callbacks = checkpoint.get("callbacks") or {}
        for key in [k for k in callbacks if str(k).startswith("Timer")]:
            del callbacks[key]
        fit_loop = (checkpoint.get("loops") or {}).get("fit_loop") or {}
        if fit_loop and "combined_loader" not in (fit_loop.get("state_dict") or {}):
            rank_zero_warn(
                "the checkpoint has no data-loader position (written before resumable training): "
                f"continuing from step {checkpoint.get('global_step', '?')} with a fresh data "
                "order for the rest of the epoch; the run will not repeat an uninterrupted one "
                "exactly"
            )
