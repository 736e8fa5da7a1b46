"""Probes for the GUI benchmark: an event-loop heartbeat, the garbage collector's passes, a
non-blocking wait, and timestamps of the counterfactual widget's core calls and layer updates.

They only observe: the widget's module-level helpers are wrapped, never edited, and restored.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any


class Heartbeat:
    """A 10 ms QTimer that records the gaps between its ticks while ``active`` is true."""

    def __init__(self, interval_ms: int = 10) -> None:
        from qtpy.QtCore import QTimer

        self.gaps: list[float] = []
        self.ends: list[float] = []  # perf_counter time at which each gap ended
        self.active = False
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        if self.active:
            self.gaps.append(now - self._last)
            self.ends.append(now)
        self._last = now

    def start(self) -> None:
        self.gaps, self.ends = [], []
        self._last = time.perf_counter()
        self.active = True

    def stop(self) -> list[float]:
        self.active = False
        return list(self.gaps)


class GcPauses:
    """Python's garbage-collector pauses (generation, seconds, perf_counter end) while
    ``active``: a collection in any thread holds the GIL, so it stalls the event loop too."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float, float]] = []
        self.active = False
        self._began = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._began = now
        elif self.active:
            self.pauses.append((int(info["generation"]), now - self._began, now))

    def __enter__(self) -> GcPauses:
        self.pauses, self.active = [], True
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.active = False
        gc.callbacks.remove(self._callback)


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Run the Qt event loop (never blocking it) until ``condition()`` or the timeout."""
    from qtpy.QtCore import QEventLoop, QTimer

    if condition():
        return True
    loop = QEventLoop()
    checker = QTimer()
    checker.setInterval(5)
    deadline = time.perf_counter() + timeout

    def check() -> None:
        if condition() or time.perf_counter() > deadline:
            loop.quit()

    checker.timeout.connect(check)
    checker.start()
    loop.exec_()
    checker.stop()
    return condition()


def idle(seconds: float) -> None:
    wait_until(lambda: False, seconds)


class CallClock:
    """Timestamps of the widget's core calls and of its layer updates (wrapping, not editing,
    the widget's module-level helpers and the running result's chunk writer)."""

    def __init__(self) -> None:
        from napari_cf_iap.gui import core_api, counterfactual_widget, results

        self.core_api, self.module, self.results = core_api, counterfactual_widget, results
        self.real_generate = core_api.generate_counterfactual
        self.real_show = counterfactual_widget.show_counterfactual
        self.real_start = counterfactual_widget.start_counterfactual
        self.real_write = results.PendingResult.write
        self.compute: list[tuple[float, float]] = []
        self.requests: list[Any] = []  # the CounterfactualRequest of every core call
        self.reused: list[int] = []  # slices whose twin source rendering was reused, per call
        self.shown: list[float] = []
        self.show_spans: list[float] = []  # seconds spent adding/updating the final layer
        self.start_spans: list[float] = []  # seconds spent putting up a Run's layer
        self.write_spans: list[float] = []  # seconds spent writing one chunk into it
        self.write_ends: list[float] = []

        def generate(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            self.requests.append(args[1] if len(args) > 1 else kwargs.get("request"))
            result = self.real_generate(*args, **kwargs)
            self.compute.append((start, time.perf_counter()))
            meta = result.metadata.get("counterfactual") or {}
            self.reused.append(int(meta.get("reference_reused") or 0))
            return result

        def show(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            layer = self.real_show(*args, **kwargs)
            self.shown.append(time.perf_counter())
            self.show_spans.append(self.shown[-1] - start)
            return layer

        def start(*args: Any, **kwargs: Any) -> Any:
            begin = time.perf_counter()
            pending = self.real_start(*args, **kwargs)
            self.start_spans.append(time.perf_counter() - begin)
            return pending

        real_write = self.real_write

        def write(pending: Any, *args: Any, **kwargs: Any) -> None:
            begin = time.perf_counter()
            real_write(pending, *args, **kwargs)
            self.write_ends.append(time.perf_counter())
            self.write_spans.append(self.write_ends[-1] - begin)

        core_api.generate_counterfactual = generate
        counterfactual_widget.show_counterfactual = show
        counterfactual_widget.start_counterfactual = start
        results.PendingResult.write = write  # type: ignore[method-assign]

    def restore(self) -> None:
        self.core_api.generate_counterfactual = self.real_generate
        self.module.show_counterfactual = self.real_show
        self.module.start_counterfactual = self.real_start
        self.results.PendingResult.write = self.real_write  # type: ignore[method-assign]
