"""GUI responsiveness: event-loop stalls during a volume run, and live-preview latency.

Drives the real napari plugin widget (``CounterfactualWidget``) on the real core with the
default cDDGM bundle (an untrained one of the same architecture when none is shipped; speed
does not depend on training):

* heartbeat: a 10 ms ``QTimer`` records the gaps between its ticks while the widget
  generates the whole volume (GUI defaults: DDIM, 10 steps). The longest gap is the longest
  event-loop stall. The same heartbeat over an idle period of equal length is the machine's
  own floor (a loaded machine or a software-GL display stalls even when idle). The GUI-thread
  work of the run is timed too: putting up the result layer when Run is pressed, writing each
  finished chunk into it, and turning it into the final layer;
* live preview: with "live preview" on, a target slider is moved and the time until the
  preview layer shows the new slice is measured (debounce included), ``--repeats`` times.

Run under a display, e.g. ``xvfb-run -a python -m benchmarks.bench_gui`` (this script does not
start Xvfb itself; ``benchmarks.run_all`` does).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# torch before any Qt binding (pytorch#11326)
import torch  # noqa: F401, I001

from . import common
from .fixtures import bundle_or_untrained, siemens_skyra_3t, simulated_volume
from .gui_probes import CallClock, GcPauses, Heartbeat, idle, wait_until
from .gui_segmentation import segmentation_stalls

STALL_TARGET_S = 0.100
PREVIEW_TARGET_S = 1.0


def gui_volume(shape: tuple[int, int, int]):
    return simulated_volume(shape)


def setup_widget(viewer, volume, bundle_path: Path, target) -> Any:
    from napari_cf_iap.gui.counterfactual_widget import CounterfactualWidget
    from napari_cf_iap.gui.layer_metadata import image_layer_kwargs

    layer = viewer.add_image(volume.data, **image_layer_kwargs(volume, "scan"))
    widget = CounterfactualWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.bundle.set_path(str(bundle_path))
    if not wait_until(lambda: widget.bundle.bundle is not None, 120):
        raise RuntimeError("the bundle did not load within 120 s")
    widget.target.set_record(target)
    viewer.dims.set_point(0, layer.data_to_world([volume.shape[0] // 2, 0, 0])[0])
    return widget, layer


def volume_run_stalls(
    widget, heartbeat: Heartbeat, timeout: float, spans: dict[str, Any] | None = None
) -> tuple[list[float], float, float, float]:
    """Heartbeat gaps while the widget generates the whole volume, the run's duration, when
    (seconds after Run) the longest stall ended, and how long turning the result layer into
    the final one took. ``spans``, if given, receives the GUI-thread spans of the result
    layer: ``start`` (put up at Run), ``writes`` (each chunk), ``first_chunk_at`` (seconds
    after Run) and ``finish``."""
    widget.scope_volume.setChecked(True)
    clock = CallClock()
    try:
        with GcPauses() as collector:
            heartbeat.start()
            started = time.perf_counter()
            widget.run()
            finished = wait_until(lambda: not widget.runner.running, timeout)
            duration = time.perf_counter() - started
            gaps = heartbeat.stop()
    finally:
        clock.restore()
    nan = float("nan")
    measured = {
        "start": clock.start_spans[-1] if clock.start_spans else nan,
        "writes": list(clock.write_spans),
        "first_chunk_at": clock.write_ends[0] - started if clock.write_ends else nan,
        "finish": clock.show_spans[-1] if clock.show_spans else nan,
        # (seconds after Run at which it ended, length) of every gap over the target
        "over": [
            (end - started, gap)
            for end, gap in zip(heartbeat.ends, gaps, strict=False)
            if gap > STALL_TARGET_S
        ],
        # (generation, length, seconds after Run at which it ended) of every GC pass
        "gc": [(gen, length, end - started) for gen, length, end in collector.pauses],
    }
    if spans is not None:
        spans.update(measured)
    worst_at = heartbeat.ends[int(np.argmax(gaps))] - started if gaps else nan
    if not finished:
        widget.cancel()
        raise RuntimeError(f"the volume run did not finish within {timeout:.0f} s")
    widget.scope_slice.setChecked(True)
    return gaps, duration, worst_at, measured["finish"]


def run_press_stalls(
    widget, heartbeat: Heartbeat, presses: int, window: float, timeout: float
) -> list[float]:
    """The longest heartbeat gap in the first ``window`` seconds after each of ``presses``
    Run presses that put up a new result layer (each run is then cancelled, and its layer
    removed if it finished, so the next press builds one again)."""
    widget.scope_volume.setChecked(True)
    viewer = widget.viewer
    before = [layer.name for layer in viewer.layers]
    longest = []
    for _ in range(presses):
        _remove_layers_not_in(viewer, before)
        idle(0.5)
        heartbeat.start()
        widget.run()
        idle(window)
        gaps = heartbeat.stop()
        widget.cancel()
        if not wait_until(lambda: not widget.runner.running, timeout):
            raise RuntimeError(f"a cancelled run did not stop within {timeout:.0f} s")
        longest.append(max(gaps))
    _remove_layers_not_in(viewer, before)
    widget.scope_slice.setChecked(True)
    return longest


def _remove_layers_not_in(viewer, names: list[str]) -> None:
    for layer in [layer for layer in viewer.layers if layer.name not in names]:
        viewer.layers.remove(layer)


def preview_latencies(widget, repeats: int, timeout: float) -> list[dict[str, Any]]:
    """Move the flip-angle slider; time until the preview layer shows the result (and the
    sampler settings the preview's core call got)."""
    clock = CallClock()
    try:
        widget.live.setChecked(True)  # first preview (warm-up)
        wait_until(lambda: len(clock.shown) >= 1, timeout)
        wait_until(lambda: not widget.preview.busy, timeout)
        slider = widget.target.sliders["flip_angle"]
        low, high = slider.minimum(), slider.maximum()
        out = []
        for i in range(repeats):
            idle(0.5)
            shown_before = len(clock.shown)
            value = low + (high - low) * (0.3 if i % 2 == 0 else 0.7)
            moved = time.perf_counter()
            slider.setValue(value)
            if not wait_until(lambda n=shown_before: len(clock.shown) > n, timeout):
                raise RuntimeError(f"no preview within {timeout:.0f} s of a slider change")
            start, end = clock.compute[-1]
            out.append(
                {
                    "total": clock.shown[-1] - moved,
                    "debounce": start - moved,
                    "compute": end - start,
                    "display": clock.shown[-1] - end,
                    "request": clock.requests[-1],
                    "reused": clock.reused[-1],
                }
            )
        widget.live.setChecked(False)
        return out
    finally:
        clock.restore()


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.base_parser(__doc__.split("\n")[0])
    parser.add_argument("--cddgm", default=None, help="cDDGM bundle (default: shipped)")
    parser.add_argument(
        "--shape", default="160,512,512", help="simulated volume z,y,x (a full breast MRI)"
    )
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument(
        "--presses", type=int, default=5, help="Run presses timed for the new-layer stall"
    )
    args = parser.parse_args(argv)
    device = common.setup(args)
    import os

    os.environ.setdefault("CF_IAP_DEVICE", str(device))
    import napari

    shape = tuple(int(v) for v in args.shape.split(","))
    volume = gui_volume(shape)  # type: ignore[arg-type]
    target = siemens_skyra_3t()
    with tempfile.TemporaryDirectory() as tmp:
        bundle_path, described = bundle_or_untrained("cddgm", args.cddgm, Path(tmp))
        viewer = napari.Viewer(show=True)
        try:
            widget, scan = setup_widget(viewer, volume, bundle_path, target)
            heartbeat = Heartbeat()
            presses = run_press_stalls(widget, heartbeat, args.presses, 1.0, args.timeout)
            spans: dict[str, Any] = {}
            gaps, duration, worst_at, show_s = volume_run_stalls(
                widget, heartbeat, args.timeout, spans
            )
            again: dict[str, Any] = {}  # the same target again: the result layer is reused
            again["gaps"], again["duration"], again["worst_at"], _ = volume_run_stalls(
                widget, heartbeat, args.timeout, again
            )
            heartbeat.start()
            idle(min(duration, 10.0))
            idle_gaps = heartbeat.stop()
            previews = preview_latencies(widget, args.repeats, args.timeout)
            settings = widget.sampling.request_kwargs()
            defaults = dict(widget.bundle.bundle.inference_defaults or {})
            seg_path, _ = bundle_or_untrained("segmenter", None, Path(tmp))
            segmentation = segmentation_stalls(viewer, scan, str(seg_path), heartbeat, args.timeout)
        finally:
            viewer.close()
    body = render(
        volume, described, gaps, idle_gaps, duration, worst_at, show_s, previews, settings,
        defaults, spans, again, presses, segmentation,
    )  # fmt: skip
    common.report(
        "gui", "GUI responsiveness (napari plugin)", body, device, write=not args.no_write
    )
    return 0


def render(
    volume,
    described,
    gaps,
    idle_gaps,
    duration,
    worst_at,
    show_s,
    previews,
    settings,
    defaults,
    spans: dict[str, Any] | None = None,
    again: dict[str, Any] | None = None,
    presses: Sequence[float] = (),
    segmentation: Sequence[dict[str, Any]] = (),
) -> str:
    stall = max(gaps) if gaps else float("nan")
    idle_stall = max(idle_gaps) if idle_gaps else float("nan")
    stall_met = stall <= STALL_TARGET_S if gaps else None
    at_run = bool(spans) and worst_at <= spans.get("start", 0.0) + 0.5
    reason = (
        f"{1000 * stall:.0f} ms"
        + (" when Run was pressed (napari building the result layer: add_image)" if at_run else "")
        + (
            f"; the idle event loop on this machine already stalls {1000 * idle_stall:.0f} ms"
            if idle_stall > STALL_TARGET_S
            else ""
        )
    )
    heart_rows = [
        stall_row("volume run", gaps, duration, common.verdict(stall_met, reason)),
        stall_row("idle (same viewer, afterwards)", idle_gaps, sum(idle_gaps), "floor"),
    ]
    if again:
        g2 = again["gaps"]
        stall2 = max(g2) if g2 else float("nan")
        heart_rows.insert(1, stall_row(
            "volume run again (same target: layer reused)", g2, again["duration"],
            common.verdict(stall2 <= STALL_TARGET_S if g2 else None, f"{1000 * stall2:.0f} ms"),
        ))  # fmt: skip
    if presses:
        worst = max(presses)
        heart_rows.insert(0, [
            f"Run pressed, new result layer ({len(presses)} presses; first 1 s of each)",
            f"{len(presses)} x 1 s", "-", "-", "-",
            f"{1000 * worst:.0f} ms (median {1000 * common.median(presses):.0f} ms)",
            sum(g > STALL_TARGET_S for g in presses),
            common.verdict(
                worst <= STALL_TARGET_S,
                f"{1000 * worst:.0f} ms (napari building the result layer: add_image)",
            ),
        ])  # fmt: skip
    for i, run in enumerate(segmentation):
        g = run["gaps"]
        worst = max(g) if g else float("nan")
        label = "segmentation, 2 bundles + scores vs ground truth" + (
            " (new Labels layers)" if i == 0 else " again (layers reused)"
        )
        cause = " (napari building a Labels layer)" if i == 0 else ""
        verdict = common.verdict(worst <= STALL_TARGET_S, f"{1000 * worst:.0f} ms{cause}")
        heart_rows.append(stall_row(label, g, run["duration"], verdict))
    totals = [p["total"] for p in previews]
    preview_rows = [
        [f"{k}", f"{1000 * common.median([p[k] for p in previews]):.0f} ms",
         f"{1000 * min(p[k] for p in previews):.0f}-{1000 * max(p[k] for p in previews):.0f} ms"]
        for k in ("total", "debounce", "compute", "display")
    ]  # fmt: skip
    preview_met = common.median(totals) <= PREVIEW_TARGET_S
    fast = previews[-1].get("request") if previews else None
    preview_how = (
        f"{fast.sampler.upper()}, {fast.ddim_steps} DDIM steps" if fast is not None else "unknown"
    )
    reused = sum(bool(p.get("reused")) for p in previews)
    preview_how += (
        f"; the twin edit's source rendering was reused in {reused} of {len(previews)}"
        " (kept from the first preview: a target slider moved)"
    )
    from types import SimpleNamespace

    from napari_cf_iap.pipeline.counterfactual import resolved_settings

    fields = ("steps", "guidance", "sampler", "ddim_steps")
    used = resolved_settings(SimpleNamespace(**{k: settings.get(k) for k in fields}), defaults)
    return "\n".join(
        [
            f"Volume: simulated {' x '.join(map(str, volume.shape))}; cDDGM: {described}. "
            f"GUI settings: {used.sampler.upper()}, {used.ddim_steps} DDIM steps, "
            f"noise level {used.steps}, guidance {used.guidance}.",
            "",
            "Event-loop heartbeat (10 ms QTimer) — target: no stall longer than 100 ms:",
            "",
            common.markdown_table(
                [
                    "period",
                    "duration",
                    "ticks",
                    "median gap",
                    "p99 gap",
                    "longest stall",
                    "gaps > 100 ms",
                    "target",
                ],  # fmt: skip
                heart_rows,
            ),
            "",
            f"The longest stall of the run ended {worst_at:.2f} s after Run was pressed (the run "
            f"took {duration:.2f} s until the widget reported it finished). "
            + layer_spans(spans or {"finish": show_s})
            + (
                f" Run again: longest stall ended {again['worst_at']:.2f} s after Run. "
                + layer_spans(again)
                if again
                else ""
            ),
            "",
            f"Live preview of one slice after a slider change ({len(previews)} changes; "
            "total = slider moved -> preview layer updated, including the widget's debounce; "
            f"the preview's core call ran {preview_how}, the widget's fast path):",
            "",
            common.markdown_table(["part", "median", "range"], preview_rows),
            "",
            f"Target <= {PREVIEW_TARGET_S:.0f} s: "
            + common.verdict(preview_met, f"median {common.median(totals):.2f} s"),
        ]
    )


def stall_row(label: str, gaps: Sequence[float], duration: float, target: str) -> list[Any]:
    """One row of the heartbeat table: the gaps' count, median, p99, longest and overs."""
    longest = max(gaps) if gaps else float("nan")
    return [
        label, f"{duration:.1f} s", len(gaps), f"{1000 * np.median(gaps):.0f} ms",
        f"{1000 * np.percentile(gaps, 99):.0f} ms", f"{1000 * longest:.0f} ms",
        sum(g > STALL_TARGET_S for g in gaps), target,
    ]  # fmt: skip


def layer_spans(spans: dict[str, Any]) -> str:
    """One sentence on the GUI-thread work of the run's result layer."""
    nan = float("nan")
    writes = spans.get("writes") or []
    chunk_text = (
        f"each of the {len(writes)} finished chunks was written into it and redrawn "
        f"(`PendingResult.write`) in {1000 * common.median(writes):.0f} ms median, "
        f"{1000 * max(writes):.0f} ms at most, the first {spans['first_chunk_at']:.2f} s after Run"
        if writes
        else "no chunk was written into it while the run went on"
    )
    over = spans.get("over") or []
    over_text = (
        " Gaps over 100 ms (ended s after Run: length): "
        + ", ".join(f"{at:.2f} s: {1000 * gap:.0f} ms" for at, gap in over)
        + "."
        if over
        else ""
    )
    return (
        gc_text(spans.get("gc") or [])
        + "GUI-thread work on the result layer: putting it up when Run was pressed, before the "
        f"worker started (`start_counterfactual`) took {1000 * spans.get('start', nan):.0f} ms; "
        f"{chunk_text}; turning it into the final layer (`show_counterfactual`) took "
        f"{1000 * spans['finish']:.0f} ms.{over_text}"
    )


def gc_text(passes: list[tuple[int, float, float]]) -> str:
    """One sentence on the garbage collector's passes during the run (they hold the GIL)."""
    if not passes:
        return "The garbage collector did not run. "
    gen, length, at = max(passes, key=lambda p: p[1])
    full = sum(p[0] == 2 for p in passes)
    return (
        f"The garbage collector ran {len(passes)} times ({full} full collections); the longest "
        f"pass (generation {gen}) took {1000 * length:.0f} ms and ended {at:.2f} s after Run. "
    )


if __name__ == "__main__":
    raise SystemExit(main())
