"""Counterfactual widget mechanics (fake core): placement, metadata, cancel, preview, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from gui_support import GE_15, SIEMENS_3, FakeCore, counterfactual_widget_on, tiny_volume

from napari_cf_iap.gui.layer_metadata import image_layer_kwargs

pytestmark = pytest.mark.gui


@pytest.fixture
def cf(make_napari_viewer, qtbot, monkeypatch):
    fake = FakeCore(steps=5).install(monkeypatch)
    return counterfactual_widget_on(make_napari_viewer(), qtbot, tiny_volume(oblique=True), fake)


def _run(cf, qtbot):
    cf.widget.run()
    qtbot.waitUntil(lambda: not cf.widget.runner.running, timeout=10000)


def test_whole_volume_result_is_placed_like_its_source_and_named_after_target(cf, qtbot):
    cf.widget.scope_volume.setChecked(True)
    _run(cf, qtbot)
    result = cf.viewer.layers[-1]
    assert result.name == f"CF {SIEMENS_3.summary()} <- scan"
    assert result.metadata["iap"] == SIEMENS_3.to_dict()
    assert result.metadata["source_iap"] == GE_15.to_dict()
    assert result.metadata["counterfactual"]["slices"] is None
    np.testing.assert_allclose(result.scale, cf.layer.scale)
    np.testing.assert_allclose(result.translate, cf.layer.translate)
    np.testing.assert_allclose(result.affine.affine_matrix, cf.layer.affine.affine_matrix)
    assert np.all(result.data == 1000 + SIEMENS_3.flip_angle)
    assert cf.volume.data.max() < 1000  # the source was not modified
    assert cf.widget.runner.progress.value() == 5  # one progress report per step

    _run(cf, qtbot)  # same target again: the layer is updated in place, not duplicated
    assert [layer.name for layer in cf.viewer.layers] == ["scan", result.name]


def test_current_slice_scope_edits_the_slice_on_screen(cf, qtbot):
    cf.viewer.dims.set_point(0, cf.layer.data_to_world([3, 0, 0])[0])
    cf.widget.target.sliders["flip_angle"].setValue(11.0)
    _run(cf, qtbot)
    request = cf.fake.calls[-1]["request"]
    assert list(request.slices) == [3] and request.target.flip_angle == 11.0
    result = cf.viewer.layers[-1]
    edited = [z for z in range(result.data.shape[0]) if np.all(result.data[z] == 1011.0)]
    assert edited == [3]
    np.testing.assert_array_equal(result.data[2], cf.volume.data[2])


def test_sampler_settings_device_and_bundle_reach_the_core(cf, qtbot):
    s = cf.widget.sampling
    s.sampler.setCurrentText("DDPM")
    s.steps.setValue(25)
    s.guidance.setValue(3.5)
    s.seed.setValue(42)
    _run(cf, qtbot)
    call = cf.fake.calls[-1]
    request = call["request"]
    assert (request.sampler, request.steps, request.guidance, request.seed) == ("ddpm", 25, 3.5, 42)
    assert call["device"] == "cpu" and call["bundle"] is cf.widget.bundle.bundle
    assert cf.widget.device.warning.isVisibleTo(cf.widget)  # CPU warning shown
    s.guidance.setValue(s.guidance.minimum())
    s.steps.setValue(0)
    assert cf.widget.request().guidance is None and cf.widget.request().steps is None
    s.sampler.setCurrentIndex(0)  # bundle default: the bundle chooses sampler and DDIM steps
    assert (cf.widget.request().sampler, cf.widget.request().ddim_steps) == (None, None)
    assert not s.ddim_steps.isEnabled()
    s.set_defaults({"sampler": "ddim", "ddim_steps": 10})
    assert s.sampler.itemText(0) == "bundle default (DDIM-10)"
    s.set_defaults({})
    assert s.sampler.itemText(0) == "bundle default (DDPM)"
    s.sampler.setCurrentText("DDIM")
    s.ddim_steps.setValue(7)
    assert (cf.widget.request().sampler, cf.widget.request().ddim_steps) == ("ddim", 7)


def test_cancel_mid_run_adds_no_layer_and_reenables_controls(cf, qtbot):
    cf.fake.steps, cf.fake.delay = 400, 0.01
    cf.widget.scope_volume.setChecked(True)
    cf.widget.run()
    qtbot.waitUntil(lambda: cf.widget.runner.progress.value() >= 2, timeout=5000)
    assert cf.widget.runner.cancel_button.isEnabled()
    assert not cf.widget.runner.run_button.isEnabled()
    assert not any(box.isEnabled() for box in cf.widget._controls)
    cf.widget.runner.cancel_button.click()
    qtbot.waitUntil(lambda: not cf.widget.runner.running, timeout=5000)
    assert [layer.name for layer in cf.viewer.layers] == ["scan"]
    assert cf.fake.cancelled == 1 and "cancelled" in cf.widget.runner.status.text()
    assert all(box.isEnabled() for box in cf.widget._controls)
    assert not cf.widget.runner.cancel_button.isEnabled()


def test_live_preview_change_supersedes_the_running_request(cf, qtbot):
    cf.fake.steps, cf.fake.delay = 100, 0.01
    widget = cf.widget
    widget.preview.timer.setInterval(10)
    widget.live.setChecked(True)
    qtbot.waitUntil(lambda: widget.preview.busy, timeout=5000)
    first = widget.preview.job
    widget.target.sliders["flip_angle"].setValue(8.0)  # user drags a slider mid-render
    qtbot.waitUntil(lambda: widget.preview.job is not first and widget.preview.busy, timeout=5000)
    assert first.cancel_requested and not first.running
    cf.fake.steps = 3
    qtbot.waitUntil(lambda: "CF preview <- scan" in cf.viewer.layers, timeout=10000)
    qtbot.waitUntil(lambda: not widget.preview.busy, timeout=10000)
    preview = cf.viewer.layers["CF preview <- scan"]
    assert cf.fake.cancelled >= 1
    assert preview.metadata["iap"]["flip_angle"] == 8.0  # the stale request never showed
    assert preview.metadata["counterfactual"]["preview"] is True
    widget.target.sliders["flip_angle"].setValue(11.0)
    qtbot.waitUntil(lambda: preview.metadata["iap"]["flip_angle"] == 11.0, timeout=10000)
    assert sum(layer.name.startswith("CF preview") for layer in cf.viewer.layers) == 1


def test_extrapolation_widens_the_sliders_and_warns(cf, qtbot, monkeypatch):
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_warning", shown.append)
    flip = cf.widget.target.sliders["flip_angle"]
    assert flip.maximum() == 12.0  # the trained range
    cf.widget.sampling.extrapolate.setChecked(True)
    assert flip.maximum() == 18.0
    flip.setValue(15.0)
    _run(cf, qtbot)
    request = cf.fake.calls[-1]["request"]
    assert request.allow_extrapolation and request.target.flip_angle == 15.0
    assert any("outside the trained range" in text for text in shown)
    cf.widget.sampling.extrapolate.setChecked(False)
    assert flip.maximum() == 12.0 and flip.value() == 12.0


def test_copy_iaps_from_layer(cf, qtbot):
    other = tiny_volume(iap=SIEMENS_3.with_values(flip_angle=7.5))
    cf.viewer.add_image(other.data, **image_layer_kwargs(other, "siemens"))
    cf.widget.target.set_record(GE_15)
    cf.widget.copy_from.set_layer(cf.viewer.layers["siemens"])
    cf.widget.copy_iaps()
    assert cf.widget.target.record() == SIEMENS_3.with_values(flip_angle=7.5)
    assert cf.widget.target.manufacturer.text() == "SIEMENS"


def test_bad_inputs_get_clear_messages_and_no_layer(cf, qtbot, monkeypatch):
    errors = []
    monkeypatch.setattr("napari.utils.notifications.show_error", errors.append)
    viewer, widget = cf.viewer, cf.widget
    viewer.add_labels(np.zeros((6, 24, 20), dtype=np.uint8), name="mask")
    widget.source.picker.set_layer(viewer.layers["mask"])
    assert "Labels layer" in widget.source.info.text()
    viewer.add_image(np.zeros((24, 20)), name="flat")
    widget.source.picker.set_layer(viewer.layers["flat"])
    assert "2D" in widget.source.info.text()
    widget.run()
    assert "2D" in errors[-1] and len(viewer.layers) == 3

    bare = viewer.add_image(np.ones((4, 8, 8)), name="bare")  # no IAPs at all
    widget.source.picker.set_layer(bare)
    info = widget.source.info.text()
    assert "lacks IAPs" in info and "Flip angle" in info and "Model" in info
    assert widget.source.manual_box.isChecked()  # manual entry opens by itself
    widget.source.manual.set_record(GE_15)
    assert widget.source.record() == GE_15
    assert "entered" in widget.source.info.text()
