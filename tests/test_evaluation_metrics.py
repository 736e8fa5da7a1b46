"""Known-answer tests of the evaluation metrics, baselines and FID feature extractors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_cf_iap.errors import InputError
from napari_cf_iap.iap import IAPRecord, IAPVocabulary

pytest.importorskip("cf_iap_training")

from cf_iap_training.evaluation import baselines, features, metrics  # noqa: E402

RNG = np.random.default_rng(0)


def _images(n: int = 4, size: int = 32) -> np.ndarray:
    return RNG.random((n, size, size)).astype(np.float32)


# ---------------------------------------------------------------------- SSIM / PSNR
def test_ssim_of_an_image_with_itself_is_one():
    x = _images()
    np.testing.assert_allclose(metrics.ssim_per_image(x, x), 1.0, atol=1e-6)


def test_ssim_drops_for_unrelated_images_and_is_symmetric():
    x, y = _images(), _images()
    s = metrics.ssim_per_image(x, y)
    assert s.shape == (4,)
    assert np.all(s < 0.2)
    np.testing.assert_allclose(s, metrics.ssim_per_image(y, x), atol=1e-6)


def test_ssim_refuses_images_smaller_than_the_window():
    with pytest.raises(InputError, match="at least 11"):
        metrics.ssim_per_image(np.zeros((2, 8, 8)), np.zeros((2, 8, 8)))


def test_psnr_of_a_constant_offset_is_known():
    x = _images()
    psnr = metrics.psnr_per_image(x, x + 0.1)  # MSE 0.01 -> 20 dB at max 1
    np.testing.assert_allclose(psnr, 20.0, atol=1e-3)
    assert np.all(np.isinf(metrics.psnr_per_image(x, x)))
    assert metrics.finite_mean([np.inf, 1.0, 3.0, np.nan]) == 2.0


def test_image_inputs_are_checked():
    with pytest.raises(InputError, match="differ in shape"):
        metrics.ssim_per_image(np.zeros((2, 16, 16)), np.zeros((3, 16, 16)))
    with pytest.raises(InputError, match="NaN"):
        metrics.mmd(np.full((2, 4, 4), np.nan), np.zeros((2, 4, 4)))
    assert metrics.as_batch(np.zeros((2, 5, 6))).shape == (2, 1, 5, 6)


# ---------------------------------------------------------------------- MMD
def test_mmd_of_identical_sets_is_the_unbiased_estimators_known_answer():
    x = _images(16, 12)
    flat = x.reshape(16, -1).astype(np.float64)
    trace = float(((flat - flat.mean(0)) ** 2).sum(1).mean())  # tr of the biased covariance
    assert metrics.mmd(x, x) == pytest.approx(-2 * trace / 15, rel=1e-6)
    # near-constant sets: about 0
    calm = 0.5 + 1e-3 * _images(64, 12)
    assert abs(metrics.mmd(calm, calm)) < 1e-4


def test_mmd_of_a_shifted_set_grows_by_the_squared_shift():
    x = _images(8, 12)
    delta = 0.05
    expected = metrics.mmd(x, x) + delta**2 * 12 * 12
    assert metrics.mmd(x, x + delta) == pytest.approx(expected, rel=1e-6)


# ---------------------------------------------------------------------- FID
def test_fid_of_identical_feature_sets_is_about_zero():
    feats = RNG.normal(size=(200, 8))
    assert metrics.fid(feats, feats) == pytest.approx(0.0, abs=1e-6)


def test_fid_of_a_shifted_feature_set_is_the_squared_shift():
    feats = RNG.normal(size=(300, 6))
    shift = np.array([1.0, -2.0, 0, 0, 0.5, 0])
    assert metrics.fid(feats, feats + shift) == pytest.approx(float(shift @ shift), rel=1e-4)


def test_fid_with_fewer_samples_than_features_stays_finite():
    feats = RNG.normal(size=(5, 16))
    value = metrics.fid(feats, feats[::-1] * 1.1)
    assert np.isfinite(value) and value >= 0
    with pytest.raises(InputError):
        metrics.fid(feats[:1], feats[:1])


# ---------------------------------------------------------------------- IAP fooling
def _record(**changes) -> IAPRecord:
    base = dict(
        manufacturer="SIEMENS",
        model_name="Skyra",
        field_strength=3.0,
        scan_options="PFP\\FS",
        flip_angle=10.0,
        slice_thickness=1.0,
        echo_time=1.5,
        repetition_time=4.0,
    )
    return IAPRecord.create(**{**base, **changes})


def test_iap_scores_of_perfect_and_half_wrong_predictions():
    vocab = IAPVocabulary.duke_default()
    records = [_record(), _record(flip_angle=12.0, model_name="Avanto", field_strength=1.5)]
    raw = vocab.encode_many(records) * 10  # one-hot "logits" and value / max
    scores = metrics.iap_scores(raw, records, vocab)
    assert list(scores) == [
        "model_name",
        "field_strength",
        "scan_options",
        "flip_angle",
        "slice_thickness",
        "echo_time",
        "repetition_time",
    ]
    assert scores["model_name"] == 1.0 and scores["field_strength"] == 1.0
    raw = vocab.encode_many(records)
    scores = metrics.iap_scores(raw, records, vocab)
    assert scores["flip_angle"] == pytest.approx(0.0, abs=1e-9)
    swapped = metrics.iap_scores(raw, records[::-1], vocab)
    assert swapped["model_name"] == 0.0 and swapped["scan_options"] == 1.0
    assert swapped["flip_angle"] == pytest.approx(4.0, rel=1e-5)  # (12 - 10)^2
    with pytest.raises(InputError):
        metrics.iap_scores(raw[:1], records, vocab)


# ---------------------------------------------------------------------- segmentation
def test_dice_and_accuracy_of_known_masks():
    truth = np.zeros((1, 4, 4), dtype=np.uint8)
    truth[0, 0, :] = 1  # 4 fat pixels
    truth[0, 3, :2] = 2  # 2 FGT pixels
    pred = np.zeros_like(truth)
    pred[0, 0, :2] = 1  # 2 right
    pred[0, 1, :2] = 1  # 2 wrong
    pred[0, 3, :2] = 2  # FGT exact
    s = metrics.segmentation_scores(pred, truth)
    assert s["dice_fat"] == pytest.approx(2 * 2 / (4 + 4))
    assert s["dice_fgt"] == pytest.approx(1.0)
    assert s["acc_fat"] == pytest.approx(0.5)
    assert s["acc_fgt"] == pytest.approx(1.0)
    assert s["acc_background"] == pytest.approx(8 / 10)
    assert s["mean_dice"] == pytest.approx(0.75)


def test_dice_skips_slices_without_the_tissue():
    truth = np.zeros((2, 4, 4), dtype=np.uint8)
    truth[0, :2] = 1
    pred = truth.copy()
    pred[1, 0, 0] = 1  # false positive on a slice without fat: not averaged in
    assert metrics.segmentation_scores(pred, truth)["dice_fat"] == 1.0
    assert np.isnan(metrics.segmentation_scores(pred, truth)["dice_fgt"])


# ---------------------------------------------------------------------- baselines
def test_do_nothing_is_a_copy_and_histogram_matching_takes_the_reference_histogram():
    x, ref = _images(2, 16), 2.0 * _images(2, 16) + 1.0
    before = x.copy()
    same = baselines.do_nothing(x)
    same[0, 0, 0] = 99
    matched = baselines.histogram_match(x, ref)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_allclose(np.sort(matched[1].ravel()), np.sort(ref[1].ravel()), atol=1e-5)
    # the ranking of pixels (the anatomy) is kept
    assert np.array_equal(np.argsort(matched[0].ravel()), np.argsort(x[0].ravel()))
    with pytest.raises(InputError):
        baselines.histogram_match(x, ref[:1])


# ---------------------------------------------------------------------- feature extractors
def test_predictor_features_have_the_penultimate_width(tiny_bundles):
    extractor = features.PredictorFeatures(tiny_bundles["iap_predictor"])
    x = _images(3, 40)
    out = extractor(x)
    assert out.shape == (3, extractor.bundle.config.block_inplanes[-1])
    assert "IAP predictor" in extractor.name and "sha256" in extractor.name
    np.testing.assert_allclose(extractor(x), out, atol=1e-6)  # deterministic (eval mode)


def _tiny_resnet_state():
    from monai.networks.nets import ResNet

    torch.manual_seed(0)
    net = ResNet(
        "bottleneck",
        [1, 1, 1, 1],
        [4, 8, 8, 16],
        spatial_dims=2,
        n_input_channels=3,
        conv1_t_stride=2,
        num_classes=5,
        bias_downsample=False,
    )
    return {k: v.contiguous() for k, v in net.state_dict().items()}


def test_local_resnet_weights_load_from_safetensors_and_tensor_only_pt(tmp_path):
    from safetensors.torch import save_file

    state = _tiny_resnet_state()
    save_file({"module." + k: v for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    torch.save({"state_dict": state}, tmp_path / "w.pt")
    outs, x = [], _images(2, 24)
    for name in ("w.safetensors", "w.pt"):
        extractor = features.ResNetWeightsFeatures(tmp_path / name, input_size=32)
        assert name in extractor.name
        outs.append(extractor(x))
    assert outs[0].shape == (2, 64)  # 16 planes x bottleneck expansion 4
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-5)


class _Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_weights_files_with_code_or_wrong_layout_are_refused(tmp_path):
    torch.save({"x": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(InputError, match="tensors-only"):
        features.read_weights(tmp_path / "evil.pt")
    torch.save({"conv.weight": torch.zeros(2, 1, 3, 3)}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not a 2D ResNet"):
        features.ResNetWeightsFeatures(tmp_path / "other.pt")
    with pytest.raises(InputError, match="not found"):
        features.read_weights(tmp_path / "missing.pt")
