"""Open a ``cf-iap demo`` result in napari: images, masks and a side-by-side comparison."""

from __future__ import annotations

from typing import Any

from .comparison import show_side_by_side
from .layer_metadata import image_layer_kwargs, labels_layer_kwargs


def add_demo_layers(viewer: Any, result: Any) -> dict[str, Any]:
    """Add the demo's volumes and masks as layers; return them by role."""
    src, cf, truth = result.source, result.counterfactual, result.truth
    layers = {
        "source": viewer.add_image(src.data, **image_layer_kwargs(src, "source GE 1.5T")),
        "counterfactual": viewer.add_image(
            cf.data, **image_layer_kwargs(cf, f"counterfactual {cf.iap.summary()}")
        ),
        "truth": viewer.add_image(
            truth.data, **image_layer_kwargs(truth, "ground truth Siemens 3T")
        ),
    }
    for role, labels in (("seg_source", result.seg_source), ("seg_cf", result.seg_counterfactual)):
        name = (
            "segmentation of source" if role == "seg_source" else "segmentation of counterfactual"
        )
        layers[role] = viewer.add_labels(
            labels, **labels_layer_kwargs(src.spacing, src.affine, name)
        )
    viewer.canvas.overlays.text.visible = True
    viewer.canvas.overlays.text.text = (
        f"predicted (source): {result.predicted_source.record.summary()}\n"
        f"predicted (edit):   {result.predicted_counterfactual.record.summary()}"
    )
    return layers


def show_demo(result: Any) -> None:
    """Open a viewer with the demo loaded, source | edit side by side with masks; run napari."""
    import napari

    viewer = napari.Viewer(title="napari-cf-iap demo")
    layers = add_demo_layers(viewer, result)
    show_side_by_side(
        viewer,
        [
            (layers["source"], layers["seg_source"]),
            (layers["counterfactual"], layers["seg_cf"]),
        ],
    )
    napari.run()
