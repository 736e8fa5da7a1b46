"""Volume-level jobs: geometry, determinism, cancellation and validation."""

import numpy as np
import pytest
from pipeline_support import TARGET

from napari_cf_iap.errors import CancelledError, IAPValueError, InputError
from napari_cf_iap.iap import IAPRecord
from napari_cf_iap.pipeline import (
    CounterfactualRequest,
    generate_counterfactual,
    predict_iap,
    predict_iap_per_slice,
    segment,
)
from napari_cf_iap.volume import Volume


@pytest.fixture
def volume():
    rng = np.random.default_rng(0)
    data = rng.gamma(2.0, 100.0, size=(5, 40, 48)).astype(np.float32)
    affine = np.diag([2.0, 0.7, 0.8, 1.0])
    affine[:3, 3] = [10, -20, 30]
    return Volume(data, spacing=(2.0, 0.7, 0.8), affine=affine, iap=IAPRecord())


def test_counterfactual_keeps_geometry_and_unselected_slices(volume, tiny_bundles):
    before = volume.data.copy()
    request = CounterfactualRequest(target=TARGET, steps=3, guidance=2.0, slices=[1, 3])
    out = generate_counterfactual(volume, request, tiny_bundles["cddgm"], device="cpu")
    assert out.shape == volume.shape
    np.testing.assert_array_equal(out.affine, volume.affine)
    assert out.spacing == volume.spacing
    np.testing.assert_array_equal(out.data[[0, 2, 4]], volume.data[[0, 2, 4]])
    assert not np.allclose(out.data[1], volume.data[1])
    np.testing.assert_array_equal(volume.data, before)  # input untouched
    assert out.iap.model_name == "Skyra" and out.iap.manufacturer == "SIEMENS"
    meta = out.metadata["counterfactual"]
    assert meta["slices"] == [1, 3] and meta["steps"] == 3 and len(meta["bundle_sha256"]) == 64


def test_slice_result_does_not_depend_on_selection(volume, tiny_bundles):
    one = generate_counterfactual(
        volume, CounterfactualRequest(target=TARGET, steps=3, slices=[2]), tiny_bundles["cddgm"]
    )
    many = generate_counterfactual(
        volume,
        CounterfactualRequest(target=TARGET, steps=3, slices=[0, 2, 4], batch_size=2),
        tiny_bundles["cddgm"],
    )
    np.testing.assert_allclose(one.data[2], many.data[2], atol=1e-4)


def test_zero_steps_returns_source(volume, tiny_bundles):
    out = generate_counterfactual(
        volume, CounterfactualRequest(target=TARGET, steps=0), tiny_bundles["cddgm"]
    )
    np.testing.assert_allclose(out.data, volume.data, atol=1e-3)


def test_bundle_defaults_used_when_unset(volume, tiny_bundles):
    out = generate_counterfactual(
        volume, CounterfactualRequest(target=TARGET, slices=[0]), tiny_bundles["cddgm"]
    )
    assert out.metadata["counterfactual"]["steps"] == 4
    assert out.metadata["counterfactual"]["guidance"] == 2.0


def test_cancel_raises_and_counts(volume, tiny_bundles):
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(CancelledError):
        generate_counterfactual(
            volume,
            CounterfactualRequest(target=TARGET, steps=10),
            tiny_bundles["cddgm"],
            should_stop=stop,
        )
    assert len(calls) == 3


def test_out_of_range_target_refused(volume, tiny_bundles):
    with pytest.raises(IAPValueError, match="flip_angle"):
        generate_counterfactual(
            volume,
            CounterfactualRequest(target=TARGET.with_values(flip_angle=90)),
            tiny_bundles["cddgm"],
        )


def test_bad_slice_index_and_nan(volume, tiny_bundles):
    with pytest.raises(InputError, match="outside the volume"):
        generate_counterfactual(
            volume, CounterfactualRequest(target=TARGET, slices=[9]), tiny_bundles["cddgm"]
        )
    bad = volume.with_data(np.where(volume.data > 300, np.nan, volume.data))
    with pytest.raises(InputError, match="NaN"):
        generate_counterfactual(
            bad, CounterfactualRequest(target=TARGET, slices=[0]), tiny_bundles["cddgm"]
        )


def test_predict_iap_aggregates_per_slice(volume, tiny_bundles):
    per_slice = predict_iap_per_slice(volume, tiny_bundles["iap_predictor"])
    assert len(per_slice) == volume.shape[0]
    agg = predict_iap(volume, tiny_bundles["iap_predictor"])
    for name, probs in agg.probabilities.items():
        assert sum(probs.values()) == pytest.approx(1.0)
        for category, p in probs.items():
            expected = np.mean([s.probabilities[name][category] for s in per_slice])
            assert p == pytest.approx(expected, abs=1e-6)
    assert agg.record.flip_angle == pytest.approx(
        np.mean([p.record.flip_angle for p in per_slice]), rel=1e-5
    )


