"""A table of IAPs side by side: source, target, predicted (+ probability), and a text readout."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from ..iap import CATEGORICAL_IAPS, IAP_LABELS, IAP_NAMES, IAPRecord, PredictedIAP
from ..iap.normalise import field_strength_label

COLUMNS = ("Source", "Target", "Predicted", "p", "Match")


def format_value(record: IAPRecord | None, name: str) -> str:
    if record is None:
        return ""
    value = getattr(record, name)
    if value is None:
        return "?"
    if name == "field_strength":
        return f"{field_strength_label(value)} T"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value) or "(none)"


def matches(predicted: IAPRecord, target: IAPRecord | None, name: str) -> bool | None:
    """Does the prediction agree with the target? (categoricals exactly, others within 10 %)"""
    if target is None or getattr(target, name) is None:
        return None
    want, got = getattr(target, name), getattr(predicted, name)
    if got is None:
        return False
    if isinstance(want, float) and name not in CATEGORICAL_IAPS:
        return abs(got - want) <= 0.1 * abs(want)
    return format_value(predicted, name).lower() == format_value(target, name).lower()


class IapTable(QTableWidget):
    """Rows are the IAPs; ``fill(source, target, prediction)`` fills the columns."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(len(IAP_NAMES), len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setVerticalHeaderLabels([IAP_LABELS[n] for n in IAP_NAMES])
        self.setEditTriggers(QAbstractItemView.NoEditTriggers)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Stretch)
        for column in (COLUMNS.index("p"), COLUMNS.index("Match")):
            header.setSectionResizeMode(column, QHeaderView.ResizeToContents)
        self.setTextElideMode(Qt.ElideMiddle)
        self.setWordWrap(False)

    def cell_text(self, name: str, column: str) -> str:
        item = self.item(IAP_NAMES.index(name), COLUMNS.index(column))
        return item.text() if item is not None else ""

    def fill(
        self,
        source: IAPRecord | None,
        target: IAPRecord | None,
        prediction: PredictedIAP | None,
    ) -> None:
        predicted = prediction.record if prediction is not None else None
        for row, name in enumerate(IAP_NAMES):
            probability = ""
            if prediction is not None and name in prediction.probabilities:
                probability = f"{prediction.confidence(name):.2f}"
            agree = matches(predicted, target, name) if predicted is not None else None
            cells = (
                format_value(source, name),
                format_value(target, name),
                format_value(predicted, name),
                probability,
                {True: "✓", False: "✗", None: ""}[agree],
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.setItem(row, column, item)


def readout(prediction: PredictedIAP, target: IAPRecord | None, scope: str) -> str:
    """A few short lines for the viewer's text overlay."""
    record = prediction.record
    model_p = prediction.confidence("model_name") if "model_name" in prediction.probabilities else 0
    field = f"{record.field_strength:g} T" if record.field_strength else "? T"
    lines = [
        f"Predicted IAPs ({scope}):",
        f"{record.manufacturer or '?'} {record.model_name} {field}  (p={model_p:.2f})",
    ]
    if target is not None:
        names = [n for n in IAP_NAMES if n != "manufacturer"]
        hits = [h for h in (matches(record, target, n) for n in names) if h is not None]
        lines.append(f"Target {target.model_name} {target.field_strength:g} T: ")
        lines[-1] += f"{sum(hits)}/{len(hits)} IAPs recognised"
    return "\n".join(lines)
