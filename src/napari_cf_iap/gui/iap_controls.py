"""A form for one IAP record: combos from a vocabulary and labelled sliders over its ranges."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QComboBox, QFormLayout, QLabel, QWidget
from superqt import QLabeledDoubleSlider

from ..iap import CATEGORICAL_IAPS, CONTINUOUS_IAPS, IAP_LABELS, IAPRecord, IAPVocabulary
from ..iap.normalise import field_strength_label

_DECIMALS = {"flip_angle": 1, "slice_thickness": 2, "echo_time": 2, "repetition_time": 2}


class IapControls(QWidget):
    """Edit an IAP record. The model implies the manufacturer; ``changed`` fires on any edit.

    With ``editable=True`` the combos also accept typed values (manual entry of a source
    record whose scanner is not in the vocabulary).
    """

    changed = Signal()

    def __init__(self, vocabulary: IAPVocabulary, *, editable: bool = False, parent: Any = None):
        super().__init__(parent)
        self.vocabulary = vocabulary
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.manufacturer = QLabel()
        layout.addRow("Manufacturer", self.manufacturer)
        self.combos: dict[str, QComboBox] = {}
        for name in CATEGORICAL_IAPS:
            combo = QComboBox()
            combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(10)
            combo.setEditable(editable)
            combo.setObjectName(name)
            combo.currentTextChanged.connect(self._emit)
            self.combos[name] = combo
            layout.addRow(IAP_LABELS[name], combo)
        self.sliders: dict[str, QLabeledDoubleSlider] = {}
        for name in CONTINUOUS_IAPS:
            slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
            slider.setObjectName(name)
            slider.setDecimals(_DECIMALS[name])
            slider.valueChanged.connect(self._emit)
            self.sliders[name] = slider
            layout.addRow(IAP_LABELS[name], slider)
        self.extrapolate = False
        self.set_vocabulary(vocabulary)

    # ------------------------------------------------------------------ vocabulary
    def set_vocabulary(self, vocabulary: IAPVocabulary) -> None:
        """Refill the combos and slider ranges, keeping the current values where valid."""
        previous = self.record() if self.combos["model_name"].count() else None
        self.vocabulary = vocabulary
        self.blockSignals(True)
        for name, combo in self.combos.items():
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(vocabulary.categories[name])
            combo.blockSignals(False)
        for name, slider in self.sliders.items():
            low, high = self._range(name)
            slider.setRange(low, high)
            slider.setValue(sum(vocabulary.continuous_range[name]) / 2)
        self.blockSignals(False)
        if previous is not None:
            self.set_record(previous)
        self._update_manufacturer()

    def _range(self, name: str) -> tuple[float, float]:
        low, high = self.vocabulary.continuous_range[name]
        return (low / 2, high * 1.5) if self.extrapolate else (low, high)

    def set_extrapolation(self, on: bool) -> None:
        """Widen the sliders beyond the trained ranges (x0.5 .. x1.5) or clamp back."""
        self.extrapolate = on
        self.blockSignals(True)
        for name, slider in self.sliders.items():
            value = float(slider.value())
            low, high = self._range(name)
            slider.setRange(low, high)
            slider.setValue(min(max(value, low), high))
        self.blockSignals(False)
        self._emit()

    # ------------------------------------------------------------------ values
    def record(self) -> IAPRecord:
        """The record shown (the manufacturer follows the model)."""
        model = self.combos["model_name"].currentText() or None
        values: dict[str, Any] = {
            "manufacturer": self.vocabulary.model_manufacturer.get(model) if model else None,
            "model_name": model,
            "field_strength": self.combos["field_strength"].currentText() or None,
            "scan_options": self.combos["scan_options"].currentText(),
        }
        values.update({name: float(s.value()) for name, s in self.sliders.items()})
        return IAPRecord.create(**values)

    def set_record(self, record: IAPRecord) -> list[str]:
        """Show ``record``; unknown values are left as they are, values are clamped to ranges.

        Returns the names of the known IAPs that could not be shown exactly (not in the
        vocabulary, or clamped into the slider range).
        """
        inexact: list[str] = []
        self.blockSignals(True)
        for name, combo in self.combos.items():
            value = getattr(record, name)
            if value is None:
                continue
            text = field_strength_label(value) if name == "field_strength" else str(value)
            index = next(
                (i for i in range(combo.count()) if combo.itemText(i).lower() == text.lower()), -1
            )
            if index >= 0:
                combo.setCurrentIndex(index)
            elif combo.isEditable():
                combo.setCurrentText(text)
            else:
                inexact.append(name)
        for name, slider in self.sliders.items():
            value = getattr(record, name)
            if value is not None:
                clamped = min(max(float(value), slider.minimum()), slider.maximum())
                slider.setValue(clamped)
                if abs(clamped - float(value)) > 1e-9:
                    inexact.append(name)
        self.blockSignals(False)
        self._emit()
        return inexact

    def _update_manufacturer(self) -> None:
        model = self.combos["model_name"].currentText()
        maker = self.vocabulary.model_manufacturer.get(model, "(from model)")
        self.manufacturer.setText(maker)

    def _emit(self, *_: Any) -> None:
        self._update_manufacturer()
        if not self.signalsBlocked():
            self.changed.emit()
