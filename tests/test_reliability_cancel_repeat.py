"""Cancellation leaves nothing behind and no damaged state; repeated runs do not leak memory."""

from __future__ import annotations

import contextlib
import hashlib

import numpy as np
import pytest
from helpers_io import make_volume, tree_hash
from reliability_builders import full_iap, nifti
from reliability_corpus import RSS_BOUND_MB, rss_growth_mb, run_cli, torch_threads

from napari_cf_iap.errors import CancelledError
from napari_cf_iap.pipeline import (
    CounterfactualRequest,
    generate_counterfactual,
    predict_iap,
    segment,
)


@pytest.fixture(autouse=True)
def _single_threaded_torch():
    with torch_threads(1):
        yield


def _stop_after(k: int):
    """A ``should_stop`` that turns true on its (k+1)-th call; ``calls`` counts the checks."""
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) > k

    should_stop.calls = calls
    return should_stop


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


@pytest.fixture
def volume():
    return make_volume((6, 24, 20), seed=4)


def test_cancelled_counterfactual_changes_nothing_and_rerun_is_identical(volume, tiny_bundles):
    request = CounterfactualRequest(target=full_iap(), seed=3)
    bundle = tiny_bundles["cddgm"]
    before = _digest(volume.data)
    stop = _stop_after(2)
    with pytest.raises(CancelledError):
        generate_counterfactual(volume, request, bundle, device="cpu", should_stop=stop)
    assert len(stop.calls) == 3  # checked before every step, stopped at once
    assert _digest(volume.data) == before
    after_cancel = generate_counterfactual(volume, request, bundle, device="cpu")
    from napari_cf_iap.bundles import unload

    unload(bundle)  # a fresh load: no state carried over from the cancelled run
    fresh = generate_counterfactual(volume, request, bundle, device="cpu")
    np.testing.assert_array_equal(after_cancel.data, fresh.data)
    assert _digest(volume.data) == before


def test_cancelled_segmentation_and_prediction(volume, tiny_bundles):
    before = _digest(volume.data)
    stop = _stop_after(1)
    with pytest.raises(CancelledError, match="segmentation cancelled after 2 of 6 slices"):
        segment(volume, tiny_bundles["segmenter"], device="cpu", batch_size=2, should_stop=stop)
    labels = segment(volume, tiny_bundles["segmenter"], device="cpu", batch_size=2)
    assert labels.shape == volume.shape
    np.testing.assert_array_equal(
        labels, segment(volume, tiny_bundles["segmenter"], device="cpu", batch_size=6)
    )
    with pytest.raises(CancelledError, match="IAP prediction cancelled after 2 of 6 slices"):
        predict_iap(
            volume,
            tiny_bundles["iap_predictor"],
            device="cpu",
            batch_size=2,
            should_stop=_stop_after(1),
        )
    assert _digest(volume.data) == before


# ---------------------------------------------------------------------- CLI interruption
def _interrupting_bar(after: int):
    @contextlib.contextmanager
    def progress_bar(description: str):
        def update(done: int, total: int, message: str = "") -> None:
            if done >= after:
                raise KeyboardInterrupt

        yield update

    return progress_bar


@pytest.mark.parametrize("out_name", ["cf.nii.gz", "cf_dicom"])
def test_cli_interrupted_during_generation_leaves_nothing(
    out_name, tiny_bundles, tmp_path, monkeypatch
):
    import napari_cf_iap.cli.counterfactual_command as command

    source = nifti(tmp_path / "input" / "scan.nii.gz")
    before = tree_hash(tmp_path / "input")
    monkeypatch.setattr(command, "progress_bar", _interrupting_bar(after=2))
    out = tmp_path / "out" / out_name
    argv = ["counterfactual", str(source), "--target", "fa=12"]
    code, _, err = run_cli([*argv, "--bundle", str(tiny_bundles["cddgm"]), "--out", str(out)])
    assert code == 130 and err.strip().endswith("cf-iap counterfactual: interrupted")
    assert not out.parent.exists() or not list(out.parent.iterdir())
    assert tree_hash(tmp_path / "input") == before


def test_cli_interrupted_while_writing_dicom_leaves_nothing(tiny_bundles, tmp_path, monkeypatch):
    import pydicom.dataset

    source = nifti(tmp_path / "input" / "scan.nii.gz")
    real, calls = pydicom.dataset.Dataset.save_as, []

    def save_as(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pydicom.dataset.Dataset, "save_as", save_as)
    out = tmp_path / "out" / "cf_dicom"
    argv = ["counterfactual", str(source), "--target", "fa=12"]
    code, _, err = run_cli([*argv, "--bundle", str(tiny_bundles["cddgm"]), "--out", str(out)])
    assert code == 130, err
    assert len(calls) == 3  # two slices were written to the temporary folder, then removed
    assert not out.parent.exists() or not list(out.parent.iterdir())


def test_cancelled_dicom_write_leaves_nothing(tmp_path):
    from napari_cf_iap.io import write_dicom_series

    def progress(done: int, total: int) -> None:
        if done == 2:
            raise CancelledError("cancelled by the user")

    with pytest.raises(CancelledError):
        write_dicom_series(
            make_volume(), tmp_path / "series", series_description="t", progress=progress
        )
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- repetition
def test_twenty_runs_do_not_grow_memory(tiny_bundles):
    measured = rss_growth_mb(tiny_bundles, runs=20)
    print(
        f"\nRSS growth over {measured['runs']} pipeline runs of {measured['shape']}: "
        f"{measured['growth_mb']:.1f} MB (peak {measured['peak_growth_mb']:.1f} MB), "
        f"bound {RSS_BOUND_MB} MB"
    )
    assert measured["growth_mb"] < RSS_BOUND_MB
    assert measured["peak_growth_mb"] < RSS_BOUND_MB
