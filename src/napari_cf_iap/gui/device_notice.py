"""Device choice (auto/cpu/cuda/mps) with a visible warning when the work runs on the CPU."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from . import core_api

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
CPU_WARNING = (
    "⚠ Running on the CPU: a slice takes seconds, a volume minutes. "
    "Prefer one slice, DDIM with few steps, or a GPU."
)


class DeviceChooser(QWidget):
    """A device combo plus a warning label; ``device`` is the resolved device string."""

    device_changed = Signal(str)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("Device"))
        self.combo = QComboBox()
        self.combo.addItems(DEVICE_CHOICES)
        row.addWidget(self.combo, 1)
        layout.addLayout(row)
        self.warning = QLabel()
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #e8a33d; font-weight: bold;")
        layout.addWidget(self.warning)
        self.device = "cpu"
        self.combo.currentTextChanged.connect(self._resolve)
        self._resolve()

    def choice(self) -> str:
        return self.combo.currentText()

    def _resolve(self, *_: Any) -> None:
        try:
            self.device = core_api.resolve_device(self.choice())
            problem = ""
        except Exception as exc:  # e.g. 'cuda' asked for on a machine without a GPU
            self.device = "cpu"
            problem = f"{exc} - using the CPU instead.\n"
        on_cpu = self.device.startswith("cpu")
        self.warning.setText(problem + (CPU_WARNING if on_cpu else f"Running on {self.device}."))
        self.warning.setVisible(bool(problem) or on_cpu)
        self.device_changed.emit(self.device)
