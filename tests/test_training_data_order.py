"""The resumable training data order: seeded by (seed, epoch), sharded per rank, skippable."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

pytest.importorskip("cf_iap_training")
from cf_iap_training.data_order import (  # noqa: E402
    ResumableDataLoader,
    ResumableSampler,
    mix_seed,
)


class _Items(Dataset):
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, item: tuple[int, int]) -> torch.Tensor:
        index, seed = item
        return torch.tensor([index, seed % 1000])


def _order(sampler: ResumableSampler) -> list[tuple[int, int]]:
    return list(iter(sampler))


def test_mix_seed_is_stable_and_separates_its_parts():
    assert mix_seed(0, 5, 0) == mix_seed(0, 5, 0)
    seeds = {mix_seed(s, step, rank) for s in range(3) for step in range(50) for rank in range(4)}
    assert len(seeds) == 3 * 50 * 4
    assert all(0 <= s < 2**63 for s in seeds)
    assert mix_seed(1, 2) != mix_seed(2, 1)


def test_order_depends_only_on_seed_and_epoch():
    data = _Items(23)
    a, b = ResumableSampler(data, seed=7), ResumableSampler(data, seed=7)
    torch.manual_seed(0)
    first = _order(a)
    torch.manual_seed(1)  # the global RNG plays no part
    assert _order(b) == first
    assert sorted(i for i, _ in first) == list(range(23))
    a.set_epoch(1)
    assert _order(a) != first
    assert _order(ResumableSampler(data, seed=8)) != first


def test_ranks_get_disjoint_padded_shards_covering_the_data():
    data = _Items(10)
    shards = [_order(ResumableSampler(data, seed=3, num_replicas=4, rank=r)) for r in range(4)]
    assert {len(s) for s in shards} == {3}  # 10 padded to 12, like DistributedSampler
    indices = [i for s in shards for i, _ in s]
    assert set(indices) == set(range(10)) and len(indices) == 12


def test_resume_skips_what_the_epoch_consumed_once():
    data = _Items(17)
    sampler = ResumableSampler(data, seed=1)
    sampler.set_epoch(2)
    whole = _order(sampler)
    sampler.resume(2, 5)
    assert _order(sampler) == whole[5:]
    assert _order(sampler) == whole  # the skip applies to one iteration only
    sampler.resume(2, 5)
    sampler.set_epoch(3)  # another epoch: the pending skip is dropped
    assert len(_order(sampler)) == 17


def test_loader_state_round_trip_resumes_mid_epoch_and_after_the_epoch():
    data = _Items(20)
    done = {"n": 0}

    def loader() -> ResumableDataLoader:
        sampler = ResumableSampler(data, seed=4)
        return ResumableDataLoader(
            data, sampler=sampler, batches_done=lambda: done["n"], batch_size=4, drop_last=True
        )

    first = loader()
    first.sampler.set_epoch(1)
    batches = [b[:, 0].tolist() for b in first]
    done["n"] = 2
    state = first.state_dict()
    assert state["epoch"] == 1 and state["batches_done"] == 2
    resumed = loader()
    resumed.load_state_dict(state)
    assert [b[:, 0].tolist() for b in resumed] == batches[2:]
    done["n"] = len(first)  # saved at the end of the epoch: the next epoch starts from its top
    ended = loader()
    ended.load_state_dict(first.state_dict())
    assert ended.sampler.epoch == 2 and len(list(ended)) == len(first)
    with pytest.warns(UserWarning, match="fresh order"):
        other = loader()
        other.load_state_dict({**state, "batch_size": 8})
    assert len(list(other)) == len(first)
