"""IAP prediction, segmentation and comparison widgets (fake core: mechanics and placement)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from gui_support import GE_15, SIEMENS_3, FakeCore, tiny_labels, tiny_volume

from napari_cf_iap.gui.comparison import ComparisonWidget, restore_view, show_side_by_side
from napari_cf_iap.gui.label_colors import TISSUE_COLORS
from napari_cf_iap.gui.layer_metadata import image_layer_kwargs, labels_layer_kwargs
from napari_cf_iap.gui.prediction_widget import PredictionWidget
from napari_cf_iap.gui.segmentation_widget import SegmentationWidget
from napari_cf_iap.metrics_basic import accuracy_per_label, dice_per_label

pytestmark = pytest.mark.gui


@pytest.fixture
def scene(make_napari_viewer, monkeypatch):
    fake = FakeCore(steps=3).install(monkeypatch)
    viewer = make_napari_viewer()
    volume = tiny_volume(oblique=True)
    scan = viewer.add_image(volume.data, **image_layer_kwargs(volume, "scan"))
    return viewer, volume, scan, fake


def _wait(qtbot, runner):
    qtbot.waitUntil(lambda: not runner.running, timeout=10000)


def test_prediction_table_and_overlay_for_a_counterfactual_layer(scene, qtbot):
    viewer, volume, scan, fake = scene
    cf = volume.with_data(volume.data + 1, iap=SIEMENS_3)
    viewer.add_image(cf.data, **image_layer_kwargs(cf, "cf", source_iap=GE_15.to_dict()))
    widget = PredictionWidget(viewer)
    widget.layer_picker.set_layer(viewer.layers["cf"])
    assert widget.table.cell_text("model_name", "Source") == "SIGNA HDx"
    assert widget.table.cell_text("model_name", "Target") == "Skyra"
    viewer.dims.set_point(0, scan.data_to_world([4, 0, 0])[0])
    widget.runner.run_button.click()
    _wait(qtbot, widget.runner)
    assert fake.calls[-1]["slices"] == [4]
    assert widget.table.cell_text("model_name", "Predicted") == "Skyra"
    assert float(widget.table.cell_text("model_name", "p")) > 0.5
    assert widget.table.cell_text("model_name", "Match") == "✓"
    overlay = viewer.canvas.overlays.text
    assert overlay.visible and "Skyra" in overlay.text and "slice 4" in overlay.text
    assert "IAPs recognised" in overlay.text

    widget.scope_volume.setChecked(True)
    widget.runner.run_button.click()
    _wait(qtbot, widget.runner)
    assert fake.calls[-1]["slices"] is None and "volume" in overlay.text


def test_prediction_refuses_labels_layers(scene, qtbot, monkeypatch):
    viewer, volume, scan, fake = scene
    errors = []
    monkeypatch.setattr("napari.utils.notifications.show_error", errors.append)
    viewer.add_labels(tiny_labels(volume.shape), name="mask")
    widget = PredictionWidget(viewer)
    widget.layer_picker.set_layer(viewer.layers["mask"])
    widget.run()
    assert "Labels layer" in errors[-1] and not any(c["kind"] == "predict" for c in fake.calls)


def test_segmentation_adds_coloured_labels_with_scores_per_bundle(scene, qtbot, monkeypatch):
    viewer, volume, scan, fake = scene
    truth = tiny_labels(volume.shape)
    viewer.add_labels(truth, **labels_layer_kwargs(volume.spacing, volume.affine, "truth"))
    widget = SegmentationWidget(viewer)
    widget.add_bundle("/bundles/seg-augmented", "augmented")
    widget.image_picker.set_layer(scan)
    widget.truth_picker.set_layer(viewer.layers["truth"])
    from napari_cf_iap.gui import core_api

    scoring_threads = []
    real_scores = core_api.tissue_scores

    def scores(labels, reference):
        scoring_threads.append(threading.current_thread())
        return real_scores(labels, reference)

    monkeypatch.setattr(core_api, "tissue_scores", scores)
    widget.runner.run_button.click()
    _wait(qtbot, widget.runner)
    qtbot.waitUntil(lambda: "with 2 bundle(s)" in widget.runner.status.text(), timeout=5000)
    # scoring (~0.6 s for a full volume) ran on the worker, not on the GUI thread
    assert len(scoring_threads) == 2 and threading.main_thread() not in scoring_threads
    names = [layer.name for layer in viewer.layers]
    assert names[-2:] == ["seg default segmenter <- scan", "seg augmented <- scan"]
    baseline, augmented = viewer.layers[-2], viewer.layers[-1]
    qtbot.waitUntil(lambda: baseline.visible and augmented.visible, timeout=5000)  # built hidden
    np.testing.assert_allclose(augmented.scale, scan.scale)
    np.testing.assert_allclose(augmented.affine.affine_matrix, scan.affine.affine_matrix)
    assert np.allclose(augmented.colormap.map(np.array([2]))[0], TISSUE_COLORS[2])
    assert baseline.metadata["scores"]["dice"] == {1: 1.0, 2: 1.0}
    expected = dice_per_label(augmented.data, truth)
    assert augmented.metadata["scores"]["dice"] == expected and expected[2] < 1.0
    assert widget.scores.item(1, 1).text() == f"{expected[2]:.3f}"
    acc = accuracy_per_label(augmented.data, truth)
    assert widget.scores.item(1, 3).text() == f"{acc[2]:.3f}"

    widget.compare_button.click()  # baseline vs augmented, each over the scan
    assert viewer.grid.enabled and viewer.grid.stride == 2
    visible = [layer.name for layer in viewer.layers if layer.visible]
    assert visible == [
        "scan",
        "seg default segmenter <- scan",
        "scan [compare copy]",
        "seg augmented <- scan",
    ]
    assert viewer.layers["scan [compare copy]"].data is scan.data  # no copy of the voxels


def test_comparison_view_and_restore(scene):
    viewer, volume, scan, fake = scene
    cf = viewer.add_image(volume.data * 2, **image_layer_kwargs(volume, "cf"))
    viewer.add_labels(tiny_labels(volume.shape), name="other")
    order = [layer.name for layer in viewer.layers]
    state = show_side_by_side(viewer, [(scan, None), (cf, None)])
    assert viewer.grid.enabled and viewer.grid.shape == (1, 2)
    assert viewer.grid.position(viewer.layers.index(scan), viewer.layers) == (0, 0)
    assert viewer.grid.position(viewer.layers.index(cf), viewer.layers) == (0, 1)
    assert not viewer.layers["other"].visible
    restore_view(viewer, state)
    assert not viewer.grid.enabled and [layer.name for layer in viewer.layers] == order
    assert viewer.layers["other"].visible

    widget = ComparisonWidget(viewer)
    widget.set_panels([(scan, None), (cf, None)])
    widget.compare()
    assert viewer.grid.enabled and "scan | cf" in widget.status.text()
    widget.single()
    assert not viewer.grid.enabled
    widget.set_panels([(scan, None), (scan, None)])
    widget.compare()  # the same layer twice is refused with a message, not a crash
    assert "one panel only" in widget.status.text() and not viewer.grid.enabled


def test_widgets_opened_from_the_plugin_menu_work_end_to_end(scene, qtbot):
    """napari hands plugin widgets a public-only proxy of the viewer: the real user path."""
    viewer, volume, scan, fake = scene
    other = viewer.add_image(volume.data * 2, **image_layer_kwargs(volume, "other"))
    widgets = {}
    for name in ("Counterfactual acquisition", "IAP prediction", "Fat/FGT segmentation",
                 "Side-by-side comparison"):  # fmt: skip
        _, widgets[name] = viewer.window.add_plugin_dock_widget("napari-cf-iap", name)
    assert [type(w).__name__ for w in widgets.values()] == [
        "CounterfactualWidget", "PredictionWidget", "SegmentationWidget", "ComparisonWidget"
    ]  # fmt: skip

    cf = widgets["Counterfactual acquisition"]
    qtbot.waitUntil(lambda: cf.bundle.bundle is not None, timeout=5000)
    cf.source.picker.set_layer(scan)
    cf.target.set_record(SIEMENS_3)
    cf.run()
    qtbot.waitUntil(lambda: not cf.runner.running, timeout=10000)
    assert viewer.layers[-1].name == f"CF {SIEMENS_3.summary()} <- scan"

    segmenter = widgets["Fat/FGT segmentation"]
    segmenter.add_bundle("/bundles/seg-augmented", "augmented")
    segmenter.image_picker.set_layer(scan)
    segmenter.run()
    qtbot.waitUntil(lambda: not segmenter.runner.running, timeout=10000)
    segmenter.compare()
    assert viewer.grid.enabled and viewer.grid.stride == 2

    comparison = widgets["Side-by-side comparison"]
    comparison.single()
    comparison.set_panels([(scan, None), (other, None)])
    comparison.compare()
    assert viewer.grid.enabled and viewer.grid.stride == 1
    assert [layer.name for layer in viewer.layers if layer.visible] == ["scan", "other"]
    comparison.single()
    assert not viewer.grid.enabled
