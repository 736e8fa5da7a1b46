"""DICOM reading (real scanner headers, synthetic series) and derived-series writing."""

from __future__ import annotations

import gzip

import numpy as np
import pydicom
import pytest
from helpers_io import header_only, make_volume, philips_enhanced, pkg_file, tree_hash, write_series
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag
from pydicom.uid import generate_uid

from napari_cf_iap.errors import CancelledError, InputError, OutputExistsError
from napari_cf_iap.iap import IAPRecord
from napari_cf_iap.io import dicom_write
from napari_cf_iap.io.dicom_series import list_series, read_dicom
from napari_cf_iap.io.dicom_tags import apply_iap_to_dataset, iap_from_dataset
from napari_cf_iap.io.dicom_write import encode_pixels, write_dicom_series
from napari_cf_iap.io.reader import is_supported_path, read_volume

TARGET = IAPRecord.create(
    manufacturer="SIEMENS",
    model_name="Skyra",
    field_strength=2.8936,
    scan_options="PFP\\SFS",
    flip_angle=12,
    slice_thickness=1.1,
    echo_time=2.76,
    repetition_time=4.73,
)


# ---------------------------------------------------------------- real files from packages
def test_siemens_avanto_vibe_fs_iaps_and_geometry():
    path = pkg_file("examples_overlay.dcm")
    before = tree_hash(path)
    volume = read_dicom(path)
    assert tree_hash(path) == before
    iap = volume.iap
    assert iap.manufacturer == "SIEMENS"
    assert iap.model_name == "Avanto"
    assert iap.field_strength == 1.5  # stored as 1.4939999580383
    assert iap.scan_options == "SAT2\\FS"
    assert (iap.flip_angle, iap.slice_thickness) == (10.0, 4.0)
    assert iap.echo_time == pytest.approx(2.81)
    assert iap.repetition_time == pytest.approx(5.53)
    assert volume.metadata["missing_tags"] == []
    assert volume.shape == (1, 300, 484)
    assert volume.spacing == pytest.approx((4.0, 0.72314049586777, 0.72314049586777))
    origin = volume.affine @ [0, 0, 0, 1]
    assert origin[:3] == pytest.approx([-159.82565509386, -175.32202350207, 28.426151275635])
    raw = pydicom.dcmread(path).pixel_array
    np.testing.assert_array_equal(volume.data[0], raw)


def test_toshiba_mr_small_reports_missing_field_strength():
    volume = read_dicom(pkg_file("MR_small.dcm"))
    iap = volume.iap
    assert iap.manufacturer == "TOSHIBA_MEC"
    assert iap.model_name == "MRT50H1"
    assert iap.field_strength is None
    assert iap.scan_options == ""
    assert (iap.flip_angle, iap.slice_thickness, iap.echo_time, iap.repetition_time) == (
        90.0,
        0.8,
        240.0,
        4000.0,
    )
    assert volume.metadata["missing_tags"] == ["MagneticFieldStrength"]
    assert volume.metadata["missing_iaps"] == ["field_strength"]
    assert volume.shape == (1, 64, 64)
    assert volume.data.dtype == np.int16


def test_philips_enhanced_mr_functional_groups(tmp_path):
    path = philips_enhanced(tmp_path)
    before = tree_hash(path)
    volume = read_dicom(path)
    assert tree_hash(path) == before
    iap = volume.iap
    assert (iap.manufacturer, iap.model_name, iap.field_strength) == ("Philips", "Achieva", 3.0)
    assert iap.flip_angle == 7.0
    assert iap.echo_time == pytest.approx(3.513)
    assert iap.repetition_time == pytest.approx(7.5693, abs=1e-4)
    assert iap.slice_thickness == 1.0
    assert iap.scan_options is None
    assert volume.metadata["missing_tags"] == ["ScanOptions"]
    assert volume.shape == (176, 256, 256)
    assert volume.spacing == pytest.approx((1.0, 1.0, 1.0), abs=1e-4)
    # frames are sorted along the slice normal: consecutive positions differ by one step
    ds = header_only(path)
    positions = np.array(
        [
            f.PlanePositionSequence[0].ImagePositionPatient
            for f in ds.PerFrameFunctionalGroupsSequence
        ],
        dtype=float,
    )
    mapped = np.array([(volume.affine @ [k, 0, 0, 1])[:3] for k in range(176)])
    distances = np.linalg.norm(mapped[:, None] - positions[None], axis=2).min(axis=1)
    assert distances.max() < 0.05
    # RescaleSlope 2.1079... is per frame: data are float32
    assert volume.data.dtype == np.float32


