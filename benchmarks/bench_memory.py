"""Peak memory of the pipeline on a 512 x 512 volume: does it grow with the slice count?

Each stage (counterfactual, IAP prediction, segmentation) of each slice count (40 and 160
by default) runs in its own fresh process, so no stage inherits the heap another left
behind. The child loads the three bundles, builds the volume (a simulated subject upsampled
to 512², tiled to N slices), records its RSS as the baseline and runs the stage (the
counterfactual with DDIM, 1 step: the number of steps does not change memory), sampling RSS
with psutil every 2 ms (and reading ``ru_maxrss``); on CUDA also
``torch.cuda.max_memory_allocated``. The result arrays themselves scale with N (the
counterfactual volume is N x 512 x 512 float32), so the table also shows the working memory
above baseline *minus* the stage's own output: that is what must not grow with N. One
process's peak is a single sample of a noisy allocator high-water mark (the IAP predictor's
batch-32 forward pass alone peaked 41-48 MB in repeated runs), so every stage and N runs
``--repeats`` times (default 3), each in a fresh process, and the median run is reported with
the min-max.

    python -m benchmarks.bench_memory [--device cuda] [--slices 40 160]
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import common

MB = 1024.0**2
IN_PLANE = 512
#: allowed growth of the working memory (minus outputs) from the smallest to the largest N
GROWTH_TARGET = 1.25


class PeakSampler:
    """Track the process's peak RSS (psutil) in a background thread while a stage runs."""

    def __init__(self, interval: float = 0.002) -> None:
        import psutil

        self.process = psutil.Process()
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def measure(self, fn: Callable[[], Any]) -> tuple[int, Any]:
        """(peak RSS in bytes during ``fn``, its result)."""
        self.peak = self.rss()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        try:
            result = fn()
        finally:
            self._stop.set()
            self._thread.join()
        self.peak = max(self.peak, self.rss())
        return self.peak, result


