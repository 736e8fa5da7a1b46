"""Run one core call in a napari generator thread worker, with progress, cancel and results.

The core takes ``progress(done, total, message)`` and ``should_stop()`` callbacks. A
:class:`Job` runs it on a plain thread driven by a napari ``GeneratorWorker`` that yields one
progress tuple per diffusion step / slice chunk, so that

- progress reaches the GUI thread through the worker's ``yielded`` signal (never touching Qt
  from the compute thread),
- ``Job.cancel()`` and the activity dock's cancel (``worker.quit()``) both make
  ``should_stop()`` true, and the core stops within one step,
- a cancelled job never delivers a result (so no partial layers are added),
- partial results the core hands to :meth:`Job.publish` (e.g. each finished slice chunk)
  reach ``on_partial`` on the GUI thread, in order with the progress reports.

Set ``CF_IAP_SYNC_WORKERS=1`` to run jobs synchronously on the calling thread (tests, scripts).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Generator
from typing import Any

from ..errors import CancelledError
from .event_turns import AFTER_REPAINT_MS, later

#: The core call a Job runs: ``func(progress, should_stop) -> result``.
CoreCall = Callable[[Callable[[int, int, str], None], Callable[[], bool]], Any]

_DONE = object()


class _Partial:
    """A partial result travelling from the core to the GUI thread with the progress reports."""

    def __init__(self, value: Any) -> None:
        self.value = value


class _Cancelled:
    """Returned by the worker instead of a result when the core raised CancelledError."""


class _Failed:
    """Returned instead of raising: superqt turns a RuntimeError (torch's usual error type)
    raised in a worker into a mere warning, so errors travel as values."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def sync_workers() -> bool:
    """True when ``CF_IAP_SYNC_WORKERS`` asks for synchronous jobs."""
    return os.environ.get("CF_IAP_SYNC_WORKERS", "0").strip().lower() in {"1", "true", "yes"}


def notify_error(exc: BaseException) -> None:
    """Show an error as a napari notification (the message names the problem and the fix)."""
    from napari.utils.notifications import show_error

    show_error(f"{type(exc).__name__}: {exc}")


class Job:
    """One cancellable background call of the core. All callbacks run on the GUI thread.

    Errors of the core become napari notifications (unless ``notify=False``) and reach
    ``on_error``; a cancelled job calls ``on_cancelled`` and never ``on_result``. Values the
    core passes to :meth:`publish` (from its own thread) reach ``on_partial``, before the
    result and never after the job finished.
    """

    def __init__(
        self,
        func: CoreCall,
        *,
        label: str = "cf-iap",
        on_progress: Callable[[int, int, str], None] | None = None,
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
        on_finished: Callable[[], None] | None = None,
        on_partial: Callable[[Any], None] | None = None,
        on_prepare: Callable[[], None] | None = None,
        notify: bool = True,
    ) -> None:
        self.func = func
        self.label = label
        self.on_progress = on_progress
        self.on_result = on_result
        self.on_error = on_error
        self.on_cancelled = on_cancelled
        self.on_finished = on_finished
        self.on_partial = on_partial
        self.on_prepare = on_prepare
        self.notify = notify
        self.worker: Any = None
        self.running = False
        self.finished = False
        self._stop = threading.Event()
        self._pbar: Any = None
        self._delivered = False
        self._reports: queue.SimpleQueue | None = None

    # ------------------------------------------------------------------ control
    @property
    def cancel_requested(self) -> bool:
        worker_abort = bool(self.worker is not None and self.worker.abort_requested)
        return self._stop.is_set() or worker_abort

    def cancel(self) -> None:
        """Ask the core to stop (takes effect within one diffusion step)."""
        self._stop.set()

    def publish(self, value: Any) -> None:
        """Hand a partial result to ``on_partial`` on the GUI thread (callable from the core's
        thread; in synchronous mode it is called at once)."""
        reports = self._reports
        if reports is not None:
            reports.put(_Partial(value))
        else:
            self._deliver(_Partial(value))

    def start(self, *, next_turn: bool = False) -> Job:
        """Start the job: ``on_prepare`` (GUI-thread set-up such as putting up a result
        layer), then the worker and its progress bar.

        With ``next_turn`` the job counts as running at once, ``on_prepare`` runs in a later
        event-loop turn (after the caller's own repaint, ``AFTER_REPAINT_MS``) and the worker
        starts in the turn after it, so no turn holds more than one of these GUI-thread steps
        (each a napari layer or widget build); a cancel in between stops the core before its
        first step."""
        self.running = True
        if sync_workers():
            if self._prepare():
                self._run_sync()
            return self
        if next_turn:  # after the caller's own repaint (e.g. the controls it disabled)
            later(self._prepare_then_launch, AFTER_REPAINT_MS)
            return self
        if self._prepare():
            self._launch()
        return self

    def _prepare(self) -> bool:
        """Run ``on_prepare``; if it fails the job ends as failed (no worker is started)."""
        if self.on_prepare is None:
            return True
        try:
            self.on_prepare()
        except Exception as exc:
            self._errored(exc, notify=True)
            self._finish()
            return False
        return True

    def _prepare_then_launch(self) -> None:
        if self._prepare():
            later(self._launch)

    def _launch(self) -> None:
        from napari.qt.threading import create_worker

        def drive() -> Generator[tuple[int, int, str] | _Partial, None, Any]:
            return (yield from self._drive())

        drive.__qualname__ = drive.__name__ = self.label
        self.worker = create_worker(drive, _start_thread=False)
        self.worker.yielded.connect(self._deliver)
        self.worker.returned.connect(self._returned)
        self.worker.errored.connect(self._errored)
        self.worker.finished.connect(self._finish_next_turn)
        self._open_progress_bar()
        self.worker.start()

    # ------------------------------------------------------------------ compute side
    def _drive(self) -> Generator[tuple[int, int, str] | _Partial, None, Any]:
        """Run the core on a helper thread; yield its progress reports (and published partial
        results) as they arrive."""
        reports: queue.SimpleQueue = queue.SimpleQueue()
        self._reports = reports
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["result"] = self.func(
                    lambda d, t, m="": reports.put((int(d), int(t), str(m))),
                    lambda: self.cancel_requested,
                )
            except BaseException as exc:  # re-raised on the worker below
                box["error"] = exc
            finally:
                reports.put(_DONE)

        thread = threading.Thread(target=target, name=f"{self.label}-core", daemon=True)
        thread.start()
        try:
            while (item := reports.get()) is not _DONE:
                yield item
        finally:
            if thread.is_alive():  # closed early: let the core stop, then wait for it
                self._stop.set()
                thread.join()
        if isinstance(box.get("error"), CancelledError):
            return _Cancelled()
        if "error" in box:
            return _Failed(box["error"])
        return box["result"]

    def _run_sync(self) -> None:
        self._open_progress_bar()
        try:
            result = self.func(self._progress_tuple, lambda: self.cancel_requested)
        except CancelledError:
            self._aborted()
        except Exception as exc:
            self._errored(exc, notify=True)
        else:
            self._returned(result)
        finally:
            self._finish()

    # ------------------------------------------------------------------ GUI side
    def _open_progress_bar(self) -> None:
        from napari.utils import progress

        self._pbar = progress(total=0, desc=self.label)

    def _deliver(self, item: tuple[int, int, str] | _Partial) -> None:
        """One item from the core: a partial result or a progress report."""
        if isinstance(item, _Partial):
            if not self.finished and self.on_partial is not None:
                self.on_partial(item.value)
        else:
            self._progress(item)

    def _progress_tuple(self, done: int, total: int, message: str = "") -> None:
        self._progress((done, total, message))

    def _progress(self, report: tuple[int, int, str]) -> None:
        """One report: the widget first, then napari's activity-dock bar. Updating the bar can
        process pending events (later reports, even ``finished``) re-entrantly, so nothing
        after it may assume it still runs in order."""
        done, total, message = report
        if self.finished:
            return
        if self.on_progress is not None:
            self.on_progress(done, total, message)
        pbar = self._pbar
        if pbar is not None and not pbar.disable:
            if total and pbar.total != total:
                pbar.total = total
            if done > pbar.n:
                pbar.update(done - pbar.n)  # emits napari's value event
            if self._pbar is pbar and not pbar.disable:
                pbar.set_description(f"{self.label}: {message}" if message else self.label)

    def _returned(self, value: Any) -> None:
        if isinstance(value, _Failed):
            self._errored(value.error, notify=True)
        elif isinstance(value, _Cancelled) or self.cancel_requested:
            self._aborted()
        else:
            self._delivered = True
            if self.on_result is not None:
                self.on_result(value)

    def _errored(self, exc: BaseException, notify: bool = False) -> None:
        """An error: napari relays exceptions raised in a worker to its notifications itself;
        core errors arrive as values (``notify=True``) and are shown here."""
        self._delivered = True
        if notify and self.notify:
            notify_error(exc)
        if self.on_error is not None:
            self.on_error(exc)

    def _aborted(self) -> None:
        self._delivered = True
        if self.on_cancelled is not None:
            self.on_cancelled()

    def _finish_next_turn(self) -> None:
        """Finish in a later event-loop pass: the worker's ``returned`` and ``finished``
        arrive together, and showing the result, closing the progress bar and re-enabling the
        controls need not all run in one pass (order kept: result first, then finish)."""
        later(self._finish)

    def _finish(self) -> None:
        if self.finished:
            return
        if not self._delivered:  # quit() from the activity dock: no result, no error
            self._aborted()
        self.running = False
        self.finished = True
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        if self.on_finished is not None:
            self.on_finished()


def run_job(func: CoreCall, **kwargs: Any) -> Job:
    """Create and start a :class:`Job` (see its arguments)."""
    return Job(func, **kwargs).start()