def test_iap_from_dataset_normalises_and_reports():
    ds = Dataset()
    ds.Manufacturer = "Siemens Healthineers"
    ds.MagneticFieldStrength = 15000  # gauss
    ds.ScanOptions = MultiValue(str, ["PFP", "FS"])
    # a DS value that is not a number, as pydicom reads it from a file
    ds[0x00181314] = RawDataElement(Tag(0x00181314), "DS", 3, b"abc", 0, False, True)
    record, missing = iap_from_dataset(ds)
    assert record.manufacturer == "SIEMENS"
    assert record.field_strength == 1.5
    assert record.scan_options == "PFP\\FS"
    assert record.flip_angle is None and record.extras["invalid_tags"] == {"FlipAngle": "abc"}
    assert missing == [
        "ManufacturerModelName",
        "FlipAngle",
        "SliceThickness",
        "EchoTime",
        "RepetitionTime",
    ]
    ds.ScanOptions = "FS"
    assert iap_from_dataset(ds)[0].scan_options == "FS"


def test_apply_iap_round_trip():
    ds = apply_iap_to_dataset(Dataset(), TARGET)
    assert list(ds.ScanOptions) == ["PFP", "SFS"]
    record, missing = iap_from_dataset(ds)
    assert record == TARGET and missing == []
    partial = apply_iap_to_dataset(ds, TARGET.with_values(flip_angle=None))
    assert "FlipAngle" not in partial
    assert iap_from_dataset(partial)[1] == ["FlipAngle"]


# ---------------------------------------------------------------- synthetic multi-file series
def test_shuffled_series_mixed_with_another_loads_sorted(tmp_path):
    folder = tmp_path / "study"
    positions = [2.5 * k - 30.0 for k in range(7)]
    uid_a, expected = write_series(folder, positions[::-1], description="ax t1 pre", shuffle_seed=3)
    uid_b, _ = write_series(folder, [0.0, 4.0, 8.0], description="other", name_prefix="b_")
    (folder / "notes.txt").write_text("not a DICOM file")
    before = tree_hash(folder)

    series = list_series(folder)
    assert {s.series_uid for s in series} == {uid_a, uid_b}
    assert {s.description: s.n_files for s in series} == {"ax t1 pre": 7, "other": 3}

    with pytest.raises(InputError, match="series_uid") as info:
        read_dicom(folder)
    assert uid_a in str(info.value) and uid_b in str(info.value)
    assert "ax t1 pre" in str(info.value)

    volume = read_dicom(folder, series_uid=uid_a)
    # positions were given in descending order, so slice k holds ramp + 100 * (6 - k)
    np.testing.assert_array_equal(volume.data, expected)
    assert volume.data[0, 0, 0] == 600 and volume.data[-1, 0, 0] == 0
    assert volume.spacing[0] == pytest.approx(2.5)
    z_of = [(volume.affine @ [k, 0, 0, 1])[2] for k in range(7)]
    assert z_of == pytest.approx(sorted(positions))
    assert volume.metadata["series_uid"] == uid_a
    assert len(volume.metadata["source_paths"]) == 7
    assert tree_hash(folder) == before
    assert read_volume(folder, series_uid=uid_b).shape == (3, 16, 12)


def test_rescale_slope_intercept_applied(tmp_path):
    write_series(
        tmp_path, [0.0, 1.0, 2.0], extra={"RescaleSlope": "0.5", "RescaleIntercept": "-10"}
    )
    volume = read_dicom(tmp_path)
    assert volume.data.dtype == np.float32
    assert volume.data[0, 0, 0] == pytest.approx(-10.0)
    assert volume.data[2, 0, 1] == pytest.approx((200 + 1) * 0.5 - 10)


