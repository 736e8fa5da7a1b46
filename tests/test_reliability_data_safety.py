"""No data loss: inputs stay byte-identical, outputs appear whole or not at all, and nothing
is overwritten unless the user asked for it.

Every writer is exercised the same way: a failure injected in the middle of the write leaves
neither the target nor a temporary file behind, and when the target already existed (with
``overwrite=True``) the old content survives the failed write.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers_io import make_volume, tree_hash
from reliability_builders import nifti, series
from reliability_corpus import run_cli, torch_threads

from napari_cf_iap.errors import OutputExistsError

# ---------------------------------------------------------------------- inputs untouched


@pytest.fixture(autouse=True)
def _single_threaded_torch():
    with torch_threads(1):
        yield


@pytest.fixture
def inputs(tmp_path) -> dict[str, Path]:
    folder = tmp_path / "input"
    return {
        "nifti": nifti(folder / "scan.nii.gz"),
        "dicom": series(folder / "dicom", [0, 2, 4, 6], extra=_duke_tags()),
    }


def _duke_tags() -> dict:
    """MR_small's IAPs replaced by in-vocabulary GE 1.5T ones (so the CLI edits it)."""
    return {
        "Manufacturer": "GE MEDICAL SYSTEMS",
        "ManufacturerModelName": "SIGNA HDx",
        "MagneticFieldStrength": "1.5",
        "ScanOptions": ["FAST_GEMS", "SAT_GEMS", "PFP", "FS"],
        "FlipAngle": "10",
        "SliceThickness": "2",
        "EchoTime": "2.5",
        "RepetitionTime": "5.5",
    }


def _cli_runs(inputs: dict[str, Path], bundles: dict[str, Path], out: Path) -> list[list[str]]:
    target = ["--target", "model=Skyra", "--target", "field=3", "--target", "scan_options=FS"]
    return [
        ["counterfactual", str(inputs["nifti"]), *target, "--out", str(out / "cf.nii.gz")],
        ["counterfactual", str(inputs["dicom"]), *target, "--out", str(out / "cf_dicom")],
        ["predict-iap", str(inputs["dicom"]), "--bundle", str(bundles["iap_predictor"])],
        ["predict-iap", str(inputs["nifti"]), "--bundle", str(bundles["iap_predictor"])],
        [
            "segment",
            str(inputs["dicom"]),
            "--bundle",
            str(bundles["segmenter"]),
            "--out",
            str(out / "labels.seg.nrrd"),
        ],
        [
            "segment",
            str(inputs["nifti"]),
            "--bundle",
            str(bundles["segmenter"]),
            "--out",
            str(out / "labels.nii.gz"),
        ],
    ]


def test_cli_jobs_leave_inputs_byte_identical(inputs, tiny_bundles, tmp_path):
    out = tmp_path / "out"
    before = tree_hash(tmp_path / "input")
    bundles_before = {k: tree_hash(p) for k, p in tiny_bundles.items()}
    for argv in _cli_runs(inputs, tiny_bundles, out):
        if argv[0] == "counterfactual":
            argv += ["--bundle", str(tiny_bundles["cddgm"])]
        code, stdout, err = run_cli(argv)
        assert code == 0, f"{argv}: {err}"
        assert tree_hash(tmp_path / "input") == before, f"{argv[0]} modified its input"
    assert {k: tree_hash(p) for k, p in tiny_bundles.items()} == bundles_before
    written = sorted(p.name for p in out.iterdir())
    assert written == [
        "cf.json",
        "cf.nii.gz",
        "cf_dicom",
        "labels.json",
        "labels.nii.gz",
        "labels.seg.nrrd",
    ]
    assert len(list((out / "cf_dicom").glob("*.dcm"))) == 4


# ---------------------------------------------------------------------- atomic writers
class Boom(OSError):
    """Stands for a disk-full or I/O error in the middle of a write."""


def _write_dicom(target: Path, overwrite: bool) -> None:
    from napari_cf_iap.io import write_dicom_series

    write_dicom_series(make_volume(), target, series_description="t", overwrite=overwrite)


def _write_nifti(target: Path, overwrite: bool) -> None:
    from napari_cf_iap.io import write_nifti

    write_nifti(make_volume(), target, overwrite=overwrite)


def _write_nrrd(target: Path, overwrite: bool) -> None:
    from napari_cf_iap.io import write_labels_nrrd

    volume = make_volume()
    write_labels_nrrd((volume.data > 400).astype(np.uint8), volume, target, overwrite=overwrite)


def _save_bundle(target: Path, overwrite: bool) -> None:
    from napari_cf_iap.bundles import build_model, save_bundle
    from napari_cf_iap.models.config import SegmenterConfig

    config = SegmenterConfig.tiny()
    save_bundle(
        build_model("segmenter", config), config, target, kind="segmenter", overwrite=overwrite
    )


