"""Put results into the viewer: add a layer, or update the one with the same name in place.

This runs on the GUI thread, so it does as little as it can there: the data is shown as is
(no copy), contrast limits are passed in (napari does not scan the data), an existing layer
only gets what changed (each geometry setter re-slices and redraws it), and a new layer
becomes the active one in a later event-loop turn (napari's layer-controls switch is then
not part of the same stall as building the layer).

A Run shows its result while it grows: :func:`start_counterfactual` puts the result layer up
before the work starts, showing the source's own array (no copy on the GUI thread: copying a
160 x 512² volume takes ~40 ms); the worker copies it and hands the copy over
(:meth:`PendingResult.adopt`), each finished chunk is written into that copy
(:meth:`PendingResult.write`, a refresh of ~7 ms), and :func:`show_counterfactual` turns it
into the final layer (~8 ms); a cancelled or failed run :meth:`~PendingResult.discard`s it.
Building a new layer is napari's most expensive step (add_image 40-85 ms, then ~25 ms of
repainting on a software-GL display, see docs/benchmarks.md); it happens once per Run, in an
event-loop turn of its own, hidden, and the layer is shown in the turn after
(:func:`add_hidden`); not at all when a layer of the same name is reused. Removing
a layer (cancel/error of a first run) runs napari's ``gc.collect()``, which takes ~0.2 s in a
process holding torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..iap import IAPRecord
from ..volume import Volume
from .event_turns import later
from .layer_metadata import layer_kind, same_geometry_kwargs, volume_metadata

#: appended to the result layer's name while the run that fills it is going on
RUNNING_SUFFIX = " (running…)"

_GEOMETRY = ("scale", "translate", "affine")


def show_layer(
    viewer: Any, data: Any, kwargs: dict[str, Any], layer_type: str, *, reveal_later: bool = False
) -> Any:
    """Add a layer, or update the existing layer of that name and type (no pile-up).
    ``reveal_later``: a new layer is built hidden and shown in a later turn (:func:`add_hidden`)."""
    name = kwargs["name"]
    if name in viewer.layers and layer_kind(viewer.layers[name]).lower() == layer_type:
        return _update_layer(viewer.layers[name], data, kwargs, layer_type)
    if reveal_later:
        return add_hidden(viewer, data, kwargs, layer_type)
    return _add_layer(viewer, data, kwargs, layer_type)


def add_hidden(viewer: Any, data: Any, kwargs: dict[str, Any], layer_type: str) -> Any:
    """Add a layer hidden and show it in a later event-loop turn: napari's add (40-100 ms) and
    the new layer's first paint (~25 ms in software GL) are then two stalls, not one."""
    layer = _add_layer(viewer, data, {**kwargs, "visible": False}, layer_type)
    later(lambda: _show_hidden(viewer, layer))
    return layer


def _show_hidden(viewer: Any, layer: Any) -> None:
    if layer in viewer.layers:
        layer.visible = True


def _same(current: Any, wanted: Any) -> bool:
    """Whether a layer property already has the wanted value (arrays, affines, tuples)."""
    a = np.asarray(getattr(current, "affine_matrix", current), dtype=float)
    b = np.asarray(getattr(wanted, "affine_matrix", wanted), dtype=float)
    return a.shape == b.shape and bool(np.array_equal(a, b))


def _update_layer(layer: Any, data: Any, kwargs: dict[str, Any], layer_type: str) -> Any:
    for key in _GEOMETRY:
        if key in kwargs and not _same(getattr(layer, key), kwargs[key]):
            setattr(layer, key, kwargs[key])
    layer.metadata = dict(kwargs.get("metadata", {}))
    layer.data = data
    limits = kwargs.get("contrast_limits")
    if layer_type == "image" and limits is not None and not _same(layer.contrast_limits, limits):
        layer.contrast_limits = limits
    return layer


def _add_layer(viewer: Any, data: Any, kwargs: dict[str, Any], layer_type: str) -> Any:
    adder = getattr(viewer, f"add_{layer_type}")
    layers = viewer.layers
    if not hasattr(layers, "_activate_on_insert"):  # another napari: activate at once
        return adder(data, **kwargs)
    previous = layers._activate_on_insert
    layers._activate_on_insert = False
    try:
        layer = adder(data, **kwargs)
    finally:
        layers._activate_on_insert = previous
    if previous:
        later(lambda: _activate(viewer, layer))
    return layer


def _activate(viewer: Any, layer: Any) -> None:
    """Make ``layer`` the active (selected) one, as napari does for a new layer."""
    if layer in viewer.layers:
        viewer.layers.selection.active = layer


def counterfactual_name(source_name: str, target: IAPRecord, preview: bool = False) -> str:
    """``CF <target summary> <- <source>``; the live preview keeps one fixed name per source
    (``CF preview <- <source>``) so that each new preview replaces the previous one."""
    if preview:
        return f"CF preview <- {source_name}"
    return f"CF {target.summary()} <- {source_name}"


