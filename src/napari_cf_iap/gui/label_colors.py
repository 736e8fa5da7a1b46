"""Fixed tissue colours for segmentation Labels layers (same colours in every layer)."""

from __future__ import annotations

from typing import Any

#: label value -> tissue name (the core's segmenter convention: 0 background, 1 fat, 2 FGT).
TISSUE_NAMES = {1: "fat", 2: "FGT"}
#: RGBA colours: fat in warm yellow, fibroglandular tissue (FGT) in magenta.
TISSUE_COLORS = {
    None: (0.0, 0.0, 0.0, 0.0),
    0: (0.0, 0.0, 0.0, 0.0),
    1: (0.98, 0.80, 0.25, 1.0),
    2: (0.90, 0.16, 0.55, 1.0),
}


def tissue_colormap() -> Any:
    """A napari ``DirectLabelColormap``: transparent background, fixed fat/FGT colours."""
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(color_dict=dict(TISSUE_COLORS))
