"""The ``cpu`` reproduce preset evaluates the shipped bundles on data prepared like theirs."""

from __future__ import annotations

import json

import pytest
from cf_iap_training.evaluation.reproduce import get_reproduce_preset

from napari_cf_iap.bundles.registry import weights_root


@pytest.mark.parametrize("name", ["cddgm-default", "iap-default"])
def test_cpu_preset_matches_the_shipped_bundles_data(name):
    preset = get_reproduce_preset("cpu")
    manifest = json.loads((weights_root() / name / "bundle.json").read_text())
    store = manifest["provenance"]["data"]["store_meta"]
    assert preset.store_size == store["size"]
    assert preset.drop_slices == store["drop_slices"]


def test_cpu_preset_uses_new_patients_and_both_manufacturers_masks():
    preset = get_reproduce_preset("cpu")
    assert preset.sim_seed not in (0, 2026)  # 2026: the shipped bundles' training data
    assert preset.patients * preset.mask_fraction >= 20  # Table 2 needs GE and SIEMENS masks
    assert len(preset.seeds) >= 2  # mean +- sd
    assert preset.shape[0] - 2 * preset.drop_slices > 0
