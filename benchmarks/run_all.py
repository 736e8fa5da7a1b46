"""Run every benchmark, each in a fresh process, and update docs/benchmarks.md.

    python -m benchmarks.run_all                      # CPU here, CUDA where there is one
    python -m benchmarks.run_all --threads 1          # on a machine shared with other jobs
    python -m benchmarks.run_all --only throughput flops --device cuda

The GUI benchmark needs a display; without ``$DISPLAY`` it is started under ``xvfb-run -a``
(skipped, with a note, when neither is available). A failing benchmark does not stop the
others; the exit status is non-zero if any failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence

from .common import REPO

#: name -> (module, bundle options it accepts)
BENCHMARKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "throughput": ("benchmarks.bench_throughput", ("cddgm",)),
    "flops": ("benchmarks.bench_flops", ("cddgm",)),
    "samplers": ("benchmarks.bench_samplers", ("cddgm", "iap")),
    "twin-reuse": ("benchmarks.bench_twin_reuse", ("cddgm",)),
    "segmentation": ("benchmarks.bench_segmentation", ("cddgm", "iap", "seg")),
    "memory": ("benchmarks.bench_memory", ("cddgm", "iap", "seg")),
    "gui": ("benchmarks.bench_gui", ("cddgm",)),
}


def command(name: str, args: argparse.Namespace) -> list[str] | None:
    """The command line of one benchmark (None when it cannot run here)."""
    module, accepts = BENCHMARKS[name]
    cmd = [sys.executable, "-m", module, "--device", args.device]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.repeats:
        cmd += ["--repeats", str(args.repeats)]
    if args.no_write:
        cmd.append("--no-write")
    for option in accepts:
        value = getattr(args, option)
        if value:
            cmd += [f"--{option}", value]
    if name == "gui" and not os.environ.get("DISPLAY"):
        xvfb = shutil.which("xvfb-run")
        if xvfb is None:
            return None
        cmd = [xvfb, "-a", "-s", "-screen 0 1280x1024x24", *cmd]
    return cmd


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=0, help="0 = each benchmark's default")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=None)
    parser.add_argument("--skip", nargs="+", choices=list(BENCHMARKS), default=[])
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--cddgm", default=None, help="cDDGM bundle (default: shipped)")
    parser.add_argument("--iap", default=None, help="IAP-predictor bundle (default: shipped)")
    parser.add_argument("--seg", default=None, help="segmenter bundle (default: shipped)")
    args = parser.parse_args(argv)

    names = [n for n in (args.only or BENCHMARKS) if n not in args.skip]
    outcome: dict[str, str] = {}
    for name in names:
        cmd = command(name, args)
        if cmd is None:
            outcome[name] = "skipped (no display and no xvfb-run)"
            continue
        print(f"\n=== {name}: {' '.join(cmd)}", flush=True)
        started = time.perf_counter()
        code = subprocess.run(cmd, cwd=REPO).returncode
        seconds = time.perf_counter() - started
        outcome[name] = f"{'ok' if code == 0 else f'FAILED (exit {code})'} in {seconds:.0f} s"
    print("\n=== summary")
    for name, text in outcome.items():
        print(f"{name:14s} {text}")
    return 0 if all(text.startswith(("ok", "skipped")) for text in outcome.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
