"""Helpers for the napari GUI tests: tiny volumes and a fake core to drive widget mechanics.

The fake core honours the real contract (progress per step, ``should_stop`` checked every
step and answered with CancelledError, same-geometry results carrying the target IAPs), so
tests of cancellation, supersession and responsiveness do not depend on model speed.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import numpy as np

from napari_cf_iap.errors import CancelledError
from napari_cf_iap.iap import IAPRecord, IAPVocabulary, PredictedIAP
from napari_cf_iap.volume import Volume, affine_from_geometry

GE_15 = IAPRecord.create(
    manufacturer="GE MEDICAL SYSTEMS",
    model_name="SIGNA HDx",
    field_strength=1.5,
    scan_options="FAST_GEMS\\SAT_GEMS\\PFP\\FS",
    flip_angle=10.0,
    slice_thickness=1.1,
    echo_time=2.1,
    repetition_time=5.5,
)
SIEMENS_3 = IAPRecord.create(
    manufacturer="SIEMENS",
    model_name="Skyra",
    field_strength=3.0,
    scan_options="FS",
    flip_angle=9.0,
    slice_thickness=1.0,
    echo_time=1.4,
    repetition_time=4.2,
)


def tiny_volume(shape=(6, 24, 20), iap: IAPRecord = GE_15, oblique: bool = False) -> Volume:
    """A small volume with non-trivial spacing and origin (optionally a rotated orientation)."""
    rng = np.random.default_rng(0)
    data = rng.uniform(0, 100, size=shape).astype(np.float32)
    row, col = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    if oblique:
        angle = np.deg2rad(20)
        row = np.array([np.cos(angle), np.sin(angle), 0])
        col = np.array([-np.sin(angle), np.cos(angle), 0])
    affine = affine_from_geometry(
        np.array([-90.0, -120.0, 35.0]), row, col, spacing=(2.0, 0.7, 0.8)
    )
    return Volume(data=data, spacing=(2.0, 0.7, 0.8), affine=affine, iap=iap, metadata={"x": 1})


def counterfactual_widget_on(viewer: Any, qtbot: Any, volume: Volume, fake: Any) -> SimpleNamespace:
    """A counterfactual widget docked in ``viewer`` over an image layer "scan" of ``volume``,
    with its (fake-core) bundle loaded and SIEMENS_3 as the target."""
    from napari_cf_iap.gui.counterfactual_widget import CounterfactualWidget
    from napari_cf_iap.gui.layer_metadata import image_layer_kwargs

    layer = viewer.add_image(volume.data, **image_layer_kwargs(volume, "scan"))
    widget = CounterfactualWidget(viewer)
    viewer.window.add_dock_widget(widget)
    qtbot.waitUntil(lambda: widget.bundle.bundle is not None, timeout=5000)
    widget.target.set_record(SIEMENS_3)
    return SimpleNamespace(viewer=viewer, widget=widget, fake=fake, layer=layer, volume=volume)


def tiny_labels(shape=(6, 24, 20)) -> np.ndarray:
    labels = np.zeros(shape, dtype=np.uint8)
    labels[:, 4:20, 3:17] = 1
    labels[:, 8:14, 6:12] = 2
    return labels


class FakeCore:
    """Stand-ins for the pipeline: ``steps`` progress reports ``delay`` seconds apart."""

    def __init__(self, steps: int = 5, delay: float = 0.0) -> None:
        self.steps = steps
        self.delay = delay
        self.calls: list[dict[str, Any]] = []
        self.cancelled = 0
        self.vocab = IAPVocabulary.duke_default()

    def _loop(self, progress: Any, should_stop: Any, label: str) -> None:
        for step in range(self.steps):
            if should_stop is not None and should_stop():
                self.cancelled += 1
                raise CancelledError(f"{label} cancelled")
            if self.delay:
                time.sleep(self.delay)
            if progress is not None:
                progress(step + 1, self.steps, f"{label} step {step + 1}")

    def generate_counterfactual(self, volume, request, bundle=None, *, device="auto",
                                progress=None, should_stop=None, on_chunk=None,
                                reference_cache=None):  # fmt: skip
        self.calls.append({"kind": "cf", "request": request, "bundle": bundle, "device": device,
                           "reference_cache": reference_cache})  # fmt: skip
        self._loop(progress, should_stop, "diffusion")
        data = np.array(volume.data, dtype=np.float32, copy=True)
        slices = list(range(data.shape[0]) if request.slices is None else request.slices)
        for z in slices:
            data[z] = 1000.0 + request.target.flip_angle  # marks edited slices and the target
        if on_chunk is not None:  # the whole selection as one finished chunk
            on_chunk(slices, data[slices])
        return volume.with_data(data, iap=request.target)

    def predict_iap(self, volume, bundle=None, *, slices=None, device="auto", progress=None,
                    should_stop=None):  # fmt: skip
        self.calls.append({"kind": "predict", "slices": slices, "bundle": bundle})
        self._loop(progress, should_stop, "predict")
        vector = self.vocab.encode(SIEMENS_3)
        return self.vocab.decode(vector * 0.9 + 0.01)

    def segment(self, volume, bundle=None, *, device="auto", progress=None, should_stop=None):
        self.calls.append({"kind": "segment", "bundle": bundle})
        self._loop(progress, should_stop, "segment")
        labels = tiny_labels(volume.shape)
        if bundle is not None and "aug" in str(bundle):
            labels[:, 8:14, 6:9] = 1  # a different answer per bundle
        return labels

    def get_bundle(self, kind, name_or_path=None, device="cpu"):
        self.calls.append({"kind": "load", "bundle_kind": kind, "path": name_or_path})
        return SimpleNamespace(kind=kind, vocab=self.vocab, path=name_or_path, device=device)

    def unload_bundle(self, bundle):
        self.calls.append({"kind": "unload", "bundle": bundle})

    def install(self, monkeypatch) -> FakeCore:
        from napari_cf_iap.gui import core_api

        for name in ("generate_counterfactual", "predict_iap", "segment", "get_bundle",
                     "unload_bundle"):  # fmt: skip
            monkeypatch.setattr(core_api, name, getattr(self, name))
        return self


def prediction_record(prediction: PredictedIAP) -> IAPRecord:
    return prediction.record
