"""Training faults: a run killed (SIGKILL) in the middle of an epoch and resumed with
``--resume`` ends in the same state as a run that was never interrupted: the same weights,
optimiser, EMA, data position and best checkpoint (all three models).

The killed run is a real process: it dies by SIGKILL inside training step 5, after the
``last.ckpt`` of step 4 was written, so the work of step 5 is lost and has to be redone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

pytest.importorskip("cf_iap_training")
from cf_iap_training.cli import main  # noqa: E402
from test_training_store import make_store  # noqa: E402

MAX_STEPS = 6
KILL_IN_STEP = 5  # after the step-4 checkpoint (tiny preset: last.ckpt every 2 steps)

_KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    torch.set_num_threads(1)
    from cf_iap_training import cddgm_module
    from cf_iap_training.cli import main

    original = cddgm_module.CDDGMModule.training_step

    def training_step(self, batch, batch_idx):
        if self.global_step == {kill}:
            os.kill(os.getpid(), signal.SIGKILL)  # no handler runs, like a power cut
        return original(self, batch, batch_idx)

    cddgm_module.CDDGMModule.training_step = training_step
    sys.exit(main(sys.argv[1:]))
    """
)


def _train_args(store: Path, out: Path, model: str = "cddgm") -> list[str]:
    return [
        "train",
        model,
        str(store),
        "--preset",
        "tiny",
        "--out",
        str(out),
        "--max-steps",
        str(MAX_STEPS),
        "--threads",
        "1",
    ]


def _final_state(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


def _worst_difference(a: object, b: object) -> float:
    """The largest absolute difference between two nested checkpoint values (inf: mismatch)."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape:
            return float("inf")
        if a.is_floating_point():
            return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0
        return 0.0 if torch.equal(a, b) else float("inf")
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return float("inf")
        return max([_worst_difference(a[k], b[k]) for k in a] + [0.0])
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return float("inf")
        return max([_worst_difference(x, y) for x, y in zip(a, b, strict=True)] + [0.0])
    return 0.0 if a == b else float("inf")


def _assert_same_final_state(a: dict, b: dict) -> None:
    """Weights, optimiser, EMA, loop and loader position, best checkpoint: all equal."""
    assert a["global_step"] == b["global_step"] and a["epoch"] == b["epoch"]
    for key in ("state_dict", "optimizer_states", "averaging_state", "current_model_state"):
        assert (key in a) == (key in b), key
        if key in a:
            worst = _worst_difference(a[key], b[key])
            assert worst <= 1e-6, f"{key}: resumed run differs from the uninterrupted by {worst}"
    assert a["loops"]["fit_loop"]["state_dict"] == b["loops"]["fit_loop"]["state_dict"]
    for name, state in a["callbacks"].items():
        if name.startswith("ModelCheckpoint"):
            other = b["callbacks"][name]
            assert Path(state["best_model_path"]).name == Path(other["best_model_path"]).name
            assert float(state["best_model_score"]) == float(other["best_model_score"])


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("training-faults-store") / "store"
    make_store(path, n_patients=20, masked=8, size=16).write_table()
    assert main(["split", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, store) -> dict:
    """An uninterrupted run, and a run SIGKILLed in step 5 then resumed (state before resume)."""
    root = tmp_path_factory.mktemp("training-faults")
    straight = root / "straight"
    assert main(_train_args(store, straight)) == 0

    killed = root / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-c", _KILLER.format(kill=KILL_IN_STEP), *_train_args(store, killed)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    crashed = _final_state(killed)
    leftovers = sorted(p.name for p in (killed / "checkpoints").iterdir())
    had_summary = (killed / "summary.json").exists()
    assert main([*_train_args(store, killed), "--resume"]) == 0
    return {
        "straight": _final_state(straight),
        "resumed": _final_state(killed),
        "crashed": crashed,
        "leftovers": leftovers,
        "had_summary": had_summary,
    }


@pytest.mark.slow
def test_killed_run_leaves_a_whole_checkpoint_and_resumes_to_the_end(runs):
    assert runs["crashed"]["global_step"] == 4  # the last checkpoint before the kill
    assert "last.ckpt" in runs["leftovers"]
    assert not [n for n in runs["leftovers"] if n.startswith(".")]  # no torn .part file
    assert not runs["had_summary"]
    a, b = runs["straight"], runs["resumed"]
    assert a["global_step"] == b["global_step"] == MAX_STEPS
    assert a["epoch"] == b["epoch"] == 0  # the kill and the resume were mid-epoch
    assert int(b["averaging_state"]["n_averaged"]) == MAX_STEPS  # EMA continued
    adam = {float(s["step"]) for s in b["optimizer_states"][0]["state"].values()}
    assert adam == {float(MAX_STEPS)}  # optimiser state continued


@pytest.mark.slow
def test_resumed_state_equals_uninterrupted(runs):
    a, b = runs["straight"], runs["resumed"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    _assert_same_final_state(a, b)


class _Crash(RuntimeError):
    """An exception no handler expects: last.ckpt is not written on the way out."""


@pytest.mark.slow
@pytest.mark.parametrize(("model", "module_name", "class_name"), [
    ("iap", "iap_module", "IAPModule"),
    ("seg", "seg_module", "SegModule"),
])  # fmt: skip
def test_crashed_and_resumed_run_equals_uninterrupted(
    model, module_name, class_name, store, tmp_path, monkeypatch
):
    """The IAP predictor and the segmenter (flips, early stopping, an epoch boundary for the
    segmenter's small training set) also resume exactly from a crash in step 5."""
    import importlib

    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    assert main(_train_args(store, straight, model)) == 0
    cls = getattr(importlib.import_module(f"cf_iap_training.{module_name}"), class_name)
    original = cls.training_step

    def training_step(self, batch, batch_idx):
        if self.global_step == KILL_IN_STEP:
            raise _Crash("power cut")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(cls, "training_step", training_step)
    with pytest.raises(_Crash):
        main(_train_args(store, crashed, model))
    assert _final_state(crashed)["global_step"] == KILL_IN_STEP - 1
    monkeypatch.setattr(cls, "training_step", original)
    assert main([*_train_args(store, crashed, model), "--resume"]) == 0
    a, b = _final_state(straight), _final_state(crashed)
    assert a["global_step"] == MAX_STEPS
    _assert_same_final_state(a, b)


@pytest.mark.slow
def test_checkpoint_without_loader_position_resumes_with_a_warning(store, tmp_path, monkeypatch):
    """A last.ckpt from before resumable training (no loader position) still resumes: from its
    step, with a fresh data order for the rest of the epoch, and says so."""
    from cf_iap_training.iap_module import IAPModule

    run = tmp_path / "old"
    original = IAPModule.training_step

    def training_step(self, batch, batch_idx):
        if self.global_step == KILL_IN_STEP:
            raise _Crash("power cut")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(IAPModule, "training_step", training_step)
    with pytest.raises(_Crash):
        main(_train_args(store, run, "iap"))
    monkeypatch.setattr(IAPModule, "training_step", original)
    last = run / "checkpoints" / "last.ckpt"
    old = _final_state(run)
    del old["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    torch.save(old, last)
    with pytest.warns(UserWarning, match="no data-loader position"):
        assert main([*_train_args(store, run, "iap"), "--resume"]) == 0
    assert _final_state(run)["global_step"] == MAX_STEPS
