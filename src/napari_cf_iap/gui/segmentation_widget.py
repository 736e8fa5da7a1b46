"""Segmentation widget: run one or more fat/FGT segmenters, score them, compare the masks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..errors import CfIapError
from . import core_api
from .background_imports import (
    LABELS_LAYER_IMPORTS,
    SEGMENTER_IMPORTS,
    import_in_background,
)
from .comparison import show_side_by_side
from .device_notice import DeviceChooser
from .event_turns import later
from .label_colors import TISSUE_NAMES
from .layer_metadata import (
    check_image_layer,
    labels_layer_kwargs,
    layer_to_volume,
    same_geometry_kwargs,
)
from .layer_picker import LayerPicker
from .results import show_layer
from .run_panel import RunPanel
from .workers import Job, notify_error

DEFAULT_BUNDLE = "default segmenter"
SCORE_COLUMNS = [f"Dice {n}" for n in TISSUE_NAMES.values()] + [
    f"Acc {n}" for n in TISSUE_NAMES.values()
]


@dataclass
class Segmented:
    """One bundle's masks, and their scores against the ground truth (computed on the
    worker: ~0.6 s for a 160 x 512² volume) or the problem that prevented scoring."""

    bundle: str
    labels: Any
    scores: dict[str, dict[int, float]] | None = None
    problem: CfIapError | None = None


def scored(bundle: str, labels: Any, truth: Any) -> Segmented:
    """``labels`` with their Dice/accuracy against ``truth`` (if any); runs on the worker."""
    if truth is None:
        return Segmented(bundle, labels)
    try:
        return Segmented(bundle, labels, core_api.tissue_scores(labels, truth))
    except CfIapError as exc:
        return Segmented(bundle, labels, problem=exc)


class SegmentationWidget(QWidget):
    """Image + checked segmentation bundles -> Labels layers; Dice/accuracy vs ground truth."""

    def __init__(self, napari_viewer: Any, parent: Any = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.results: list[Any] = []
        layout = QVBoxLayout(self)
        inputs = QGroupBox("Image and ground truth")
        inputs_layout = QVBoxLayout(inputs)
        self.image_picker = LayerPicker(napari_viewer, ("Image", "Labels"))
        self.truth_picker = LayerPicker(
            napari_viewer, ("Labels",), allow_none=True, none_text="(no ground truth)"
        )
        inputs_layout.addWidget(self.image_picker)
        inputs_layout.addWidget(self.truth_picker)
        layout.addWidget(inputs)

        models = QGroupBox("Segmentation bundles (checked ones run)")
        models_layout = QVBoxLayout(models)
        self.bundles = QListWidget()
        self.add_bundle(None, DEFAULT_BUNDLE)
        models_layout.addWidget(self.bundles)
        add_button = QPushButton("Add bundle…")
        add_button.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(add_button)
        models_layout.addLayout(row)
        self.device = DeviceChooser()
        models_layout.addWidget(self.device)
        layout.addWidget(models)

        self.runner = RunPanel(self.run, "Segment")
        layout.addWidget(self.runner)
        self.scores = QTableWidget(0, len(SCORE_COLUMNS))
        self.scores.setHorizontalHeaderLabels(SCORE_COLUMNS)
        layout.addWidget(self.scores)
        self.compare_button = QPushButton("Compare the first two masks side by side")
        self.compare_button.clicked.connect(self.compare)
        layout.addWidget(self.compare_button)
        self._controls = [inputs, models, self.compare_button]
        import_in_background(LABELS_LAYER_IMPORTS + SEGMENTER_IMPORTS)

    # ------------------------------------------------------------------ bundles
    def add_bundle(self, path: str | Path | None, name: str | None = None) -> None:
        """List a bundle (``None`` = the shipped default), checked."""
        item = QListWidgetItem(name or Path(str(path)).name)
        item.setData(Qt.ItemDataRole.UserRole, None if path is None else str(path))
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Checked)
        self.bundles.addItem(item)

    def checked_bundles(self) -> list[tuple[str, str | None]]:
        items = [self.bundles.item(i) for i in range(self.bundles.count())]
        return [
            (item.text(), item.data(Qt.ItemDataRole.UserRole))
            for item in items
            if item.checkState() == Qt.CheckState.Checked
        ]

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a segmenter bundle folder")
        if folder:
            self.add_bundle(folder)

    # ------------------------------------------------------------------ run
    def run(self) -> None:
        layer = self.image_picker.layer()
        bundles = self.checked_bundles()
        try:
            check_image_layer(layer)
            volume = layer_to_volume(layer)
            if not bundles:
                raise CfIapError("check at least one segmentation bundle")
        except CfIapError as exc:
            notify_error(exc)
            self.runner.status.setText(f"⚠ {exc}")
            return
        truth_layer = self.truth_picker.layer()
        truth = None if truth_layer is None else truth_layer.data
        device = self.device.device

        def call(progress: Any, should_stop: Any) -> list[Segmented]:
            outputs = []
            for index, (name, spec) in enumerate(bundles):

                def report(d: int, t: int, msg: str = "", i: int = index, n: str = name) -> None:
                    progress(i * t + d, len(bundles) * t, f"{n}: {msg}")

                labels = core_api.segment(
                    volume, spec, device=device, progress=report, should_stop=should_stop
                )
                outputs.append(scored(name, labels, truth))
            return outputs

        def done(outputs: list[Segmented]) -> None:
            self.results = []
            show_from(0, outputs)

        def show_from(index: int, outputs: list[Segmented]) -> None:
            """One Labels layer per event-loop turn (~70 ms each in napari)."""
            if index == len(outputs):
                self.runner.status.setText(
                    f"segmented {layer.name!r} with {len(outputs)} bundle(s)"
                )
                return
            self.results.append(self._show(layer, volume, outputs[index], truth_layer))
            later(lambda: show_from(index + 1, outputs))

        self.runner.start(Job(call, label="segment", on_result=done), self._controls)

    def _show(self, image: Any, volume: Any, output: Segmented, truth: Any) -> Any:
        """Add/update the Labels layer of one bundle, placed exactly like the image."""
        if output.problem is not None:
            notify_error(output.problem)
        kwargs = labels_layer_kwargs(
            volume.spacing,
            volume.affine,
            f"seg {output.bundle} <- {image.name}",
            source_layer=image.name,
            bundle=output.bundle,
            iap=volume.iap.to_dict(),
            scores=output.scores,
            ground_truth=None if truth is None else truth.name,
        )
        kwargs.update(same_geometry_kwargs(image))
        result = show_layer(self.viewer, output.labels, kwargs, "labels", reveal_later=True)
        self._score_row(output.bundle, output.scores)
        return result

    def _score_row(self, name: str, scores: dict[str, dict[int, float]] | None) -> None:
        row = next((r for r in range(self.scores.rowCount()) if self._row_name(r) == name), None)
        if row is None:
            row = self.scores.rowCount()
            self.scores.insertRow(row)
            self.scores.setVerticalHeaderItem(row, QTableWidgetItem(name))
        values: list[Any] = [None] * len(SCORE_COLUMNS)
        if scores:
            values = [scores[kind][k] for kind in ("dice", "accuracy") for k in TISSUE_NAMES]
        for column, value in enumerate(values):
            text = "—" if value is None else f"{value:.3f}"
            self.scores.setItem(row, column, QTableWidgetItem(text))

    def _row_name(self, row: int) -> str:
        header = self.scores.verticalHeaderItem(row)
        return header.text() if header is not None else ""

    def compare(self) -> None:
        """Baseline vs augmented: the first two masks, each over the image, side by side."""
        layers = [layer for layer in self.results if layer.name in self.viewer.layers]
        if len(layers) < 2:
            self.runner.status.setText("⚠ run at least two bundles to compare their masks")
            return
        image = self.viewer.layers[layers[0].metadata["source_layer"]]
        twin_name = f"{image.name} [compare copy]"
        twin_kwargs = {
            "name": twin_name,
            "metadata": dict(image.metadata),
            "colormap": image.colormap.name,
            "contrast_limits": tuple(image.contrast_limits),
            **same_geometry_kwargs(image),
        }
        twin = show_layer(self.viewer, image.data, twin_kwargs, "image")  # shares the array
        show_side_by_side(self.viewer, [(image, layers[0]), (twin, layers[1])])
