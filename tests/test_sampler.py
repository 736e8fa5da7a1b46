"""The noise schedule, DDPM/DDIM updates and the guided SDEdit sampler (tiny model, CPU)."""

from __future__ import annotations

import math

import pytest
import torch
from monai.networks.schedulers import DDPMScheduler

from napari_cf_iap.errors import CancelledError, CfIapError, IAPValueError, InputError
from napari_cf_iap.models.cddgm import ConditionalDenoiser
from napari_cf_iap.models.config import CDDGMConfig
from napari_cf_iap.sampling.counterfactual import CounterfactualSampler, percentile_rescale
from napari_cf_iap.sampling.schedule import NoiseSchedule, ddim_pairs, ddpm_pairs

D = 6


def _model(seed: int = 0) -> ConditionalDenoiser:
    """A tiny denoiser whose zero-initialised tensors are randomised (else eps == 0 and the
    condition has no effect at initialisation)."""
    torch.manual_seed(seed)
    model = ConditionalDenoiser(CDDGMConfig.tiny(D))
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.normal_(0.0, 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> ConditionalDenoiser:
    return _model()


@pytest.fixture
def sampler(model: ConditionalDenoiser) -> CounterfactualSampler:
    return CounterfactualSampler(model, device="cpu")


def _images(b: int = 3, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((b, 1, 16, 16), generator=g)


def _target(b: int = 3, seed: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((b, D), generator=g) + 0.1


# ---------------------------------------------------------------------- schedule
def test_schedule_is_monai_cosine_with_documented_noise_levels() -> None:
    sched = NoiseSchedule.from_monai(1000, "cosine")
    monai = DDPMScheduler(num_train_timesteps=1000, schedule="cosine")
    assert sched.num_train_timesteps == 1000
    assert sched.abar(0) == 1.0
    assert sched.abar(50) == pytest.approx(float(monai.alphas_cumprod[49]), rel=1e-6)
    # performance-facts.md: sqrt(1 - abar_t) = 0.050, 0.089, 0.128 at t = 25, 50, 75
    for t, std in ((25, 0.050), (50, 0.089), (75, 0.128)):
        assert math.sqrt(1 - sched.abar(t)) == pytest.approx(std, abs=1e-3)
    assert all(0 <= b <= 0.999 + 1e-6 for b in sched.betas.tolist())  # MONAI >= 1.5 clip


def test_ddpm_step_matches_closed_form_posterior() -> None:
    sched = NoiseSchedule.from_monai()
    monai = DDPMScheduler(num_train_timesteps=1000, schedule="cosine")
    g = torch.Generator().manual_seed(0)
    x_t, eps, z = (torch.randn((2, 1, 8, 8), generator=g, dtype=torch.float64) for _ in range(3))
    for t in (2, 37, 600):
        beta = float(monai.betas[t - 1])
        alpha = 1 - beta
        abar = float(monai.alphas_cumprod[t - 1])
        abar_prev = float(monai.alphas_cumprod[t - 2])
        mean = (x_t - beta / math.sqrt(1 - abar) * eps) / math.sqrt(alpha)
        var = (1 - abar_prev) / (1 - abar) * beta
        assert sched.posterior_variance(t) == pytest.approx(var, rel=1e-6)
        got_mean = sched.ddpm_step(x_t, eps, t, None)
        # float32 MONAI alphas: abar_t == abar_{t-1} alpha_t holds to ~1e-6 relative
        torch.testing.assert_close(got_mean, mean, rtol=1e-4, atol=1e-5)
        got = sched.ddpm_step(x_t, eps, t, z)
        torch.testing.assert_close(got, mean + math.sqrt(var) * z, rtol=1e-4, atol=1e-5)
    # the last step (t = 1 -> 0) is noise-free and returns the x0 estimate
    abar1 = float(monai.alphas_cumprod[0])
    x0_hat = (x_t - math.sqrt(1 - abar1) * eps) / math.sqrt(abar1)
    torch.testing.assert_close(sched.ddpm_step(x_t, eps, 1, z), x0_hat, rtol=1e-5, atol=1e-6)


def test_ddpm_step_matches_monai_scheduler_on_full_schedule() -> None:
    sched = NoiseSchedule.from_monai()
    monai = DDPMScheduler(num_train_timesteps=1000, schedule="cosine", clip_sample=False)
    g = torch.Generator().manual_seed(3)
    x_t, eps = torch.randn((2, 1, 8, 8), generator=g), torch.randn((2, 1, 8, 8), generator=g)
    # deterministic case: MONAI index 0 (our level 1) adds no noise
    ref, _ = monai.step(eps, 0, x_t)
    torch.testing.assert_close(sched.ddpm_step(x_t, eps, 1, None), ref, rtol=1e-5, atol=1e-5)
    # a noisy step with the same noise draw
    ref, _ = monai.step(eps, 36, x_t, generator=torch.Generator().manual_seed(9))
    noise = torch.randn(eps.shape, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(sched.ddpm_step(x_t, eps, 37, noise), ref, rtol=1e-5, atol=1e-5)


def test_generate_equals_monai_ddpm_loop_started_at_the_noise_level(
    sampler: CounterfactualSampler, model: ConditionalDenoiser
) -> None:
    """Algorithm 1 without the off-by-one: noise to t0, t0 guided steps, MONAI's step rule."""
    x0, target, t0, w, seed = _images(1), _target(1), 6, 3.0, 11
    out = sampler.generate(x0, target, steps=t0, guidance=w, seeds=[seed])
    monai = DDPMScheduler(num_train_timesteps=1000, schedule="cosine", clip_sample=False)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(x0.shape, generator=g)
    k0 = t0 - 1  # level t0 == MONAI index t0 - 1
    x = monai.add_noise(x0, z, torch.tensor([k0]))
    calls = 0
    with torch.no_grad():
        for k in range(k0, -1, -1):
            ts = torch.tensor([k])
            eps_c = model(x, ts, target)
            eps_u = model(x, ts, torch.zeros_like(target))
            calls += 1
            x, _ = monai.step(eps_u + w * (eps_c - eps_u), k, x, generator=g)
    assert calls == t0
    torch.testing.assert_close(out, x, rtol=1e-4, atol=1e-4)


def test_ddim_pairs_are_exact() -> None:
    assert ddim_pairs(50, 10) == [(t, t - 5) for t in range(50, 0, -5)]
    for t0, n in ((50, 7), (25, 10), (75, 3), (3, 10), (1, 1)):
        pairs = ddim_pairs(t0, n)
        levels = [pairs[0][0]] + [p for _, p in pairs]
        assert levels[0] == t0 and levels[-1] == 0
        assert len(pairs) == min(n, t0)
        assert all(a > b for a, b in zip(levels, levels[1:], strict=False))
    assert ddpm_pairs(4) == [(4, 3), (3, 2), (2, 1), (1, 0)]
    assert ddim_pairs(0, 10) == [] and ddpm_pairs(0) == []


def test_ddim_with_eta_one_and_every_level_equals_ddpm(sampler: CounterfactualSampler) -> None:
    x0, target = _images(2), _target(2)
    ddpm = sampler.generate(x0, target, steps=5, seeds=[1, 2])
    ddim = sampler.generate(
        x0, target, steps=5, sampler="ddim", ddim_steps=5, eta=1.0, seeds=[1, 2]
    )
    torch.testing.assert_close(ddim, ddpm, rtol=1e-4, atol=1e-4)


def test_ddim_eta_zero_is_deterministic_and_uses_ddim_steps_evaluations(
    sampler: CounterfactualSampler,
) -> None:
    x0, target = _images(2), _target(2)
    before = sampler.model_calls
    a = sampler.generate(x0, target, steps=50, sampler="ddim", ddim_steps=4, seeds=[5, 6])
    assert sampler.model_calls - before == 4
    b = sampler.generate(x0, target, steps=50, sampler="ddim", ddim_steps=4, seeds=[5, 6])
    assert torch.equal(a, b)
    c = sampler.generate(x0, target, steps=50, sampler="ddim", ddim_steps=4, seeds=[7, 6])
    assert not torch.allclose(a[0], c[0]) and torch.allclose(a[1], c[1])
    assert torch.isfinite(a).all() and a.shape == x0.shape


# ---------------------------------------------------------------------- guidance
def test_batched_cfg_equals_two_pass_cfg(sampler: CounterfactualSampler, model) -> None:
    x, c = _images(3), _target(3)
    shapes: list[tuple[int, ...]] = []
    hook = model.register_forward_hook(lambda m, inp, out: shapes.append(tuple(inp[0].shape)))
    try:
        with torch.no_grad():
            guided = sampler.guided_eps(x, 20, c, 3.0)
    finally:
        hook.remove()
    assert shapes == [(6, 1, 16, 16)]  # one forward with [x, x]
    with torch.no_grad():
        ts = torch.full((3,), 19)
        eps_c, eps_u = model(x, ts, c), model(x, ts, torch.zeros_like(c))
    assert not torch.allclose(eps_c, eps_u, atol=1e-4)  # the condition matters
    torch.testing.assert_close(guided, eps_u + 3.0 * (eps_c - eps_u), rtol=0, atol=1e-5)


def test_guidance_zero_and_one_give_unconditional_and_conditional(
    sampler: CounterfactualSampler, model: ConditionalDenoiser
) -> None:
    x, c = _images(2), _target(2)
    with torch.no_grad():
        ts = torch.full((2,), 9)
        eps_c, eps_u = model(x, ts, c), model(x, ts, torch.zeros_like(c))
        torch.testing.assert_close(sampler.guided_eps(x, 10, c, 0.0), eps_u, rtol=0, atol=1e-5)
        torch.testing.assert_close(sampler.guided_eps(x, 10, c, 1.0), eps_c, rtol=0, atol=1e-5)
        half = sampler.guided_eps(x, 10, c, 0.5)
    torch.testing.assert_close(half, 0.5 * (eps_c + eps_u), rtol=0, atol=1e-5)


# ---------------------------------------------------------------------- generate
def test_steps_zero_returns_the_input(sampler: CounterfactualSampler) -> None:
    x0 = _images(2)
    before = sampler.model_calls
    out = sampler.generate(x0, _target(2), steps=0)
    assert torch.equal(out, x0) and out is not x0
    assert sampler.model_calls == before


def test_same_seed_same_output_for_any_batch_size(sampler: CounterfactualSampler) -> None:
    x0, target, seeds = _images(4), _target(4), [10, 20, 30, 40]
    ref = sampler.generate(x0, target, steps=4, seeds=seeds, batch_size=4)
    for batch_size in (1, 3):
        out = sampler.generate(x0, target, steps=4, seeds=seeds, batch_size=batch_size)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    # a slice's result depends on its own seed only, not on its position in the batch
    order = [2, 0, 3, 1]
    permuted = sampler.generate(x0[order], target[order], steps=4, seeds=[seeds[i] for i in order])
    torch.testing.assert_close(permuted, ref[order], rtol=0, atol=1e-5)
    other = sampler.generate(x0, target, steps=4, seeds=[11, 20, 30, 40], batch_size=4)
    assert not torch.allclose(other[0], ref[0], atol=1e-4)
    torch.testing.assert_close(other[1:], ref[1:], rtol=0, atol=1e-5)


def test_generate_edits_only_slightly_at_low_noise_and_keeps_inputs(
    sampler: CounterfactualSampler,
) -> None:
    x0, target = _images(2), _target(2)
    x0_copy, target_copy = x0.clone(), target.clone()
    out = sampler.generate(x0, target, steps=3)
    assert torch.equal(x0, x0_copy) and torch.equal(target, target_copy)
    assert out.dtype == torch.float32 and out.shape == x0.shape
    diff = (out - x0).abs().mean().item()
    assert 0 < diff < 0.5


def test_cancel_stops_within_one_step(sampler: CounterfactualSampler) -> None:
    start = sampler.model_calls
    with pytest.raises(CancelledError):
        sampler.generate(
            _images(2), _target(2), steps=20, should_stop=lambda: sampler.model_calls - start >= 3
        )
    assert sampler.model_calls - start == 3


def test_progress_reports_every_step_of_every_chunk(sampler: CounterfactualSampler) -> None:
    calls: list[tuple[int, int]] = []
    sampler.generate(
        _images(3), _target(3), steps=4, batch_size=2, progress=lambda d, t, m: calls.append((d, t))
    )
    assert calls == [(i, 8) for i in range(1, 9)]


def test_percentile_rescale_option(sampler: CounterfactualSampler) -> None:
    x = torch.linspace(0, 1, 2 * 16 * 16).reshape(2, 1, 16, 16) * 5 + 2
    y = percentile_rescale(x)
    flat = y.flatten(1)
    assert torch.allclose(torch.quantile(flat, 0.10, dim=1), torch.zeros(2), atol=1e-5)
    assert torch.allclose(torch.quantile(flat, 0.99, dim=1), torch.ones(2), atol=1e-5)
    x0, target = _images(2), _target(2)
    plain = sampler.generate(x0, target, steps=4, seeds=[1, 2])
    rescaled = sampler.generate(x0, target, steps=4, seeds=[1, 2], rescale_x0=True)
    assert torch.isfinite(rescaled).all() and not torch.allclose(plain, rescaled, atol=1e-4)


def test_bad_arguments_are_refused(sampler: CounterfactualSampler) -> None:
    x0 = _images(2)
    with pytest.raises(IAPValueError):
        sampler.generate(x0, torch.zeros(D + 1), steps=2)
    with pytest.raises(InputError):
        sampler.generate(x0[0], _target(2), steps=2)
    with pytest.raises(InputError):
        sampler.generate(torch.rand(2, 1, 15, 15), _target(2), steps=2)
    with pytest.raises(CfIapError):
        sampler.generate(x0, _target(2), steps=2, sampler="euler")
    with pytest.raises(CfIapError):
        sampler.generate(x0, _target(2), steps=1001)
    with pytest.raises(CfIapError):
        sampler.generate(x0, _target(2), steps=2, seeds=[1])


# ---------------------------------------------------------------------- twin edit
def test_twin_edit_with_own_iaps_as_target_returns_the_input(sampler) -> None:
    """Target == reference: both renderings are identical, so nothing changes (DDPM noise
    included, because the twin draws the same noise)."""
    x, c = _images(), _target()
    out = sampler.generate(x, c, steps=12, guidance=3.0, seeds=[5, 6, 7], reference_vec=c)
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_twin_edit_is_input_plus_the_difference_of_two_renderings(sampler) -> None:
    x, c, ref = _images(), _target(), _target(seed=9)
    kw = dict(steps=10, guidance=2.0, seeds=[1, 2, 3], sampler="ddpm")
    towards_target = sampler.generate(x, c, **kw)
    towards_reference = sampler.generate(x, ref, **kw)
    twin = sampler.generate(x, c, reference_vec=ref, batch_size=2, **kw)
    torch.testing.assert_close(twin, x + towards_target - towards_reference, atol=1e-5, rtol=0)
    assert not torch.allclose(twin, x, atol=1e-4)


def test_twin_reference_vector_is_checked(sampler) -> None:
    with pytest.raises(IAPValueError, match="IAP vector"):
        sampler.generate(_images(), _target(), steps=3, reference_vec=torch.ones(D + 1))
