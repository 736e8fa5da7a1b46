"""The checkpoint reader tells unsafe pickles apart from files that are no checkpoint at all."""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from napari_cf_iap.bundles.importer import read_checkpoint
from napari_cf_iap.errors import BundleError

PICKLE_REFUSAL = "refuses to execute pickle payloads"


class _Payload:
    """Unpickling this would create ``marker`` (code execution)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _good(path: Path, **kwargs) -> Path:
    torch.save({"state_dict": {"w": torch.arange(64.0)}, "epoch": 3}, path, **kwargs)
    return path


def _refusal(path: Path) -> str:
    with pytest.raises(BundleError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert str(path) in message
    return message


def test_good_checkpoints_still_load(tmp_path: Path) -> None:
    for kwargs in ({}, {"_use_new_zipfile_serialization": False}):
        data = read_checkpoint(_good(tmp_path / "good.ckpt", **kwargs))
        assert data["epoch"] == 3
        assert torch.equal(data["state_dict"]["w"], torch.arange(64.0))


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.ckpt"
    path.write_bytes(b"")
    message = _refusal(path)
    assert "is empty (0 bytes)" in message
    assert "download or copy the checkpoint again" in message
    assert "pickle" not in message


def test_random_bytes(tmp_path: Path) -> None:
    data = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    data = b"\x13\x37" + data[2:]  # no zip, pickle or safetensors signature
    path = tmp_path / "random.ckpt"
    path.write_bytes(data)
    message = _refusal(path)
    assert "is not a PyTorch checkpoint" in message
    assert "4096 bytes start with 13 37" in message
    assert PICKLE_REFUSAL not in message


@pytest.mark.parametrize("keep", [10, 200, -5])
def test_truncated_zip_checkpoint(tmp_path: Path, keep: int) -> None:
    whole = _good(tmp_path / "good.ckpt").read_bytes()
    path = tmp_path / "cut.ckpt"
    path.write_bytes(whole[:keep])
    message = _refusal(path)
    assert "starts like a zip archive" in message
    assert "missing or damaged" in message
    assert f"({len(whole[:keep])} bytes;" in message
    assert PICKLE_REFUSAL not in message


def test_truncated_unsafe_checkpoint_is_reported_as_truncated(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"x": _Payload(marker)}, evil)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(evil.read_bytes()[:-30])
    assert "missing or damaged" in _refusal(cut)
    assert not marker.exists()


def test_truncated_legacy_and_plain_pickles(tmp_path: Path) -> None:
    whole = _good(tmp_path / "legacy.ckpt", _use_new_zipfile_serialization=False).read_bytes()
    cut = tmp_path / "cut_legacy.ckpt"
    cut.write_bytes(whole[: len(whole) // 2])
    assert "legacy (pre-1.6) torch.save checkpoint but is cut short" in _refusal(cut)
    raw = tmp_path / "cut_raw.ckpt"
    raw.write_bytes(pickle.dumps({"a": list(range(100))})[:40])
    assert "pickle stream that is cut short" in _refusal(raw)


def test_plain_pickle_without_objects(tmp_path: Path) -> None:
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"state_dict": {"a": [1, 2]}}))
    message = _refusal(path)
    assert "plain Python pickle of plain data, not a checkpoint written by torch.save" in message
    assert PICKLE_REFUSAL not in message


def test_text_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.ckpt"
    text.write_text("epoch=12 step=3400\nthis is not a checkpoint\n")
    message = _refusal(text)
    assert "is a text file (44 bytes, starting 'epoch=12 step=3400')" in message
    assert PICKLE_REFUSAL not in message
    lfs = tmp_path / "lfs.ckpt"
    lfs.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n")
    assert "Git LFS pointer" in _refusal(lfs)
    page = tmp_path / "page.ckpt"
    page.write_text("<!DOCTYPE html>\n<html><body>Sign in</body></html>\n")
    assert "is a web page" in _refusal(page)


def test_safetensors_and_foreign_zip(tmp_path: Path) -> None:
    st = tmp_path / "weights.ckpt"
    save_file({"w": torch.zeros(4)}, str(st))
    assert "is a safetensors file" in _refusal(st)
    archive = tmp_path / "archive.ckpt"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("readme.txt", "hello")
    message = _refusal(archive)
    assert "is a zip archive (readme.txt) but not a PyTorch checkpoint" in message


@pytest.mark.parametrize("legacy", [False, True])
def test_unsafe_checkpoint_is_refused_and_names_the_object(tmp_path: Path, legacy: bool) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    kwargs = {"_use_new_zipfile_serialization": False} if legacy else {}
    torch.save({"state_dict": {"w": torch.zeros(2)}, "cb": _Payload(marker)}, path, **kwargs)
    message = _refusal(path)
    assert "is a PyTorch checkpoint that contains pickled Python objects" in message
    assert "open)" in message  # the refused global is named
    assert PICKLE_REFUSAL in message
    assert not marker.exists()


def test_unsafe_plain_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "raw.ckpt"
    path.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}))
    message = _refusal(path)
    assert re.search(
        r"plain Python pickle with pickled Python objects \((builtins|io)\.open\)", message
    )
    assert PICKLE_REFUSAL in message
    assert not marker.exists()
