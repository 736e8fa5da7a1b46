"""Closed-form SPGR behaviour and the simulator's agreement with it."""

import numpy as np
import pytest

from napari_cf_iap.iap import IAPRecord
from napari_cf_iap.simulator import AcquisitionOptions, Phantom, acquire
from napari_cf_iap.simulator import tissues as T
from napari_cf_iap.simulator.anatomy import sample_subject
from napari_cf_iap.simulator.signal import (
    ernst_angle_deg,
    fat_phase_factor,
    opposed_phase_te_ms,
    spgr_signal,
)


def _two_tissue_phantom(shape=(4, 16, 16)) -> Phantom:
    """Left half pure fat, right half pure FGT, no texture, no partial volume."""
    fine = np.full(shape, T.FAT, dtype=np.uint8)
    fine[..., shape[2] // 2 :] = T.FGT
    fraction = (fine == T.FGT).astype(np.float32)
    region = np.ones(shape, dtype=bool)
    return Phantom(
        fine_labels=fine,
        labels=T.training_labels(fine, region),
        breast_region=region,
        fgt_fraction=fraction,
        texture=np.ones(shape, dtype=np.float32),
        voxel_mm=(2.0, 1.0, 1.0),
        seed=0,
        params=sample_subject(0),
    )


def _iap(**changes) -> IAPRecord:
    base = dict(
        manufacturer="GE",
        model_name="SIGNA HDx",
        field_strength=1.5,
        scan_options="",
        flip_angle=10,
        slice_thickness=1.0,
        echo_time=2.3,
        repetition_time=5.0,
    )
    base.update(changes)
    return IAPRecord.create(**base)


def _fat_fgt(acq):
    fine = acq.fine_labels
    v = acq.volume.data
    return float(v[fine == T.FAT].mean()), float(v[fine == T.FGT].mean()), v


def test_ernst_angle_maximises_signal():
    tr, t1 = 5.0, 296.0
    ernst = ernst_angle_deg(tr, t1)
    assert ernst == pytest.approx(np.degrees(np.arccos(np.exp(-tr / t1))))
    angles = np.linspace(1, 40, 391)
    s = spgr_signal(1.0, t1, 40.0, angles, tr, 2.0)
    assert angles[np.argmax(s)] == pytest.approx(ernst, abs=0.1)
    # FGT (long T1) peaks at a lower angle than fat (short T1)
    assert ernst_angle_deg(tr, 1266.0) < ernst


def test_fat_chemical_shift_and_opposed_phase():
    assert opposed_phase_te_ms(1.5) == pytest.approx(2.3, abs=0.05)
    assert opposed_phase_te_ms(3.0) == pytest.approx(1.15, abs=0.03)
    assert abs(fat_phase_factor(0.0, 1.5)) == pytest.approx(0.999, abs=1e-6)
    # main peak at -3.4 ppm is 217 Hz from water at 1.5 T: anti-aligned at the opposed TE
    assert fat_phase_factor(opposed_phase_te_ms(1.5), 1.5).real < -0.4
    assert fat_phase_factor(2 * opposed_phase_te_ms(1.5), 1.5).real > 0.6


@pytest.mark.parametrize(
    ("field", "fa", "tr", "te"), [(1.5, 10, 5.0, 2.3), (3.0, 12, 4.2, 1.5), (1.5, 7, 7.4, 2.76)]
)
def test_fat_fgt_ratio_matches_closed_form(field, fa, tr, te):
    phantom = _two_tissue_phantom()
    acq = acquire(
        phantom,
        _iap(field_strength=field, flip_angle=fa, repetition_time=tr, echo_time=te),
        seed=1,
        options=AcquisitionOptions.ideal(),
    )
    fat, fgt, v = _fat_fgt(acq)
    pf, pg = T.tissue_parameters(T.FAT, field), T.tissue_parameters(T.FGT, field)
    s_fat = spgr_signal(pf.pd, pf.t1_ms, pf.t2star_ms, fa, tr, te)
    s_fgt = spgr_signal(pg.pd, pg.t1_ms, pg.t2star_ms, fa, tr, te)
    assert fat / fgt == pytest.approx(s_fat / s_fgt, rel=1e-4)
    # uniform within each tissue (no hidden effects in the ideal acquisition)
    assert np.ptp(v[acq.fine_labels == T.FAT]) < 1e-3 * fat
    # absolute scale = vendor scale x closed form
    assert fgt == pytest.approx(acq.vendor.scale * s_fgt, rel=1e-4)


def test_flip_angle_contrast_follows_ernst_behaviour():
    phantom = _two_tissue_phantom()
    ratios = []
    fgt_signal = []
    for fa in (5, 7, 10, 12, 20):
        acq = acquire(phantom, _iap(flip_angle=fa), seed=0, options=AcquisitionOptions.ideal())
        fat, fgt, _ = _fat_fgt(acq)
        ratios.append(fat / fgt)
        fgt_signal.append(fgt)
    # fat (short T1) gains relative to FGT as the flip angle grows
    assert np.all(np.diff(ratios) > 0)
    # FGT's Ernst angle at TR 5 ms is ~5 degrees: its signal falls beyond it
    assert ernst_angle_deg(5.0, 1266.0) < 7
    assert np.all(np.diff(fgt_signal[1:]) < 0)


def test_chemical_shift_darkens_mixed_voxels_at_opposed_phase():
    phantom = _two_tissue_phantom()
    phantom.fgt_fraction[..., :] = 0.5
    phantom.fine_labels[...] = T.FGT
    opts = AcquisitionOptions.ideal(chemical_shift=True)
    opposed = acquire(phantom, _iap(echo_time=2.3), seed=0, options=opts).volume.data.mean()
    in_phase = acquire(phantom, _iap(echo_time=4.6), seed=0, options=opts).volume.data.mean()
    assert opposed < 0.6 * in_phase
