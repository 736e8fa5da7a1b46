"""Reusing a twin edit's reference renderings: same output, half the denoising, safe keys."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from pipeline_support import TARGET, gamma_volume
from test_sampler import _images, _model, _target

from napari_cf_iap.bundles import load_bundle
from napari_cf_iap.pipeline import CounterfactualRequest, generate_counterfactual
from napari_cf_iap.sampling.counterfactual import CounterfactualSampler
from napari_cf_iap.sampling.reference_cache import ReferenceCache


class _BatchLog(torch.nn.Module):
    """Wraps a denoiser and records the batch size of every forward pass."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.inner = model
        self.config = model.config
        self.batches: list[int] = []

    def forward(self, x, t, c):  # noqa: ANN001, ANN201
        self.batches.append(int(x.shape[0]))
        return self.inner(x, t, c)


@pytest.fixture(scope="module")
def logged() -> _BatchLog:
    return _BatchLog(_model()).eval()


KW = dict(steps=8, guidance=3.0, seeds=[4, 5, 6], sampler="ddpm", batch_size=3)


def test_second_target_reuses_reference_and_matches_the_full_twin(logged) -> None:
    sampler = CounterfactualSampler(logged, device="cpu")
    x, ref = _images(), _target(seed=9)
    first, second = _target(seed=2), _target(seed=3)
    cache = ReferenceCache()
    out1 = sampler.generate(x, first, reference_vec=ref, reference_cache=cache, **KW)
    assert (cache.hits, cache.misses, len(cache)) == (0, 3, 3)
    logged.batches.clear()
    out2 = sampler.generate(x, second, reference_vec=ref, reference_cache=cache, **KW)
    assert cache.hits == 3
    # target only: 3 slices x 2 (CFG) per pass instead of 3 x 2 x 2
    assert logged.batches == [6] * KW["steps"]
    full1 = sampler.generate(x, first, reference_vec=ref, **KW)
    full2 = sampler.generate(x, second, reference_vec=ref, **KW)
    torch.testing.assert_close(out1, full1, atol=0, rtol=0)
    torch.testing.assert_close(out2, full2, atol=1e-5, rtol=0)
    assert not torch.allclose(out1, out2, atol=1e-4)


@pytest.mark.parametrize(
    "change",
    [
        dict(guidance=2.0),
        dict(steps=7),
        dict(seeds=[4, 5, 7]),
        dict(sampler="ddim"),
    ],
)
def test_any_other_setting_is_a_miss(logged, change) -> None:
    sampler = CounterfactualSampler(logged, device="cpu")
    x, ref, cache = _images(), _target(seed=9), ReferenceCache()
    sampler.generate(x, _target(), reference_vec=ref, reference_cache=cache, **KW)
    sampler.generate(
        x, _target(seed=3), reference_vec=ref, reference_cache=cache, **{**KW, **change}
    )
    assert cache.hits == 0 and cache.misses == 6


def test_other_image_or_reference_is_a_miss(logged) -> None:
    sampler = CounterfactualSampler(logged, device="cpu")
    x, ref, cache = _images(), _target(seed=9), ReferenceCache()
    sampler.generate(x, _target(), reference_vec=ref, reference_cache=cache, **KW)
    moved = x.clone()
    moved[1, 0, 3, 3] += 1e-3
    sampler.generate(moved, _target(), reference_vec=ref, reference_cache=cache, **KW)
    sampler.generate(x, _target(), reference_vec=ref + 0.01, reference_cache=cache, **KW)
    assert cache.hits == 0


def test_sdedit_neither_reads_nor_fills_the_cache(logged) -> None:
    sampler = CounterfactualSampler(logged, device="cpu")
    cache = ReferenceCache()
    sampler.generate(_images(), _target(), reference_cache=cache, **KW)
    assert len(cache) == 0 and cache.hits == cache.misses == 0


def test_cache_is_bounded_in_bytes_and_drops_the_least_recent() -> None:
    one = torch.zeros(1, 8, 8)  # 256 bytes
    cache = ReferenceCache(max_bytes=3 * 256)
    for key in "abc":
        cache.put(key, one)
    assert cache.get_all(["a"]) is not None  # 'a' is now the most recent
    cache.put("d", one)
    assert len(cache) == 3 and cache.nbytes == 3 * 256
    assert cache.get_all(["b"]) is None
    assert cache.get_all(["a", "c", "d"]) is not None
    cache.put("huge", torch.zeros(1, 32, 32))  # larger than the bound: not kept
    assert cache.get_all(["huge"]) is None and len(cache) == 3


def test_stored_rendering_is_a_copy() -> None:
    cache = ReferenceCache()
    t = torch.ones(1, 4, 4)
    cache.put("k", t)
    t.zero_()
    assert float(cache.get_all(["k"])[0].sum()) == 16.0


def test_another_model_empties_the_cache() -> None:
    cache = ReferenceCache().for_model("sha-a")
    cache.put("k", torch.ones(1, 2, 2))
    assert cache.for_model("sha-a").get_all(["k"]) is not None
    assert cache.for_model("sha-b").get_all(["k"]) is None and len(cache) == 0


def test_pipeline_reuses_reference_and_reports_it(tiny_bundles) -> None:
    volume = gamma_volume(n=5)
    source = dataclasses.replace(TARGET, flip_angle=15, echo_time=2.0)
    volume = volume.with_data(volume.data, iap=source)
    request = CounterfactualRequest(
        target=TARGET, steps=5, guidance=2.0, slices=[1, 3], edit_mode="twin"
    )
    elsewhere = dataclasses.replace(
        TARGET, manufacturer="GE", model_name="SIGNA HDxt", field_strength=1.5, flip_angle=12
    )
    other = dataclasses.replace(request, target=elsewhere)
    cache = ReferenceCache()
    bundle = load_bundle(tiny_bundles["cddgm"])  # a fresh copy whose zero tensors are randomised
    torch.manual_seed(0)
    with torch.no_grad():
        for p in bundle.model.parameters():
            if not p.any():
                p.normal_(0.0, 0.1)
    first = generate_counterfactual(volume, request, bundle, device="cpu", reference_cache=cache)
    again = generate_counterfactual(volume, other, bundle, device="cpu", reference_cache=cache)
    assert first.metadata["counterfactual"]["reference_reused"] == 0
    assert again.metadata["counterfactual"]["reference_reused"] == 2
    plain = generate_counterfactual(volume, other, bundle, device="cpu")
    assert plain.metadata["counterfactual"]["reference_reused"] == 0
    scale = float(volume.data.max())
    np.testing.assert_allclose(again.data, plain.data, rtol=0, atol=1e-4 * scale)
    assert np.abs(first.data[[1, 3]] - again.data[[1, 3]]).max() > 1e-5 * scale
