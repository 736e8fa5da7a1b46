"""io/ and simulator/ import no module that imports them back (also not from inside a function)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import napari_cf_iap

PACKAGE_ROOT = Path(napari_cf_iap.__file__).parent


def _imports(path: Path, package: str) -> set[str]:
    """Sibling modules of ``package`` that ``path`` imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:  # from . import x, y
                found.update(alias.name for alias in node.names)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in getattr(node, "names", []) if isinstance(node, ast.Import)]
            prefix = f"napari_cf_iap.{package}."
            found.update(
                n[len(prefix) :].split(".")[0] for n in names if n and n.startswith(prefix)
            )
    return found


def _cycles(package: str) -> list[list[str]]:
    folder = PACKAGE_ROOT / package
    graph = {p.stem: _imports(p, package) for p in folder.glob("*.py") if p.stem != "__init__"}
    graph = {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}
    cycles, state = [], {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                cycles.append([*trail[trail.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*trail, dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def test_cycle_finder_sees_a_cycle(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("from .b import x\n")
    (tmp_path / "pkg" / "b.py").write_text("def f():\n    from .a import y\n")
    (tmp_path / "pkg" / "c.py").write_text("from . import a\n")
    monkeypatch.setattr(f"{__name__}.PACKAGE_ROOT", tmp_path)
    assert _cycles("pkg") == [["a", "b", "a"]]


@pytest.mark.parametrize("package", ["io", "simulator"])
def test_no_import_cycles(package: str) -> None:
    assert _cycles(package) == []


def test_moved_names_still_import_from_their_old_modules() -> None:
    from napari_cf_iap.io.dicom_frame import PHASE_TAGS, Frame
    from napari_cf_iap.io.dicom_scan import PHASE_TAGS as SCAN_PHASE_TAGS
    from napari_cf_iap.io.dicom_scan import Frame as ScanFrame
    from napari_cf_iap.simulator.anatomy import grid_coordinates as from_anatomy
    from napari_cf_iap.simulator.phantom_grid import grid_coordinates

    assert ScanFrame is Frame and SCAN_PHASE_TAGS is PHASE_TAGS
    assert from_anatomy is grid_coordinates
    z, y, x = grid_coordinates((3, 2, 5), (2.0, 1.0, 0.5))
    assert z.tolist() == [-2.0, 0.0, 2.0] and y.tolist() == [0.5, 1.5]
    assert x.tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
