"""Procedural phantom: determinism, labels, density categories."""

import numpy as np
import pytest

from napari_cf_iap.errors import InputError
from napari_cf_iap.simulator import DENSITY_FGT_RANGES, make_phantom
from napari_cf_iap.simulator import tissues as T

SHAPE = (16, 96, 96)


def test_phantom_is_deterministic_and_seed_dependent():
    a, b = make_phantom(7, SHAPE), make_phantom(7, SHAPE)
    np.testing.assert_array_equal(a.fine_labels, b.fine_labels)
    np.testing.assert_array_equal(a.fgt_fraction, b.fgt_fraction)
    np.testing.assert_array_equal(a.texture, b.texture)
    c = make_phantom(8, SHAPE)
    assert (a.fine_labels != c.fine_labels).mean() > 0.01
    assert a.params != c.params


def test_labels_are_consistent_with_fine_tissues():
    ph = make_phantom(3, SHAPE)
    assert ph.fine_labels.shape == SHAPE and ph.fine_labels.dtype == np.uint8
    assert set(np.unique(ph.labels)) == {0, 1, 2}
    assert set(np.unique(ph.fine_labels)) <= set(T.TISSUE_NAMES)
    np.testing.assert_array_equal(ph.labels == 2, ph.fine_labels == T.FGT)
    breast = ph.labels == 1
    assert np.isin(ph.fine_labels[breast], T.BREAST_TISSUES).all()
    assert ph.breast_region[ph.labels > 0].all()
    # anatomy present: air outside, chest wall, lungs, both breasts (left and right of midline)
    for tissue in (T.AIR, T.FAT, T.SKIN, T.MUSCLE, T.BONE, T.LUNG, T.LIGAMENT):
        assert (ph.fine_labels == tissue).any(), T.TISSUE_NAMES[tissue]
    cols = np.nonzero((ph.labels == 2).any(axis=(0, 1)))[0]
    assert cols.min() < SHAPE[2] // 2 < cols.max()
    # breasts are anterior (top rows), lungs posterior
    rows_fgt = np.nonzero((ph.labels == 2).any(axis=(0, 2)))[0]
    rows_lung = np.nonzero((ph.fine_labels == T.LUNG).any(axis=(0, 2)))[0]
    assert rows_fgt.mean() < rows_lung.mean()
    # partial-volume FGT share is a fraction, >= 0.5 exactly on FGT voxels
    assert ph.fgt_fraction.min() >= 0 and ph.fgt_fraction.max() <= 1
    np.testing.assert_array_equal(ph.fgt_fraction >= 0.5, ph.fine_labels == T.FGT)


@pytest.mark.parametrize("density", ["a", "b", "c", "d"])
def test_fgt_fraction_within_density_range(density):
    lo, hi = DENSITY_FGT_RANGES[density]
    for seed in (0, 1):
        ph = make_phantom(seed, SHAPE, density=density)
        assert ph.params.density == density
        fraction = ph.fgt_fraction_of_breast()
        assert lo <= fraction <= hi, (density, seed, fraction)


def test_same_subject_at_two_resolutions():
    coarse, fine = make_phantom(5, (8, 48, 48)), make_phantom(5, (16, 96, 96))
    assert coarse.params == fine.params
    assert coarse.voxel_mm[1] == pytest.approx(2 * fine.voxel_mm[1])
    assert coarse.fgt_fraction_of_breast() == pytest.approx(fine.fgt_fraction_of_breast(), abs=0.06)


def test_bad_arguments_raise_input_error():
    with pytest.raises(InputError, match="density"):
        make_phantom(0, SHAPE, density="e")
    with pytest.raises(InputError, match="shape"):
        make_phantom(0, (2, 96, 96))
    with pytest.raises(InputError, match="voxel"):
        make_phantom(0, SHAPE, voxel_mm=(1.0, 0.0, 1.0))
