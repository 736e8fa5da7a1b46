"""Our own Lightning checkpoints load with torch.load(weights_only=True); foreign objects do not."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest
import torch
from cf_iap_training.cli import main
from cf_iap_training.export import checkpoint_state, load_checkpoint
from cf_iap_training.export_run import export_run
from test_training_store import make_store

from napari_cf_iap.bundles import load_bundle
from napari_cf_iap.errors import BundleError


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A store; tiny runs of the models (EMA, ModelCheckpoint, EarlyStopping state) on demand."""
    root = tmp_path_factory.mktemp("safe_load")
    make_store(root / "store", n_patients=20, masked=8, size=16).write_table()
    assert main(["split", str(root / "store")]) == 0
    return root


def _run(root: Path, model: str) -> Path:
    out = root / model
    if not (out / "summary.json").is_file():
        args = ["train", model, str(root / "store"), "--preset", "tiny", "--out", str(out)]
        assert main(args) == 0
    return out


class _Payload:
    """Unpickling this would create ``marker`` (code execution)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize(
    "model", [pytest.param("cddgm", marks=pytest.mark.slow), "iap", "seg"]
)  # cddgm: about 5 s of training on 2 cores
def test_every_checkpoint_of_a_run_loads_weights_only(runs: Path, model: str) -> None:
    ckpts = sorted((_run(runs, model) / "checkpoints").glob("*.ckpt"))
    assert {p.name for p in ckpts} >= {"last.ckpt"} and len(ckpts) == 2  # last + best
    for path in ckpts:
        assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) == []
        safe = load_checkpoint(path)
        full = torch.load(path, map_location="cpu", weights_only=False)
        assert safe.keys() == full.keys()
        assert safe["global_step"] == full["global_step"] > 0
        assert safe["hyper_parameters"] == full["hyper_parameters"]
        assert safe["callbacks"].keys() == full["callbacks"].keys()
        assert safe["state_dict"].keys() == full["state_dict"].keys()
        for key, value in full["state_dict"].items():
            assert torch.equal(safe["state_dict"][key], value), key
    if model == "cddgm":  # the EMA callback's state survives too
        averaging = load_checkpoint(ckpts[-1])["averaging_state"]  # last.ckpt
        assert int(averaging["n_averaged"]) == 4


def test_export_run_uses_the_safe_loader(runs: Path) -> None:
    bundle = load_bundle(export_run(_run(runs, "iap"), "last"), kind="iap_predictor")
    state, info = checkpoint_state(runs / "iap" / "checkpoints" / "last.ckpt")
    assert info["global_step"] == bundle.provenance["steps"] > 0
    exported = bundle.model.state_dict()
    assert state.keys() == exported.keys()
    for key, value in state.items():
        assert torch.allclose(exported[key].float(), value.float()), key


def test_paths_are_allowed_but_objects_are_refused(runs: Path, tmp_path: Path) -> None:
    ckpt = torch.load(_run(runs, "iap") / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["hyper_parameters"]["where"] = Path("/data/store")
    ckpt["hyper_parameters"]["pure"] = PurePosixPath("a/b")
    with_paths = tmp_path / "paths.ckpt"
    torch.save(ckpt, with_paths)
    loaded = load_checkpoint(with_paths)["hyper_parameters"]
    assert loaded["where"] == Path("/data/store") and loaded["pure"] == PurePosixPath("a/b")

    marker = tmp_path / "pwned"
    ckpt["callbacks"]["evil"] = _Payload(marker)
    evil = tmp_path / "evil.ckpt"
    torch.save(ckpt, evil)
    with pytest.raises(BundleError, match=r"pickled Python objects \((builtins|io)\.open\)"):
        load_checkpoint(evil)
    with pytest.raises(BundleError, match="nothing in it was executed"):
        checkpoint_state(evil)
    assert not marker.exists()


def test_unreadable_checkpoints_are_described(runs: Path, tmp_path: Path) -> None:
    whole = (_run(runs, "seg") / "checkpoints" / "last.ckpt").read_bytes()
    cut = tmp_path / "last.ckpt"
    cut.write_bytes(whole[: len(whole) // 3])  # a copy killed halfway
    with pytest.raises(BundleError, match="starts like a zip archive .* missing or damaged"):
        load_checkpoint(cut)
    with pytest.raises(BundleError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.ckpt")
    not_lightning = tmp_path / "tensors.ckpt"
    torch.save({"w": torch.zeros(2)}, not_lightning)
    with pytest.raises(BundleError, match="not a Lightning checkpoint"):
        load_checkpoint(not_lightning)


def test_resume_loads_weights_only_and_refuses_objects(tmp_path: Path, monkeypatch) -> None:
    make_store(tmp_path / "store", n_patients=20, masked=8, size=16).write_table()
    assert main(["split", str(tmp_path / "store")]) == 0
    out = tmp_path / "run"
    base = ["train", "iap", str(tmp_path / "store"), "--preset", "tiny", "--out", str(out)]
    assert main([*base, "--max-steps", "2"]) == 0

    real_load, modes = torch.load, []

    def spy(*args, **kwargs):
        modes.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    assert main([*base, "--resume", "--max-steps", "4"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from_step"] == 2 and summary["global_step"] == 4
    assert len(modes) >= 2 and all(mode is True for mode in modes)  # step read + Lightning

    last = out / "checkpoints" / "last.ckpt"
    ckpt = real_load(last, weights_only=True)
    marker = tmp_path / "pwned"
    ckpt["callbacks"]["evil"] = _Payload(marker)
    torch.save(ckpt, last)
    assert main([*base, "--resume", "--max-steps", "6"]) != 0
    assert not marker.exists()
