"""Atomic writes: all or nothing, never overwrite by accident."""

from __future__ import annotations

import pytest

from napari_cf_iap.errors import OutputExistsError
from napari_cf_iap.io.atomic import (
    atomic_directory,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    check_writable,
)


def test_atomic_path_renames_on_success(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("done")
        assert not target.exists()
    assert target.read_text() == "done"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_refuses_overwrite_unless_asked(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "first")
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        atomic_write_text(target, "second")
    assert target.read_text() == "first"
    atomic_write_bytes(target, b"second", overwrite=True)
    assert target.read_bytes() == b"second"
    with pytest.raises(OutputExistsError):
        check_writable(target, overwrite=False)
    check_writable(tmp_path / "new.txt", overwrite=False)


def test_atomic_directory_success_failure_and_replace(tmp_path):
    out = tmp_path / "series"
    with atomic_directory(out) as tmp:
        (tmp / "a.dcm").write_text("a")
        assert not out.exists()
    assert [p.name for p in out.iterdir()] == ["a.dcm"]

    with pytest.raises(OutputExistsError), atomic_directory(out):
        pass

    with pytest.raises(RuntimeError), atomic_directory(out, overwrite=True) as tmp:
        (tmp / "b.dcm").write_text("b")
        raise RuntimeError("interrupted")
    assert [p.name for p in out.iterdir()] == ["a.dcm"]  # old content untouched

    with atomic_directory(out, overwrite=True) as tmp:
        (tmp / "c.dcm").write_text("c")
    assert [p.name for p in out.iterdir()] == ["c.dcm"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["series"]  # no temp/backup left
