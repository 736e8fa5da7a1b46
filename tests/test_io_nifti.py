"""NIfTI + BIDS sidecar reading and writing."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from helpers_io import make_volume, tree_hash, write_series

from napari_cf_iap.errors import InputError, OutputExistsError
from napari_cf_iap.iap import IAPRecord
from napari_cf_iap.io import nifti
from napari_cf_iap.io.dicom_series import read_dicom
from napari_cf_iap.io.nifti import BIDS_KEYS, read_nifti, sidecar_path, write_nifti
from napari_cf_iap.io.reader import is_supported_path, read_volume


def test_round_trip_keeps_geometry_intensities_and_iaps(tmp_path):
    volume = make_volume()
    path = write_nifti(volume, tmp_path / "scan.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.json", "scan.nii.gz"]
    before = tree_hash(tmp_path)
    back = read_nifti(path)
    assert tree_hash(tmp_path) == before
    np.testing.assert_array_equal(back.data, volume.data)
    assert back.data.dtype == np.float32
    np.testing.assert_allclose(back.affine, volume.affine, atol=1e-6)
    assert back.spacing == pytest.approx(volume.spacing)
    assert back.iap == volume.iap
    assert back.metadata["missing_tags"] == []
    sidecar = json.loads((tmp_path / "scan.json").read_text())
    assert sidecar["EchoTime"] == pytest.approx(0.0025)  # BIDS: seconds
    assert sidecar["RepetitionTime"] == pytest.approx(0.0055)
    assert sidecar["ManufacturersModelName"] == "SIGNA HDx"


def test_nifti_axes_and_ras_convention_match_nibabel(tmp_path):
    volume = make_volume(shape=(3, 5, 4))
    write_nifti(volume, tmp_path / "v.nii")
    img = nib.load(tmp_path / "v.nii")
    assert img.shape == (4, 5, 3)  # (i, j, k) = (x, y, z)
    z, y, x = 2, 3, 1
    assert np.asarray(img.dataobj)[x, y, z] == volume.data[z, y, x]
    lps = (volume.affine @ [z, y, x, 1])[:3]
    ras = (img.affine @ [x, y, z, 1])[:3]
    np.testing.assert_allclose(ras, lps * [-1, -1, 1], atol=1e-6)
    assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 1


def test_integer_data_keeps_its_dtype(tmp_path):
    volume = make_volume(shape=(2, 3, 4))
    volume = volume.with_data(np.arange(24, dtype=np.int16).reshape(2, 3, 4) - 5)
    back = read_nifti(write_nifti(volume, tmp_path / "i.nii"))
    assert back.data.dtype == np.int16
    np.testing.assert_array_equal(back.data, volume.data)


def test_missing_sidecar_is_reported_not_an_error(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((4, 3, 2), np.float32), np.eye(4)), tmp_path / "bare.nii.gz")
    volume = read_nifti(tmp_path / "bare.nii.gz")
    assert volume.iap.missing() == list(
        ("manufacturer", "model_name", "field_strength", "scan_options")
        + ("flip_angle", "slice_thickness", "echo_time", "repetition_time")
    )
    assert volume.metadata["missing_tags"] == [key for key, _ in BIDS_KEYS.values()]
    assert volume.shape == (2, 3, 4)
    # NIfTI identity (RAS) = LPS with x and y flipped; index (z, y, x) -> x is column i
    np.testing.assert_allclose(volume.affine @ [0, 0, 1, 1], [-1, 0, 0, 1])


def test_dcm2niix_style_sidecar_and_caller_override(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4)), tmp_path / "s.nii")
    sidecar = {
        "Manufacturer": "Siemens Healthineers",
        "ManufacturersModelName": "Skyra",
        "MagneticFieldStrength": 2.8936,
        "ScanOptions": ["PFP", "SFS"],
        "FlipAngle": 12,
        "SliceThickness": 1.1,
        "EchoTime": 0.00276,
        "RepetitionTime": 0.00473,
    }
    (tmp_path / "s.json").write_text(json.dumps(sidecar))
    volume = read_nifti(tmp_path / "s.nii")
    assert volume.iap == IAPRecord.create(
        manufacturer="SIEMENS",
        model_name="Skyra",
        field_strength=3,
        scan_options="PFP\\SFS",
        flip_angle=12,
        slice_thickness=1.1,
        echo_time=2.76,
        repetition_time=4.73,
    )
    override = IAPRecord(flip_angle=8.0, model_name="Avanto")
    merged = read_nifti(tmp_path / "s.nii", iap=override)
    assert (merged.iap.flip_angle, merged.iap.model_name, merged.iap.echo_time) == (
        8.0,
        "Avanto",
        2.76,
    )
    via_reader = read_volume(tmp_path / "s.nii", iap=override)
    assert via_reader.iap == merged.iap
    assert is_supported_path(tmp_path / "s.nii")


def test_bad_inputs(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2, 3), np.float32), np.eye(4)), tmp_path / "4d.nii")
    with pytest.raises(InputError, match="only 3D"):
        read_nifti(tmp_path / "4d.nii")
    (tmp_path / "broken.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(InputError, match="cannot read NIfTI"):
        read_nifti(tmp_path / "broken.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)), tmp_path / "j.nii")
    (tmp_path / "j.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_nifti(tmp_path / "j.nii")
    with pytest.raises(InputError, match=".nii"):
        write_nifti(make_volume(), tmp_path / "out.img")
    nan = make_volume()
    nan.data[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        write_nifti(nan, tmp_path / "nan.nii.gz")


def test_writer_refuses_overwrite_and_is_all_or_nothing(tmp_path, monkeypatch):
    volume = make_volume()
    path = tmp_path / "v.nii.gz"
    write_nifti(volume, path)
    with pytest.raises(OutputExistsError):
        write_nifti(volume, path)
    # a stray sidecar alone also blocks the write
    other = tmp_path / "w.nii.gz"
    sidecar_path(other).write_text("{}")
    with pytest.raises(OutputExistsError):
        write_nifti(volume, other)
    assert not other.exists()
    write_nifti(volume.with_data(volume.data + 1), path, overwrite=True)
    assert read_nifti(path).data[0, 0, 0] == pytest.approx(volume.data[0, 0, 0] + 1)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(nifti.json, "dumps", boom)
    with pytest.raises(OSError, match="disk full"):
        write_nifti(volume, tmp_path / "x.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.json", "v.nii.gz", "w.json"]


def test_dicom_to_nifti_keeps_geometry_and_marks_derivation(tmp_path):
    write_series(tmp_path / "dcm", [0.0, 1.5, 3.0])
    source = read_dicom(tmp_path / "dcm")
    before = tree_hash(tmp_path / "dcm")
    target = source.iap.with_values(field_strength=3.0, flip_angle=12)
    cf = source.with_data(source.data.astype(np.float32), iap=target)
    path = write_nifti(cf, tmp_path / "cf.nii.gz", series_description="to 3T", derived_from=source)
    assert tree_hash(tmp_path / "dcm") == before
    back = read_nifti(path)
    np.testing.assert_allclose(back.affine, source.affine, atol=1e-6)
    np.testing.assert_array_equal(back.data, source.data)
    assert back.iap == target
    sidecar = json.loads(sidecar_path(path).read_text())
    assert sidecar["ImageType"] == ["DERIVED", "SECONDARY"]
    assert sidecar["SeriesDescription"].startswith("Counterfactual")
    assert sidecar["DerivedFrom"]["series_uid"] == source.metadata["series_uid"]
