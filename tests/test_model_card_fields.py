"""Runs record their slice counts and training time; exports and model cards show them."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from cf_iap_training.cli import main
from cf_iap_training.datamodule import select_rows
from cf_iap_training.export_run import export_run, training_facts
from cf_iap_training.shipping.acceptance import AcceptanceReport
from cf_iap_training.shipping.package import ship_bundles
from cf_iap_training.slice_store import SliceStore
from test_training_store import make_store

from napari_cf_iap.bundles import load_bundle

REPORT = AcceptanceReport(manufacturer_accuracy=0.9, edit_flip_rate=0.5)


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory) -> Path:
    """A tiny IAP-predictor run: 2 steps, then resumed to 4 (two invocations)."""
    root = tmp_path_factory.mktemp("card")
    make_store(root / "store", n_patients=20, masked=8, size=16).write_table()
    assert main(["split", str(root / "store")]) == 0
    base = ["train", "iap", str(root / "store"), "--preset", "tiny", "--out", str(root / "run")]
    assert main([*base, "--max-steps", "2"]) == 0
    assert main([*base, "--resume", "--max-steps", "4"]) == 0
    return root / "run"


def _card(tmp_path: Path, bundle: Path) -> str:
    written = ship_bundles({"iap_predictor": bundle}, REPORT, tmp_path / "ship", "ship")
    return (written["iap_predictor"] / "MODEL_CARD.md").read_text()


def test_run_json_accumulates_invocations(resumed_run: Path) -> None:
    saved = json.loads((resumed_run / "run.json").read_text())
    train, val = select_rows(SliceStore.open(saved["store"]), "iap")
    assert saved["train_slices"] == len(train) > 0 and saved["val_slices"] == len(val) > 0
    runs = saved["invocations"]
    assert [(i["from_step"], i["to_step"]) for i in runs] == [(0, 2), (2, 4)]
    assert all(i["seconds"] > 0 and i["interrupted"] is False for i in runs)
    assert saved["train_seconds"] == pytest.approx(sum(i["seconds"] for i in runs), abs=0.05)
    summary = json.loads((resumed_run / "summary.json").read_text())
    assert summary["train_seconds_total"] == saved["train_seconds"]
    assert summary["train_seconds"] <= runs[1]["seconds"] + 1.0  # this invocation only
    prov = load_bundle(resumed_run / "bundle").provenance
    assert prov["train_seconds"] >= saved["train_seconds"] - 0.2  # both invocations
    assert prov["data"]["train_slices"] == saved["train_slices"]


def test_a_failed_invocation_still_counts(resumed_run: Path, tmp_path: Path, monkeypatch) -> None:
    saved = json.loads((resumed_run / "run.json").read_text())

    def broken_fit(*args, **kwargs):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(pl.Trainer, "fit", broken_fit)
    store = saved["store"]
    args = ["train", "iap", store, "--preset", "tiny", "--out", str(tmp_path / "run")]
    with pytest.raises(RuntimeError, match="simulated"):
        main(args)
    failed = json.loads((tmp_path / "run" / "run.json").read_text())
    assert [(i["from_step"], i["to_step"]) for i in failed["invocations"]] == [(0, 0)]
    assert failed["train_slices"] == saved["train_slices"]


def test_card_shows_recorded_slices_and_time(resumed_run: Path, tmp_path: Path) -> None:
    saved = json.loads((resumed_run / "run.json").read_text())
    card = _card(tmp_path, resumed_run / "bundle")
    assert "? training slices" not in card and "? s on" not in card
    assert f"({saved['train_slices']} training slices, {saved['val_slices']} validation" in card
    seconds = float(re.search(r"training time / hardware: ([\d,.]+) s", card)[1].replace(",", ""))
    assert seconds == pytest.approx(saved["train_seconds"], abs=1.0)


def test_older_runs_are_filled_from_what_they_left(resumed_run: Path, tmp_path: Path) -> None:
    """A run.json without the new fields: slices from the store, time from logs or Timer."""
    old = tmp_path / "old"
    old.mkdir()
    for name in ("checkpoints", "logs"):
        os.symlink(resumed_run / name, old / name)
    saved = json.loads((resumed_run / "run.json").read_text())
    expected_slices = saved["train_slices"]
    for key in ("train_seconds", "train_slices", "val_slices", "invocations"):
        saved.pop(key)
    (old / "run.json").write_text(json.dumps(saved))
    logs = sorted((resumed_run / "logs").glob("version_*"))
    assert len(logs) == 2  # one CSV log version per invocation
    for i, version in enumerate(logs):
        start = 1_700_000_000 + 1000 * i
        os.utime(version / "hparams.yaml", (start, start))
        os.utime(version / "metrics.csv", (start + 60 * (i + 1), start + 60 * (i + 1)))

    facts = training_facts(old)
    assert facts["train_seconds"] == pytest.approx(180.0)  # 60 s + 120 s
    assert facts["train_seconds_source"] == "estimated from log file times"
    assert facts["train_slices"] == expected_slices
    assert facts["train_slices_source"] == "counted from the store's current split"

    bundle = load_bundle(export_run(old, "last"))
    assert bundle.provenance["train_seconds"] == pytest.approx(180.0)
    assert bundle.provenance["data"]["train_slices"] == expected_slices
    card = _card(tmp_path, old / "bundle")
    assert "180 s (0.1 h, estimated from log file times)" in card
    assert f"({expected_slices} training slices" in card


def test_timer_state_beats_a_shorter_record(resumed_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "timer"
    (run / "checkpoints").mkdir(parents=True)
    saved = json.loads((resumed_run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(saved))
    ckpt = torch.load(resumed_run / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["callbacks"]["Timer"] = {"time_elapsed": {"train": 7200.0, "validate": 0.0}}
    torch.save(ckpt, run / "checkpoints" / "last.ckpt")
    facts = training_facts(run)  # an invocation was killed before it recorded its time
    assert facts["train_seconds"] == 7200.0
    assert facts["train_seconds_source"] == "Lightning Timer state"
    ckpt["callbacks"]["Timer"]["time_elapsed"]["train"] = 0.01
    torch.save(ckpt, run / "checkpoints" / "last.ckpt")
    assert training_facts(run)["train_seconds"] == saved["train_seconds"]


def test_bundle_without_a_run_keeps_question_marks(tiny_bundles, tmp_path: Path) -> None:
    card = _card(tmp_path, tiny_bundles["iap_predictor"])
    assert "? training slices" in card and "training time / hardware: ? s" in card
