"""npe2 reader: DICOM folder/file, NIfTI (+ JSON sidecar), Duke/Slicer NRRD masks as Labels.

The core's ``read_volume`` does all the reading; this module only turns Volumes into layer
data tuples (geometry and IAPs in metadata, see :mod:`.layer_metadata`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..iap import IAP_NAMES
from . import core_api
from .layer_metadata import image_layer_kwargs, labels_layer_kwargs

LayerData = tuple[Any, dict[str, Any], str]
#: SeriesDescription our Labels writer puts into NIfTI sidecars (read back as Labels).
LABELS_DESCRIPTION = "Segmentation labels (0 background, 1 fat, 2 FGT)"
_DUKE_BREAST = re.compile(r"^(?P<stem>.*)_Breast\.seg\.nrrd$", re.IGNORECASE)
_SUFFIXES = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".nhdr", ".dcm", ".dicom", ".ima")


def get_reader(path: str | list[str]) -> Callable[[Any], list[LayerData]] | None:
    """Return a reader for one path we understand, else ``None`` (napari tries other plugins)."""
    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    from ..io import is_supported_path

    return read_layers if is_supported_path(path) else None


def read_layers(path: str | list[str]) -> list[LayerData]:
    """Read ``path`` into napari layer data tuples (errors keep their clear message)."""
    if isinstance(path, list | tuple):
        path = path[0]
    path = Path(path)
    name = layer_name(path)
    duke = _DUKE_BREAST.match(path.name)
    if duke:
        return [duke_labels(path, Path(path.parent, f"{duke['stem']}_Dense_and_Vessels.seg.nrrd"))]
    volume = core_api.read_volume(path)
    if volume.metadata.get("layer_type") == "labels" or _looks_like_labels(volume):
        return [labels_layer_data(volume, name)]
    return [image_layer_data(volume, name)]


def image_layer_data(volume: Any, name: str) -> LayerData:
    """An Image layer tuple; warns (naming the tags) when IAPs are missing."""
    missing = volume.iap.missing()
    if missing:
        from napari.utils.notifications import show_warning

        tags = volume.metadata.get("missing_tags") or missing
        show_warning(
            f"{name}: the file lacks the IAP tags {', '.join(map(str, tags))}. Enter them under "
            "'Enter source IAPs manually' in the Counterfactual widget."
        )
    return (volume.data, image_layer_kwargs(volume, name), "image")


def labels_layer_data(volume: Any, name: str) -> LayerData:
    """A Labels layer tuple with the fixed tissue colours, placed like the volume."""
    kwargs = labels_layer_kwargs(
        volume.spacing, volume.affine, name, volume_metadata=dict(volume.metadata)
    )
    return (np.asarray(volume.data).astype(np.uint8), kwargs, "labels")


def duke_labels(breast_path: Path, dense_path: Path) -> LayerData:
    """Duke supplement masks: breast (+ dense/vessels when present) merged to 0/1/2."""
    from ..io import read_duke_masks, read_labels_nrrd

    grid = read_labels_nrrd(breast_path)
    labels = read_duke_masks(breast_path, dense_path if dense_path.is_file() else None)
    return labels_layer_data(grid.with_data(labels), layer_name(breast_path))


def _looks_like_labels(volume: Any) -> bool:
    """Our own label NIfTIs, or small-integer volumes that carry no IAPs at all."""
    if volume.metadata.get("series_description") == LABELS_DESCRIPTION:
        return True
    data = np.asarray(volume.data)
    if not np.issubdtype(data.dtype, np.integer) or volume.iap.missing() != list(IAP_NAMES):
        return False
    return int(data.min(initial=0)) >= 0 and int(data.max(initial=0)) <= 16


def layer_name(path: Path) -> str:
    name = path.name
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name