def _settings(request: Any, result: Volume) -> dict[str, Any]:
    """The settings actually used (the core records them; else those requested)."""
    recorded = result.metadata.get("counterfactual")
    if isinstance(recorded, dict):
        return dict(recorded)
    return {
        "steps": request.steps,
        "guidance": request.guidance,
        "sampler": request.sampler,
        "ddim_steps": request.ddim_steps,
        "seed": request.seed,
        "slices": None if request.slices is None else [int(s) for s in request.slices],
    }


@dataclass
class PendingResult:
    """The result layer of a running counterfactual: the source's values, filled chunk by
    chunk. ``previous`` holds the name, data and metadata of a reused layer (to restore)."""

    viewer: Any
    layer: Any
    previous: dict[str, Any] | None = None
    written: set[int] = field(default_factory=set)
    adopted: bool = False

    @property
    def shown(self) -> bool:
        """Whether the layer is still in the viewer (the user may have deleted it)."""
        return self.layer in self.viewer.layers

    def adopt(self, buffer: Any) -> None:
        """Show ``buffer`` (the worker's own copy of the source values) instead of the
        source's array; chunks are then written into it."""
        self.layer.data = buffer
        self.adopted = True

    def write(self, indices: Any, block: Any) -> None:
        """Put finished slices ``indices`` (values ``block``) into the layer and redraw it."""
        if not self.adopted:  # the layer still shows the source's own array
            raise RuntimeError("a chunk arrived before the result buffer: not written")
        indices = [int(i) for i in indices]
        self.layer.data[indices] = block
        self.written.update(indices)
        self.layer.refresh()

    def discard(self) -> None:
        """Leave the viewer as before the run: remove the new layer, or restore the reused
        one (its own data array was never written to)."""
        if not self.shown:
            return
        if self.previous is None:
            self.viewer.layers.remove(self.layer)
            return
        self.layer.metadata = self.previous["metadata"]
        self.layer.data = self.previous["data"]
        self.layer.name = self.previous["name"]


def start_counterfactual(
    viewer: Any, source_layer: Any, source: Volume, request: Any
) -> PendingResult:
    """Put up the result layer of a Run before it starts: the source's values (those every
    slice not yet edited, or not selected, will have; its own array until the worker's copy
    is :meth:`~PendingResult.adopt`-ed), named with :data:`RUNNING_SUFFIX` and marked
    ``in_progress`` in its metadata, placed and scaled like the source. An image layer
    already holding the final name is reused."""
    final = counterfactual_name(source_layer.name, request.target)
    data = source.data
    metadata = {
        "in_progress": True,
        "source_layer": source_layer.name,
        "target_iap": request.target.to_dict(),
        "spacing": tuple(float(s) for s in source.spacing),
        "affine": np.asarray(source.affine, dtype=float).tolist(),
    }
    kwargs = {
        "name": final + RUNNING_SUFFIX,
        "metadata": metadata,
        "colormap": source_layer.colormap.name,
        "contrast_limits": tuple(source_layer.contrast_limits),
        **same_geometry_kwargs(source_layer),
    }
    existing = next((layer for layer in viewer.layers if layer.name == final), None)
    if existing is not None and layer_kind(existing) == "Image":
        previous = {"name": existing.name, "data": existing.data, "metadata": existing.metadata}
        layer = _update_layer(existing, data, kwargs, "image")
        layer.name = kwargs["name"]
        return PendingResult(viewer, layer, previous)
    return PendingResult(viewer, add_hidden(viewer, data, kwargs, "image"))


def show_counterfactual(
    viewer: Any,
    source_layer: Any,
    source: Volume,
    result: Volume,
    request: Any,
    *,
    preview: bool = False,
    pending: PendingResult | None = None,
) -> Any:
    """Add/update a counterfactual image layer placed exactly like its source layer (the
    ``pending`` layer of the run, when it is still in the viewer)."""
    target = result.iap if result.iap.model_name else request.target
    metadata = volume_metadata(
        result.with_data(result.data, iap=target),
        source_layer=source_layer.name,
        source_iap=source.iap.to_dict(),
        source_volume_metadata=dict(source.metadata),
        counterfactual={**_settings(request, result), "preview": preview},
    )
    kwargs = {
        "name": counterfactual_name(source_layer.name, target, preview),
        "metadata": metadata,
        "colormap": source_layer.colormap.name,
        "contrast_limits": tuple(source_layer.contrast_limits),
        **same_geometry_kwargs(source_layer),
    }
    if pending is not None and pending.shown:
        layer = _update_layer(pending.layer, np.asarray(result.data), kwargs, "image")
        layer.name = kwargs["name"]
        return layer
    return show_layer(viewer, np.asarray(result.data), kwargs, "image")
