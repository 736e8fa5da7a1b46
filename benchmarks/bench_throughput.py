"""Counterfactual throughput: the naive reference vs the product path, same weights and seeds.

* naive reference: MONAI's defaults (``use_flash_attention=False``), two forward passes per
  guided step (conditional, then unconditional), gradients enabled, contiguous NCHW tensors;
* product path: :class:`CounterfactualSampler` (SDPA attention, both CFG estimates in one
  batched forward, ``inference_mode``, the sampler's memory format; bf16 autocast on CUDA).

Both run the same DDPM SDEdit loop from noise level t0 on the same slices with the same
per-slice noise seeds, so their outputs must agree (within 1e-4 in fp32). Each variant edits
with t0 = ``steps`` (one guided step per level); time per step is the median over interleaved
rounds divided by ``steps``, and a 50-step edit is extrapolated from it when fewer steps were
measured. On CUDA the script also times the GPU target: a 100-slice 224² volume, 50 steps.

    python -m benchmarks.bench_throughput [--device cuda] [--threads 1]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from napari_cf_iap.models.cddgm import ConditionalDenoiser, build_unet
from napari_cf_iap.models.config import CDDGMConfig
from napari_cf_iap.sampling.counterfactual import CounterfactualSampler
from napari_cf_iap.sampling.schedule import NoiseSchedule

from . import common
from .fixtures import load_cddgm_or_untrained, randomise_zero_parameters, simulated_slices

EDIT_STEPS = 50  # the paper's default SDEdit noise level for a full edit
SPEEDUP_TARGET = 1.8
EQUAL_TOLERANCE = 1e-4
GPU_VOLUME_TARGET_S = 15.0


def naive_copy(model: ConditionalDenoiser) -> ConditionalDenoiser:
    """The same weights in a network built with MONAI's default (unfused) attention."""
    naive = ConditionalDenoiser(model.config)
    naive.unet = build_unet(model.config, use_flash_attention=False)
    naive.load_state_dict(model.state_dict())
    device = next(model.parameters()).device
    return naive.to(device, memory_format=torch.contiguous_format).eval()


def naive_generate(
    model: ConditionalDenoiser,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    target: torch.Tensor,
    *,
    steps: int,
    guidance: float,
    seeds: Sequence[int],
) -> torch.Tensor:
    """The reference SDEdit DDPM loop: two forward passes per step, gradients on.

    Draws its noise exactly like ``CounterfactualSampler.generate`` (one CPU generator per
    slice: the start noise, then one draw per step above level 1), all slices in one chunk.
    """
    device = next(model.parameters()).device
    gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
    shape = tuple(x0.shape[1:])

    def draw() -> torch.Tensor:
        return torch.stack([torch.randn(shape, generator=g) for g in gens]).to(device)

    x0 = x0.to(device)
    cond = target.to(device)
    null = torch.zeros_like(cond)
    x = schedule.add_noise(x0, steps, draw())
    for t in range(steps, 0, -1):
        ts = torch.full((x.shape[0],), schedule.model_timestep(t), dtype=torch.long, device=device)
        eps_c = model(x, ts, cond)
        eps_u = model(x, ts, null)
        eps = eps_u + guidance * (eps_c - eps_u)
        x = schedule.ddpm_step(x, eps, t, draw() if t > 1 else None).detach()
    return x.float().cpu()


@dataclass
class ThroughputResult:
    """One configuration: naive and product time per guided step, equality of the outputs."""

    label: str
    image_size: int
    slices: int
    steps_measured: int
    naive_times: list[float]
    product_times: list[float]
    max_abs_diff: float
    weights: str

    @property
    def naive_step_s(self) -> float:
        return common.median(self.naive_times) / self.steps_measured

    @property
    def product_step_s(self) -> float:
        return common.median(self.product_times) / self.steps_measured

    @property
    def speedup(self) -> float:
        return self.naive_step_s / self.product_step_s

    def slices_per_s(self, step_s: float) -> float:
        return self.slices / (EDIT_STEPS * step_s)