def _fail_dicom(monkeypatch) -> None:
    import pydicom.dataset

    real, calls = pydicom.dataset.Dataset.save_as, []

    def save_as(self, filename, *args, **kwargs):
        calls.append(filename)
        if len(calls) == 3:
            raise Boom("disk full after 2 slices")
        return real(self, filename, *args, **kwargs)

    monkeypatch.setattr(pydicom.dataset.Dataset, "save_as", save_as)


def _fail_nifti(monkeypatch) -> None:  # the image is written, then the sidecar fails
    def write_text(self, *args, **kwargs):
        raise Boom("disk full while writing the sidecar")

    monkeypatch.setattr(Path, "write_text", write_text)


def _fail_nrrd(monkeypatch) -> None:
    import nrrd

    def write(filename, *args, **kwargs):
        Path(filename).write_bytes(b"NRRD0004\ntype: uchar\n")  # half a file
        raise Boom("disk full inside nrrd.write")

    monkeypatch.setattr(nrrd, "write", write)


def _fail_bundle(monkeypatch) -> None:
    import safetensors.torch

    def save_file(tensors, filename, *args, **kwargs):
        Path(filename).write_bytes(b"\x00" * 100)
        raise Boom("disk full inside save_file")

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)


WRITERS: dict[str, tuple[str, Callable, Callable]] = {
    "dicom-series": ("series", _write_dicom, _fail_dicom),
    "nifti+sidecar": ("image.nii.gz", _write_nifti, _fail_nifti),
    "seg-nrrd": ("labels.seg.nrrd", _write_nrrd, _fail_nrrd),
    "bundle": ("bundle", _save_bundle, _fail_bundle),
}


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(Path(k).relative_to(folder)): v for k, v in tree_hash(folder).items()}


@pytest.mark.parametrize("name", list(WRITERS))
def test_writer_refuses_to_overwrite_unless_told(name, tmp_path):
    target_name, write, _ = WRITERS[name]
    target = tmp_path / target_name
    write(target, False)
    first = _snapshot(tmp_path)
    with pytest.raises(OutputExistsError, match="already exists.*overwrite=True"):
        write(target, False)
    assert _snapshot(tmp_path) == first
    write(target, True)
    assert target.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary file left"


@pytest.mark.parametrize("name", list(WRITERS))
def test_failure_mid_write_leaves_nothing(name, tmp_path, monkeypatch):
    target_name, write, fail = WRITERS[name]
    target = tmp_path / target_name
    with monkeypatch.context() as patch:
        fail(patch)
        with pytest.raises(Boom):
            write(target, False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "partial output left behind"


@pytest.mark.parametrize("name", list(WRITERS))
def test_failed_overwrite_keeps_the_old_output(name, tmp_path, monkeypatch):
    target_name, write, fail = WRITERS[name]
    target = tmp_path / target_name
    write(target, False)
    old = _snapshot(tmp_path)
    with monkeypatch.context() as patch:
        fail(patch)
        with pytest.raises(Boom):
            write(target, True)
    assert _snapshot(tmp_path) == old, "a failed overwrite damaged the existing output"


def test_nifti_writer_refuses_when_only_the_sidecar_exists(tmp_path):
    sidecar = tmp_path / "image.json"
    sidecar.write_text(json.dumps({"keep": True}))
    with pytest.raises(OutputExistsError, match=r"image\.json already exists"):
        _write_nifti(tmp_path / "image.nii.gz", False)
    assert json.loads(sidecar.read_text()) == {"keep": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.json"]


# ---------------------------------------------------------------------- CLI outputs
@pytest.mark.parametrize("out_name", ["cf.nii.gz", "cf_dicom"])
def test_cli_refuses_existing_output_and_overwrites_when_told(
    out_name, inputs, tiny_bundles, tmp_path
):
    out = tmp_path / "out" / out_name
    argv = [
        "counterfactual",
        str(inputs["nifti"]),
        "--target",
        "fa=12",
        "--bundle",
        str(tiny_bundles["cddgm"]),
        "--out",
        str(out),
    ]
    assert run_cli(argv)[0] == 0
    first = _snapshot(out.parent)
    code, _, err = run_cli(argv)
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert _snapshot(out.parent) == first
    code, _, err = run_cli([*argv, "--overwrite", "--seed", "5"])
    assert code == 0, err
    assert _snapshot(out.parent) != first  # replaced (another seed, another result)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_cli_disk_error_mid_write_is_one_line_and_leaves_nothing(
    inputs, tiny_bundles, tmp_path, monkeypatch
):
    out = tmp_path / "out" / "cf_dicom"
    _fail_dicom(monkeypatch)
    code, _, err = run_cli(
        [
            "counterfactual",
            str(inputs["nifti"]),
            "--target",
            "fa=12",
            "--bundle",
            str(tiny_bundles["cddgm"]),
            "--out",
            str(out),
        ]
    )
    assert "Traceback" not in err
    assert code == 1, err
    assert "cf-iap counterfactual: error: disk full after 2 slices" in err
    assert not out.parent.exists() or not list(out.parent.iterdir())
    assert tree_hash(inputs["nifti"])  # the input is still there
