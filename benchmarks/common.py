"""Shared helpers of the benchmarks: machine facts, interleaved timing, tables, the docs page.

Every benchmark prints its table and rewrites its own section of ``docs/benchmarks.md``
(one section per benchmark *and device type*, so CPU and GPU results live side by side). Each
section records the command, the git commit, the machine and the load average, because on a
shared machine absolute times mean little: variants are timed interleaved in one process and
compared as ratios of medians.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"

#: Section order on the docs page (keys are ``<name>-<device type>``).
SECTIONS = (
    "throughput", "flops", "samplers", "twin-reuse", "segmentation", "memory", "gui"
)  # fmt: skip

DOC_HEADER = """# Benchmarks

Written by the scripts in `benchmarks/` (see `benchmarks/README.md`); do not edit by hand.
Re-run everything with `python -m benchmarks.run_all` (add `--device cuda` on a GPU machine).
Each section states its command, commit, machine and load average. The CPU numbers come from
a shared 2-core machine: compare variants only as the ratios measured in the same run.
"""


# ---------------------------------------------------------------------- machine
def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux, else ``platform``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


def machine_info(device: torch.device) -> str:
    """One line: CPU, cores, torch version and threads, device."""
    policy = os.environ.get("OMP_WAIT_POLICY")
    threads = f"{torch.get_num_threads()} threads" + (
        f", OMP_WAIT_POLICY={policy}" if policy else ""
    )
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__} ({threads}), "
        f"device {device} ({device_name(device)})"
    )


def load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:  # pragma: no cover - not on Linux
        return (float("nan"),) * 3


def load_text() -> str:
    one, five, fifteen = load_average()
    cores = os.cpu_count()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} (1/5/15 min) on {cores} cores"


def git_commit() -> str:
    """Short commit hash, with ``+dirty`` when tracked files differ from it."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return (sha or "unknown") + ("+dirty" if dirty else "")


def resolve(device: str) -> torch.device:
    from napari_cf_iap.device import resolve_device

    return resolve_device(device)


# ---------------------------------------------------------------------- timing
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """(seconds, result) of one call, synchronising the GPU around it."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return time.perf_counter() - start, result


def interleaved(
    variants: dict[str, Callable[[], Any]],
    device: torch.device,
    repeats: int = 3,
    warmup: int = 1,
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Time every variant ``repeats`` times in round-robin order (after ``warmup`` rounds).

    Round-robin means a load change on a shared machine hits all variants alike. Returns
    ({name: [seconds...]}, {name: last result}).
    """
    times: dict[str, list[float]] = {name: [] for name in variants}
    results: dict[str, Any] = {}
    for round_ in range(warmup + repeats):
        order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
        for name in order:
            seconds, results[name] = timed(variants[name], device)
            if round_ >= warmup:
                times[name].append(seconds)
    return times, results


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def seconds(value: float) -> str:
    """A duration in seconds, readable at any size (no exponents)."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def spread(values: Sequence[float]) -> str:
    """'median (min-max)' in seconds, compact."""
    if not values:
        return "n/a"
    return f"{seconds(median(values))} s ({seconds(min(values))}-{seconds(max(values))})"


def matmul_ceiling(
    device: torch.device, n: int = 4096, repeats: int = 3, dtype: torch.dtype = torch.float32
) -> float:
    """Achieved GFLOP/s of an n x n @ n x n matmul (median of ``repeats`` after one warm-up)."""
    gen = torch.Generator("cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device, dtype)
    b = torch.randn(n, n, generator=gen).to(device, dtype)
    times, _ = interleaved({"mm": lambda: a @ b}, device, repeats=repeats, warmup=1)
    return 2.0 * n**3 / median(times["mm"]) / 1e9


# ---------------------------------------------------------------------- output
def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |"]
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(met: bool | None, reason: str = "") -> str:
    """'met' / 'MISSED: reason' / 'n/a' for the target column."""
    if met is None:
        return "n/a" + (f" ({reason})" if reason else "")
    return "met" if met else "MISSED" + (f": {reason}" if reason else "")


def command_line() -> str:
    """The command that ran this benchmark, as a user would type it."""
    argv = list(sys.argv)
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        return " ".join(["python -m", spec.name, *argv[1:]])
    return " ".join(["python", *argv])


_BLOCK = re.compile(r"<!-- BEGIN (?P<key>[\w-]+) -->\n.*?<!-- END (?P=key) -->\n", re.S)


def _parse_doc(text: str) -> dict[str, str]:
    return {m.group("key"): m.group(0) for m in _BLOCK.finditer(text)}


def _order(key: str) -> tuple[int, str]:
    name = key.rsplit("-", 1)[0]
    return (SECTIONS.index(name) if name in SECTIONS else len(SECTIONS), key)


def render_section(
    key: str, title: str, body: str, device: torch.device, command: str | None = None
) -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"<!-- BEGIN {key} -->\n"
        f"## {title} ({device.type})\n\n"
        f"- Command: `{command or command_line()}`\n"
        f"- Commit: `{git_commit()}`, run {stamp}\n"
        f"- Machine: {machine_info(device)}\n"
        f"- Load: {load_text()} at the end of the run\n\n"
        f"{body.strip()}\n"
        f"<!-- END {key} -->\n"
    )


def write_section(
    name: str,
    title: str,
    body: str,
    device: torch.device,
    doc: Path = DOC,
    command: str | None = None,
) -> Path:
    """Replace (or add) this benchmark's section for this device type in ``doc``, atomically."""
    from napari_cf_iap.io.atomic import atomic_write_text

    key = f"{name}-{device.type}"
    blocks = _parse_doc(doc.read_text()) if doc.is_file() else {}
    blocks[key] = render_section(key, title, body, device, command)
    text = DOC_HEADER + "".join("\n" + blocks[k] for k in sorted(blocks, key=_order))
    doc.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(doc, text, overwrite=True)
    return doc


def report(
    name: str, title: str, body: str, device: torch.device, *, write: bool, doc: Path = DOC
) -> None:
    """Print the section and, unless ``write`` is false, store it in the docs page."""
    print(render_section(f"{name}-{device.type}", title, body, device))
    if write:
        path = write_section(name, title, body, device, doc)
        print(f"updated {path}")


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per variant")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0 = torch's default); use 1 on a machine shared with other "
        "jobs: oversubscribed OpenMP threads stall each other (10x slower measured here)",
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone"
    )
    return parser


def setup(args: argparse.Namespace) -> torch.device:
    """Apply ``--threads`` and return the resolved ``--device``."""
    if getattr(args, "threads", 0):
        torch.set_num_threads(int(args.threads))
    return resolve(args.device)