def test_volume(n_slices: int, seed: int = 5, base: tuple[int, int] = (20, IN_PLANE // 4)):
    """An N x 512 x 512 float32 volume: a simulated subject upsampled 4x in-plane, tiled in z."""
    from napari_cf_iap.simulator import simulate_volume
    from napari_cf_iap.volume import Volume

    small = simulate_volume(seed, shape=(base[0], base[1], base[1])).volume
    factor = IN_PLANE // base[1]
    data = np.repeat(np.repeat(small.data, factor, axis=1), factor, axis=2)
    reps = -(-n_slices // data.shape[0])
    data = np.ascontiguousarray(np.tile(data, (reps, 1, 1))[:n_slices], dtype=np.float32)
    affine = np.array(small.affine, dtype=float)
    affine[:3, 1:3] /= factor  # row and column steps
    spacing = (small.spacing[0], small.spacing[1] / factor, small.spacing[2] / factor)
    return Volume(data=data, spacing=spacing, affine=affine, iap=small.iap, metadata={})


STAGES = ("counterfactual", "IAP prediction", "segmentation")


def child(
    n_slices: int,
    bundle_paths: dict[str, str],
    device_name: str,
    base=(20, IN_PLANE // 4),
    stages: Sequence[str] = STAGES,
) -> dict[str, Any]:
    """Run pipeline ``stages`` on an N-slice volume in this process; return the memory
    figures (the parent runs one stage per process, so no stage inherits another's heap)."""
    import torch

    from napari_cf_iap.bundles.bundle import load_bundle
    from napari_cf_iap.pipeline import (
        CounterfactualRequest,
        generate_counterfactual,
        predict_iap,
        segment,
    )

    device = common.resolve(device_name)
    bundles = {k: load_bundle(p, device, kind=k) for k, p in bundle_paths.items()}
    volume = test_volume(n_slices, base=base)
    target = bundles["cddgm"].vocab.validate(_target_record())
    sampler = PeakSampler()
    baseline = sampler.rss()
    request = CounterfactualRequest(target=target, sampler="ddim", ddim_steps=1)
    dev = str(device)
    out: dict[str, Any] = {
        "slices": n_slices,
        "volume_mb": volume.data.nbytes / MB,
        "baseline_mb": baseline / MB,
    }
    calls: dict[str, Callable[[], Any]] = {
        "counterfactual": lambda: generate_counterfactual(
            volume, request, bundles["cddgm"], device=dev
        ),
        "IAP prediction": lambda: predict_iap(volume, bundles["iap_predictor"], device=dev),
        "segmentation": lambda: segment(volume, bundles["segmenter"], device=dev),
    }
    for name in stages:
        fn = calls[name]
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        before = sampler.rss()
        peak, result = sampler.measure(fn)
        output = result if isinstance(result, np.ndarray) else getattr(result, "data", None)
        output_mb = output.nbytes / MB if isinstance(output, np.ndarray) else 0.0
        out[name] = {
            "before_mb": before / MB,
            "peak_mb": peak / MB,
            "above_baseline_mb": (peak - baseline) / MB,
            "output_mb": output_mb,
            "working_mb": (peak - baseline) / MB - output_mb,
            "gpu_peak_mb": (
                torch.cuda.max_memory_allocated(device) / MB if device.type == "cuda" else None
            ),
        }
        del result, output
    out["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return out


def _target_record():
    from napari_cf_iap.iap import IAPRecord

    return IAPRecord.create(
        manufacturer="SIEMENS",
        model_name="Skyra",
        field_strength=3.0,
        scan_options="FS",
        flip_angle=10.0,
        slice_thickness=1.0,
        echo_time=1.4,
        repetition_time=4.2,
    )


def run_child(n: int, paths: dict[str, str], args) -> dict[str, Any]:
    """Run :func:`child` ``args.repeats`` times per stage, each in a fresh interpreter; keep
    the run with the median working memory (and the min-max over the runs): one process's
    peak is a single sample of a noisy allocator high-water mark."""
    merged: dict[str, Any] = {}
    for stage in STAGES:
        runs = [_run_stage(n, stage, paths, args) for _ in range(max(1, int(args.repeats)))]
        runs.sort(key=lambda r: r[stage]["working_mb"])
        result = runs[(len(runs) - 1) // 2]
        merged[stage] = dict(result[stage])
        merged[stage]["working_range"] = [r[stage]["working_mb"] for r in (runs[0], runs[-1])]
        merged[stage]["runs"] = len(runs)
        merged.setdefault("ru_maxrss_mb", 0.0)
        merged["ru_maxrss_mb"] = max(merged["ru_maxrss_mb"], result["ru_maxrss_mb"])
        merged.update({k: result[k] for k in ("slices", "volume_mb", "baseline_mb")})
    return merged


def _run_stage(n: int, stage: str, paths: dict[str, str], args) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.bench_memory", "--child", str(n),
           "--stage", stage, "--bundles", json.dumps(paths), "--device", args.device]  # fmt: skip
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    done = subprocess.run(cmd, cwd=common.REPO, capture_output=True, text=True, env=os.environ)
    if done.returncode != 0:
        raise RuntimeError(f"memory child for {n} slices failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.base_parser(__doc__.split("\n")[0])
    parser.add_argument("--slices", type=int, nargs="+", default=[40, 160])
    parser.add_argument("--cddgm", default=None)
    parser.add_argument("--iap", default=None)
    parser.add_argument("--seg", default=None)
    parser.add_argument("--child", type=int, default=None, help=argparse_hidden())
    parser.add_argument("--bundles", default=None, help=argparse_hidden())
    parser.add_argument("--stage", default=None, help=argparse_hidden())
    args = parser.parse_args(argv)
    device = common.setup(args)
    if args.child is not None:
        stages = [args.stage] if args.stage else STAGES
        print(json.dumps(child(args.child, json.loads(args.bundles), args.device, stages=stages)))
        return 0

    from .fixtures import bundle_or_untrained

    with tempfile.TemporaryDirectory() as tmp:
        given = {"cddgm": args.cddgm, "iap_predictor": args.iap, "segmenter": args.seg}
        paths, described = {}, {}
        for kind, path in given.items():
            found, described[kind] = bundle_or_untrained(kind, path, Path(tmp))
            paths[kind] = str(found)
        results = [run_child(n, paths, args) for n in sorted(args.slices)]
    common.report(
        "memory",
        "Peak memory on a 512² volume vs slice count",
        render(results, described, device),
        device,
        write=not args.no_write,
    )
    return 0


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


def _with_range(stage: dict[str, Any]) -> str:
    """Working memory of the median run, with the min-max over the runs."""
    low, high = stage.get("working_range", [stage["working_mb"]] * 2)
    text = f"{stage['working_mb']:.0f}"
    return text if stage.get("runs", 1) < 2 else f"{text} ({low:.0f}-{high:.0f})"


def render(results: list[dict[str, Any]], described: dict[str, str], device) -> str:
    stages = STAGES
    small, large = results[0], results[-1]
    rows = []
    for r in results:
        for stage in stages:
            s = r[stage]
            gpu = f"{s['gpu_peak_mb']:.0f}" if s["gpu_peak_mb"] is not None else "n/a"
            rows.append(
                [
                    f"{r['slices']} x 512²",
                    stage,
                    f"{r['volume_mb']:.0f}",
                    f"{r['baseline_mb']:.0f}",
                    f"{s['peak_mb']:.0f}",
                    f"{s['above_baseline_mb']:.0f}",
                    f"{s['output_mb']:.0f}",
                    _with_range(s),
                    gpu,
                ]  # fmt: skip
            )
    verdicts = []
    for stage in stages:
        a, b = small[stage]["working_mb"], large[stage]["working_mb"]
        growth = b / a if a > 1 else float("inf") if b > 1 else 1.0
        per_slice = (b - a) / (large["slices"] - small["slices"])
        met = growth <= GROWTH_TARGET
        verdicts.append(
            [
                stage,
                f"{a:.0f} -> {b:.0f} MB",
                f"{growth:.2f}x",
                f"{per_slice:.2f} MB/slice",
                common.verdict(met, f"grows {per_slice:.2f} MB per slice"),
            ]  # fmt: skip
        )
    headers = ["volume", "stage", "volume MB", "baseline RSS MB", "peak RSS MB",
               "peak - baseline MB", "stage output MB", "working MB (minus output)",
               "GPU peak MB"]  # fmt: skip
    return "\n".join(
        [
            "Bundles: " + ", ".join(f"{k} = {v}" for k, v in described.items()) + ". "
            "Counterfactual with DDIM, 1 step (memory does not depend on the step count). "
            "Baseline = RSS after loading the bundles and building the volume. "
            f"Each stage and slice count ran in {small[STAGES[0]].get('runs', 1)} fresh "
            "process(es); the row is the run with the median working memory (min-max over "
            "the runs in brackets), the growth verdict compares those medians.",
            "",
            common.markdown_table(headers, rows),
            "",
            f"Growth of the working memory (minus the stage's own output) from "
            f"{small['slices']} to {large['slices']} slices (target: flat, <= "
            f"{GROWTH_TARGET}x):",
            "",
            common.markdown_table(
                ["stage", "working memory", "growth", "per extra slice", "no growth with N"],
                verdicts,
            ),
            "",
            f"Process peak (ru_maxrss): {small['ru_maxrss_mb']:.0f} MB at {small['slices']} "
            f"slices, {large['ru_maxrss_mb']:.0f} MB at {large['slices']}.",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
