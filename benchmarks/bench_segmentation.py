"""Segmentation throughput and end-to-end latency for a whole simulated volume.

Throughput: ``pipeline.segment`` on the whole volume at the default slice batch (16) against
batch 1, interleaved rounds, medians. End-to-end: what a user waits for on one volume — the
counterfactual (GUI defaults: DDIM, 10 steps, the bundle's noise level and guidance), the IAP
prediction of the result and its segmentation — each stage timed once after a warm-up on two
slices. The paper's DDPM with t0 = 50 is measured too with ``--ddpm`` (default on CUDA);
otherwise its counterfactual stage is estimated from the DDIM time by the ratio of model calls.

Missing shipped bundles are replaced by untrained ones of the same (default) architecture:
speed does not depend on training.

    python -m benchmarks.bench_segmentation [--device cuda] [--threads 1]
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from . import common
from .fixtures import bundle_or_untrained


def simulated_volume(shape: tuple[int, int, int], seed: int = 3):
    from napari_cf_iap.simulator import simulate_volume

    return simulate_volume(seed, shape=shape).volume


def segmentation_throughput(volume, bundle, device, repeats: int) -> dict[str, list[float]]:
    """Seconds to segment the whole volume at slice batch 16 and 1, interleaved."""
    from napari_cf_iap.pipeline import segment

    variants = {
        f"batch {b}": (lambda b=b: segment(volume, bundle, device=str(device), batch_size=b))
        for b in (16, 1)
    }
    times, _ = common.interleaved(variants, device, repeats=repeats, warmup=1)
    return times


def end_to_end(volume, bundles, device, sampler: str, ddim_steps: int = 10) -> dict[str, float]:
    """Seconds per stage: counterfactual, IAP prediction of it, segmentation of it."""
    from napari_cf_iap.iap import IAPVocabulary
    from napari_cf_iap.pipeline import (
        CounterfactualRequest,
        generate_counterfactual,
        predict_iap,
        segment,
    )
    from napari_cf_iap.simulator import sample_protocol
    from napari_cf_iap.simulator.noise_fields import substream

    vocab = bundles["cddgm"].vocab or IAPVocabulary.duke_default()
    target = vocab.validate(sample_protocol(substream(11, "target"), "SIEMENS"))
    request = CounterfactualRequest(target=target, sampler=sampler, ddim_steps=ddim_steps)
    dev = str(device)
    warm = CounterfactualRequest(target=target, sampler=sampler, ddim_steps=1, slices=[0, 1])
    generate_counterfactual(volume, warm, bundles["cddgm"], device=dev)
    stages: dict[str, float] = {}
    stages["counterfactual"], edited = common.timed(
        lambda: generate_counterfactual(volume, request, bundles["cddgm"], device=dev), device
    )
    stages["IAP prediction"], _ = common.timed(
        lambda: predict_iap(edited, bundles["iap_predictor"], device=dev), device
    )
    stages["segmentation"], _ = common.timed(
        lambda: segment(edited, bundles["segmenter"], device=dev), device
    )
    return stages


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.base_parser(__doc__.split("\n")[0])
    parser.add_argument("--shape", default="64,256,256", help="simulated volume z,y,x")
    parser.add_argument("--cddgm", default=None)
    parser.add_argument("--iap", default=None)
    parser.add_argument("--seg", default=None)
    parser.add_argument("--ddpm", action="store_true", help="also measure DDPM t0=50")
    args = parser.parse_args(argv)
    device = common.setup(args)
    shape = tuple(int(v) for v in args.shape.split(","))
    volume = simulated_volume(shape)  # type: ignore[arg-type]

    from napari_cf_iap.bundles.bundle import load_bundle

    with tempfile.TemporaryDirectory() as tmp:
        given = {"cddgm": args.cddgm, "iap_predictor": args.iap, "segmenter": args.seg}
        bundles, described = {}, {}
        for kind, path in given.items():
            found, described[kind] = bundle_or_untrained(kind, path, Path(tmp))
            bundles[kind] = load_bundle(found, device, kind=kind)

        seg_times = segmentation_throughput(volume, bundles["segmenter"], device, args.repeats)
        runs = {"DDIM 10 steps (GUI default)": end_to_end(volume, bundles, device, "ddim")}
        if args.ddpm or device.type == "cuda":
            runs["DDPM (paper)"] = end_to_end(volume, bundles, device, "ddpm")
        t0 = int(bundles["cddgm"].inference_defaults.get("steps", 50))

    n = volume.shape[0]
    seg_rows = [
        [name, common.spread(values), f"{n / common.median(values):.1f}"]
        for name, values in seg_times.items()
    ]
    speed = common.median(seg_times["batch 1"]) / common.median(seg_times["batch 16"])
    e2e_rows = []
    for name, stages in runs.items():
        total = sum(stages.values())
        e2e_rows.append(
            [name, *(f"{stages[k]:.2f} s" for k in stages), f"**{total:.2f} s**", "measured"]
        )
    if "DDPM (paper)" not in runs:
        ddim = runs["DDIM 10 steps (GUI default)"]
        cf = ddim["counterfactual"] * t0 / min(10, t0)
        total = cf + ddim["IAP prediction"] + ddim["segmentation"]
        e2e_rows.append(
            [
                f"DDPM t0={t0} (paper)",
                f"~{cf:.0f} s",
                f"{ddim['IAP prediction']:.2f} s",
                f"{ddim['segmentation']:.2f} s",
                f"~{total:.0f} s",
                f"estimated ({t0}/{min(10, t0)} of the DDIM counterfactual; --ddpm measures it)",
            ]
        )
    body = "\n".join(
        [
            f"Volume: simulated {n} x {shape[1]} x {shape[2]}. Bundles: "
            + ", ".join(f"{k} = {v}" for k, v in described.items())
            + ".",
            "",
            f"Segmentation of the whole volume (medians of {args.repeats} interleaved rounds; "
            f"batch 16 is {speed:.2f}x faster than batch 1):",
            "",
            common.markdown_table(["slice batch", "time", "slices/s"], seg_rows),
            "",
            f"End-to-end latency for the whole volume (counterfactual at t0={t0}, then IAP "
            "prediction and segmentation of the result):",
            "",
            common.markdown_table(
                [
                    "counterfactual sampler",
                    "counterfactual",
                    "IAP prediction",
                    "segmentation",
                    "total",
                    "how",
                ],  # fmt: skip
                e2e_rows,
            ),
        ]
    )
    common.report(
        "segmentation",
        "Segmentation throughput and end-to-end latency",
        body,
        device,
        write=not args.no_write,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
