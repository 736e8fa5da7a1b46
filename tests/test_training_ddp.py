"""DDP with two CPU processes (gloo): a few steps, then a loadable bundle.

Lightning's ``ddp`` strategy re-launches the command for rank 1, so this runs ``cf-iap-train``
in a subprocess (``python -m cf_iap_training``), as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from test_training_store import make_store

from napari_cf_iap.bundles import load_bundle


@pytest.mark.slow
def test_ddp_two_cpu_processes_gives_a_loadable_bundle(tmp_path):
    store = make_store(tmp_path / "store", n_patients=12, masked=4, size=16)
    store.write_table()
    from cf_iap_training.split import split_store

    split_store(store, seed=0)
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "cf_iap_training", "train", "cddgm", str(tmp_path / "store"),
        "--preset", "tiny", "--out", str(out), "--accelerator", "cpu", "--devices", "2",
        "--strategy", "ddp", "--threads", "1", "--max-steps", "3",
    ]  # fmt: skip
    env = {**os.environ, "PL_DISABLE_FORK": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "GLOBAL_RANK: 1" in result.stderr + result.stdout  # really two processes
    summary = json.loads((out / "summary.json").read_text())
    assert summary["global_step"] == 3
    bundle = load_bundle(out / "bundle", kind="cddgm")
    assert bundle.provenance["steps"] == 3
