"""Run / Cancel buttons, a progress bar and a status line shared by the widgets."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from .workers import Job


class RunPanel(QWidget):
    """``run_button`` calls ``on_run``; ``start(job, controls)`` runs a job with the controls
    disabled (Cancel stays enabled) and shows its progress per step."""

    def __init__(self, on_run: Callable[[], None], run_text: str = "Run", parent: Any = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        buttons = QHBoxLayout()
        self.run_button = QPushButton(run_text)
        self.run_button.clicked.connect(lambda *_: on_run())
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        self.progress = QProgressBar()
        layout.addWidget(self.progress)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.job: Job | None = None
        self._controls: list[QWidget] = []

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def start(self, job: Job, controls: Iterable[QWidget] = (), *, next_turn: bool = False) -> Job:
        """Start ``job``; disable ``controls`` and Run until it finishes (at once, also when
        the job's worker starts in the next event-loop turn, see :meth:`Job.start`)."""
        own_progress, own_finish = job.on_progress, job.on_finished
        own_cancel, own_error = job.on_cancelled, job.on_error

        def progress(done: int, total: int, message: str) -> None:
            self.show_progress(done, total, message)
            if own_progress is not None:
                own_progress(done, total, message)

        def cancelled() -> None:
            self.status.setText("cancelled (nothing added)")
            if own_cancel is not None:
                own_cancel()

        def errored(exc: BaseException) -> None:
            self.status.setText(f"⚠ {exc}")
            if own_error is not None:
                own_error(exc)

        def finished() -> None:
            self._set_running(False)
            self.job = None
            if own_finish is not None:
                own_finish()

        job.on_progress, job.on_cancelled = progress, cancelled
        job.on_error, job.on_finished = errored, finished
        self._controls = list(controls)
        self.job = job
        self._set_bar(0, self.progress.maximum())
        self.status.setText(f"{job.label}…")
        self._set_running(True)
        return job.start(next_turn=next_turn)

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.status.setText("cancelling…")

    def show_progress(self, done: int, total: int, message: str = "") -> None:
        self._set_bar(int(done), max(int(total), 1))
        self.status.setText(message or f"{done}/{total}")

    def _set_bar(self, value: int, maximum: int) -> None:
        """Set the bar without its synchronous repaint (QProgressBar.setValue repaints at
        once, which also recomposes napari's OpenGL canvas, ~30 ms in software GL); the bar
        is redrawn with the window's next batched update instead."""
        bar = self.progress
        bar.setUpdatesEnabled(False)
        try:
            bar.setMaximum(maximum)
            bar.setValue(value)
        finally:
            bar.setUpdatesEnabled(True)  # schedules an update()

    def _set_running(self, running: bool) -> None:
        for widget in self._controls:
            widget.setEnabled(not running)
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
