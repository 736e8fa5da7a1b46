"""A combo box listing the viewer's layers of some types, kept in sync with the layer list."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QComboBox

from .layer_metadata import layer_kind


class LayerPicker(QComboBox):
    """Pick a layer by name; ``layer_changed`` fires with the layer (or ``None``)."""

    layer_changed = Signal(object)

    def __init__(
        self,
        viewer: Any,
        layer_types: tuple[str, ...] = ("Image",),
        *,
        allow_none: bool = False,
        none_text: str = "(none)",
        parent: Any = None,
    ) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.layer_types = layer_types
        self.allow_none = allow_none
        self.none_text = none_text
        self.setMinimumContentsLength(12)
        self.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        events = viewer.layers.events
        for event in (events.inserted, events.removed, events.moved, events.changed):
            event.connect(self.refresh)
        for layer in viewer.layers:
            layer.events.name.connect(self.refresh)
        events.inserted.connect(self._watch_name)
        self.currentIndexChanged.connect(lambda _: self.layer_changed.emit(self.layer()))
        self.refresh()

    def _watch_name(self, event: Any) -> None:
        event.value.events.name.connect(self.refresh)

    def candidates(self) -> list[Any]:
        return [layer for layer in self.viewer.layers if layer_kind(layer) in self.layer_types]

    def refresh(self, *_: Any) -> None:
        """Re-list the layers, keeping the current choice when it still exists."""
        current = self.currentText()
        names = [layer.name for layer in self.candidates()]
        items = ([self.none_text] if self.allow_none else []) + names
        if items == [self.itemText(i) for i in range(self.count())]:
            return
        self.blockSignals(True)
        self.clear()
        self.addItems(items)
        if current in items:
            self.setCurrentIndex(items.index(current))
        elif names and not self.allow_none:
            self.setCurrentIndex(0)
        self.blockSignals(False)
        if self.currentText() != current:
            self.layer_changed.emit(self.layer())

    def layer(self) -> Any:
        """The chosen layer, or ``None``."""
        name = self.currentText()
        if not name or (self.allow_none and self.currentIndex() == 0):
            return None
        layers = self.viewer.layers
        return layers[name] if name in layers else None  # noqa: SIM401 (LayerList has no get)

    def set_layer(self, layer: Any) -> None:
        """Choose ``layer`` (refreshing first, so a just-added layer is listed)."""
        self.refresh()
        index = self.findText(layer.name if layer is not None else self.none_text)
        if index >= 0:
            self.setCurrentIndex(index)
