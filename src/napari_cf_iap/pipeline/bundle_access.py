"""Pick the bundle a job needs: a loaded one, a user path, or the default shipped one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from ..bundles.bundle import LoadedBundle
    from ..preprocessing import PreprocessConfig

#: The bundles that ship inside the package, by kind.
DEFAULT_BUNDLES = {
    "cddgm": "cddgm-default",
    "iap_predictor": "iap-default",
    "segmenter": "seg-default",
}

BundleLike = Union["LoadedBundle", str, Path, None]


def get_bundle(kind: str, name_or_path: BundleLike = None, device: str = "auto") -> LoadedBundle:
    """Return a loaded bundle of ``kind``; ``None`` means the default shipped bundle.

    Raises :class:`~napari_cf_iap.errors.BundleError` if the bundle is of another kind.
    """
    from ..bundles.bundle import LoadedBundle
    from ..bundles.registry import get_bundle as load_cached
    from ..errors import BundleError

    if kind not in DEFAULT_BUNDLES:
        raise BundleError(f"unknown bundle kind {kind!r}; expected one of {list(DEFAULT_BUNDLES)}")
    if isinstance(name_or_path, LoadedBundle):
        if name_or_path.kind != kind:
            raise BundleError(f"a {kind} bundle is needed here, got a {name_or_path.kind} bundle")
        return name_or_path
    return load_cached(name_or_path or DEFAULT_BUNDLES[kind], device, kind=kind)


def preprocessing_of(bundle: LoadedBundle) -> PreprocessConfig:
    """The preprocessing the bundle was trained with (size, percentiles, store size)."""
    import dataclasses

    from ..preprocessing import PreprocessConfig

    pre = dict(bundle.preprocessing or {})
    pre.setdefault("size", getattr(bundle.config, "image_size", 64))
    names = {f.name for f in dataclasses.fields(PreprocessConfig)}
    return PreprocessConfig(**{k: v for k, v in pre.items() if k in names})
