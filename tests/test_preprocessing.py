"""The paper's preprocessing recipe and its inverse."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cf_iap.errors import InputError
from napari_cf_iap.preprocessing import (
    PreprocessConfig,
    denormalise_slice,
    normalise_slice,
    postprocess,
    postprocess_slice,
    preprocess_slice,
    preprocess_volume,
)
from napari_cf_iap.volume import Volume


def smooth_volume(n=46, rows=40, cols=36, seed=0) -> np.ndarray:
    """A smooth positive volume whose slices differ in brightness."""
    z, y, x = np.mgrid[0:n, 0:rows, 0:cols].astype(np.float32)
    rng = np.random.default_rng(seed)
    gains = rng.uniform(0.5, 2.0, size=(n, 1, 1)).astype(np.float32)
    return (300 + 120 * np.sin(y / 7) * np.cos(x / 9) + 2 * z) * gains


def test_percentiles_land_at_zero_and_one_without_clipping():
    data = smooth_volume()
    slices, state = preprocess_volume(data, PreprocessConfig(size=24, drop_slices=3))
    assert slices.shape == (46 - 6, 24, 24) and slices.dtype == np.float32
    low, high = np.percentile(slices.reshape(len(slices), -1), [10, 99], axis=1)
    np.testing.assert_allclose(low, 0.0, atol=1e-5)
    np.testing.assert_allclose(high, 1.0, atol=1e-5)
    assert slices.min() < 0 and slices.max() > 1  # no clipping
    assert state.n_slices == 40 and (state.start, state.stop) == (3, 43)


def test_percentiles_are_taken_after_resizing_per_slice():
    """Same as MONAI's ScaleIntensityRangePercentiles(10, 99, 0, 1, clip=False) on each resized
    slice (checked by hand; MONAI's import is too slow for this unit test)."""
    from napari_cf_iap.preprocessing import resize_slices

    data = smooth_volume(n=3)
    slices, state = preprocess_volume(data, PreprocessConfig(size=20, drop_slices=0))
    resized = resize_slices(data, (20, 20))
    for k in range(3):
        low, high = np.percentile(resized[k], [10, 99])
        np.testing.assert_allclose(slices[k], (resized[k] - low) / (high - low), atol=1e-5)
        assert state.lows[k] == pytest.approx(low)


def test_inverse_restores_the_input():
    data = smooth_volume()
    original = data.copy()
    # same size: only the intensity mapping is inverted -> exact up to float32 rounding
    same, state = preprocess_volume(data, PreprocessConfig(size=40, drop_slices=0))
    assert same.shape == (46, 40, 40)
    cfg = PreprocessConfig(size=40, drop_slices=2)
    square = (
        data[:, :, :40]
        if data.shape[2] >= 40
        else np.pad(data, ((0, 0), (0, 0), (0, 4)), mode="edge")
    )
    slices, state = preprocess_volume(square, cfg)
    np.testing.assert_allclose(postprocess(slices, state), square, rtol=1e-5, atol=1e-3)
    # resized: smooth images come back within a small fraction of their range
    slices, state = preprocess_volume(data, PreprocessConfig(size=64, drop_slices=5))
    restored = postprocess(slices, state)
    assert restored.shape == data.shape and restored.dtype == np.float32
    error = np.abs(restored - data)[5:-5]
    assert error.mean() < 0.01 * np.ptp(data)
    np.testing.assert_array_equal(restored[:5], data[:5])  # dropped slices come from the source
    np.testing.assert_array_equal(restored[-5:], data[-5:])
    np.testing.assert_array_equal(data, original)  # input untouched
    kept = postprocess(slices, state, full=False)
    assert kept.shape == (36, 40, 36)


def test_drop_slices_behaviour():
    data = smooth_volume(n=50)
    slices, state = preprocess_volume(data, PreprocessConfig(size=8))
    assert slices.shape[0] == 10 and state.dropped and (state.start, state.stop) == (20, 30)
    thin = smooth_volume(n=40)
    slices, state = preprocess_volume(thin, PreprocessConfig(size=8))
    assert slices.shape[0] == 40 and not state.dropped and (state.start, state.stop) == (0, 40)
    volume = Volume(smooth_volume(n=7), (1.0, 1.0, 1.0))
    slices, state = preprocess_volume(volume, PreprocessConfig(size=8, drop_slices=1))
    assert slices.shape == (5, 8, 8) and state.original_shape == (7, 40, 36)


def test_volume_mode_uses_one_mapping():
    slices, state = preprocess_volume(
        smooth_volume(n=6), PreprocessConfig(size=8, drop_slices=0, per="volume")
    )
    assert np.all(state.lows == state.lows[0]) and np.all(state.scales == state.scales[0])
    assert np.percentile(slices, 10) == pytest.approx(0.0, abs=1e-5)
    assert np.percentile(slices, 99) == pytest.approx(1.0, abs=1e-5)


def test_constant_slice_and_bad_values():
    data = smooth_volume(n=4)
    data[1] = 7.0
    slices, state = preprocess_volume(data, PreprocessConfig(size=16, drop_slices=0))
    assert state.constant.tolist() == [False, True, False, False]
    np.testing.assert_allclose(slices[1], 0.0, atol=1e-5)
    np.testing.assert_allclose(postprocess(slices, state)[1], 7.0, atol=1e-5)
    bad = smooth_volume(n=3)
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        preprocess_volume(bad)
    with pytest.raises(InputError, match="shape"):
        postprocess(slices[:2], state)
    with pytest.raises(InputError, match="shape"):
        preprocess_volume(np.zeros((4, 4)))
    with pytest.raises(InputError):
        PreprocessConfig(low_pct=99, high_pct=10)


def test_single_slice_helpers_round_trip():
    image = smooth_volume(n=1)[0]
    normalised, scale = normalise_slice(image)
    assert np.percentile(normalised, 10) == pytest.approx(0, abs=1e-5)
    assert np.percentile(normalised, 99) == pytest.approx(1, abs=1e-5)
    np.testing.assert_allclose(denormalise_slice(normalised, scale), image, rtol=1e-5)
    model_input, state = preprocess_slice(image, PreprocessConfig(size=32))
    assert model_input.shape == (32, 32)
    back = postprocess_slice(model_input, state)
    assert back.shape == image.shape
    assert np.abs(back - image).mean() < 0.01 * np.ptp(image)


def test_core_modules_import_without_heavy_libraries():
    import subprocess
    import sys

    code = (
        "import sys, napari_cf_iap.io, napari_cf_iap.io.atomic, napari_cf_iap.preprocessing;"
        "heavy = [m for m in ('torch', 'pydicom', 'nibabel', 'nrrd') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_store_size_path_matches_two_stage_training_resampling():
    """With store_size, slices take the training store's path: store size, normalise, resize."""
    from napari_cf_iap.preprocessing import PreprocessConfig, preprocess_volume, resize_slices

    rng = np.random.default_rng(5)
    data = rng.gamma(2.0, 50.0, size=(3, 90, 70)).astype(np.float32)
    config = PreprocessConfig(size=16, drop_slices=0, store_size=32)
    out, state = preprocess_volume(data, config)
    stored = resize_slices(data, (32, 32))
    low, high = np.percentile(stored.reshape(3, -1), [10, 99], axis=1)
    expected = resize_slices((stored - low[:, None, None]) / (high - low)[:, None, None], (16, 16))
    np.testing.assert_allclose(out, expected, atol=1e-5)
    direct, _ = preprocess_volume(data, PreprocessConfig(size=16, drop_slices=0))
    assert not np.allclose(out, direct, atol=1e-3)  # the path matters
    np.testing.assert_allclose(state.lows, low, rtol=1e-5)
