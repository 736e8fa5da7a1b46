"""A training data order that a killed run can resume exactly.

- :func:`mix_seed`: one 63-bit seed from several integers (run seed, epoch or step, rank, ...).
- :class:`ResumableSampler`: a :class:`DistributedSampler` (each rank its shard, padded like
  Lightning's) whose order depends only on ``(seed, epoch)``. It yields ``(index, sample_seed)``
  pairs: the dataset draws its augmentations (flips) from ``sample_seed``, never from the global
  RNG. After :meth:`~ResumableSampler.resume` it skips what the epoch already consumed.
- :class:`ResumableDataLoader`: a DataLoader with Lightning's ``state_dict``/``load_state_dict``
  protocol, so ``last.ckpt`` holds the epoch and the number of batches already trained in it.
  Being a DistributedSampler, Lightning keeps the sampler under DDP instead of replacing it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from pytorch_lightning.utilities.rank_zero import rank_zero_warn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

STATE_VERSION = 1


def mix_seed(*parts: int) -> int:
    """A well-mixed seed in [0, 2**63) from non-negative integers (order matters)."""
    words = [int(p) & 0xFFFFFFFFFFFFFFFF for p in parts]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> np.uint64(1))


class ResumableSampler(DistributedSampler):
    """Seeded, sharded sample order with per-sample augmentation seeds (see the module doc)."""

    def __init__(
        self,
        dataset: Dataset,
        *,
        seed: int = 0,
        shuffle: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self._skip = 0  # samples of the current epoch to skip once (set by resume)
        self._yielded = 0  # samples handed out in the current epoch

    def set_epoch(self, epoch: int) -> None:
        if int(epoch) != self.epoch:
            self._skip = 0  # a pending resume position belongs to another epoch
        self.epoch = int(epoch)

    def resume(self, epoch: int, samples_done: int) -> None:
        """The next iteration is ``epoch`` without its first ``samples_done`` samples."""
        self.epoch = int(epoch)
        self._skip = max(0, int(samples_done))

    def epoch_order(self) -> tuple[list[int], list[int]]:
        """This rank's (indices, sample seeds) of the whole current epoch."""
        n = len(self.dataset)
        g = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch))
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        if self.total_size > n:  # pad by repeating the start, like DistributedSampler
            reps = -(-self.total_size // n)
            order = order.repeat(reps)
        order = order[: self.total_size]
        seeds = torch.randint(0, 2**62, (self.total_size,), generator=g)
        mine = slice(self.rank, self.total_size, self.num_replicas)
        return order[mine].tolist(), seeds[mine].tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices, seeds = self.epoch_order()
        skip, self._skip = self._skip, 0
        self._yielded = skip
        for pair in zip(indices[skip:], seeds[skip:], strict=True):
            self._yielded += 1
            yield pair


class ResumableDataLoader(DataLoader):
    """A training DataLoader over a :class:`ResumableSampler` whose position is checkpointed.

    ``batches_done()`` tells how many batches of the current epoch were trained (the Lightning
    loop's count; the sampler may run ahead of it when batches are prefetched). Without it the
    sampler's own count is used.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        sampler: ResumableSampler,
        batches_done: Callable[[], int | None] | None = None,
        **kwargs: Any,
    ):
        super().__init__(dataset, sampler=sampler, **kwargs)
        self._batches_done = batches_done

    def _done(self) -> int:
        done = self._batches_done() if self._batches_done is not None else None
        if done is None:
            done = self.sampler._yielded // max(1, int(self.batch_size or 1))
        return int(done)

    def state_dict(self) -> dict[str, Any]:
        s = self.sampler
        return {
            "version": STATE_VERSION,
            "epoch": s.epoch,
            "batches_done": self._done(),
            "seed": s.seed,
            "num_replicas": s.num_replicas,
            "batch_size": self.batch_size,
            "num_samples": len(s.dataset),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        s = self.sampler
        epoch, done = int(state.get("epoch", 0)), int(state.get("batches_done", 0))
        same = (
            state.get("seed") == s.seed
            and state.get("num_replicas") == s.num_replicas
            and state.get("batch_size") == self.batch_size
            and state.get("num_samples") == len(s.dataset)
        )
        if done >= len(self):  # saved at the end of the epoch: the next one starts afresh
            s.resume(epoch + 1, 0)
        elif same:
            s.resume(epoch, done * int(self.batch_size or 1))
        else:
            rank_zero_warn(
                "the checkpoint's data order (seed, devices, batch size or data set size) "
                f"differs from this run's: epoch {epoch} continues with a fresh order"
            )
            s.resume(epoch, 0)
