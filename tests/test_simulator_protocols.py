"""The Duke-like protocol mix and scanner-reported header values."""

import numpy as np
import pytest

from napari_cf_iap.errors import InputError
from napari_cf_iap.iap import IAPVocabulary
from napari_cf_iap.iap.duke_defaults import CONTINUOUS_RANGES, MODEL_MANUFACTURER, SCAN_OPTIONS
from napari_cf_iap.simulator import DUKE_LIKE_PROTOCOLS, reported_field_strength, sample_protocol
from napari_cf_iap.simulator.protocols import check_protocols
from napari_cf_iap.simulator.vendor_effects import vendor_profile


def test_protocols_use_duke_categories():
    check_protocols()
    assert {p.manufacturer for p in DUKE_LIKE_PROTOCOLS} == {"GE MEDICAL SYSTEMS", "SIEMENS"}
    assert {p.model_name for p in DUKE_LIKE_PROTOCOLS} == set(MODEL_MANUFACTURER)
    for p in DUKE_LIKE_PROTOCOLS:
        assert MODEL_MANUFACTURER[p.model_name] == p.manufacturer
        assert p.scan_options in SCAN_OPTIONS
        assert set(p.flip_angles) <= {7, 8, 10, 12}
        assert p.rows in (320, 448, 512)
        ge_options = "GEMS" in p.scan_options
        assert ge_options == (p.manufacturer == "GE MEDICAL SYSTEMS") or p.scan_options == "PFP\\FS"


def test_sampled_iaps_lie_in_duke_ranges_and_encode():
    rng = np.random.default_rng(0)
    records = [sample_protocol(rng) for _ in range(300)]
    vocab = IAPVocabulary.duke_default()
    makers = [r.manufacturer for r in records]
    assert 0.45 < makers.count("GE MEDICAL SYSTEMS") / len(makers) < 0.75
    for r in records:
        assert r.is_complete()
        for name, (lo, hi) in CONTINUOUS_RANGES.items():
            assert lo <= getattr(r, name) <= hi, (name, r)
        assert r.field_strength in (1.5, 3.0)
        assert vocab.encode(r).shape == (vocab.dim,)
    assert {r.flip_angle for r in records} == {7.0, 8.0, 10.0, 12.0}


def test_manufacturer_filter_and_reported_field():
    rng = np.random.default_rng(1)
    siemens = [sample_protocol(rng, "Siemens") for _ in range(40)]
    assert {r.manufacturer for r in siemens} == {"SIEMENS"}
    for r in siemens:
        expected = {1.5: 1.494, 3.0: 2.8936}[r.field_strength]
        assert r.extras["reported_field_strength"] == pytest.approx(expected)
    ge = sample_protocol(rng, ["GE"])
    assert ge.extras["reported_field_strength"] == ge.field_strength
    assert reported_field_strength("SIEMENS", 3.0) == pytest.approx(2.8936)
    assert reported_field_strength(None, 1.5) == 1.5
    with pytest.raises(InputError, match="no protocol"):
        sample_protocol(rng, "Philips")


def test_vendor_profiles_follow_scan_options():
    rng = np.random.default_rng(2)
    ge = sample_protocol(rng, "GE").with_values(
        scan_options="FAST_GEMS\\SAT_GEMS\\ACC_GEMS\\PFP\\FS"
    )
    p = vendor_profile(ge)
    assert (p.parallel_imaging, p.apodization, p.zip2) == ("ASSET", "fermi", True)
    assert p.partial_fourier < 1 and p.reported_matrix == 512 and p.acquired_matrix < 512
    no_acc = vendor_profile(ge.with_values(scan_options="SAT_GEMS\\FS"))
    assert no_acc.parallel_imaging == "none" and no_acc.partial_fourier == 1.0
    si = vendor_profile(sample_protocol(rng, "SIEMENS"))
    assert (si.parallel_imaging, si.apodization, si.intensity_correction) == (
        "GRAPPA",
        "hamming",
        "prescan_normalize",
    )
    assert vendor_profile(ge, matrix=256).acquired_matrix == 256
