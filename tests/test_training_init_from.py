"""``train --init-from BUNDLE``: fine-tuning starts from the bundle's weights and vocabulary."""

from __future__ import annotations

import json

import torch
from cf_iap_training.cli import main
from test_training_store import make_store

from napari_cf_iap.bundles import load_bundle


def test_init_from_starts_at_the_bundle_weights_and_refuses_mismatches(tmp_path, capsys):
    store = tmp_path / "store"
    make_store(store, n_patients=20, masked=8, size=16).write_table()
    assert main(["split", str(store)]) == 0
    base = ["train", "cddgm", str(store), "--preset", "tiny"]
    assert main([*base, "--out", str(tmp_path / "a"), "--max-steps", "2"]) == 0
    start = load_bundle(tmp_path / "a" / "bundle", kind="cddgm")

    # lr 0: the fine-tuned weights stay exactly the starting ones (a fresh init would not)
    out = tmp_path / "b"
    tune = [*base, "--out", str(out), "--init-from", str(start.path), "--max-steps", "1"]
    assert main([*tune, "--lr", "0"]) == 0
    tuned = load_bundle(out / "bundle", kind="cddgm")
    for name, value in start.model.state_dict().items():
        torch.testing.assert_close(tuned.model.state_dict()[name], value, rtol=0, atol=0)
    assert tuned.vocab.to_dict() == start.vocab.to_dict()
    record = tuned.provenance["init_from"]
    assert record["sha256"] == start.sha256 and record["steps"] == 2
    assert json.loads((out / "run.json").read_text())["init_from"]["sha256"] == start.sha256

    # a run that did learn moved away from the start
    assert main([*base, "--out", str(tmp_path / "c"), "--init-from", str(start.path),
                 "--max-steps", "1", "--lr", "0.01"]) == 0  # fmt: skip
    moved = load_bundle(tmp_path / "c" / "bundle", kind="cddgm").model.state_dict()
    assert any(not torch.equal(moved[k], v) for k, v in start.model.state_dict().items())

    capsys.readouterr()
    wrong_size = [*base, "--out", str(tmp_path / "d"), "--init-from", str(start.path)]
    assert main([*wrong_size, "--image-size", "16"]) == 2
    assert "another architecture" in capsys.readouterr().err
    wrong_kind = ["train", "iap", str(store), "--preset", "tiny", "--out", str(tmp_path / "e")]
    assert main([*wrong_kind, "--init-from", str(start.path)]) == 2
    assert "is a cddgm bundle" in capsys.readouterr().err


def test_model_card_names_the_starting_bundle():
    from cf_iap_training.shipping.package import _start

    record = {"bundle": "/runs/a/bundle", "steps": 4000, "sha256": "0123456789abcdef"}
    assert _start(record) == (
        ", fine-tuned from `/runs/a/bundle` (4000 steps, sha256 0123456789ab)"
    )
    assert _start(None) == ""
