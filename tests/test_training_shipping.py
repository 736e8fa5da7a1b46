"""Acceptance checks and packaging of default bundles (tiny bundles, tiny subjects)."""

import json

import numpy as np
import pytest
from cf_iap_training.shipping.acceptance import AcceptanceConfig, AcceptanceReport, run_acceptance
from cf_iap_training.shipping.package import ship_bundles

from napari_cf_iap.bundles.bundle import load_bundle

TINY = AcceptanceConfig(subjects=2, shape=(8, 64, 64), drop_slices=2, edit_slices=2, steps=2)


@pytest.fixture(scope="module")
def report(tiny_bundles):
    return run_acceptance(TINY, {k: str(v) for k, v in tiny_bundles.items()})


def test_acceptance_measures_every_criterion(report):
    for value in (report.manufacturer_accuracy, report.edit_flip_rate):
        assert 0.0 <= value <= 1.0
    assert 0.0 <= report.dice_fat <= 1.0 and 0.0 <= report.dice_fgt <= 1.0
    assert report.mean_dice == pytest.approx((report.dice_fat + report.dice_fgt) / 2)
    assert report.mae_edit > 0 and report.mae_nothing > 0
    assert report.settings["steps_used"] == 2
    assert report.ratio_gap_edit_same_acquisition >= 0
    assert report.ratio_gap_nothing_same_acquisition >= 0
    assert report.ratio_gap_nothing_same_acquisition != report.ratio_gap_nothing
    verdicts = report.verdicts()
    assert len(verdicts) == 5 and all(v in (True, False) for v in verdicts.values())


def test_verdicts_follow_thresholds():
    report = AcceptanceReport(manufacturer_accuracy=0.96, edit_flip_rate=0.69)
    report.mae_edit, report.mae_nothing = 0.1, 0.2
    report.ratio_source, report.ratio_edit, report.ratio_truth = 0.5, 0.9, 0.6
    report.ratio_gap_edit, report.ratio_gap_nothing = 0.3, 0.1
    report.dice_fat, report.dice_fgt = 0.9, 0.79
    v = report.verdicts()
    assert v["iap: manufacturer accuracy >= 95%"] is True
    assert v["iap: edits flip to target >= 70%"] is False
    assert v["cddgm: edit beats do-nothing (MAE to truth)"] is True
    assert v["cddgm: fat/FGT contrast moves towards truth"] is False  # per-subject gap grew
    report.ratio_gap_edit = 0.05
    assert report.verdicts()["cddgm: fat/FGT contrast moves towards truth"] is True
    assert v["seg: mean Dice >= 0.85"] is False  # mean 0.845
    assert AcceptanceReport().verdicts()["seg: mean Dice >= 0.85"] is None


def test_ship_writes_half_precision_bundles_with_cards(report, tiny_bundles, tmp_path):
    written = ship_bundles(dict(tiny_bundles), report, tmp_path, "cf-iap-train ship ...")
    assert {p.name for p in written.values()} == {"cddgm-default", "iap-default", "seg-default"}
    for kind, path in written.items():
        bundle = load_bundle(path)
        assert bundle.kind == kind
        manifest = json.loads((path / "bundle.json").read_text())
        assert manifest["metrics"]["acceptance"]["verdicts"]
        card = (path / "MODEL_CARD.md").read_text()
        assert "Acceptance on held-out simulated subjects" in card
        original = (tiny_bundles[kind] / "weights.safetensors").stat().st_size
        assert (path / "weights.safetensors").stat().st_size < 0.7 * original
    cd = load_bundle(written["cddgm"])
    assert cd.inference_defaults == load_bundle(tiny_bundles["cddgm"]).inference_defaults
    assert np.isfinite(next(cd.model.parameters()).detach().numpy()).all()


def test_ship_makes_the_checked_settings_the_cddgm_defaults(report, tiny_bundles, tmp_path):
    sources = {"cddgm": tiny_bundles["cddgm"], "iap_predictor": tiny_bundles["iap_predictor"]}
    written = ship_bundles(
        sources, report, tmp_path, "cmd", {"steps": 75, "guidance": 5.0}, note="chosen on set A"
    )
    for path in written.values():
        assert (path / "MODEL_CARD.md").read_text().endswith("## Notes\n\nchosen on set A\n")
    # shipping a shipped bundle again: its old acceptance is replaced, not shown as training's
    again = ship_bundles({"cddgm": written["cddgm"]}, report, tmp_path / "again", "cmd")
    card = (again["cddgm"] / "MODEL_CARD.md").read_text()
    assert card.count("manufacturer_accuracy") == 1 and "'acceptance'" not in card
    assert load_bundle(written["cddgm"]).inference_defaults == {"steps": 75, "guidance": 5.0}
    assert (
        load_bundle(written["iap_predictor"]).inference_defaults
        == load_bundle(tiny_bundles["iap_predictor"]).inference_defaults
    )


def test_acceptance_edits_towards_other_manufacturer_and_field_strength():
    """Issue #5: the held-out edits go to another manufacturer *and* field strength."""
    from cf_iap_training.shipping.acceptance import _subjects

    config = AcceptanceConfig(subjects=6, shape=(6, 32, 32))
    pairs = [(s.volume.iap, t.volume.iap) for s, t, _ in _subjects(config)]
    assert len(pairs) == 6
    for source, target in pairs:
        assert source.manufacturer != target.manufacturer
        assert float(source.field_strength) != float(target.field_strength)
    assert {p[0].manufacturer for p in pairs[::2]} != {p[0].manufacturer for p in pairs[1::2]}


def test_same_acquisition_under_the_source_iaps_is_the_source():
    """The informational truth keeps everything of the source acquisition but the IAPs."""
    from cf_iap_training.shipping.acceptance import _same_acquisition, _subjects

    config = AcceptanceConfig(subjects=2, shape=(6, 32, 32))
    for i, (source, truth, phantom) in enumerate(_subjects(config)):
        again = _same_acquisition(config, i, phantom, source.volume.iap)
        np.testing.assert_array_equal(again.data, source.volume.data)
        other = _same_acquisition(config, i, phantom, truth.volume.iap)
        assert not np.allclose(other.data, truth.volume.data)  # no fresh randomness


def test_ship_sampler_is_checked_and_shipped_as_the_default(tiny_bundles, tmp_path, capsys):
    from cf_iap_training.cli import main

    dest = tmp_path / "w"
    args = ["ship", "--cddgm", str(tiny_bundles["cddgm"]), "--dest", str(dest), "--subjects", "1"]
    ship = [*args, "--sampler", "ddim", "--ddim-steps", "2", "--edit-slices", "1"]
    assert main([*ship, "--seed", "123"]) == 0
    out = capsys.readouterr().out
    report, _ = json.JSONDecoder().raw_decode(out[out.index("{") :])
    assert report["settings"]["seed"] == 123
    assert (report["settings"]["sampler_used"], report["settings"]["ddim_steps_used"]) == (
        "ddim",
        2,
    )
    shipped = load_bundle(dest / "cddgm-default")
    assert shipped.inference_defaults["sampler"] == "ddim"
    assert shipped.inference_defaults["ddim_steps"] == 2
    # the acceptance of the shipped bundle, with no sampler given, uses its default
    again = run_acceptance(
        AcceptanceConfig(subjects=1, shape=(8, 64, 64), drop_slices=2, edit_slices=1),
        {"cddgm": dest / "cddgm-default"},
    )
    assert (again.settings["sampler_used"], again.settings["ddim_steps_used"]) == ("ddim", 2)
