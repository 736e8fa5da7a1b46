"""A table of IAPs side by side: source, target, predicted (+ probability), and a text readout."""

from __future__ import annotations

from typing import Any

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
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
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
                self.setItem(row, column, QTableWidgetItem(text))


def readout(prediction: PredictedIAP, target: IAPRecord | None, scope: str) -> str:
    """One or two lines for the viewer's text overlay."""
    record = prediction.record
    model_p = prediction.confidence("model_name") if "model_name" in prediction.probabilities else 0
    line = f"Predicted IAPs ({scope}): {record.summary()}  [p(model)={model_p:.2f}]"
    if target is None:
        return line
    names = [n for n in IAP_NAMES if n != "manufacturer"]
    hits = [matches(record, target, n) for n in names]
    counted = [h for h in hits if h is not None]
    return f"{line}\nTarget {target.summary()}: {sum(counted)}/{len(counted)} IAPs recognised"
