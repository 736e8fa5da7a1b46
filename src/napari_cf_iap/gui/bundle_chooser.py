"""Choose a model bundle (the shipped default or a user path), load it on a worker, unload it."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from . import core_api
from .workers import Job

DEFAULT_TEXT = ""  # an empty path means "the default bundle shipped with the package"


class BundleChooser(QWidget):
    """Path field (empty = default bundle), Browse and Unload; emits ``loaded(bundle)``.

    The bundle is loaded on a worker thread whenever the path or the device changes; the
    previous bundle is unloaded through the registry so its (GPU) memory is freed.
    """

    loaded = Signal(object)
    unloaded = Signal()

    def __init__(self, kind: str, parent: Any = None) -> None:
        super().__init__(parent)
        self.kind = kind
        self.device = "cpu"
        self.bundle: Any = None
        self._job: Job | None = None
        self._pending = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.path = QLineEdit()
        self.path.setPlaceholderText(f"default {kind} bundle (shipped, offline)")
        self.path.editingFinished.connect(self.reload)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.unload_button = QPushButton("Unload")
        self.unload_button.setToolTip("Drop the model and free its memory (GPU included)")
        self.unload_button.clicked.connect(self.unload)
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        row.addWidget(self.unload_button)
        layout.addLayout(row)
        self.status = QLabel("not loaded")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

    def spec(self) -> str | None:
        text = self.path.text().strip()
        return text or None

    def load_if_idle(self) -> None:
        """Load the chosen bundle unless one is loaded or loading."""
        if self.bundle is None and self._job is None:
            self.reload()

    def set_path(self, path: Any) -> None:
        self.path.setText("" if path is None else str(path))
        self.reload()

    def set_device(self, device: str) -> None:
        if device != self.device:
            self.device = device
            if self.bundle is not None or self._job is not None:
                self.reload()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, f"Choose a {self.kind} bundle folder")
        if folder:
            self.set_path(folder)

    # ------------------------------------------------------------------ loading
    def reload(self, *_: Any) -> None:
        """Unload the current bundle and load the chosen one on a worker."""
        if self._job is not None and self._job.running:
            self._pending = True  # load again once the running load is done
            return
        self.unload()
        spec, device, kind = self.spec(), self.device, self.kind
        self.status.setText(f"loading {spec or 'default'} {kind} bundle on {device}…")
        self._job = Job(
            lambda progress, should_stop: core_api.get_bundle(kind, spec, device=device),
            label=f"load {kind} bundle",
            on_result=self._on_loaded,
            on_error=lambda exc: self.status.setText(f"could not load: {exc}"),
            on_finished=self._on_finished,
            notify=False,  # shown in the status line; Run reports it again if still wrong
        ).start()

    def _on_loaded(self, bundle: Any) -> None:
        self.bundle = bundle
        path = getattr(bundle, "path", None)
        name = getattr(path, "name", None) or (str(path) if path else "default")
        self.status.setText(f"loaded {self.kind} bundle {name!r} on {self.device}")
        self.status.setToolTip(str(path or ""))
        self.loaded.emit(bundle)

    def _on_finished(self) -> None:
        self._job = None
        if self._pending:
            self._pending = False
            self.reload()

    def unload(self, *_: Any) -> None:
        """Drop the bundle through the registry (frees GPU memory)."""
        if self.bundle is None:
            return
        bundle, self.bundle = self.bundle, None
        core_api.unload_bundle(bundle)
        self.status.setText("unloaded")
        self.unloaded.emit()
