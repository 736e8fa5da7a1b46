"""IAP prediction widget: which scanner/protocol does an image look like? (the fooling check)."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QGroupBox, QHBoxLayout, QRadioButton, QVBoxLayout, QWidget

from ..errors import CfIapError
from ..iap import IAPRecord
from . import core_api
from .background_imports import PREDICTOR_IMPORTS, import_in_background
from .bundle_chooser import BundleChooser
from .device_notice import DeviceChooser
from .iap_table import IapTable, readout
from .layer_metadata import check_image_layer, current_slice, layer_iap, layer_to_volume
from .layer_picker import LayerPicker
from .run_panel import RunPanel
from .workers import Job, notify_error


def source_and_target(layer: Any) -> tuple[IAPRecord | None, IAPRecord | None]:
    """(source, target) IAPs of a layer: a counterfactual has both, a scan only a source."""
    metadata = layer.metadata or {}
    if "source_iap" in metadata:
        return IAPRecord.from_dict(metadata["source_iap"]), layer_iap(layer)
    return layer_iap(layer), None


class PredictionWidget(QWidget):
    """Predict the IAPs of the current slice or the whole volume of any image layer."""

    def __init__(self, napari_viewer: Any, parent: Any = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.last_prediction: Any = None
        layout = QVBoxLayout(self)
        self.layer_picker = LayerPicker(napari_viewer, ("Image", "Labels"))
        self.scope_slice = QRadioButton("current slice")
        self.scope_volume = QRadioButton("whole volume (aggregated over slices)")
        self.scope_slice.setChecked(True)
        inputs = QGroupBox("Image")
        inputs_layout = QVBoxLayout(inputs)
        inputs_layout.addWidget(self.layer_picker)
        scope_row = QHBoxLayout()
        scope_row.addWidget(self.scope_slice)
        scope_row.addWidget(self.scope_volume)
        inputs_layout.addLayout(scope_row)
        layout.addWidget(inputs)

        self.device = DeviceChooser()
        self.bundle = BundleChooser("iap_predictor")
        self.bundle.set_device(self.device.device)
        self.device.device_changed.connect(self.bundle.set_device)
        model = QGroupBox("IAP predictor")
        model_layout = QVBoxLayout(model)
        model_layout.addWidget(self.bundle)
        model_layout.addWidget(self.device)
        layout.addWidget(model)

        self.runner = RunPanel(self.run, "Predict IAPs")
        layout.addWidget(self.runner)
        self.table = IapTable()
        layout.addWidget(self.table, 1)
        self._controls = [inputs, model]
        self.layer_picker.layer_changed.connect(self._show_known)
        self._show_known(self.layer_picker.layer())
        import_in_background(PREDICTOR_IMPORTS)  # MONAI, before the first Run needs it

    def _show_known(self, layer: Any) -> None:
        if layer is not None:
            self.table.fill(*source_and_target(layer), None)

    def run(self) -> None:
        layer = self.layer_picker.layer()
        try:
            check_image_layer(layer)
            volume = layer_to_volume(layer)
        except CfIapError as exc:
            notify_error(exc)
            self.runner.status.setText(f"⚠ {exc}")
            return
        slices = [current_slice(self.viewer, layer)] if self.scope_slice.isChecked() else None
        scope = f"slice {slices[0]}" if slices else "volume"
        bundle = self.bundle.bundle if self.bundle.bundle is not None else self.bundle.spec()
        device = self.device.device
        source, target = source_and_target(layer)

        def call(progress: Any, should_stop: Any) -> Any:
            return core_api.predict_iap(
                volume,
                bundle,
                slices=slices,
                device=device,
                progress=progress,
                should_stop=should_stop,
            )

        def done(prediction: Any) -> None:
            self.last_prediction = prediction
            self.table.fill(source, target, prediction)
            overlay = self.viewer.canvas.overlays.text
            overlay.text = readout(prediction, target, scope)
            overlay.position = "top_left"
            overlay.font_size = 10
            overlay.visible = True
            self.runner.status.setText(f"predicted ({scope})")

        job = Job(call, label="predict IAPs", on_result=done)
        self.runner.start(job, self._controls)
