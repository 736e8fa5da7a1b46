"""Simulated patients scanned under several protocols, and ``prepare --every-series``."""

from __future__ import annotations

import numpy as np
import pytest
from cf_iap_training.prepare import prepare
from cf_iap_training.slice_store import SliceStore

from napari_cf_iap.errors import InputError
from napari_cf_iap.io import list_series, read_dicom
from napari_cf_iap.simulator.dataset_writer import read_manifest, write_duke_dataset

SHAPE = (8, 48, 48)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim3")
    write_duke_dataset(out, 2, seed=11, shape=SHAPE, mask_fraction=1.0, protocols_per_patient=3)
    return out


def test_each_patient_has_one_study_with_one_series_per_protocol(dataset):
    manifest = read_manifest(dataset)
    for entry in manifest["patients"]:
        folder = dataset / "Duke-Breast-Cancer-MRI" / entry["patient_id"]
        series = sorted(list_series(folder), key=lambda s: s.series_number)
        assert [s.series_number for s in series] == [3, 4, 5]
        assert len(entry["extra_series"]) == 2
        seeds = {entry["acquisition_seed"], *(e["acquisition_seed"] for e in entry["extra_series"])}
        assert len(seeds) == 3  # each series is its own acquisition
        volumes = [read_dicom(folder, series_uid=s.series_uid) for s in series]
        assert len({v.metadata.get("study_uid") for v in volumes}) == 1
        # the same anatomy on the same grid; the header IAPs are the recorded ones
        for volume, recorded in zip(
            volumes, [entry["iap"], *(e["iap"] for e in entry["extra_series"])], strict=True
        ):
            np.testing.assert_allclose(volume.affine, volumes[0].affine)
            assert volume.iap.model_name == recorded["model_name"]
            assert volume.iap.flip_angle == pytest.approx(recorded["flip_angle"])


def test_prepare_takes_the_first_series_unless_every_series(dataset, tmp_path):
    one = SliceStore.open(prepare(dataset, tmp_path / "one", size=32, drop_slices=1).store)
    every = SliceStore.open(
        prepare(dataset, tmp_path / "every", size=32, drop_slices=1, every_series=True).store
    )
    per_series = SHAPE[0] - 2
    assert len(one.rows) == 2 * per_series and len(every.rows) == 3 * 2 * per_series
    manifest = read_manifest(dataset)
    for entry in manifest["patients"]:
        rows = [r for r in every.rows if r["patient"] == entry["patient_id"]]
        assert len({r["series_uid"] for r in rows}) == 3
        assert all(r["has_mask"] for r in rows)
        firsts = [r for r in one.rows if r["patient"] == entry["patient_id"]]
        assert {r["model_name"] for r in firsts} == {entry["iap"]["model_name"]}
    assert set(every.patients()) == set(one.patients())  # still one patient per anatomy
    from cf_iap_training.split import patient_categories

    categories, masked = patient_categories(every)  # stratified by the first series
    for entry in manifest["patients"]:
        assert categories[entry["patient_id"]]["model_name"] == entry["iap"]["model_name"]
        assert masked[entry["patient_id"]]


def test_protocols_per_patient_must_be_positive(tmp_path):
    with pytest.raises(InputError, match="at least 1"):
        write_duke_dataset(tmp_path / "x", 1, shape=SHAPE, protocols_per_patient=0)
