"""Counterfactual widget: re-render a scan as if acquired with other IAPs (what-if explorer)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from napari.utils import notifications
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QGroupBox,
    QHBoxLayout,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ..errors import CfIapError
from ..iap import IAPExtrapolationWarning, IAPVocabulary
from ..pipeline.requests import CounterfactualRequest
from ..sampling.reference_cache import ReferenceCache
from . import core_api
from .bundle_chooser import BundleChooser
from .device_notice import DeviceChooser
from .iap_controls import IapControls
from .layer_metadata import current_slice, layer_iap
from .layer_picker import LayerPicker
from .live_preview import PREVIEW_TOOLTIP, LivePreview, preview_request
from .results import PendingResult, show_counterfactual, start_counterfactual
from .run_panel import RunPanel
from .sampling_controls import SamplingControls
from .source_panel import SourcePanel
from .workers import Job, notify_error


def _group(title: str, *widgets: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    for widget in widgets:
        layout.addWidget(widget)
    return box


class CounterfactualWidget(QScrollArea):
    """Source picker, target IAPs, sampler settings, model/device, scope, Run/Cancel, preview."""

    def __init__(self, napari_viewer: Any, parent: Any = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.vocabulary = IAPVocabulary.duke_default()
        self.job: Job | None = None
        # twin edits: each slice's source rendering, reused when only the target changes
        self.reference_cache = ReferenceCache()
        body = QWidget()
        self.setWidget(body)
        self.setWidgetResizable(True)
        layout = QVBoxLayout(body)

        self.source = SourcePanel(napari_viewer, self.vocabulary)
        layout.addWidget(_group("Source layer", self.source))

        self.target = IapControls(self.vocabulary)
        self.copy_from = LayerPicker(napari_viewer, ("Image",))
        copy_button = QPushButton("Copy IAPs from layer")
        copy_button.clicked.connect(self.copy_iaps)
        copy_row = QWidget()
        row = QHBoxLayout(copy_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(copy_button)
        row.addWidget(self.copy_from, 1)
        layout.addWidget(_group("Target IAPs", self.target, copy_row))

        self.sampling = SamplingControls()
        self.sampling.extrapolate.toggled.connect(self.target.set_extrapolation)
        layout.addWidget(_group("Sampling", self.sampling))

        self.device = DeviceChooser()
        self.bundle = BundleChooser("cddgm")
        self.bundle.set_device(self.device.device)
        self.device.device_changed.connect(self.bundle.set_device)
        self.bundle.loaded.connect(self._on_bundle)
        layout.addWidget(_group("Model", self.bundle, self.device))

        self.scope_slice = QRadioButton("current slice")
        self.scope_volume = QRadioButton("whole volume")
        self.scope_slice.setChecked(True)
        self.live = QCheckBox("live preview")
        self.live.setToolTip(PREVIEW_TOOLTIP)
        self.live.toggled.connect(self._on_live_toggled)
        scope = QWidget()
        scope_row = QHBoxLayout(scope)
        scope_row.setContentsMargins(0, 0, 0, 0)
        scope_row.addWidget(self.scope_slice)
        scope_row.addWidget(self.scope_volume)
        scope_row.addWidget(self.live)
        layout.addWidget(_group("Scope", scope))

        self.runner = RunPanel(self.run, "Run")
        layout.addWidget(self.runner)
        layout.addStretch(1)
        self._controls = list(body.findChildren(QGroupBox))

        self.preview = LivePreview(self._make_preview_job, parent=self)
        for signal in (self.source.changed, self.target.changed, self.sampling.changed):
            signal.connect(self.preview.request)
        napari_viewer.dims.events.current_step.connect(self.preview.request)
        QTimer.singleShot(0, self.bundle.load_if_idle)  # vocabulary for the target combos

    # ------------------------------------------------------------------ inputs
    def _on_bundle(self, bundle: Any) -> None:
        self.sampling.set_defaults(getattr(bundle, "inference_defaults", None) or {})
        vocab = getattr(bundle, "vocab", None)
        if vocab is not None:
            self.vocabulary = vocab
            self.target.set_vocabulary(vocab)
            self.source.set_vocabulary(vocab)

    def copy_iaps(self) -> None:
        """Set the target IAPs to those of the layer chosen next to the button."""
        layer = self.copy_from.layer()
        if layer is None:
            notifications.show_warning("No image layer to copy IAPs from.")
            return
        record = layer_iap(layer)
        if record.missing():
            notifications.show_warning(
                f"{layer.name!r} lacks IAPs {record.missing()}; those were not copied."
            )
        inexact = self.target.set_record(record)
        if inexact:
            notifications.show_info(
                f"IAPs {inexact} of {layer.name!r} are outside this model's vocabulary or range; "
                "the nearest allowed values are shown."
            )

    def request(self, *, preview: bool = False) -> CounterfactualRequest:
        """The request the controls describe (raises our errors on bad input); a preview's
        runs on the fast path (:func:`preview_request`)."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", IAPExtrapolationWarning)
            target = self.vocabulary.validate(
                self.target.record(), allow_extrapolation=self.sampling.extrapolate.isChecked()
            )
        for warning in caught:
            if not preview:
                notifications.show_warning(str(warning.message))
        slices = None
        if preview or self.scope_slice.isChecked():
            slices = [current_slice(self.viewer, self.source.layer())]
        request = CounterfactualRequest(
            target=target, slices=slices, **self.sampling.request_kwargs()
        )
        return preview_request(request) if preview else request

    def _job(self, *, preview: bool) -> Job:
        """A Job generating the counterfactual the controls describe (validated here).

        A Run's result layer is put up just before the worker starts (the job's
        ``on_prepare``, in its own event-loop turn) and filled with each finished chunk; a
        preview's layer appears when it is done.
        """
        problem = self.source.problem()
        if problem:
            raise CfIapError(problem)
        layer = self.source.layer()
        volume = self.source.volume()
        request = self.request(preview=preview)
        bundle = self.bundle.bundle if self.bundle.bundle is not None else self.bundle.spec()
        device = self.device.device
        run_layer: list[PendingResult] = []  # a Run's result layer, once it is up

        def call(progress: Any, should_stop: Any) -> Any:
            on_chunk = None
            if not preview:  # a Run: its result layer fills in chunk by chunk
                # the layer's buffer, copied here rather than on the GUI thread
                job.publish(("buffer", np.array(volume.data, dtype=np.float32, copy=True)))
                on_chunk = lambda indices, block: job.publish(("chunk", indices, block))  # noqa: E731
            return core_api.generate_counterfactual(
                volume,
                request,
                bundle,
                device=device,
                progress=progress,
                should_stop=should_stop,
                on_chunk=on_chunk,
                reference_cache=self.reference_cache,
            )

        def done(result: Any) -> None:
            pending = run_layer[0] if run_layer else None
            show_counterfactual(
                self.viewer, layer, volume, result, request, preview=preview, pending=pending
            )
            meta = result.metadata.get("counterfactual") or {}
            note = meta.get("edit_mode_note")
            text = f"done: {request.target.summary()}"
            if meta.get("reference_reused"):
                text += f" (source rendering reused for {meta['reference_reused']} slice(s))"
            self.runner.status.setText(f"{text} (⚠ {note})" if note else text)

        def discard() -> None:
            if run_layer:
                run_layer[0].discard()

        def partial(item: tuple[Any, ...]) -> None:
            kind, *values = item
            if kind == "buffer":
                run_layer[0].adopt(*values)
            else:
                run_layer[0].write(*values)

        job = Job(
            call, label="counterfactual preview" if preview else "counterfactual", on_result=done
        )
        if not preview:
            job.on_prepare = lambda: run_layer.append(
                start_counterfactual(self.viewer, layer, volume, request)
            )
            job.on_partial = partial
            job.on_cancelled = discard
            job.on_error = lambda _exc: discard()
        return job

    # ------------------------------------------------------------------ actions
    def run(self) -> None:
        """Generate for the chosen scope on a worker; controls stay disabled until it ends."""
        self.preview.cancel()
        try:
            job = self._job(preview=False)
        except CfIapError as exc:
            notify_error(exc)
            self.runner.status.setText(f"⚠ {exc}")
            return
        missing = self.source.record().missing()
        if missing:
            notifications.show_warning(
                f"Source IAPs unknown ({', '.join(missing)}); recorded as unknown."
            )
        # the result layer goes up in the next event-loop turn, the worker in the one after
        self.runner.start(job, self._controls, next_turn=True)

    def cancel(self) -> None:
        self.runner.cancel()
        self.preview.cancel()

    def _make_preview_job(self) -> Job | None:
        if self.runner.running:
            return None
        try:
            job = self._job(preview=True)
        except CfIapError as exc:
            self.runner.status.setText(f"⚠ preview: {exc}")
            return None
        job.on_progress = self.runner.show_progress
        return job

    def _on_live_toggled(self, on: bool) -> None:
        self.preview.set_enabled(on)
