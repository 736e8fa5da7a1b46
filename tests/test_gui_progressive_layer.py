"""A Run's result layer is up before the worker starts (in an event-loop turn of its own, after
the Run press) and fills chunk by chunk; success gives the same layer as showing the finished
result, cancel/error leave the layer list as it was."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from gui_support import SIEMENS_3, FakeCore, counterfactual_widget_on, tiny_volume

from napari_cf_iap.errors import CancelledError, InputError
from napari_cf_iap.gui.counterfactual_widget import CounterfactualWidget
from napari_cf_iap.gui.layer_metadata import image_layer_kwargs
from napari_cf_iap.gui.results import RUNNING_SUFFIX, show_counterfactual
from napari_cf_iap.pipeline.slices import chunks

pytestmark = pytest.mark.gui

FINAL = f"CF {SIEMENS_3.summary()} <- scan"
EDITED = 1000.0 + SIEMENS_3.flip_angle  # the fake core's value for an edited slice


class StreamingCore(FakeCore):
    """The fake core, streaming: it edits ``batch`` slices per chunk, each chunk only once the
    test releases it (``gate``), and hands every finished chunk to ``on_chunk``."""

    def __init__(self, batch: int = 2, fail_after: int | None = None) -> None:
        super().__init__(steps=1)
        self.batch = batch
        self.fail_after = fail_after  # raise an InputError after that many chunks
        self.gate = threading.Semaphore(0)
        self.results: list = []

    def generate_counterfactual(self, volume, request, bundle=None, *, device="auto",
                                progress=None, should_stop=None, on_chunk=None,
                                reference_cache=None):  # fmt: skip
        self.calls.append({"kind": "cf", "request": request, "volume": volume})
        data = np.array(volume.data, dtype=np.float32, copy=True)
        chosen = range(data.shape[0]) if request.slices is None else request.slices
        parts = list(chunks(list(chosen), self.batch))
        for n, part in enumerate(parts):
            while not self.gate.acquire(timeout=0.01):
                if should_stop():
                    self.cancelled += 1
                    raise CancelledError("diffusion cancelled")
            if n == self.fail_after:
                raise InputError("the model broke: fix it")
            data[part] = 1000.0 + request.target.flip_angle
            progress(n + 1, len(parts), f"chunk {n + 1}")
            if on_chunk is not None:
                on_chunk(part, data[part])
        result = volume.with_data(data, iap=request.target)
        self.results.append(result)
        return result


@pytest.fixture
def cf(make_napari_viewer, qtbot, monkeypatch):
    fake = StreamingCore().install(monkeypatch)
    volume = tiny_volume(oblique=True)  # 6 slices: 3 chunks of 2
    cf = counterfactual_widget_on(make_napari_viewer(), qtbot, volume, fake)
    cf.widget.scope_volume.setChecked(True)
    return cf


def _names(viewer) -> list[str]:
    return [layer.name for layer in viewer.layers]


def _edited(layer) -> list[int]:
    return [z for z in range(layer.data.shape[0]) if np.all(layer.data[z] == EDITED)]


def _run_until_layer_is_up(cf, qtbot) -> Any:
    """Press Run; the result layer goes up in a later event-loop turn (not in Run's own)."""
    cf.widget.run()
    assert cf.widget.runner.running and len(cf.viewer.layers) == 1  # nothing built yet
    qtbot.waitUntil(lambda: len(cf.viewer.layers) == 2, timeout=5000)
    layer = cf.viewer.layers[-1]
    qtbot.waitUntil(lambda: layer.visible, timeout=5000)  # built hidden, shown a turn later
    return layer


def test_layer_is_up_before_the_worker_and_fills_chunk_by_chunk(cf, qtbot):
    running = _run_until_layer_is_up(cf, qtbot)  # before any chunk
    assert cf.widget.runner.running and _edited(running) == []
    assert running.name == FINAL + RUNNING_SUFFIX and _names(cf.viewer) == ["scan", running.name]
    assert running.metadata["in_progress"] is True and "iap" not in running.metadata
    np.testing.assert_array_equal(running.data, cf.volume.data)  # the source's values
    # the worker hands over its own copy (made off the GUI thread) before the first chunk
    qtbot.waitUntil(lambda: not np.shares_memory(running.data, cf.layer.data), timeout=5000)
    assert running.data.dtype == np.float32 and _edited(running) == []
    np.testing.assert_array_equal(running.data, cf.volume.data)
    assert tuple(running.contrast_limits) == pytest.approx(tuple(cf.layer.contrast_limits))
    np.testing.assert_allclose(running.scale, cf.layer.scale)
    np.testing.assert_allclose(running.translate, cf.layer.translate)
    np.testing.assert_allclose(running.affine.affine_matrix, cf.layer.affine.affine_matrix)

    for done in ([0, 1], [0, 1, 2, 3]):
        cf.fake.gate.release()
        qtbot.waitUntil(lambda d=done: _edited(running) == d, timeout=5000)
        assert cf.widget.runner.running and running.name.endswith(RUNNING_SUFFIX)
        untouched = [z for z in range(6) if z not in done]
        np.testing.assert_array_equal(running.data[untouched], cf.volume.data[untouched])
    cf.fake.gate.release()
    qtbot.waitUntil(lambda: not cf.widget.runner.running, timeout=5000)

    final = cf.viewer.layers[-1]
    assert final is running and _names(cf.viewer) == ["scan", FINAL]
    assert _edited(final) == list(range(6))
    assert cf.volume.data.max() < 1000  # the source was not modified
    # the same layer as showing the finished result the way a Run did before streaming
    streamed = {"data": np.array(final.data), "metadata": final.metadata}
    cf.viewer.layers.remove(final)
    call = cf.fake.calls[-1]
    shown = show_counterfactual(
        cf.viewer, cf.layer, call["volume"], cf.fake.results[-1], call["request"]
    )
    assert shown.name == FINAL
    np.testing.assert_array_equal(streamed["data"], shown.data)
    assert streamed["metadata"] == shown.metadata
    assert shown.metadata["iap"] == SIEMENS_3.to_dict() and "in_progress" not in shown.metadata


@pytest.mark.parametrize("how", ["cancel", "error"])
def test_cancel_or_error_leaves_the_layer_list_as_it_was(cf, qtbot, monkeypatch, how):
    errors: list[str] = []
    monkeypatch.setattr("napari.utils.notifications.show_error", errors.append)
    cf.fake.fail_after = 1 if how == "error" else None
    running = _run_until_layer_is_up(cf, qtbot)
    assert _names(cf.viewer) == ["scan", FINAL + RUNNING_SUFFIX]
    cf.fake.gate.release()
    qtbot.waitUntil(lambda: _edited(running) == [0, 1], timeout=5000)  # partly filled
    if how == "cancel":
        cf.widget.runner.cancel_button.click()
    else:
        cf.fake.gate.release()  # the second chunk fails
    qtbot.waitUntil(lambda: not cf.widget.runner.running, timeout=5000)
    assert _names(cf.viewer) == ["scan"]
    if how == "cancel":
        assert cf.fake.cancelled == 1 and "cancelled" in cf.widget.runner.status.text()
    else:
        assert any("the model broke" in text for text in errors)
    assert all(box.isEnabled() for box in cf.widget._controls)


def test_a_reused_layer_is_restored_on_cancel_and_updated_on_success(cf, qtbot):
    for _ in range(3):
        cf.fake.gate.release()
    cf.widget.run()
    qtbot.waitUntil(lambda: not cf.widget.runner.running, timeout=5000)
    first = cf.viewer.layers[FINAL]
    data, metadata = first.data, first.metadata
    cf.widget.scope_slice.setChecked(True)  # the same target again, now one slice
    cf.viewer.dims.set_point(0, cf.layer.data_to_world([4, 0, 0])[0])

    cf.widget.run()
    qtbot.waitUntil(lambda: cf.viewer.layers[-1].name.endswith(RUNNING_SUFFIX), timeout=5000)
    assert _names(cf.viewer) == ["scan", FINAL + RUNNING_SUFFIX]
    assert cf.viewer.layers[-1] is first  # reused, not a second layer
    np.testing.assert_array_equal(first.data, cf.volume.data)  # reset to the source
    cf.widget.runner.cancel_button.click()
    qtbot.waitUntil(lambda: not cf.widget.runner.running, timeout=5000)
    assert _names(cf.viewer) == ["scan", FINAL] and cf.viewer.layers[-1] is first
    assert first.data is data and first.metadata == metadata  # exactly as before the run
    assert _edited(first) == list(range(6))

    cf.fake.gate.release()
    cf.widget.run()
    qtbot.waitUntil(lambda: not cf.widget.runner.running, timeout=5000)
    assert _names(cf.viewer) == ["scan", FINAL] and cf.viewer.layers[-1] is first
    assert _edited(first) == [4] and first.metadata["counterfactual"]["slices"] == [4]
    assert _edited(SimpleNamespace(data=data)) == list(range(6))  # the old array untouched


def test_the_real_core_streams_into_the_layer(make_napari_viewer, qtbot, tiny_bundles):
    from napari_cf_iap.gui import core_api

    viewer = make_napari_viewer()
    volume = tiny_volume((10, 24, 20))  # batch size 8: chunks of 8 and 2 slices
    layer = viewer.add_image(volume.data, **image_layer_kwargs(volume, "scan"))
    widget = CounterfactualWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.bundle.set_path(tiny_bundles["cddgm"])
    qtbot.waitUntil(lambda: widget.bundle.bundle is not None, timeout=30000)
    widget.target.set_record(SIEMENS_3)
    widget.scope_volume.setChecked(True)
    widget.sampling.sampler.setCurrentText("DDIM")
    written: list[list[int]] = []
    widget.run()
    pending = widget.runner.job.on_partial
    widget.runner.job.on_partial = lambda item: (
        written.append(list(item[1])) if item[0] == "chunk" else None,
        pending(item),
    )
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60000)
    result = viewer.layers[-1]
    assert result.name.startswith("CF SIEMENS Skyra 3T") and not result.name.endswith("…)")
    assert written == [list(range(8)), [8, 9]]
    request = widget.request()
    direct = core_api.generate_counterfactual(volume, request, widget.bundle.bundle, device="cpu")
    np.testing.assert_array_equal(result.data, direct.data)
    assert not np.allclose(result.data, volume.data)
    np.testing.assert_allclose(result.translate, layer.translate)
