"""Slice store, slice Dataset and the patient-level stratified split of ``cf_iap_training``."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from cf_iap_training.dataset import SliceDataset, store_vocabulary
from cf_iap_training.slice_store import COUNTERFACTUAL, SliceStore
from cf_iap_training.split import split_store, stratified_split

from napari_cf_iap.errors import InputError

GE = ("GE MEDICAL SYSTEMS", "SIGNA HDx", 1.5, "FAST_GEMS\\SAT_GEMS\\PFP\\FS")
SIEMENS = ("SIEMENS", "Skyra", 3.0, "FS")


def rows_for(patient: str, protocol: tuple, n: int, has_mask: bool) -> list[dict]:
    maker, model, field, options = protocol
    return [
        dict(
            patient=patient,
            series_uid=f"uid-{patient}",
            slice_index=i,
            manufacturer=maker,
            model_name=model,
            field_strength=field,
            scan_options=options,
            flip_angle=10.0,
            slice_thickness=1.0,
            echo_time=2.0,
            repetition_time=5.0,
            has_mask=has_mask,
        )
        for i in range(n)
    ]


def make_store(path, n_patients=20, size=16, slices=3, masked=8, seed=0) -> SliceStore:
    rng = np.random.default_rng(seed)
    store = SliceStore.create(path, size)
    for p in range(n_patients):
        name = f"P{p:03d}"
        images = rng.random((slices, size, size), dtype=np.float32)
        labels = rng.integers(0, 3, (slices, size, size)).astype(np.uint8)
        rows = rows_for(name, GE if p % 2 else SIEMENS, slices, p < masked)
        store.append_chunk(store.next_chunk_id("o", name), images, labels, rows)
    return store


def test_store_round_trip_and_memory_map(tmp_path):
    rng = np.random.default_rng(1)
    store = SliceStore.create(tmp_path / "s", 16)
    images = rng.random((3, 16, 16), dtype=np.float32)
    labels = rng.integers(0, 3, (3, 16, 16)).astype(np.uint8)
    store.append_chunk("o000001-A", images, labels, rows_for("A", GE, 3, True))
    store.append_chunk("o000002-B", images[:2] * 2, None, rows_for("B", SIEMENS, 2, False))
    cached = [dict(r) for r in store.rows]  # the incrementally extended cache
    store.write_table()

    reopened = SliceStore.open(tmp_path / "s")
    assert [r["row"] for r in reopened.rows] == [0, 1, 2, 3, 4]
    assert reopened.rows == cached
    assert reopened.patients() == ["A", "B"]
    np.testing.assert_array_equal(reopened.image(1), images[1])
    np.testing.assert_array_equal(reopened.image(4), images[1] * 2)
    np.testing.assert_array_equal(reopened.label(2), labels[2])
    assert not reopened.label(3).any()  # no mask -> zeros
    assert isinstance(reopened.image(0), np.memmap)
    assert reopened.record(3).manufacturer == "SIEMENS" and reopened.record(3).field_strength == 3.0
    assert reopened.select(has_mask=True) == [0, 1, 2]
    assert reopened.select(source=COUNTERFACTUAL) == []


def test_store_refuses_bad_chunks_and_foreign_folders(tmp_path):
    store = SliceStore.create(tmp_path / "s", 16)
    with pytest.raises(InputError, match="shape"):
        store.append_chunk("o000001-A", np.zeros((2, 8, 8)), None, rows_for("A", GE, 2, False))
    with pytest.raises(InputError, match="NaN"):
        store.append_chunk(
            "o000001-A", np.full((1, 16, 16), np.nan), None, rows_for("A", GE, 1, False)
        )
    with pytest.raises(InputError, match="labels"):
        store.append_chunk(
            "o000001-A", np.zeros((1, 16, 16)), np.full((1, 16, 16), 7), rows_for("A", GE, 1, False)
        )
    assert store.chunk_ids() == []  # nothing half-written
    with pytest.raises(InputError, match="not 32"):
        SliceStore.create(tmp_path / "s", 32)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("hi")
    with pytest.raises(InputError, match="not a slice store"):
        SliceStore.create(tmp_path / "other", 16)
    with pytest.raises(InputError, match="prepare"):
        SliceStore.open(tmp_path / "nowhere")


def test_dataset_resizes_and_encodes(tmp_path):
    store = make_store(tmp_path / "s", n_patients=2, size=16)
    vocab = store_vocabulary(store)
    assert vocab.dim == store_vocabulary(store, "duke").dim  # the simulated mix fits Duke
    data = SliceDataset(store, [0, 4], image_size=8, vocabulary=vocab)
    image, iap, label = data[1]
    assert image.shape == (1, 8, 8) and iap.shape == (vocab.dim,) and label.shape == (8, 8)
    assert set(label.unique().tolist()) <= {0, 1, 2}
    np.testing.assert_allclose(iap.numpy(), vocab.encode(store.record(4)))
    assert vocab.decode(iap.numpy()).record.manufacturer == "GE MEDICAL SYSTEMS"
    same = SliceDataset(store, [0], image_size=16, vocabulary=vocab)[0][0]
    np.testing.assert_array_equal(same[0].numpy(), store.image(0))


def crafted_categories(n_common=40, n_rare=2):
    """Two common protocols (half each) and one rare model (``n_rare`` patients)."""
    cats = {}
    for i in range(n_common):
        model = "SIGNA HDx" if i % 2 else "Skyra"
        cats[f"C{i:03d}"] = {"model_name": model, "field_strength": "1.5" if i % 4 < 2 else "3"}
    for i in range(n_rare):
        cats[f"R{i:03d}"] = {"model_name": "Trio", "field_strength": "3"}
    return cats


def test_stratified_split_rare_to_train_and_proportions():
    cats = crafted_categories()
    fractions = {"train": 0.75, "val": 0.10, "test": 0.15}
    split = stratified_split(cats, fractions, seed=0)
    assert set(split) == set(cats)
    assert split["R000"] == split["R001"] == "train"  # rare model (2 patients) goes to train
    counts = Counter(split.values())  # val is held out first (4 of 40), then test (6 of 36)
    assert counts == {"train": 32, "val": 4, "test": 6}
    for name in ("val", "test"):  # both common models are represented in proportion
        models = Counter(cats[p]["model_name"] for p, s in split.items() if s == name)
        assert abs(models["SIGNA HDx"] - models["Skyra"]) <= 1
    assert split == stratified_split(cats, fractions, seed=0)  # seeded
    assert split != stratified_split(cats, fractions, seed=1)


def test_split_store_never_leaks_a_patient(tmp_path):
    store = make_store(tmp_path / "s", n_patients=40, masked=16)
    path, info = split_store(store, seed=3)
    assert path.name == "splits.json"
    reopened = SliceStore.open(tmp_path / "s")
    by_patient: dict[str, set] = {}
    for row in reopened.rows:
        by_patient.setdefault(row["patient"], set()).add(row["split"])
    assert all(len(s) == 1 and s <= {"train", "val", "test"} for s in by_patient.values())
    masked = {r["patient"]: r["split"] for r in reopened.rows if r["has_mask"]}
    unmasked = {r["patient"]: r["split"] for r in reopened.rows if not r["has_mask"]}
    assert Counter(masked.values()) == {"train": 10, "val": 2, "test": 4}  # 65/10/25 of 16
    assert Counter(unmasked.values()) == {"train": 18, "val": 2, "test": 4}  # 75/10/15 of 24
    assert "slices.csv" in {p.name for p in (tmp_path / "s").iterdir()}
    assert (tmp_path / "s" / "slices.csv").read_text().count(",test,") == 8 * 3


def test_stratified_split_rejects_bad_fractions():
    with pytest.raises(InputError, match="sum to 1"):
        stratified_split(crafted_categories(), {"train": 0.5, "test": 0.2})


def test_cli_errors_are_one_clear_line(tmp_path, capsys):
    from cf_iap_training.cli import main

    assert main(["split", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cf-iap-train split: error:") and "prepare" in err and "\n" not in err
    store = make_store(tmp_path / "s", n_patients=4)
    store.write_table()
    args = ["train", "cddgm", str(tmp_path / "s"), "--preset", "tiny", "--out", str(tmp_path / "r")]
    assert main([*args, "--max-time", "soon"]) == 2
    assert "HH:MM:SS" in capsys.readouterr().err
    assert main(args) == 2  # no split yet
    assert "split" in capsys.readouterr().err
    assert not (tmp_path / "r" / "checkpoints").exists()
    assert main(["split", str(tmp_path / "s")]) == 0
    assert main([*args, "--max-steps", "1"]) == 0  # a run that failed before training is redone
    assert (tmp_path / "r" / "bundle" / "bundle.json").is_file()


def test_training_package_never_imports_qt():
    import subprocess
    import sys

    code = (
        "import sys, cf_iap_training.cli, cf_iap_training.train, cf_iap_training.cddgm_module, "
        "cf_iap_training.iap_module, cf_iap_training.seg_module, cf_iap_training.augment, "
        "cf_iap_training.prepare; cf_iap_training.cli.build_parser(); "
        "qt = ('napari', 'qtpy', 'PyQt5', 'PySide2'); "
        "bad = [m for m in sys.modules if m.split('.')[0] in qt]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
