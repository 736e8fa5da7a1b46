"""``cf-iap demo --gui``: the demo's layers land in napari with geometry and readout."""

import numpy as np
import pytest

from napari_cf_iap.demo import run_demo
from napari_cf_iap.gui.comparison import show_side_by_side
from napari_cf_iap.gui.demo_viewer import add_demo_layers


@pytest.fixture(scope="module")
def demo_result(tiny_bundles):
    return run_demo(
        seed=3,
        shape=(6, 64, 64),
        request_overrides={"steps": 2},
        device="cpu",
        bundles={k: str(v) for k, v in tiny_bundles.items()},
    )


def test_demo_layers_keep_geometry_and_show_predictions(make_napari_viewer, demo_result):
    viewer = make_napari_viewer()
    layers = add_demo_layers(viewer, demo_result)
    assert len(viewer.layers) == 5
    src = demo_result.source
    for layer in layers.values():
        np.testing.assert_allclose(layer.data.shape, src.shape)
    np.testing.assert_allclose(layers["counterfactual"].scale, layers["source"].scale)
    assert layers["counterfactual"].metadata["iap"]["model_name"] == "Skyra"
    assert set(np.unique(layers["seg_cf"].data)) <= {0, 1, 2}
    text = viewer.canvas.overlays.text.text
    assert "predicted (source)" in text and "predicted (edit)" in text
    show_side_by_side(
        viewer,
        [(layers["source"], layers["seg_source"]), (layers["counterfactual"], layers["seg_cf"])],
    )
    assert viewer.grid.enabled and tuple(viewer.grid.shape) == (1, 2)
    assert not layers["truth"].visible
