"""The GUI's only door into the Qt-free core.

Every widget calls the core through these thin wrappers (looked up at call time), so tests can
monkeypatch one function here and the GUI never holds compute of its own. Imports are lazy:
opening napari does not import torch until a model is needed.
"""

from __future__ import annotations

from typing import Any


def read_volume(path: Any, **kwargs: Any) -> Any:
    """DICOM folder/file or NIfTI (+ sidecar) -> Volume."""
    from ..io import read_volume as impl

    return impl(path, **kwargs)


def read_duke_masks(path: Any, **kwargs: Any) -> Any:
    """Duke ``.seg.nrrd`` mask(s) -> label volume (and geometry)."""
    from ..io import read_duke_masks as impl

    return impl(path, **kwargs)


def write_dicom_series(volume: Any, out_dir: Any, **kwargs: Any) -> Any:
    from ..io import write_dicom_series as impl

    return impl(volume, out_dir, **kwargs)


def write_nifti(volume: Any, path: Any, **kwargs: Any) -> Any:
    from ..io import write_nifti as impl

    return impl(volume, path, **kwargs)


def write_labels_nrrd(*args: Any, **kwargs: Any) -> Any:
    from ..io import write_labels_nrrd as impl

    return impl(*args, **kwargs)


def generate_counterfactual(volume: Any, request: Any, bundle: Any = None, **kwargs: Any) -> Any:
    from ..pipeline import generate_counterfactual as impl

    return impl(volume, request, bundle, **kwargs)


def predict_iap(volume: Any, bundle: Any = None, **kwargs: Any) -> Any:
    from ..pipeline import predict_iap as impl

    return impl(volume, bundle, **kwargs)


def segment(volume: Any, bundle: Any = None, **kwargs: Any) -> Any:
    from ..pipeline import segment as impl

    return impl(volume, bundle, **kwargs)


def get_bundle(kind: str, name_or_path: Any = None, device: str = "cpu") -> Any:
    from ..pipeline import get_bundle as impl

    return impl(kind, name_or_path, device=device)


def unload_bundle(bundle: Any) -> None:
    """Drop a loaded bundle from the registry and free its (GPU) memory."""
    from ..bundles import unload as impl

    impl(getattr(bundle, "path", bundle))


def resolve_device(choice: str = "auto") -> str:
    """'auto' | 'cpu' | 'cuda' | 'mps' -> the device the core will use, as a string."""
    from ..device import resolve_device as impl

    return str(impl(choice))


def tissue_scores(prediction: Any, truth: Any) -> dict[str, dict[int, float]]:
    """Dice and per-tissue accuracy of a segmentation against ground truth (labels 1, 2)."""
    from ..metrics_basic import accuracy_per_label, dice_per_label

    return {
        "dice": dice_per_label(prediction, truth, (1, 2)),
        "accuracy": accuracy_per_label(prediction, truth, (1, 2)),
    }
