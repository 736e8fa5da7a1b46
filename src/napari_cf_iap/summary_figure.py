"""A PNG summary of a demo run: source, counterfactual, truth, difference and masks."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from .fidelity import normalise_per_slice
from .io.atomic import atomic_path


def save_demo_figure(result, path: Path, *, overwrite: bool = False) -> Path:
    """Write a 2x3 panel figure of the middle slice (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    z = result.source.shape[0] // 2
    src, cf, tr = (
        normalise_per_slice(v.data[z : z + 1])[0]
        for v in (result.source, result.counterfactual, result.truth)
    )
    masks = ListedColormap([(0, 0, 0, 0), (1.0, 0.85, 0.2, 0.45), (0.2, 0.6, 1.0, 0.55)])
    fig, axes = plt.subplots(2, 3, figsize=(11, 7.4))
    r = result.report
    panels = [
        (src, f"source: {result.source.iap.summary()}", None),
        (cf, f"counterfactual -> {result.counterfactual.iap.summary()}", None),
        (tr, "ground truth re-acquisition", None),
        (
            np.abs(cf - tr),
            f"|edit - truth|  MAE {r.mae_edit:.3f} (nothing {r.mae_nothing:.3f})",
            None,
        ),
        (src, "segmentation of source", result.seg_source[z]),
        (cf, "segmentation of counterfactual", result.seg_counterfactual[z]),
    ]
    for ax, (image, title, overlay) in zip(axes.ravel(), panels, strict=True):
        ax.imshow(image, cmap="magma" if "MAE" in title else "gray", vmin=0, vmax=1.1)
        if overlay is not None:
            ax.imshow(overlay, cmap=masks, vmin=0, vmax=2, interpolation="nearest")
        ax.set_title(textwrap.fill(title, 48), fontsize=7.5)
        ax.axis("off")
    fig.suptitle(
        f"fat/FGT ratio: source {r.ratio_source:.2f}, edit {r.ratio_edit:.2f}, "
        f"truth {r.ratio_truth:.2f}",
        fontsize=10,
    )
    fig.tight_layout()
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)
