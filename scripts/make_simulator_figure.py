"""Figures for docs/simulator.md: one simulated subject under several protocols.

    python scripts/make_simulator_figure.py            # writes docs/images/simulator_*.png

``simulator_protocols.png``: the same slice under GE 1.5 T and Siemens 3 T, flip angle 7 vs 12,
fat saturation on/off, and the training-label overlay, each shown with the paper's per-slice
rescaling (10th percentile -> 0, 99th -> 1). ``simulator_anatomy.png``: fine tissue labels at
three levels. Also prints the seconds per 256 x 256 x 64 volume (phantom and acquisition).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from napari_cf_iap.simulator import acquire, make_phantom  # noqa: E402
from napari_cf_iap.simulator import tissues as T  # noqa: E402
from napari_cf_iap.simulator.reference_protocols import GE_15T as GE_15  # noqa: E402
from napari_cf_iap.simulator.reference_protocols import SIEMENS_3T as SIEMENS_3  # noqa: E402

PANELS = [
    ("GE SIGNA HDx 1.5T, FA 10, FS", GE_15),
    ("Siemens Skyra 3T, FA 10, FS", SIEMENS_3),
    ("GE 1.5T, FA 7, FS", GE_15.with_values(flip_angle=7)),
    ("GE 1.5T, FA 12, FS", GE_15.with_values(flip_angle=12)),
    ("GE 1.5T, FA 10, no fat-sat", GE_15.with_values(scan_options="FAST_GEMS\\ACC_GEMS\\PFP")),
    ("Siemens 3T, FA 10, no fat-sat", SIEMENS_3.with_values(scan_options="PFP")),
]


def paper_rescale(image: np.ndarray) -> np.ndarray:
    """Per-slice 10th percentile -> 0, 99th -> 1 (method-facts.md), clipped for display."""
    lo, hi = np.percentile(image, [10, 99])
    return np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--slice", type=int, default=None, help="axial slice (default: middle)")
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    phantom = make_phantom(args.seed, (64, 256, 256))
    t_phantom = time.perf_counter() - t0
    k = phantom.shape[0] // 2 if args.slice is None else args.slice

    acquisitions, t_acq = [], []
    for _, iap in PANELS:
        t0 = time.perf_counter()
        acquisitions.append(acquire(phantom, iap, seed=args.seed))
        t_acq.append(time.perf_counter() - t0)
    print(
        f"phantom 64x256x256: {t_phantom:.2f} s; acquisition: median {np.median(t_acq):.2f} s "
        f"(min {min(t_acq):.2f}, max {max(t_acq):.2f})"
    )

    fig, axes = plt.subplots(2, 4, figsize=(16, 8.6), facecolor="white")
    slots = [axes[0, 0], axes[0, 1], axes[0, 2], axes[0, 3], axes[1, 0], axes[1, 1]]
    for ax, (title, _), acq in zip(slots, PANELS, acquisitions, strict=True):
        ax.imshow(paper_rescale(acq.volume.data[k]), cmap="gray", vmin=0, vmax=1.05)
        ax.set_title(title, fontsize=10)
    base = paper_rescale(acquisitions[0].volume.data[k])
    overlay = np.ma.masked_equal(acquisitions[0].labels[k], 0)
    axes[1, 2].imshow(base, cmap="gray", vmin=0, vmax=1.05)
    axes[1, 2].imshow(
        overlay, cmap=ListedColormap(["#3d9cff", "#ff5a36"]), vmin=1, vmax=2, alpha=0.45
    )
    axes[1, 2].set_title("labels: 1 fat/breast (blue), 2 FGT (red)", fontsize=10)

    ax = axes[1, 3]
    ax.set_facecolor("white")
    names = ["GE\nFS", "Sie 3T\nFS", "FA7\nFS", "FA12\nFS", "GE\nno FS", "Sie 3T\nno FS"]
    ratios = []
    for acq in acquisitions:
        v, lab = acq.volume.data, acq.labels
        ratios.append(v[lab == 2].mean() / v[lab == 1].mean())
    ax.bar(range(len(ratios)), ratios, color=["#888"] * 4 + ["#c84"] * 2)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(range(len(ratios)), names, fontsize=8)
    ax.set_ylabel("mean FGT / mean breast-fat signal")
    ax.set_title("FGT : fat contrast (whole volume)", fontsize=10)
    for a in axes.flat[:7]:
        a.axis("off")
    fig.suptitle(
        f"one simulated subject (seed {args.seed}, density {phantom.params.density}), "
        f"axial slice {k}; display: per-slice 10th-99th percentile rescale",
    )
    fig.tight_layout()
    fig.savefig(args.out / "simulator_protocols.png", dpi=80)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(15, 5.8))
    colors = [
        "#000000",
        "#f2d16b",
        "#e8412c",
        "#f5b7a3",
        "#7c4dff",
        "#8d5b4c",
        "#e0e0e0",
        "#264653",
        "#b5173a",
        "#6a994e",
    ]
    cmap = ListedColormap(colors)
    for ax, z in zip(axes, (k - 16, k, k + 16), strict=True):
        ax.imshow(
            phantom.fine_labels[z], cmap=cmap, vmin=0, vmax=len(colors) - 1, interpolation="nearest"
        )
        ax.set_title(f"fine tissue labels, slice {z}")
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[i]) for i in T.TISSUE_NAMES]
    fig.legend(handles, list(T.TISSUE_NAMES.values()), loc="lower center", ncol=5, fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 0.97))
    fig.savefig(args.out / "simulator_anatomy.png", dpi=70)
    plt.close(fig)
    print(f"wrote {args.out / 'simulator_protocols.png'} and {args.out / 'simulator_anatomy.png'}")


if __name__ == "__main__":
    main()
