"""Reader and writers round trip through napari (viewer.open / layer.save with our plugin)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from gui_support import GE_15, SIEMENS_3, tiny_labels, tiny_volume

from napari_cf_iap.errors import OutputExistsError
from napari_cf_iap.gui.layer_metadata import image_layer_kwargs, labels_layer_kwargs
from napari_cf_iap.gui.reader import get_reader
from napari_cf_iap.io import read_volume, write_duke_mask_nrrd, write_nifti

pytestmark = pytest.mark.gui

PLUGIN = "napari-cf-iap"


def _world(layer, index):
    return np.asarray(layer.data_to_world(np.asarray(index, dtype=float)))


def test_image_round_trip_nifti_and_derived_dicom(make_napari_viewer, tmp_path):
    volume = tiny_volume(oblique=True)
    write_nifti(volume, tmp_path / "scan.nii.gz")
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(tmp_path / "scan.nii.gz"), plugin=PLUGIN)
    assert layer.name == "scan" and type(layer).__name__ == "Image"
    assert layer.metadata["iap"]["model_name"] == "SIGNA HDx"
    assert tuple(layer.scale) == pytest.approx(volume.spacing)
    np.testing.assert_allclose(layer.data, volume.data)
    corner = (volume.affine @ [5, 23, 19, 1])[:3][::-1]
    assert _world(layer, [5, 23, 19]) == pytest.approx(corner, abs=1e-4)

    # image layer -> NIfTI + sidecar, read back by the core
    out = tmp_path / "copy.nii.gz"
    layer.save(str(out), plugin=PLUGIN)
    back = read_volume(out)
    np.testing.assert_allclose(back.data, volume.data)
    assert back.iap == GE_15 and np.allclose(back.affine, volume.affine, atol=1e-4)
    with pytest.raises(OutputExistsError):  # never overwrites
        layer.save(str(out), plugin=PLUGIN)

    # a counterfactual layer -> a DERIVED DICOM series with the target tags, opened again
    cf = volume.with_data(volume.data * 0.5, iap=SIEMENS_3)
    kwargs = image_layer_kwargs(cf, "cf", source_iap=GE_15.to_dict(), source_volume_metadata={})
    cf_layer = viewer.add_image(cf.data, **kwargs)
    cf_layer.save(str(tmp_path / "cf.dcm"), plugin=PLUGIN)
    files = sorted((tmp_path / "cf").iterdir())
    assert len(files) == volume.shape[0]
    header = pydicom.dcmread(files[0], stop_before_pixels=True)
    assert list(header.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert header.ManufacturerModelName == "Skyra" and float(header.FlipAngle) == 9.0
    [reopened] = viewer.open(str(tmp_path / "cf"), plugin=PLUGIN)
    assert reopened.metadata["iap"]["model_name"] == "Skyra"
    np.testing.assert_allclose(np.asarray(reopened.data), cf.data, atol=0.01)
    assert _world(reopened, [5, 23, 19]) == pytest.approx(corner, abs=1e-3)


def test_labels_round_trip_nrrd_nifti_and_duke_masks(make_napari_viewer, tmp_path):
    volume = tiny_volume()
    labels = tiny_labels(volume.shape)
    viewer = make_napari_viewer()
    layer = viewer.add_labels(labels, **labels_layer_kwargs(volume.spacing, volume.affine, "gt"))
    assert layer.colormap.map(np.array([2]))[0][3] == 1.0  # FGT opaque, fixed colour

    for name in ("gt.seg.nrrd", "gt.nii.gz"):
        layer.save(str(tmp_path / name), plugin=PLUGIN)
        [back] = viewer.open(str(tmp_path / name), plugin=PLUGIN)
        assert type(back).__name__ == "Labels", name
        np.testing.assert_array_equal(back.data, labels)
        assert tuple(back.scale) == pytest.approx(volume.spacing)
        assert _world(back, [1, 2, 3]) == pytest.approx(_world(layer, [1, 2, 3]), abs=1e-4)

    # Duke supplement layout: breast + dense files merge into 0 / 1 fat / 2 FGT
    write_duke_mask_nrrd(labels, volume, tmp_path / "P_001_Breast.seg.nrrd", kind="breast")
    write_duke_mask_nrrd(
        labels, volume, tmp_path / "P_001_Dense_and_Vessels.seg.nrrd", kind="dense"
    )
    [duke] = viewer.open(str(tmp_path / "P_001_Breast.seg.nrrd"), plugin=PLUGIN)
    assert type(duke).__name__ == "Labels" and duke.name == "P_001_Breast"
    np.testing.assert_array_equal(duke.data, labels)


def test_reader_declines_other_files_and_names_missing_iap_tags(tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("hello")
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader([str(tmp_path / "a.nii"), str(tmp_path / "b.nii")]) is None

    bare = tiny_volume().with_data(tiny_volume().data, iap=GE_15.with_values(flip_angle=None))
    write_nifti(bare, tmp_path / "bare.nii")
    (tmp_path / "bare.json").unlink()  # no sidecar at all
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_warning", shown.append)
    [(data, kwargs, kind)] = get_reader(str(tmp_path / "bare.nii"))(str(tmp_path / "bare.nii"))
    assert kind == "image" and data.shape == (6, 24, 20)
    assert kwargs["metadata"]["iap_missing"] and "FlipAngle" in shown[0]