def measure(
    model: ConditionalDenoiser,
    device: torch.device,
    *,
    label: str,
    slices: int,
    steps: int,
    guidance: float = 3.0,
    repeats: int = 3,
    weights: str = "",
    seed: int = 0,
) -> ThroughputResult:
    """Time the naive and product edits of ``slices`` simulated slices, interleaved."""
    config = model.config
    x0 = torch.from_numpy(simulated_slices(slices, config.image_size, seed))
    gen = torch.Generator("cpu").manual_seed(seed)
    target = torch.rand(slices, config.iap_dim, generator=gen)
    seeds = list(range(seed, seed + slices))
    product = CounterfactualSampler(model, device=device)
    naive = naive_copy(product.model)
    schedule = product.schedule

    def run_product(n: int = steps) -> torch.Tensor:
        return product.generate(
            x0, target, steps=n, guidance=guidance, seeds=seeds, batch_size=slices
        )

    def run_naive(n: int = steps) -> torch.Tensor:
        return naive_generate(naive, schedule, x0, target, steps=n, guidance=guidance, seeds=seeds)

    run_naive(1), run_product(1)  # warm-up (allocator, kernels) with one step each
    times, results = common.interleaved(
        {"naive": run_naive, "product": run_product}, device, repeats=repeats, warmup=0
    )
    diff = float((results["naive"] - results["product"]).abs().max())
    return ThroughputResult(
        label, config.image_size, slices, steps, times["naive"], times["product"], diff, weights
    )


def gpu_volume(
    device: torch.device, batch_sizes: Sequence[int] = (8, 25, 50, 100), slices: int = 100
) -> list[tuple[int, float]]:
    """Seconds for a ``slices``-slice 224² paper-config 50-step DDPM edit per batch size."""
    config = CDDGMConfig.paper(iap_dim=21)
    torch.manual_seed(0)
    model = ConditionalDenoiser(config)
    randomise_zero_parameters(model)
    sampler = CounterfactualSampler(model, device=device)
    x0 = torch.from_numpy(simulated_slices(slices, config.image_size))
    target = torch.rand(config.iap_dim)
    sampler.generate(x0[:2], target, steps=2, batch_size=2)  # warm-up
    out = []
    for batch in batch_sizes:
        seconds, _ = common.timed(
            lambda b=batch: sampler.generate(x0, target, steps=EDIT_STEPS, batch_size=b), device
        )
        out.append((batch, seconds))
    return out