def test_segment_has_source_geometry(volume, tiny_bundles):
    labels = segment(volume, tiny_bundles["segmenter"])
    assert labels.shape == volume.shape and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1, 2}


def test_wrong_kind_of_bundle_refused(volume, tiny_bundles):
    from napari_cf_iap.errors import BundleError

    with pytest.raises(BundleError, match="segmenter"):
        segment(volume, tiny_bundles["cddgm"])


def test_twin_edit_towards_own_iaps_changes_nothing(volume, tiny_bundles):
    own = volume.with_data(volume.data, iap=TARGET)
    request = CounterfactualRequest(
        target=TARGET, steps=5, guidance=2.0, slices=[1, 2], edit_mode="twin"
    )
    out = generate_counterfactual(own, request, tiny_bundles["cddgm"], device="cpu")
    np.testing.assert_allclose(out.data, own.data, rtol=0, atol=1e-3 * own.data.max())
    assert out.metadata["counterfactual"]["edit_mode"] == "twin"
    plain = generate_counterfactual(
        own, CounterfactualRequest(target=TARGET, steps=5, slices=[1]), tiny_bundles["cddgm"]
    )
    assert not np.allclose(plain.data[1], own.data[1], atol=1e-3 * own.data.max())


def test_twin_edit_without_source_iaps_says_what_to_do(volume, tiny_bundles):
    request = CounterfactualRequest(target=TARGET, steps=3, slices=[0], edit_mode="twin")
    with pytest.raises(IAPValueError, match="source's IAPs.*sdedit"):
        generate_counterfactual(volume, request, tiny_bundles["cddgm"], device="cpu")
    request.edit_mode = "magic"
    with pytest.raises(IAPValueError, match="edit mode must be one of"):
        generate_counterfactual(volume, request, tiny_bundles["cddgm"], device="cpu")
    sd = generate_counterfactual(
        volume, CounterfactualRequest(target=TARGET, steps=3, slices=[0]), tiny_bundles["cddgm"]
    )
    assert sd.metadata["counterfactual"]["edit_mode"] == "sdedit"


def test_bundle_default_twin_falls_back_to_sdedit_without_source_iaps(volume, tiny_bundles):
    from napari_cf_iap.bundles import load_bundle

    loaded = load_bundle(tiny_bundles["cddgm"])
    loaded.inference_defaults = {**loaded.inference_defaults, "edit_mode": "twin"}
    request = CounterfactualRequest(target=TARGET, steps=3, slices=[0])
    out = generate_counterfactual(volume, request, loaded, device="cpu")  # no source IAPs
    meta = out.metadata["counterfactual"]
    assert meta["edit_mode"] == "sdedit" and "source's IAPs" in meta["edit_mode_note"]
    own = volume.with_data(volume.data, iap=TARGET)
    twin = generate_counterfactual(own, request, loaded, device="cpu")
    assert twin.metadata["counterfactual"]["edit_mode"] == "twin"
    assert twin.metadata["counterfactual"]["edit_mode_note"] is None


def test_bundle_sampler_default_is_used_unless_the_request_names_one(volume, tiny_bundles):
    from napari_cf_iap.bundles import load_bundle

    loaded = load_bundle(tiny_bundles["cddgm"])
    loaded.inference_defaults = {**loaded.inference_defaults, "sampler": "ddim", "ddim_steps": 2}
    calls = []
    request = CounterfactualRequest(target=TARGET, steps=4, slices=[0])
    out = generate_counterfactual(
        volume, request, loaded, device="cpu", progress=lambda d, t, m: calls.append(t)
    )
    meta = out.metadata["counterfactual"]
    assert (meta["sampler"], meta["ddim_steps"]) == ("ddim", 2)
    assert calls[-1] == 2  # two DDIM evaluations for the one slice
    explicit = CounterfactualRequest(target=TARGET, steps=4, slices=[0], sampler="ddpm")
    meta = generate_counterfactual(volume, explicit, loaded, device="cpu").metadata
    assert (meta["counterfactual"]["sampler"], meta["counterfactual"]["ddim_steps"]) == (
        "ddpm",
        None,
    )
    plain = load_bundle(tiny_bundles["cddgm"])  # no sampler default: DDPM
    meta = generate_counterfactual(volume, request, plain, device="cpu").metadata
    assert meta["counterfactual"]["sampler"] == "ddpm"
