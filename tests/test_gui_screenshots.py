"""Screenshots of each widget in use, for docs/user-guide.md (needs Xvfb + Mesa, not offscreen).

Regenerate the committed images with
``CF_IAP_SCREENSHOTS=docs/images pytest tests/test_gui_screenshots.py``; otherwise they go to a
temporary folder and are only checked. The default bundles are used when they are installed,
else the tiny untrained test bundles (whose edits are noise, which the guide says).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from napari_cf_iap.gui.comparison import ComparisonWidget
from napari_cf_iap.gui.counterfactual_widget import CounterfactualWidget
from napari_cf_iap.gui.prediction_widget import PredictionWidget
from napari_cf_iap.gui.sample_data import SIEMENS_3T
from napari_cf_iap.gui.segmentation_widget import SegmentationWidget

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def _bundle(kind: str, tiny_bundles: dict) -> str | None:
    """The shipped default bundle if it loads, else the tiny test bundle."""
    from napari_cf_iap.pipeline import get_bundle

    try:
        get_bundle(kind, None, device="cpu")
    except Exception:
        return str(tiny_bundles[kind])
    return None


def _save(viewer, qtbot, out: Path, name: str) -> np.ndarray:
    from napari.utils.io import imsave

    qtbot.wait(300)  # let docks and the canvas settle
    image = viewer.screenshot(canvas_only=False, flash=False)
    assert image.ndim == 3 and image.shape[0] > 500 and image.shape[1] > 900
    assert image[..., :3].std() > 10  # real pixels, not a blank frame
    imsave(str(out / f"gui_{name}.png"), image)
    return image


def _dock(viewer, widget, name):
    from qtpy.QtCore import Qt

    dock = viewer.window.add_dock_widget(widget, name=name, area="right")
    viewer.window._qt_window.resizeDocks([dock], [520], Qt.Orientation.Horizontal)
    return dock


def test_screenshots_of_each_widget(make_napari_viewer, qtbot, tiny_bundles, tmp_path):
    out = Path(os.environ.get("CF_IAP_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1600, 1080)
    image, masks = viewer.open_sample("napari-cf-iap", "ge_15t")
    masks.visible = False
    viewer.dims.set_point(0, image.data_to_world([16, 0, 0])[0])

    cf = CounterfactualWidget(viewer)
    dock = _dock(viewer, cf, "Counterfactual acquisition")
    cf.bundle.set_path(_bundle("cddgm", tiny_bundles))
    qtbot.waitUntil(lambda: cf.bundle.bundle is not None, timeout=60000)
    cf.target.set_record(SIEMENS_3T)
    cf.run()
    qtbot.waitUntil(lambda: not cf.runner.running, timeout=120000)
    result = viewer.layers[-1]
    assert result.name.startswith("CF SIEMENS Skyra 3T")
    _save(viewer, qtbot, out, "counterfactual")
    viewer.window.remove_dock_widget(dock)

    predictor = PredictionWidget(viewer)
    dock = _dock(viewer, predictor, "IAP prediction")
    predictor.bundle.set_path(_bundle("iap_predictor", tiny_bundles))
    predictor.layer_picker.set_layer(result)
    predictor.run()
    qtbot.waitUntil(lambda: not predictor.runner.running, timeout=60000)
    assert predictor.table.cell_text("model_name", "Target") == "Skyra"
    _save(viewer, qtbot, out, "prediction")
    viewer.window.remove_dock_widget(dock)
    viewer.canvas.overlays.text.visible = False

    segmenter = SegmentationWidget(viewer)
    dock = _dock(viewer, segmenter, "Fat/FGT segmentation")
    default_seg = _bundle("segmenter", tiny_bundles)
    if default_seg is not None:
        segmenter.bundles.clear()
        segmenter.add_bundle(default_seg, "tiny test segmenter")
    segmenter.image_picker.set_layer(image)
    segmenter.truth_picker.set_layer(masks)
    segmenter.run()
    qtbot.waitUntil(lambda: not segmenter.runner.running, timeout=60000)
    assert segmenter.scores.rowCount() == 1 and segmenter.scores.item(0, 0).text() != "—"
    _save(viewer, qtbot, out, "segmentation")
    viewer.window.remove_dock_widget(dock)

    comparison = ComparisonWidget(viewer)
    _dock(viewer, comparison, "Side-by-side comparison")
    comparison.set_panels([(image, None), (result, None)])
    comparison.compare()
    assert viewer.grid.enabled
    _save(viewer, qtbot, out, "comparison")
    comparison.single()
    assert not viewer.grid.enabled
