"""Live preview on the DDIM fast path; results shown with little work on the GUI thread."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from gui_support import SIEMENS_3, FakeCore, counterfactual_widget_on, tiny_volume

from napari_cf_iap.gui.live_preview import PREVIEW_DDIM_STEPS, PREVIEW_TOOLTIP, preview_request
from napari_cf_iap.gui.results import show_counterfactual
from napari_cf_iap.gui.workers import Job
from napari_cf_iap.pipeline.requests import CounterfactualRequest

pytestmark = pytest.mark.gui


@pytest.mark.parametrize(
    ("sampler", "ddim_steps", "expected"),
    [("ddpm", 10, 5), ("ddim", 10, 5), ("ddim", 50, 5), ("ddim", 3, 3), ("ddim", 5, 5)],
)
def test_preview_request_takes_the_ddim_fast_path(sampler, ddim_steps, expected):
    request = CounterfactualRequest(
        target=SIEMENS_3, steps=40, guidance=2.5, sampler=sampler, ddim_steps=ddim_steps,
        seed=7, slices=[3],
    )  # fmt: skip
    before = dataclasses.asdict(request)
    fast = preview_request(request)
    assert (fast.sampler, fast.ddim_steps) == ("ddim", expected)
    assert PREVIEW_DDIM_STEPS == 5
    same = ("target", "steps", "guidance", "seed", "slices", "allow_extrapolation")
    assert all(getattr(fast, k) == getattr(request, k) for k in same)
    assert dataclasses.asdict(request) == before  # the user's request is not modified


@pytest.fixture
def cf(make_napari_viewer, qtbot, monkeypatch):
    fake = FakeCore(steps=2).install(monkeypatch)
    return counterfactual_widget_on(make_napari_viewer(), qtbot, tiny_volume(), fake)


def test_widget_previews_with_ddim_5_and_runs_with_the_chosen_sampler(cf, qtbot):
    widget = cf.widget
    widget.sampling.sampler.setCurrentText("DDPM")
    widget.sampling.steps.setValue(25)
    assert "DDIM" in widget.live.toolTip() and widget.live.toolTip() == PREVIEW_TOOLTIP
    widget.preview.timer.setInterval(10)
    widget.live.setChecked(True)
    qtbot.waitUntil(lambda: "CF preview <- scan" in cf.viewer.layers, timeout=10000)
    qtbot.waitUntil(lambda: not widget.preview.busy, timeout=10000)
    widget.live.setChecked(False)
    preview = cf.fake.calls[-1]["request"]
    assert (preview.sampler, preview.ddim_steps, preview.steps) == ("ddim", 5, 25)
    assert widget.request(preview=True).sampler == "ddim"
    widget.run()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=10000)
    run = cf.fake.calls[-1]["request"]
    assert (run.sampler, run.steps) == ("ddpm", 25)  # a Run keeps the chosen settings


def _result(volume, flip):
    target = SIEMENS_3.with_values(flip_angle=flip)
    data = (volume.data + flip).astype(np.float32)
    return volume.with_data(data, iap=target), CounterfactualRequest(target=target)


def test_new_result_layer_shares_the_data_and_becomes_active_next_turn(cf, qtbot):
    result, request = _result(cf.volume, 9.0)
    layer = show_counterfactual(cf.viewer, cf.layer, cf.volume, result, request)
    assert layer.name in cf.viewer.layers and layer is cf.viewer.layers[-1]
    assert np.shares_memory(layer.data, result.data)  # shown without a copy
    assert tuple(layer.contrast_limits) == pytest.approx(tuple(cf.layer.contrast_limits))
    np.testing.assert_allclose(layer.affine.affine_matrix, cf.layer.affine.affine_matrix)
    qtbot.waitUntil(lambda: cf.viewer.layers.selection.active is layer, timeout=2000)


def test_updating_a_layer_sets_only_what_changed(cf, qtbot):
    first, request = _result(cf.volume, 9.0)
    layer = show_counterfactual(cf.viewer, cf.layer, cf.volume, first, request, preview=True)
    events = []
    for name in ("scale", "translate", "affine", "contrast_limits", "data"):
        getattr(layer.events, name).connect(lambda e, n=name: events.append(n))
    second, request2 = _result(cf.volume, 11.0)
    again = show_counterfactual(cf.viewer, cf.layer, cf.volume, second, request2, preview=True)
    assert again is layer and [lay.name for lay in cf.viewer.layers].count(layer.name) == 1
    assert "data" in events and not {"scale", "translate", "affine", "contrast_limits"} & set(
        events
    )
    np.testing.assert_array_equal(layer.data, second.data)
    assert layer.metadata["iap"]["flip_angle"] == 11.0
    cf.layer.scale = (3.0, 0.7, 0.8)  # the source moved: the result follows it
    show_counterfactual(cf.viewer, cf.layer, cf.volume, first, request, preview=True)
    assert "scale" in events and tuple(layer.scale) == pytest.approx((3.0, 0.7, 0.8))


def test_job_finishes_in_a_later_event_loop_turn_than_its_result(qtbot):
    from qtpy.QtCore import QTimer

    order = []

    def on_result(value):
        order.append(("result", value))
        QTimer.singleShot(0, lambda: order.append(("tick",)))  # the loop runs in between

    job = Job(lambda progress, should_stop: 42, on_result=on_result,
              on_finished=lambda: order.append(("finished",)), notify=False)  # fmt: skip
    job.start()
    qtbot.waitUntil(lambda: job.finished, timeout=5000)
    assert order == [("result", 42), ("tick",), ("finished",)]
    assert not job.running


def test_preview_and_run_share_one_reference_cache(cf, qtbot):
    """Every core call of the widget gets the widget's own cache, so a slice's source
    rendering computed for one target is reused for the next."""
    from napari_cf_iap.sampling.reference_cache import ReferenceCache

    widget = cf.widget
    widget.preview.timer.setInterval(10)
    widget.live.setChecked(True)
    qtbot.waitUntil(lambda: "CF preview <- scan" in cf.viewer.layers, timeout=10000)
    qtbot.waitUntil(lambda: not widget.preview.busy, timeout=10000)
    widget.live.setChecked(False)
    widget.run()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=10000)
    caches = [c["reference_cache"] for c in cf.fake.calls if c["kind"] == "cf"]
    assert len(caches) >= 2
    assert all(c is widget.reference_cache for c in caches)
    assert isinstance(widget.reference_cache, ReferenceCache)
