"""The Duke-layout dataset writer: files, round trip through the core readers, masks."""

import csv
import json

import numpy as np
import pydicom
import pytest

from napari_cf_iap.errors import CancelledError, InputError, OutputExistsError
from napari_cf_iap.io import read_dicom, read_duke_masks
from napari_cf_iap.simulator.dataset_writer import (
    CLINICAL_TABLE,
    MANIFEST,
    reacquire_patient,
    read_manifest,
    write_duke_dataset,
)

SHAPE = (8, 48, 48)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    calls = []
    write_duke_dataset(
        out, 3, seed=5, shape=SHAPE, mask_fraction=0.5, progress=lambda *a: calls.append(a)
    )
    return out, calls


def test_layout_tables_and_progress(dataset):
    out, calls = dataset
    assert [c[:2] for c in calls] == [(1, 3), (2, 3), (3, 3)]
    patients = sorted(p.name for p in (out / "Duke-Breast-Cancer-MRI").iterdir())
    assert patients == ["Breast_MRI_001", "Breast_MRI_002", "Breast_MRI_003"]
    for pid in patients:
        series = list((out / "Duke-Breast-Cancer-MRI" / pid).glob("*/*"))
        assert len(series) == 1 and len(list(series[0].glob("*.dcm"))) == SHAPE[0]
    with open(out / CLINICAL_TABLE, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["Patient ID"] for r in rows] == patients
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["shape"] == list(SHAPE)
    masked = [p for p in manifest["patients"] if p["masks"]]
    assert len(masked) == 2  # round(0.5 * 3)
    for row, entry in zip(rows, manifest["patients"], strict=True):
        assert row["Has Segmentation Masks"] == str(int(bool(entry["masks"])))
        reported = float(row["Field Strength (Tesla)"])
        assert reported in (1.494, 1.5, 2.8936, 3.0)
        if row["Manufacturer"] == "SIEMENS":
            assert reported in (1.494, 2.8936)


def test_series_read_back_with_iaps_and_masks_aligned(dataset):
    out, _ = dataset
    manifest = read_manifest(out)
    for entry in manifest["patients"]:
        volume = read_dicom(out / entry["series"])
        truth = reacquire_patient(manifest, entry["patient_id"])
        assert volume.shape == SHAPE
        # IAPs intact (the reader normalises the scanner-reported field strength)
        for name in ("manufacturer", "model_name", "field_strength", "scan_options"):
            assert getattr(volume.iap, name) == truth.volume.iap.to_dict()[name]
        for name in ("flip_angle", "slice_thickness", "echo_time", "repetition_time"):
            assert getattr(volume.iap, name) == pytest.approx(getattr(truth.volume.iap, name))
        np.testing.assert_allclose(volume.spacing, truth.volume.spacing, rtol=1e-5)
        np.testing.assert_allclose(volume.affine, truth.volume.affine, atol=1e-3)
        # pixels survive the uint16 encoding (regeneration is bit-exact, so compare closely)
        scale = truth.volume.data.max()
        np.testing.assert_allclose(volume.data, truth.volume.data, atol=2e-4 * scale)
        header = pydicom.dcmread(
            next((out / entry["series"]).glob("*.dcm")), stop_before_pixels=True
        )
        reported = {1.5: {"SIEMENS": 1.494}, 3.0: {"SIEMENS": 2.8936}}[volume.iap.field_strength]
        expected = reported.get(volume.iap.manufacturer, volume.iap.field_strength)
        assert float(header.MagneticFieldStrength) == pytest.approx(expected)
        assert header.PatientID == entry["patient_id"]
        if entry["masks"]:
            breast, dense = (out / m for m in entry["masks"])
            labels = read_duke_masks(breast, dense, reference=volume)
            np.testing.assert_array_equal(labels, truth.labels)


def test_refuses_overwrite_and_validates(dataset, tmp_path):
    out, _ = dataset
    with pytest.raises(OutputExistsError):
        write_duke_dataset(out, 1, shape=SHAPE)
    with pytest.raises(InputError):
        write_duke_dataset(tmp_path / "x", 0, shape=SHAPE)
    with pytest.raises(InputError):
        write_duke_dataset(tmp_path / "x", 1, shape=SHAPE, mask_fraction=1.5)
    with pytest.raises(InputError, match="no protocol"):
        write_duke_dataset(tmp_path / "y", 1, shape=SHAPE, manufacturers=["Philips"])


def test_manufacturer_subset_overwrite_and_cancel(tmp_path):
    out = tmp_path / "ds"

    def cancel_after_first(done, total, message):
        if done == 1:
            raise CancelledError("stop")

    with pytest.raises(CancelledError):
        write_duke_dataset(
            out, 3, shape=SHAPE, manufacturers=["GE"], mask_fraction=0, progress=cancel_after_first
        )
    manifest = read_manifest(out)
    assert [p["patient_id"] for p in manifest["patients"]] == ["Breast_MRI_001"]
    assert manifest["patients"][0]["iap"]["manufacturer"] == "GE MEDICAL SYSTEMS"
    assert not (out / "Segmentation_Masks_NRRD").exists()
    write_duke_dataset(out, 1, shape=SHAPE, manufacturers=["SIEMENS"], overwrite=True)
    manifest = read_manifest(out)
    assert manifest["patients"][0]["iap"]["manufacturer"] == "SIEMENS"


def test_reacquire_refuses_other_simulator_version(dataset):
    out, _ = dataset
    manifest = read_manifest(out)
    other = reacquire_patient(manifest, "Breast_MRI_001", None)
    assert other.volume.shape == SHAPE
    with pytest.raises(InputError, match="version"):
        reacquire_patient({**manifest, "simulator_version": -1}, "Breast_MRI_001")
    with pytest.raises(InputError, match="not in the simulation manifest"):
        reacquire_patient(manifest, "Breast_MRI_999")


def test_reacquire_with_a_fresh_noise_seed_keeps_anatomy_and_changes_noise(dataset):
    out, _ = dataset
    manifest = read_manifest(out)
    entry = manifest["patients"][0]
    exact = reacquire_patient(manifest, entry["patient_id"])
    same = reacquire_patient(manifest, entry["patient_id"], noise_seed=entry["acquisition_seed"])
    fresh = reacquire_patient(manifest, entry["patient_id"], noise_seed=12345)
    np.testing.assert_array_equal(exact.volume.data, same.volume.data)
    np.testing.assert_array_equal(exact.labels, fresh.labels)
    assert not np.array_equal(exact.volume.data, fresh.volume.data)
    a, b = exact.volume.data.ravel(), fresh.volume.data.ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.8
