"""The segmentation widget under the GUI benchmark's heartbeat: two bundles on the volume,
scored against a ground truth, first building their Labels layers, then reusing them."""

from __future__ import annotations

from typing import Any

import numpy as np

from .gui_probes import Heartbeat, idle, wait_until


def segmentation_stalls(
    viewer: Any,
    scan: Any,
    bundle: str,
    heartbeat: Heartbeat,
    timeout: float,
    runs: int = 2,
    settle: float = 5.0,
) -> list[dict[str, Any]]:
    """Heartbeat gaps of ``runs`` segmentation runs (the shipped default plus ``bundle`` under
    a second name) with a random ground truth (its scoring costs what a real one does)."""
    from napari_cf_iap.gui.layer_metadata import labels_layer_kwargs, layer_to_volume
    from napari_cf_iap.gui.segmentation_widget import SegmentationWidget

    volume = layer_to_volume(scan)
    truth = np.random.default_rng(0).integers(0, 3, volume.shape, dtype=np.uint8)
    truth_layer = viewer.add_labels(
        truth, **labels_layer_kwargs(volume.spacing, volume.affine, "ground truth")
    )
    widget = SegmentationWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.add_bundle(bundle, "second bundle")
    widget.image_picker.set_layer(scan)
    widget.truth_picker.set_layer(truth_layer)
    idle(settle)  # the widget's background imports (MONAI) finish, as before a user's Run
    out = []
    for _ in range(runs):
        heartbeat.start()
        widget.run()
        finished = wait_until(lambda: not widget.runner.running, timeout)
        wait_until(lambda: "bundle(s)" in widget.runner.status.text(), 10.0)  # last layer up
        idle(0.5)
        gaps = heartbeat.stop()
        if not finished:
            widget.runner.cancel()
            raise RuntimeError(f"segmentation did not finish within {timeout:.0f} s")
        out.append({"gaps": gaps, "duration": sum(gaps), "status": widget.runner.status.text()})
    return out
