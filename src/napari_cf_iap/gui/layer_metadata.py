"""Volume <-> napari layer: data, scale, translate, affine and metadata.

World coordinates are patient millimetres in (S, P, L) order, i.e. the LPS axes reversed so
that world axis 0 follows the slice axis of an axial scan. The layer's ``scale`` is the voxel
spacing, ``translate`` places the origin and ``affine`` holds only the direction cosines
(the identity for a plain axial scan). ``metadata`` keeps the exact core objects:

- ``iap``: the IAP record as a plain dict (``IAPRecord.to_dict``),
- ``spacing``: (dz, dy, dx) in mm, ``affine``: the 4x4 index -> LPS matrix,
- ``volume_metadata``: the Volume's provenance dict, ``iap_missing``: unknown IAP names.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..iap import IAPRecord
from ..volume import Volume

_REVERSE = np.eye(4)[[2, 1, 0, 3]]  # (L, P, S, 1) -> (S, P, L, 1)


def layer_geometry(spacing: Any, affine: Any) -> dict[str, Any]:
    """napari ``scale``, ``translate`` and ``affine`` reproducing a Volume's index -> mm map."""
    spacing = np.asarray(spacing, dtype=float)
    world = _REVERSE @ np.asarray(affine, dtype=float)
    direction = world[:3, :3] / spacing[None, :]
    try:
        translate = np.linalg.solve(direction, world[:3, 3])
    except np.linalg.LinAlgError as exc:
        raise InputError(f"the volume's affine is singular: {affine.tolist()}") from exc
    rotation = np.eye(4)
    rotation[:3, :3] = direction
    return {"scale": tuple(spacing), "translate": tuple(translate), "affine": rotation}


def volume_metadata(volume: Volume, **extra: Any) -> dict[str, Any]:
    """The layer metadata describing a Volume (JSON-friendly values)."""
    return {
        "iap": volume.iap.to_dict(),
        "iap_missing": volume.iap.missing(),
        "spacing": tuple(float(s) for s in volume.spacing),
        "affine": np.asarray(volume.affine, dtype=float).tolist(),
        "volume_metadata": dict(volume.metadata),
        **extra,
    }


def image_layer_kwargs(volume: Volume, name: str, **extra_metadata: Any) -> dict[str, Any]:
    """Keyword arguments for ``viewer.add_image`` (or a LayerDataTuple's dict)."""
    low, high = np.percentile(volume.data, [0.5, 99.5]) if volume.data.size else (0, 1)
    limits = (float(low), float(high) if high > low else float(low) + 1.0)
    return {
        "name": name,
        "metadata": volume_metadata(volume, **extra_metadata),
        "contrast_limits": limits,
        **layer_geometry(volume.spacing, volume.affine),
    }


def labels_layer_kwargs(
    spacing: Any, affine: Any, name: str, **extra_metadata: Any
) -> dict[str, Any]:
    """Keyword arguments for ``viewer.add_labels`` with fat/FGT colours and geometry."""
    from .label_colors import tissue_colormap

    metadata = {
        "spacing": tuple(float(s) for s in spacing),
        "affine": np.asarray(affine, dtype=float).tolist(),
        **extra_metadata,
    }
    return {
        "name": name,
        "metadata": metadata,
        "colormap": tissue_colormap(),
        **layer_geometry(spacing, affine),
    }


def same_geometry_kwargs(layer: Any) -> dict[str, Any]:
    """``scale``/``translate``/``affine`` copied from an existing layer."""
    return {
        "scale": tuple(layer.scale),
        "translate": tuple(layer.translate),
        "affine": np.asarray(layer.affine.affine_matrix).copy(),
    }


def _affine_from_state(scale: Any, translate: Any, affine: Any) -> np.ndarray:
    """Index -> LPS affine from napari scale/translate/affine (for layers we did not make)."""
    matrix = np.asarray(getattr(affine, "affine_matrix", affine), dtype=float)
    if matrix.shape != (4, 4):
        matrix = np.eye(4)
    stretch = np.diag([*np.asarray(scale, dtype=float), 1.0])
    shift = np.eye(4)
    shift[:3, 3] = np.asarray(translate, dtype=float)
    return _REVERSE @ matrix @ shift @ stretch