def table(results: Sequence[ThroughputResult], device: torch.device) -> str:
    headers = [
        "config",
        "slices x size",
        "steps timed",
        "naive s/step",
        "product s/step",
        f"{EDIT_STEPS}-step edit naive / product",
        "speed-up",
        "max abs diff",
        f"target >= {SPEEDUP_TARGET}x, diff <= {EQUAL_TOLERANCE:g}",
    ]
    rows = []
    for r in results:
        tolerance = EQUAL_TOLERANCE if device.type == "cpu" else 5e-2
        met = r.speedup >= SPEEDUP_TARGET and r.max_abs_diff <= tolerance
        reason = []
        if r.speedup < SPEEDUP_TARGET:
            reason.append(f"speed-up {r.speedup:.2f}x")
        if r.max_abs_diff > tolerance:
            reason.append(f"diff {r.max_abs_diff:.1e}")
        extrapolated = "" if r.steps_measured >= EDIT_STEPS else " (extrapolated)"
        lo_n, hi_n = (f(r.naive_times) / r.steps_measured for f in (min, max))
        lo_p, hi_p = (f(r.product_times) / r.steps_measured for f in (min, max))
        rows.append(
            [
                f"{r.label} ({r.weights})",
                f"{r.slices} x {r.image_size}²",
                r.steps_measured,
                f"{common.seconds(r.naive_step_s)} ({common.seconds(lo_n)}-{common.seconds(hi_n)})",
                f"{common.seconds(r.product_step_s)} ({common.seconds(lo_p)}-"
                f"{common.seconds(hi_p)})",
                f"{common.seconds(EDIT_STEPS * r.naive_step_s / r.slices)} s / "
                f"{common.seconds(EDIT_STEPS * r.product_step_s / r.slices)} s per slice "
                f"({r.slices_per_s(r.naive_step_s):.2g} / "
                f"{r.slices_per_s(r.product_step_s):.2g} slices/s){extrapolated}",
                f"{r.speedup:.2f}x",
                f"{r.max_abs_diff:.1e}",
                common.verdict(met, ", ".join(reason)),
            ]
        )
    return common.markdown_table(headers, rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.base_parser(__doc__.split("\n")[0])
    parser.add_argument("--paper-steps", type=int, default=None, help="t0 timed (paper config)")
    parser.add_argument("--small-steps", type=int, default=EDIT_STEPS, help="t0 timed (small)")
    parser.add_argument("--paper-slices", type=int, default=None)
    parser.add_argument("--small-slices", type=int, default=None)
    parser.add_argument("--cddgm", default=None, help="default cDDGM bundle path")
    parser.add_argument("--skip-paper", action="store_true")
    args = parser.parse_args(argv)
    device = common.setup(args)
    on_gpu = device.type == "cuda"
    paper_steps = args.paper_steps or (EDIT_STEPS if on_gpu else 2)
    paper_slices = args.paper_slices or (8 if on_gpu else 1)
    small_slices = args.small_slices or (16 if on_gpu else 2)

    results = []
    if not args.skip_paper:
        torch.manual_seed(0)
        paper = ConditionalDenoiser(CDDGMConfig.paper(iap_dim=21))
        randomise_zero_parameters(paper)
        results.append(
            measure(
                paper,
                device,
                label="paper (64..256, 6 levels)",
                slices=paper_slices,
                steps=paper_steps,
                repeats=args.repeats,
                weights="untrained, zero-init layers randomised",
            )
        )
        del paper
    small, weights = load_cddgm_or_untrained(args.cddgm, device)
    results.append(
        measure(
            small,
            device,
            label=f"default bundle config ({','.join(map(str, small.config.channels))})",
            slices=small_slices,
            steps=args.small_steps,
            repeats=args.repeats,
            weights=weights,
        )
    )
    body = [table(results, device), ""]
    body.append(
        "Naive: MONAI default attention, 2 forward passes per step, gradients on, NCHW. "
        "Product: `CounterfactualSampler.generate` (SDPA, one batched CFG forward, "
        "inference_mode, channels_last; bf16 autocast on CUDA). Same weights, slices, "
        f"target vectors and noise seeds; guidance 3; medians of {args.repeats} interleaved "
        "rounds (min-max in brackets). A per-slice time is the time of the whole batch divided "
        f"by its slices. Steps timed < {EDIT_STEPS}: the {EDIT_STEPS}-step edit is "
        "extrapolated from the time per step (setup is negligible next to a forward pass)."
    )
    if device.type == "cpu":
        body.append(
            "On a CPU one batch-2 forward costs about as much as two batch-1 forwards (compute "
            "bound), so batching the CFG pair brings nothing here; the CPU gains come from "
            "SDPA attention (large only where attention is large: the paper config's 56² "
            "tokens) and inference_mode. channels_last gains 4-7 % per forward on an Intel Xeon "
            "(within noise on an AMD EPYC; FLOPs section), and a frozen TorchScript trace of "
            "the default config gained nothing (0.70 vs 0.70 s per batch-2 forward, 7 "
            "interleaved rounds). The default config spends almost all of its FLOPs in "
            "convolutions, which no lever speeds up (they already run at ~70 % of the matmul "
            "ceiling, FLOPs section), and almost none in attention, which is why its speed-up "
            "stays far below the paper config's."
        )
    if on_gpu:
        vol = gpu_volume(device)
        best = min(s for _, s in vol)
        rows = [[b, f"{s:.2f} s", f"{100 / s:.1f}"] for b, s in vol]
        body += [
            "",
            "GPU target: a 100-slice 224² volume, paper config, 50-step DDPM with batched CFG "
            f"and bf16 autocast: best {best:.2f} s — "
            + common.verdict(best <= GPU_VOLUME_TARGET_S, f"{best:.1f} s > 15 s"),
            "",
            common.markdown_table(["slice batch", "volume time", "slices/s"], rows),
        ]
    if any(not math.isfinite(r.max_abs_diff) for r in results):
        body.append("**Non-finite outputs: the comparison is invalid.**")
    common.report(
        "throughput",
        "Counterfactual throughput: naive reference vs product path",
        "\n".join(body),
        device,
        write=not args.no_write,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