def test_multiphase_series_is_split(tmp_path):
    uid = generate_uid()
    write_series(
        tmp_path / "p1", [0.0, 2.0, 4.0], series_uid=uid, extra={"TemporalPositionIdentifier": 1}
    )
    write_series(
        tmp_path / "p2",
        [0.0, 2.0, 4.0],
        series_uid=uid,
        extra={"TemporalPositionIdentifier": 2, "RescaleIntercept": "1000"},
    )
    (info,) = list_series(tmp_path)
    assert info.phases == ["TemporalPositionIdentifier=1", "TemporalPositionIdentifier=2"]
    with pytest.raises(InputError, match="phase"):
        read_dicom(tmp_path)
    first = read_dicom(tmp_path, phase=0)
    second = read_dicom(tmp_path, phase=1)
    assert first.shape == second.shape == (3, 16, 12)
    np.testing.assert_allclose(second.data - first.data, 1000.0)
    assert second.metadata["n_phases"] == 2


@pytest.mark.parametrize(
    ("positions", "message"),
    [([0.0, 2.0, 4.0, 7.0], "non-uniform slice spacing"), ([0.0, 2.0, 2.0, 4.0], "duplicate")],
)
def test_bad_slice_positions_are_refused(tmp_path, positions, message):
    write_series(tmp_path, positions)
    with pytest.raises(InputError, match=message):
        read_dicom(tmp_path)


def test_mixed_orientations_are_refused(tmp_path):
    write_series(
        tmp_path,
        [0.0, 1.0, 2.0],
        extra={
            "ImageOrientationPatient": lambda k: [1, 0, 0, 0, 1, 0] if k else [0, 1, 0, 0, 0, -1]
        },
    )
    with pytest.raises(InputError, match="orientations"):
        read_dicom(tmp_path)


@pytest.mark.parametrize("keep_bytes", [300, -100])  # header cut short / pixel data cut short
def test_truncated_file_is_reported(tmp_path, keep_bytes):
    write_series(tmp_path, [0.0, 1.0, 2.0, 3.0])
    victim = sorted(tmp_path.iterdir())[1]
    victim.write_bytes(victim.read_bytes()[:keep_bytes])
    with pytest.raises(InputError, match=victim.name):
        read_dicom(tmp_path)
    with pytest.raises(InputError, match="truncated|corrupt"):
        read_dicom(victim)


def test_rgb_non_image_and_non_dicom_inputs(tmp_path):
    with pytest.raises(InputError, match="colour image"):
        read_dicom(pkg_file("SC_rgb_small_odd.dcm"))
    with pytest.raises(InputError, match="without image data"):
        read_dicom(pkg_file("rtplan.dcm"))
    text = tmp_path / "scan.dcm"
    text.write_text("hello")
    with pytest.raises(InputError, match="not a DICOM file"):
        read_dicom(text)
    with pytest.raises(InputError, match="no DICOM image series"):
        read_dicom(tmp_path)
    # an MR header whose pixel data is missing
    ds = pydicom.dcmread(pkg_file("MR_small.dcm"))
    del ds.PixelData
    ds.save_as(tmp_path / "nopix.dcm")
    with pytest.raises(InputError, match="pixel data"):
        read_dicom(tmp_path / "nopix.dcm")


def test_is_supported_path(tmp_path):
    write_series(tmp_path / "series", [0.0, 1.0])
    (tmp_path / "a.txt").write_text("x")
    assert is_supported_path(tmp_path / "series")
    assert is_supported_path(pkg_file("MR_small.dcm"))
    assert not is_supported_path(tmp_path / "a.txt")
    assert not is_supported_path(tmp_path / "missing.nii.gz")


# ---------------------------------------------------------------- writing
def test_encode_pixels_exact_for_integers_and_bounded_for_floats():
    ints = np.array([[[0, 7, 65535]]])
    stored, slope, intercept = encode_pixels(ints)
    assert stored.dtype == np.uint16 and (slope, intercept) == (1.0, 0.0)
    signed = encode_pixels(np.array([[[-5, 0, 300]]], dtype=np.int32))[0]
    assert signed.dtype == np.int16 and signed.tolist() == [[[-5, 0, 300]]]
    floats = np.linspace(-3.7, 1234.5, 60, dtype=np.float32).reshape(3, 4, 5)
    stored, slope, intercept = encode_pixels(floats)
    assert np.abs(stored * slope + intercept - floats).max() <= slope / 2 + 1e-6
    with pytest.raises(InputError, match="NaN"):
        encode_pixels(np.array([[[np.nan]]]))


