"""Volume <-> napari layer geometry: every voxel lands at its patient position in mm."""

from __future__ import annotations

import numpy as np
import pytest
from gui_support import GE_15, tiny_volume

from napari_cf_iap.errors import InputError
from napari_cf_iap.gui.layer_metadata import (
    check_image_layer,
    image_layer_kwargs,
    layer_to_volume,
    volume_from_state,
)

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari")


def _world_of(layer, index):
    return np.asarray(layer.data_to_world(np.asarray(index, dtype=float)))


@pytest.mark.parametrize("oblique", [False, True])
def test_layer_world_coordinates_are_patient_mm(oblique):
    volume = tiny_volume(oblique=oblique)
    layer = napari.layers.Image(volume.data, **image_layer_kwargs(volume, "scan"))
    assert tuple(layer.scale) == pytest.approx(volume.spacing)
    for index in ([0, 0, 0], [5, 23, 19], [2, 7, 11]):
        lps = (volume.affine @ np.array([*index, 1.0]))[:3]
        assert _world_of(layer, index) == pytest.approx(lps[::-1], abs=1e-9)
    if not oblique:  # a plain axial scan needs no rotation: napari's affine stays the identity
        assert np.allclose(layer.affine.affine_matrix, np.eye(4))


def test_layer_to_volume_round_trip_keeps_iap_geometry_and_data_identity():
    volume = tiny_volume(oblique=True)
    layer = napari.layers.Image(volume.data, **image_layer_kwargs(volume, "scan"))
    back = layer_to_volume(layer)
    assert back.data is volume.data or np.shares_memory(back.data, volume.data)
    assert back.iap == GE_15 and back.spacing == volume.spacing
    assert np.allclose(back.affine, volume.affine)
    assert layer.metadata["iap_missing"] == []


def test_layer_without_our_metadata_gets_affine_from_scale_and_translate():
    layer = napari.layers.Image(np.zeros((3, 4, 5)), scale=(3, 2, 1), translate=(10, 20, 30))
    volume = layer_to_volume(layer)
    assert volume.spacing == (3.0, 2.0, 1.0)
    assert volume.iap.missing()  # nothing known
    lps = volume.affine @ np.array([1, 1, 1, 1.0])
    assert lps[:3] == pytest.approx([31, 22, 13])  # (x, y, z) = reversed world (z, y, x)
    state = {"name": "s", "metadata": {}, "scale": [3, 2, 1], "translate": [10, 20, 30],
             "affine": np.eye(4)}  # fmt: skip
    assert np.allclose(volume_from_state(np.zeros((3, 4, 5)), state).affine, volume.affine)


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (None, "no image layer"),
        (napari.layers.Labels(np.zeros((3, 4, 5), dtype=np.uint8), name="m"), "Labels layer"),
        (napari.layers.Image(np.zeros((4, 5, 3), dtype=np.uint8), rgb=True, name="c"), "RGB"),
        (napari.layers.Image(np.zeros((4, 5)), name="flat"), "2D"),
        (napari.layers.Image(np.zeros((2, 3, 4, 5)), name="t"), "4D"),
    ],
)
def test_bad_source_layers_get_a_clear_message(layer, message):
    with pytest.raises(InputError, match=message):
        check_image_layer(layer)
