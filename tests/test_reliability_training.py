"""Training faults: a run killed (SIGKILL) in the middle of an epoch and resumed with
``--resume`` ends in the same state as a run that was never interrupted.

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


def _train_args(store: Path, out: Path) -> list[str]:
    return [
        "train",
        "cddgm",
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


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """An uninterrupted run, and a run SIGKILLed in step 5 then resumed (state before resume)."""
    root = tmp_path_factory.mktemp("training-faults")
    store = root / "store"
    make_store(store, n_patients=20, masked=8, size=16).write_table()
    assert main(["split", str(store)]) == 0
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
    worst = max(
        float((a["state_dict"][k].float() - b["state_dict"][k].float()).abs().max())
        for k in a["state_dict"]
        if a["state_dict"][k].is_floating_point()
    )
    assert worst < 1e-5, f"resumed weights differ from the uninterrupted run by {worst:.3g}"
