"""End to end: simulate -> prepare -> split -> train (tiny) -> bundles load -> augment -> train seg.

Also: ``prepare --resume`` and skip reports, and ``train --resume`` continuing from the saved
step with the optimiser and EMA state restored.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cf_iap_training.cli import main
from cf_iap_training.slice_store import COUNTERFACTUAL, ORIGINAL, SliceStore
from test_training_store import make_store

from napari_cf_iap.bundles import load_bundle


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """4 simulated patients (2 with masks, GE and Siemens), prepared in two resumed passes."""
    from napari_cf_iap.simulator.dataset_writer import write_duke_dataset

    root = tmp_path_factory.mktemp("training")
    sim = root / "sim"
    write_duke_dataset(sim, 4, shape=(28, 64, 64), mask_fraction=0.5, seed=1)
    (sim / "Duke-Breast-Cancer-MRI" / "Breast_MRI_099").mkdir()  # no DICOM: must be skipped
    store = root / "store"
    args = ["prepare", str(sim), "--out", str(store), "--size", "32", "--drop-slices", "4"]
    assert main([*args, "--limit", "2"]) == 0
    first = SliceStore.open(store).patients()
    assert main(args) == 2  # exists: refuses without --resume
    assert main([*args, "--resume"]) == 0
    assert main(["split", str(store), "--seed", "0"]) == 0
    return {"root": root, "store": store, "first": first}


def test_prepare_streams_resumes_and_reports_skips(prepared):
    store = SliceStore.open(prepared["store"])
    assert prepared["first"] == ["Breast_MRI_001", "Breast_MRI_002"]
    assert store.patients() == [f"Breast_MRI_00{i}" for i in range(1, 5)]
    assert len(store) == 4 * (28 - 2 * 4)
    assert "Breast_MRI_099" in store.meta["skipped"]
    assert "no DICOM" in store.meta["skipped"]["Breast_MRI_099"]
    masked = {r["patient"] for r in store.rows if r["has_mask"]}
    assert len(masked) == 2
    for row in (0, len(store) - 1):
        image = np.asarray(store.image(row))
        assert image.shape == (32, 32) and np.isfinite(image).all()
        low, high = np.percentile(image, [10, 99])
        assert abs(low) < 1e-3 and abs(high - 1) < 1e-3  # paper's rescaling, no clip
    labels = np.stack([store.label(r) for r in store.select(has_mask=True)])
    assert set(np.unique(labels)) == {0, 1, 2}
    assert {r["manufacturer"] for r in store.rows} == {"GE MEDICAL SYSTEMS", "SIEMENS"}
    assert all(r["split"] == "train" for r in store.rows)  # every category has <= 2 patients


@pytest.mark.slow
def test_end_to_end_train_augment_and_train_with_augmentations(prepared):
    root, store_path = prepared["root"], prepared["store"]
    kinds = {"cddgm": "cddgm", "iap": "iap_predictor", "seg": "segmenter"}
    for model, kind in kinds.items():
        out = root / f"run-{model}"
        assert main(["train", model, str(store_path), "--preset", "tiny", "--out", str(out)]) == 0
        bundle = load_bundle(out / "bundle", kind=kind)
        assert bundle.provenance["steps"] == 4 and bundle.provenance["preset"]["name"] == "tiny"
        assert "cf-iap-train train" in bundle.provenance["command"]
        assert bundle.provenance["data"]["train_slices"] > 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["global_step"] == 4 and np.isfinite(summary["metrics"]["train_loss"])
        if kind != "segmenter":
            assert bundle.vocab is not None and bundle.vocab.dim > 0

    cddgm = root / "run-cddgm" / "bundle"
    aug = ["augment", str(store_path), "--bundle", str(cddgm), "--limit", "2", "--steps", "3"]
    assert main([*aug, "--batch-size", "2"]) == 0
    store = SliceStore.open(store_path)
    cf_rows = [r for r in store.rows if r["source"] == COUNTERFACTUAL]
    assert len(cf_rows) == 2
    sha = load_bundle(cddgm).sha256
    for row in cf_rows:
        source = store.rows[row["source_row"]]
        assert source["source"] == ORIGINAL and source["has_mask"] and source["split"] == "train"
        assert row["patient"] == source["patient"] and row["bundle_sha"] == sha
        assert row["manufacturer"] != source["manufacturer"]  # other-manufacturer target
        target = json.loads(row["target_iap"])
        assert target["manufacturer"] == row["manufacturer"] and target["steps"] == 3
        np.testing.assert_array_equal(store.label(row["row"]), store.label(row["source_row"]))
        image = np.asarray(store.image(row["row"]))
        assert np.isfinite(image).all() and not np.array_equal(
            image, store.image(row["source_row"])
        )
    assert main(aug) == 2  # already there: needs --resume
    assert main([*aug, "--resume"]) == 0
    assert len(SliceStore.open(store_path).select(source=COUNTERFACTUAL)) == 2  # nothing redone

    out = root / "run-seg-aug"
    seg = ["train", "seg", str(store_path), "--preset", "tiny", "--out", str(out)]
    assert main([*seg, "--with-augmentations"]) == 0
    provenance = load_bundle(out / "bundle", kind="segmenter").provenance
    originals = len(store.select(split="train", has_mask=True))
    assert provenance["data"]["with_augmentations"] is True
    assert provenance["data"]["train_slices"] == originals + 2


@pytest.mark.slow
def test_resume_continues_from_the_saved_step(tmp_path):
    make_store(tmp_path / "store", n_patients=20, masked=8, size=16).write_table()
    assert main(["split", str(tmp_path / "store")]) == 0
    out = tmp_path / "run"
    base = ["train", "cddgm", str(tmp_path / "store"), "--preset", "tiny", "--out", str(out)]
    assert main([*base, "--max-steps", "2"]) == 0
    first = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert first["global_step"] == 2
    assert main(base) == 2  # the run exists: a fresh start is refused

    assert main([*base, "--resume", "--max-steps", "4"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from_step"] == 2 and summary["global_step"] == 4
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 4
    adam_steps = {float(s["step"]) for s in last["optimizer_states"][0]["state"].values()}
    assert adam_steps == {4.0}  # optimiser state carried over (a fresh one would say 2)
    assert int(last["averaging_state"]["n_averaged"]) == 4  # EMA carried over too
    assert "best_checkpoint" in summary  # validation ran and chose a checkpoint
    assert load_bundle(out / "bundle", kind="cddgm").provenance["steps"] == 4


def test_train_cddgm_with_one_context_token_per_iap(prepared):
    root, store_path = prepared["root"], prepared["store"]
    out = root / "run-cddgm-per-iap"
    args = ["train", "cddgm", str(store_path), "--preset", "tiny", "--out", str(out)]
    assert main([*args, "--context-mode", "per_iap"]) == 0
    bundle = load_bundle(out / "bundle", kind="cddgm")
    config = bundle.model.config
    assert config.context_mode == "per_iap"
    assert sum(config.slot_sizes) == config.iap_dim == bundle.vocab.dim
    iap = ["train", "iap", str(store_path), "--preset", "tiny", "--out", str(root / "x")]
    assert main([*iap, "--context-mode", "per_iap"]) != 0  # a cddgm option only
    assert not (root / "x" / "bundle").exists()
