"""The ``cf-iap`` command line on tiny bundles: outputs, summaries and one-line errors."""

import hashlib
import json

import numpy as np
import pytest

from napari_cf_iap.cli.main import main
from napari_cf_iap.iap import IAPRecord
from napari_cf_iap.io import read_dicom, read_nifti, read_volume, write_nifti
from napari_cf_iap.volume import Volume

SOURCE = IAPRecord.create(
    manufacturer="GE MEDICAL SYSTEMS",
    model_name="SIGNA HDx",
    field_strength=1.5,
    scan_options="FAST_GEMS\\SAT_GEMS\\ACC_GEMS\\PFP\\FS",
    flip_angle=10,
    slice_thickness=1.1,
    echo_time=2.3,
    repetition_time=4.9,
)


@pytest.fixture
def nifti_input(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.gamma(2.0, 100.0, size=(4, 36, 40)).astype(np.float32)
    affine = np.diag([1.5, 0.8, 0.8, 1.0])
    path = tmp_path / "in.nii.gz"
    write_nifti(Volume(data, (1.5, 0.8, 0.8), affine, SOURCE), path)
    return path


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_counterfactual_to_dicom_and_nifti(nifti_input, tiny_bundles, tmp_path, capsys):
    before = _digest(nifti_input)
    out = tmp_path / "cf_dicom"
    args = ["counterfactual", str(nifti_input), "--target", "model=Skyra", "--target", "field=3"]
    args += ["--target", "scan_options=FS", "--steps", "3", "--bundle", str(tiny_bundles["cddgm"])]
    assert main([*args, "--out", str(out)]) == 0
    result = read_dicom(out)
    assert result.shape == (4, 36, 40)
    assert result.iap.model_name == "Skyra" and result.iap.field_strength == 3.0
    assert result.iap.flip_angle == pytest.approx(10)  # unspecified IAPs keep the source's
    assert "DERIVED" in result.metadata["_dicom_header"].ImageType
    nii = tmp_path / "cf.nii.gz"
    assert main([*args, "--out", str(nii)]) == 0
    assert read_nifti(nii).iap.model_name == "Skyra"
    assert _digest(nifti_input) == before
    assert "target  SIEMENS Skyra 3T" in capsys.readouterr().out


def test_existing_output_refused_with_one_line(nifti_input, tiny_bundles, tmp_path, capsys):
    out = tmp_path / "exists.nii.gz"
    out.write_bytes(b"keep me")
    code = main(
        ["counterfactual", str(nifti_input), "--steps", "1", "--out", str(out)]
        + ["--bundle", str(tiny_bundles["cddgm"])]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "already exists" in err[0]
    assert out.read_bytes() == b"keep me"


def test_bad_target_key_is_a_clear_error(nifti_input, capsys):
    code = main(["counterfactual", str(nifti_input), "--target", "colour=red", "--out", "x.nii"])
    assert code == 2
    assert "KEY one of" in capsys.readouterr().err


def test_predict_iap_json(nifti_input, tiny_bundles, capsys):
    bundle = str(tiny_bundles["iap_predictor"])
    assert main(["predict-iap", str(nifti_input), "--json", "--bundle", bundle]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["header"]["model_name"] == "SIGNA HDx"
    probs = report["probabilities"]["model_name"]
    assert sum(probs.values()) == pytest.approx(1.0)
    assert report["predicted"]["model_name"] in probs


def test_segment_writes_labels_in_source_geometry(nifti_input, tiny_bundles, tmp_path):
    out = tmp_path / "seg.seg.nrrd"
    bundle = str(tiny_bundles["segmenter"])
    assert main(["segment", str(nifti_input), "--out", str(out), "--bundle", bundle]) == 0
    labels = read_volume(out, iap=None)
    assert labels.shape == (4, 36, 40)
    assert set(np.unique(labels.data)) <= {0, 1, 2}
    np.testing.assert_allclose(labels.affine, read_nifti(nifti_input).affine, atol=1e-5)


def test_demo_runs_end_to_end(tiny_bundles, tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--slices", "6", "--size", "64", "--steps", "2"]
    args += ["--cddgm", str(tiny_bundles["cddgm"])]
    args += ["--iap-bundle", str(tiny_bundles["iap_predictor"])]
    args += ["--seg-bundle", str(tiny_bundles["segmenter"])]
    assert main(args) == 0
    for name in ("summary.png", "counterfactual.nii.gz", "labels_truth.seg.nrrd"):
        assert (out / name).is_file()
    assert read_dicom(out / "counterfactual_dicom").iap.model_name == "Skyra"
    assert read_dicom(out / "source_dicom").iap.model_name == "SIGNA HDx"
    text = capsys.readouterr().out
    assert "MAE edit" in text and "Dice (source)" in text
