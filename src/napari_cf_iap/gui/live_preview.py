"""Debounced live preview: the latest request wins, a stale one is cancelled."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QObject, QTimer

from .workers import Job

DEBOUNCE_MS = 300


class LivePreview(QObject):
    """Call ``request()`` on every control change; after ``delay_ms`` of quiet, the job from
    ``make_job()`` (a not-yet-started :class:`Job`, or ``None`` to skip) runs. If a preview is
    still running then, it is cancelled and the newest request runs as soon as it has stopped,
    so at most one preview computes at a time and a stale result is never shown."""

    def __init__(
        self, make_job: Callable[[], Job | None], delay_ms: int = DEBOUNCE_MS, parent: Any = None
    ) -> None:
        super().__init__(parent)
        self.make_job = make_job
        self.enabled = False
        self.job: Job | None = None
        self.started = 0  # number of preview jobs started (for tests and the status line)
        self._pending = False
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(delay_ms)
        self.timer.timeout.connect(self.fire)

    def set_enabled(self, on: bool) -> None:
        self.enabled = on
        if on:
            self.request()
        else:
            self.timer.stop()
            self.cancel()

    def request(self, *_: Any) -> None:
        """(Re)start the debounce timer."""
        if self.enabled:
            self.timer.start()

    @property
    def busy(self) -> bool:
        return self.job is not None and self.job.running

    def cancel(self) -> None:
        self._pending = False
        if self.busy:
            self.job.cancel()  # type: ignore[union-attr]

    def fire(self) -> None:
        """Start the newest preview now (cancelling a running one first)."""
        if self.busy:
            self._pending = True
            self.job.cancel()  # type: ignore[union-attr]
            return
        job = self.make_job()
        if job is None:
            return
        own_finish = job.on_finished

        def finished() -> None:
            if own_finish is not None:
                own_finish()
            self._finished(job)

        job.on_finished = finished
        self.job = job
        self.started += 1
        job.start()

    def _finished(self, job: Job) -> None:
        if self.job is job:
            self.job = None
        if self._pending:
            self._pending = False
            self.fire()
