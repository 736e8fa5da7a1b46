"""The evaluation experiments run on tiny bundles and tiny simulated data and produce the
tables' structure; the simulator ground truth lines up with the store; reports and CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

pytest.importorskip("cf_iap_training")

from cf_iap_training.slice_store import SliceStore  # noqa: E402

from napari_cf_iap.errors import InputError, OutputExistsError  # noqa: E402
from napari_cf_iap.iap import IAPVocabulary  # noqa: E402

PATIENTS = {  # simulator seed 1 with the two protocols below gives GE, SIEMENS, SIEMENS, GE
    "Breast_MRI_001": "test",
    "Breast_MRI_002": "test",
    "Breast_MRI_003": "train",
    "Breast_MRI_004": "train",
}


@pytest.fixture(scope="module")
def sim_store(tmp_path_factory):
    """A 32x32 slice store of 4 simulated, masked patients (2 GE, 2 SIEMENS), split by hand."""
    from cf_iap_training.prepare import prepare

    from napari_cf_iap.simulator.dataset_writer import write_duke_dataset
    from napari_cf_iap.simulator.protocols import DUKE_LIKE_PROTOCOLS as P

    root = tmp_path_factory.mktemp("evalsim")
    write_duke_dataset(
        root / "sim", 4, seed=1, shape=(10, 40, 40), mask_fraction=1.0, protocols=(P[0], P[11])
    )
    prepare(root / "sim", root / "store", size=32, drop_slices=2)
    store = SliceStore.open(root / "store")
    store.set_splits(PATIENTS, {"note": "by hand for tests"})
    makers = {r["patient"]: r["manufacturer"] for r in store.rows}
    assert makers["Breast_MRI_001"] != makers["Breast_MRI_002"]
    return SliceStore.open(root / "store")


@pytest.fixture(scope="module")
def sweep_result(sim_store, tiny_bundles):
    from cf_iap_training.evaluation.sweep import run_sweep

    return run_sweep(
        sim_store,
        tiny_bundles["cddgm"],
        tiny_bundles["iap_predictor"],
        steps=(2, 4),
        guidance=(3.0,),
        per_patient=2,
        n_examples=2,
    )


def test_edit_set_borrows_iaps_and_images_from_another_patient(sim_store):
    from cf_iap_training.evaluation.edit_set import build_edit_set

    es = build_edit_set(sim_store, 32, per_patient=2, seed=3)
    assert len(es) == 4 and es.images.shape == (4, 32, 32) == es.donor_images.shape
    assert all(p != d for p, d in zip(es.patients, es.donor_patients, strict=True))
    for i in range(len(es)):
        assert es.target_records[i] == sim_store.record(int(es.donor_rows[i]))
        assert sim_store.rows[int(es.donor_rows[i])]["patient"] == es.donor_patients[i]
    again = build_edit_set(sim_store, 32, per_patient=2, seed=3)
    assert again.seeds == es.seeds and np.array_equal(again.images, es.images)
    vectors = es.target_vectors(IAPVocabulary.duke_default())
    assert vectors.shape == (4, IAPVocabulary.duke_default().dim)


def test_ground_truth_at_the_own_protocol_is_the_stored_slice_with_fresh_noise(sim_store):
    from cf_iap_training.evaluation.edit_set import build_edit_set
    from cf_iap_training.evaluation.ground_truth import truth_slices

    es = build_edit_set(sim_store, 32, per_patient=2)
    own = dataclasses.replace(
        es, donor_patients=list(es.patients), target_records=list(es.source_records)
    )
    truth = truth_slices(sim_store, own)
    assert truth is not None and "simulation.json" in truth.source
    # same anatomy and protocol, independent noise: close, highly correlated, never identical
    gap = np.abs(truth.images - es.images)
    assert 1e-4 < gap.mean() < 0.1, gap.mean()
    corr = np.corrcoef(truth.images.ravel(), es.images.ravel())[0, 1]
    assert corr > 0.9, corr
    for i, row in enumerate(es.rows):
        np.testing.assert_array_equal(truth.labels[i], np.array(sim_store.label(int(row))))
    other = truth_slices(sim_store, es)  # another patient's protocol: a different image
    assert np.abs(other.images - es.images).mean() > gap.mean()


def test_sweep_rows_have_the_tables_structure(sweep_result):
    rows = sweep_result["rows"]
    assert [r["method"] for r in rows] == [
        "Without cDDGM",
        "Histogram matching",
        "# steps: 2; gs: 3",
        "# steps: 4; gs: 3",
    ]
    no_edit = rows[0]
    assert no_edit["ssim_orig"] == pytest.approx(1.0, abs=1e-6)
    assert no_edit["fid"] == pytest.approx(0.0, abs=1e-6)
    for row in rows:
        assert -1 <= row["ssim_orig"] <= 1 and -1 <= row["ssim_shuffled"] <= 1
        assert np.isfinite(row["mmd"]) and row["fid"] >= 0
        assert set(row["fooling"]) == {
            "model_name",
            "field_strength",
            "scan_options",
            "flip_angle",
            "slice_thickness",
            "echo_time",
            "repetition_time",
        }
        assert all(0 <= row["fooling"][k] <= 1 for k in ("model_name", "scan_options"))
        assert set(row["gt"]) == {"ssim", "psnr", "mae", "ratio_error"}
    for row in rows[2:]:
        assert row["kind"] == "cddgm" and isinstance(row["beats_baselines"], bool)
    assert rows[3]["ssim_orig"] < rows[2]["ssim_orig"]  # more noise, further from the input
    ex = sweep_result["examples"]
    assert ex["original"].shape == (2, 32, 32) and ex["truth"].shape == (2, 32, 32)
    assert "IAP predictor" in sweep_result["feature_extractor"]


def test_table1_scores_every_test_slice(sim_store, tiny_bundles):
    from cf_iap_training.evaluation.table1 import run_table1

    t1 = run_table1(sim_store, tiny_bundles["iap_predictor"])
    assert t1["slices"] == 12 and t1["patients"] == 2
    assert 0 <= t1["scores"]["model_name"] <= 1 and t1["scores"]["flip_angle"] >= 0


def test_table2_structure_with_views_and_augmentation(
    sim_store, tiny_bundles, tmp_path, monkeypatch
):
    from cf_iap_training.datamodule import select_rows
    from cf_iap_training.evaluation import table2

    trained = []

    def fake_train(store, out, *, seed, with_augmentations, **kwargs):
        rows, _ = select_rows(store, "seg", with_augmentations)  # what training would use
        trained.append((out.name, with_augmentations, len(rows)))
        return tiny_bundles["segmenter"]

    monkeypatch.setattr(table2, "train_segmenter", fake_train)
    result = table2.run_table2(
        sim_store, tiny_bundles["cddgm"], tmp_path, seeds=(0, 1), steps=2, seg_preset="tiny"
    )
    labels = [(r["trained_on"], r["tested_on"], r["augmented"]) for r in result["rows"]]
    assert labels == [
        ("Both", "Both", False),
        ("GE", "GE", False),
        ("GE", "SIEMENS", False),
        ("GE", "GE", True),
        ("GE", "SIEMENS", True),
        ("SIEMENS", "SIEMENS", False),
        ("SIEMENS", "GE", False),
        ("SIEMENS", "SIEMENS", True),
        ("SIEMENS", "GE", True),
    ]
    for row in result["rows"]:
        assert row["summary"]["mean_dice"]["n"] == 2 and len(row["runs"]) == 2
        assert row["test_slices"] == (
            12 if row["kind"] == "OOD" else 6 if row["kind"] == "ID" else 12
        )
    # each view trains on its manufacturer's one train patient, doubled by augmentation
    counts = {(name.split("-")[0], aug): n for name, aug, n in trained if name != "both-s0"}
    assert counts[("GE", False)] == 6 and counts[("GE", True)] == 12
    view = SliceStore.open(tmp_path / "views" / "GE-cddgm")
    assert set(view.splits().values()) == {"train", "test", "excluded"}
    cf = [r for r in view.rows if r["source"] == "counterfactual"]
    assert len(cf) == 6 and all(r["manufacturer"] == "SIEMENS" for r in cf)
    assert not any(r["source"] == "counterfactual" for r in SliceStore.open(sim_store.path).rows)


def test_report_renders_every_section_with_figures(sweep_result, sim_store, tiny_bundles, tmp_path):
    from cf_iap_training.evaluation.context_compare import run_context_compare
    from cf_iap_training.evaluation.reproduce import REPORT_MARKER, render_to
    from cf_iap_training.evaluation.table1 import run_table1

    np.savez_compressed(tmp_path / "ex.npz", **sweep_result["examples"])
    sweep = {k: v for k, v in sweep_result.items() if k != "examples"}
    results = {
        "preset": "tiny",
        "disclaimer": "numbers mean nothing",
        "command": "cf-iap-train reproduce --preset tiny",
        "table1": run_table1(sim_store, tiny_bundles["iap_predictor"]),
        "sweep": json.loads(json.dumps(sweep)),
        "context": run_context_compare({"single_token": sweep, "per_iap": sweep}),
    }
    path = render_to(tmp_path / "docs" / "reproduction.md", results, tmp_path / "ex.npz", None)
    text = path.read_text()
    assert text.startswith(REPORT_MARKER)
    for needle in (
        "numbers mean nothing",
        "Table 1",
        "Table 3",
        "Table 4",
        "ground-truth",
        "# steps: 4; gs: 3",
        "0.258",
        "98.9",
        "Recommendation",
        "single_token",
    ):
        assert needle in text, needle
    for name in ("reproduction_tradeoff.png", "reproduction_examples.png"):
        png = tmp_path / "docs" / "images" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"images/{name}" in text
    # equal variants tie -> the paper's single token is kept
    assert results["context"]["recommendation"]["choice"] == "single_token"
    (tmp_path / "mine.md").write_text("hand written")
    with pytest.raises(OutputExistsError):
        render_to(tmp_path / "mine.md", results, None, None)


def test_cli_evaluate_writes_results_and_refuses_to_overwrite(sim_store, tiny_bundles, tmp_path):
    from cf_iap_training.cli import main

    args = [
        "evaluate",
        str(sim_store.path),
        "--cddgm",
        str(tiny_bundles["cddgm"]),
        "--iap",
        str(tiny_bundles["iap_predictor"]),
        "--seg",
        str(tiny_bundles["segmenter"]),
        "--out",
        str(tmp_path / "o"),
        "--steps",
        "2",
        "--guidance",
        "2",
        "--per-patient",
        "1",
    ]
    assert main(args) == 0
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert [r["method"] for r in results["sweep"]["rows"]][-1] == "# steps: 2; gs: 2"
    assert results["table1"]["slices"] == 12
    assert results["segmentation"]["slices"] == 12
    assert 0 <= results["segmentation"]["scores"]["acc_fat"] <= 1
    assert "cf-iap-train evaluate" in results["command"]
    report = (tmp_path / "o" / "report.md").read_text()
    assert "Segmenter on the masked test slices" in report and "Table 1" in report
    assert (tmp_path / "o" / "images" / "evaluate_tradeoff.png").is_file()
    assert main(args) == 2  # results exist: refused without --overwrite


def test_cli_parses_grids_and_preset_overrides():
    from cf_iap_training.cli import build_parser
    from cf_iap_training.evaluation.reproduce import PRESETS

    args = build_parser().parse_args(
        ["sweep", "s", "--cddgm", "c", "--iap", "i", "--out", "o", "--steps", "10,20"]
    )
    assert args.steps == (10, 20) and args.guidance == (3.0, 5.0, 7.0)
    with pytest.raises(SystemExit):
        build_parser().parse_args(
            ["sweep", "s", "--cddgm", "c", "--iap", "i", "--out", "o", "--guidance", "x"]
        )
    tiny = PRESETS["tiny"].with_overrides(seeds=(4,), patients=30)
    assert tiny.seeds == (4,) and tiny.patients == 30 and PRESETS["tiny"].seeds == (0, 1, 2)
    with pytest.raises(InputError):
        PRESETS["paper"].with_overrides(patients=3)


def test_reproduce_refuses_a_used_folder_and_real_data_without_a_dataset(tmp_path):
    from cf_iap_training.cli import main
    from cf_iap_training.evaluation.reproduce import PRESETS

    assert PRESETS["tiny"].budget_minutes == 60 and PRESETS["tiny"].disclaimer
    (tmp_path / "results.json").write_text("{}")
    assert main(["reproduce", "--preset", "tiny", "--out", str(tmp_path)]) == 2
    assert main(["reproduce", "--preset", "paper", "--out", str(tmp_path / "p")]) == 2
    with pytest.raises(SystemExit):
        main(["reproduce", "--preset", "huge", "--out", str(tmp_path)])
