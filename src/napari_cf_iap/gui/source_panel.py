"""The source-layer picker: shows the layer's IAPs, or lets the user enter the missing ones."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QGroupBox, QLabel, QVBoxLayout, QWidget

from ..errors import CfIapError
from ..iap import IAP_LABELS, IAPRecord, IAPVocabulary
from ..volume import Volume
from .iap_controls import IapControls
from .layer_metadata import check_image_layer, layer_iap, layer_to_volume
from .layer_picker import LayerPicker


def missing_message(layer_name: str, missing: list[str]) -> str:
    names = ", ".join(IAP_LABELS.get(n, n) for n in missing)
    return (
        f"⚠ {layer_name!r} lacks IAPs: {names}. Enter them below; "
        "unknown ones are recorded as unknown."
    )


class SourcePanel(QWidget):
    """Choose the source layer; ``record()`` is its IAPs (or the manual entry, if enabled)."""

    changed = Signal()

    def __init__(self, viewer: Any, vocabulary: IAPVocabulary, parent: Any = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.picker = LayerPicker(viewer, ("Image", "Labels"))
        layout.addWidget(self.picker)
        self.info = QLabel()
        self.info.setWordWrap(True)
        layout.addWidget(self.info)
        self.manual_box = QGroupBox("Enter source IAPs manually")
        self.manual_box.setCheckable(True)
        self.manual_box.setChecked(False)
        box_layout = QVBoxLayout(self.manual_box)
        self.manual = IapControls(vocabulary, editable=True)
        box_layout.addWidget(self.manual)
        self.manual.setVisible(False)
        self.manual_box.toggled.connect(self._on_manual_toggled)
        layout.addWidget(self.manual_box)
        self.picker.layer_changed.connect(self._on_layer)
        self.manual.changed.connect(self._update_info)
        self.manual.changed.connect(self.changed.emit)
        self._on_layer(self.picker.layer())

    def layer(self) -> Any:
        return self.picker.layer()

    def set_vocabulary(self, vocabulary: IAPVocabulary) -> None:
        self.manual.set_vocabulary(vocabulary)

    def problem(self) -> str | None:
        """Why the chosen layer cannot be a source, or ``None``."""
        try:
            check_image_layer(self.layer())
        except CfIapError as exc:
            return str(exc)
        return None

    def record(self) -> IAPRecord:
        layer = self.layer()
        known = layer_iap(layer) if layer is not None else IAPRecord()
        return self.manual.record() if self.manual_box.isChecked() else known

    def volume(self) -> Volume:
        """The source as a Volume for the core (raises InputError on bad input)."""
        return layer_to_volume(self.layer(), iap=self.record())

    def _on_manual_toggled(self, on: bool) -> None:
        self.manual.setVisible(on)
        self._update_info()
        self.changed.emit()

    def _on_layer(self, layer: Any) -> None:
        if layer is not None and self.problem() is None:
            record = layer_iap(layer)
            self.manual.set_record(record)
            self.manual_box.setChecked(bool(record.missing()))
        self._update_info()
        self.changed.emit()

    def _update_info(self) -> None:
        layer = self.layer()
        problem = self.problem()
        if problem:
            self.info.setText(f"⚠ {problem}")
            return
        record = layer_iap(layer)
        missing = record.missing()
        lines = [missing_message(layer.name, missing)] if missing else []
        if self.manual_box.isChecked():
            lines.append(f"Source IAPs (entered): {self.manual.record().summary()}")
        else:
            lines.append(f"Source IAPs: {record.summary()}")
        self.info.setText("\n".join(lines))
