"""Find bundles by name or path, list them, and keep loaded ones in a small cache.

Default bundles ship inside the package at ``napari_cf_iap/bundles/weights/<name>/``:
``cddgm-default``, ``iap-default`` and ``seg-default``. Anything else is a path to a
bundle directory (or to its ``bundle.json``).
"""

from __future__ import annotations

import gc
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import BundleError
from .bundle import MANIFEST_FILE, WEIGHTS_FILE, LoadedBundle, load_bundle, read_manifest

DEFAULT_BUNDLES: dict[str, str] = {
    "cddgm-default": "cddgm",
    "iap-default": "iap_predictor",
    "seg-default": "segmenter",
}
DEFAULT_FOR_KIND: dict[str, str] = {kind: name for name, kind in DEFAULT_BUNDLES.items()}

_TRAIN_HINT = {
    "cddgm": "cf-iap-train cddgm",
    "iap_predictor": "cf-iap-train iap-predictor",
    "segmenter": "cf-iap-train segmenter",
}


def weights_root() -> Path:
    """The folder that holds the shipped default bundles."""
    return Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class BundleInfo:
    """One entry of :func:`list_bundles`."""

    name: str
    kind: str
    path: Path
    available: bool


def resolve_bundle(name_or_path: str | Path) -> Path:
    """The bundle directory for a default name or a user path; BundleError if absent."""
    text = str(name_or_path)
    if text in DEFAULT_BUNDLES:
        path = weights_root() / text
        if not (path / MANIFEST_FILE).is_file():
            kind = DEFAULT_BUNDLES[text]
            raise BundleError(
                f"no default {kind} bundle shipped ({text!r} is not installed); train one with "
                f"`{_TRAIN_HINT[kind]} ...` and pass its folder as the bundle path"
            )
        return path
    path = Path(name_or_path).expanduser()
    if path.is_file() and path.name == MANIFEST_FILE:
        path = path.parent
    if not path.exists():
        raise BundleError(
            f"bundle {text!r} not found: it is neither a default bundle {sorted(DEFAULT_BUNDLES)} "
            "nor an existing folder"
        )
    if not (path / MANIFEST_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        raise BundleError(
            f"{path} is not a model bundle (needs {MANIFEST_FILE} and {WEIGHTS_FILE})"
        )
    return path.resolve()


def list_bundles(extra_dirs: list[str | Path] | None = None) -> list[BundleInfo]:
    """The default bundles (available or not) plus any bundle folders found in ``extra_dirs``."""
    infos = [
        BundleInfo(
            name, kind, weights_root() / name, (weights_root() / name / MANIFEST_FILE).is_file()
        )
        for name, kind in DEFAULT_BUNDLES.items()
    ]
    for folder in extra_dirs or []:
        for manifest in sorted(Path(folder).glob(f"*/{MANIFEST_FILE}")):
            try:
                path, data = read_manifest(manifest.parent)
            except BundleError:
                continue
            infos.append(BundleInfo(path.name, data["kind"], path, (path / WEIGHTS_FILE).is_file()))
    return infos


# ---------------------------------------------------------------------- cache
_CACHE: dict[tuple[str, str], tuple[tuple[float, int], LoadedBundle]] = {}
_LOCK = threading.Lock()


def _stamp(path: Path) -> tuple[float, int]:
    stat = (path / WEIGHTS_FILE).stat()
    manifest = (path / MANIFEST_FILE).stat()
    return (max(stat.st_mtime, manifest.st_mtime), stat.st_size + manifest.st_size)


def get_bundle(
    name_or_path: str | Path, device: str | torch.device = "auto", *, kind: str | None = None
) -> LoadedBundle:
    """Load a bundle once per (path, device); later calls return the cached one.

    The cache entry is refreshed when the bundle files change on disk.
    """
    from ..device import resolve_device

    path = resolve_bundle(name_or_path)
    dev = resolve_device(device)
    key = (str(path), str(dev))
    with _LOCK:
        stamp = _stamp(path)
        hit = _CACHE.get(key)
        if hit is not None and hit[0] == stamp:
            bundle = hit[1]
        else:
            bundle = load_bundle(path, dev)
            _CACHE[key] = (stamp, bundle)
    if kind is not None and bundle.kind != kind:
        raise BundleError(f"{path} is a {bundle.kind} bundle, but a {kind} bundle is needed here")
    return bundle


def cached_bundles() -> list[tuple[str, str]]:
    """(path, device) of every cached bundle."""
    with _LOCK:
        return list(_CACHE)


def unload(name_or_path: str | Path | None = None) -> int:
    """Drop cached bundles (all, or those of one bundle) and free GPU memory; return how many."""
    with _LOCK:
        if name_or_path is None:
            keys = list(_CACHE)
        else:
            target = str(resolve_bundle(name_or_path))
            keys = [k for k in _CACHE if k[0] == target]
        for key in keys:
            del _CACHE[key]
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return len(keys)
