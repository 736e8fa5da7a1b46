"""Side-by-side comparison (napari grid mode): original vs counterfactual, baseline vs augmented.

Each panel is an image with an optional Labels overlay. The panels' layers are moved to the
bottom of the layer list in order and grouped with ``grid.stride`` so that every overlay sits
on its own image; all other layers are hidden. The camera and the slice are shared, so pan,
zoom and scrolling stay linked. ``restore_view`` puts order, visibility and grid back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qtpy.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..errors import InputError
from .layer_picker import LayerPicker


@dataclass
class ViewState:
    """What ``show_side_by_side`` changed, to undo it."""

    order: list[str]
    visible: dict[str, bool]
    grid: tuple[bool, int, tuple[int, int]]


def show_side_by_side(viewer: Any, panels: list[tuple[Any, Any]]) -> ViewState:
    """Show ``panels`` [(image, overlay or None), ...] left to right in grid mode."""
    panels = [(image, overlay) for image, overlay in panels if image is not None]
    if len(panels) < 2:
        raise InputError("choose at least two images to compare")
    with_overlay = {overlay is not None for _, overlay in panels}
    if len(with_overlay) > 1:
        raise InputError("choose an overlay for every panel or for none")
    chosen = [layer for panel in panels for layer in panel if layer is not None]
    names = [layer.name for layer in chosen]  # names are unique; proxies are not identical
    if len(set(names)) != len(names):
        raise InputError("a layer can sit in one panel only; duplicate it first (Layers menu)")
    grid = viewer.grid
    state = ViewState(
        order=[layer.name for layer in viewer.layers],
        visible={layer.name: layer.visible for layer in viewer.layers},
        grid=(grid.enabled, grid.stride, tuple(grid.shape)),
    )
    for index, name in enumerate(names):
        viewer.layers.move(viewer.layers.index(viewer.layers[name]), index)
    for layer in viewer.layers:
        layer.visible = layer.name in names
    grid.stride = 2 if True in with_overlay else 1
    grid.shape = (1, len(panels))
    grid.enabled = True
    viewer.reset_view()
    return state


def restore_view(viewer: Any, state: ViewState) -> None:
    """Back to a single view: grid off, layer order and visibility as before
    :func:`show_side_by_side` (layers added or removed since are left alone)."""
    _, stride, shape = state.grid
    viewer.grid.enabled = False
    viewer.grid.stride = stride
    viewer.grid.shape = shape
    present = [name for name in state.order if name in viewer.layers]
    for index, name in enumerate(present):
        viewer.layers.move(viewer.layers.index(viewer.layers[name]), index)
    for name, visible in state.visible.items():
        if name in viewer.layers:
            viewer.layers[name].visible = visible
    viewer.reset_view()


class ComparisonWidget(QWidget):
    """Pick two panels (image + optional mask each) and toggle the side-by-side view."""

    def __init__(self, napari_viewer: Any, parent: Any = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.state: ViewState | None = None
        layout = QVBoxLayout(self)
        grid = QGridLayout()
        grid.addWidget(QLabel("Image"), 0, 1)
        grid.addWidget(QLabel("Mask overlay"), 0, 2)
        self.images: list[LayerPicker] = []
        self.overlays: list[LayerPicker] = []
        for row, title in enumerate(("Left", "Right"), start=1):
            image = LayerPicker(napari_viewer, ("Image",))
            overlay = LayerPicker(napari_viewer, ("Labels",), allow_none=True)
            grid.addWidget(QLabel(title), row, 0)
            grid.addWidget(image, row, 1)
            grid.addWidget(overlay, row, 2)
            self.images.append(image)
            self.overlays.append(overlay)
        if len(self.images[1].candidates()) > 1:
            self.images[1].setCurrentIndex(1)
        layout.addLayout(grid)
        buttons = QHBoxLayout()
        self.compare_button = QPushButton("Side by side")
        self.compare_button.clicked.connect(self.compare)
        self.single_button = QPushButton("Single view")
        self.single_button.clicked.connect(self.single)
        buttons.addWidget(self.compare_button)
        buttons.addWidget(self.single_button)
        layout.addLayout(buttons)
        self.status = QLabel("Pan, zoom and slice stay linked across the panels.")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addStretch(1)

    def set_panels(self, panels: list[tuple[Any, Any]]) -> None:
        """Choose the layers of both panels programmatically."""
        for (image, overlay), image_picker, overlay_picker in zip(
            panels, self.images, self.overlays, strict=False
        ):
            image_picker.set_layer(image)
            overlay_picker.set_layer(overlay)

    def compare(self) -> None:
        panels = [(i.layer(), o.layer()) for i, o in zip(self.images, self.overlays, strict=True)]
        try:
            state = show_side_by_side(self.viewer, panels)
        except InputError as exc:
            self.status.setText(f"⚠ {exc}")
            return
        if self.state is None:
            self.state = state
        self.status.setText("Side by side: " + " | ".join(p[0].name for p in panels))

    def single(self) -> None:
        if self.state is not None:
            restore_view(self.viewer, self.state)
            self.state = None
        self.viewer.grid.enabled = False
        self.status.setText("Single view.")