def volume_from_state(data: Any, meta: dict[str, Any], iap: IAPRecord | None = None) -> Volume:
    """A Volume from layer data plus a napari layer state dict (writers get these)."""
    data = np.asarray(data)
    if data.ndim != 3:
        raise InputError(f"layer {meta.get('name')!r} is {data.ndim}D; a 3D volume is needed")
    metadata = meta.get("metadata") or {}
    scale = meta.get("scale", (1.0, 1.0, 1.0))
    spacing = metadata.get("spacing") or tuple(float(s) for s in scale)
    if "affine" in metadata:
        affine = np.asarray(metadata["affine"], dtype=float)
    else:
        affine = _affine_from_state(scale, meta.get("translate", (0, 0, 0)), meta.get("affine"))
    if iap is None:
        raw = metadata.get("iap")
        iap = raw if isinstance(raw, IAPRecord) else IAPRecord.from_dict(raw or {})
    return Volume(
        data=data,
        spacing=tuple(spacing),
        affine=affine,
        iap=iap,
        metadata=dict(metadata.get("volume_metadata") or {}, layer_name=meta.get("name")),
    )


def source_of(volume: Volume, meta: dict[str, Any]) -> Volume | None:
    """The source a counterfactual layer was derived from (same grid; for the writers)."""
    metadata = meta.get("metadata") or {}
    if "source_iap" not in metadata:
        return None
    return volume.with_data(
        volume.data,
        iap=IAPRecord.from_dict(metadata["source_iap"]),
        metadata=dict(metadata.get("source_volume_metadata") or {}),
    )


def layer_kind(layer: Any) -> str:
    """'Image', 'Labels', ... (``__class__`` also sees through napari's public-only proxies,
    which is what plugin widgets get from the viewer)."""
    return layer.__class__.__name__


def check_image_layer(layer: Any) -> None:
    """Raise :class:`InputError` unless ``layer`` is a 3D grey-level image layer."""
    if layer is None:
        raise InputError("no image layer chosen; open a scan or load sample data first")
    kind = layer_kind(layer)
    if kind != "Image":
        raise InputError(
            f"layer {layer.name!r} is a {kind} layer; choose an Image layer (the MRI scan)"
        )
    if getattr(layer, "rgb", False):
        raise InputError(f"layer {layer.name!r} is an RGB image; MRI must be grey-level")
    if getattr(layer, "multiscale", False):
        raise InputError(f"layer {layer.name!r} is multiscale; open a single-resolution scan")
    if layer.ndim != 3:
        raise InputError(
            f"layer {layer.name!r} is {layer.ndim}D; a 3D (slice, row, column) volume is "
            "needed (stack 2D slices into a volume first)"
        )


def layer_iap(layer: Any) -> IAPRecord:
    """The IAP record stored in a layer's metadata (empty record when there is none)."""
    raw = (layer.metadata or {}).get("iap")
    if isinstance(raw, IAPRecord):
        return raw
    return IAPRecord.from_dict(raw) if raw else IAPRecord()


def layer_to_volume(layer: Any, iap: IAPRecord | None = None) -> Volume:
    """A Volume for the core from an image layer (its data is not copied or modified)."""
    check_image_layer(layer)
    state = {
        "name": layer.name,
        "metadata": layer.metadata or {},
        "scale": layer.scale,
        "translate": layer.translate,
        "affine": layer.affine,
    }
    return volume_from_state(layer.data, state, iap=iap if iap is not None else layer_iap(layer))


def current_slice(viewer: Any, layer: Any) -> int:
    """Index of the slice of ``layer`` shown in the viewer (clipped to the volume)."""
    point = np.asarray(viewer.dims.point, dtype=float)[-layer.ndim :]
    index = int(round(float(layer.world_to_data(point)[0])))
    return int(np.clip(index, 0, layer.data.shape[0] - 1))