def test_write_read_round_trip_keeps_geometry_intensities_and_iaps(tmp_path):
    volume = make_volume()
    out = write_dicom_series(volume, tmp_path / "out", series_description="simulated pre")
    files = sorted(out.iterdir())
    assert len(files) == volume.shape[0]
    back = read_dicom(out)
    np.testing.assert_allclose(back.affine, volume.affine, atol=1e-4)
    slope = float(pydicom.dcmread(files[0]).RescaleSlope)
    assert np.abs(back.data - volume.data).max() <= slope / 2 + 1e-4
    assert back.iap == volume.iap
    header = back.metadata["_dicom_header"]
    assert list(header.ImageType) == ["ORIGINAL", "PRIMARY"]
    assert header.SOPClassUID == pydicom.uid.MRImageStorage
    assert float(header.SliceThickness) == pytest.approx(2.2)  # the IAP, not the spacing
    assert float(header.SpacingBetweenSlices) == pytest.approx(2.5)


def test_derived_counterfactual_series_references_its_source(tmp_path):
    source_dir = tmp_path / "source"
    write_series(source_dir, [0.0, 3.0, 6.0, 9.0])
    before = tree_hash(source_dir)
    source = read_dicom(source_dir)
    edited = source.with_data(source.data.astype(np.float32) * 0.5 + 0.25, iap=TARGET)
    out = write_dicom_series(
        edited, tmp_path / "cf", series_description="to Siemens Skyra 3T", derived_from=source
    )
    assert tree_hash(source_dir) == before
    back = read_dicom(out)
    header = back.metadata["_dicom_header"]
    assert list(header.ImageType) == ["DERIVED", "SECONDARY"]
    assert "counterfactual" in header.SeriesDescription.lower()
    assert "to Siemens Skyra 3T" in header.SeriesDescription
    assert back.metadata["series_uid"] != source.metadata["series_uid"]
    assert not set(back.metadata["sop_instance_uids"]) & set(source.metadata["sop_instance_uids"])
    assert header.ReferencedSeriesSequence[0].SeriesInstanceUID == source.metadata["series_uid"]
    for key in ("study_uid", "patient_id", "frame_of_reference_uid"):
        assert back.metadata[key] == source.metadata[key]
    referenced = [
        pydicom.dcmread(p).SourceImageSequence[0].ReferencedSOPInstanceUID
        for p in back.metadata["source_paths"]
    ]
    assert referenced == source.metadata["sop_instance_uids"]
    assert back.iap == TARGET
    np.testing.assert_allclose(back.affine, source.affine, atol=1e-4)
    np.testing.assert_allclose(back.data, edited.data, atol=0.01)


def test_writer_refuses_overwrite_and_leaves_nothing_on_failure(tmp_path, monkeypatch):
    volume = make_volume(shape=(4, 6, 5))
    out = tmp_path / "out"
    write_dicom_series(volume, out, series_description="first")
    with pytest.raises(OutputExistsError):
        write_dicom_series(volume, out, series_description="second")
    assert read_dicom(out).metadata["series_description"] == "first"
    write_dicom_series(volume, out, series_description="second", overwrite=True)
    assert read_dicom(out).metadata["series_description"] == "second"

    def cancel(done, total):
        if done == 2:
            raise CancelledError("stop")

    with pytest.raises(CancelledError):
        write_dicom_series(volume, tmp_path / "cancelled", series_description="x", progress=cancel)

    calls = []
    real_save = Dataset.save_as

    def failing_save(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(dicom_write.Dataset, "save_as", failing_save)
    with pytest.raises(OSError, match="disk full"):
        write_dicom_series(volume, tmp_path / "failed", series_description="x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_gzipped_single_file_and_left_handed_volume(tmp_path):
    gz = tmp_path / "mr.dcm.gz"
    gz.write_bytes(gzip.compress(pkg_file("MR_small.dcm").read_bytes()))
    assert is_supported_path(gz)
    assert read_volume(gz).iap.model_name == "MRT50H1"
    # slice axis against row x column: the series comes back sorted along the normal, i.e.
    # with the slice axis reversed, but every voxel stays at its physical position
    volume = make_volume(shape=(3, 4, 5))
    flipped = volume.affine.copy()
    flipped[:3, 0] *= -1
    volume = volume.with_data(volume.data, affine=flipped)
    back = read_dicom(write_dicom_series(volume, tmp_path / "lh", series_description="lh"))
    np.testing.assert_allclose(back.data, volume.data[::-1], atol=0.01)
    np.testing.assert_allclose(back.affine @ [2, 1, 3, 1], volume.affine @ [0, 1, 3, 1], atol=1e-4)
