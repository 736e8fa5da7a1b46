"""PNG figures of the reproduction: the steps/guidance trade-off and an example grid.

Matplotlib with the Agg backend (headless); files are written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_cf_iap.io.atomic import atomic_path

from .scoring import HIST_MATCH, NO_EDIT

CATEGORICAL = ("model_name", "field_strength", "scan_options")


def _figure(*args: Any, **kwargs: Any) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def fooling_mean(row: dict[str, Any]) -> float:
    """Mean top-1 accuracy (%) over the categorical IAPs against the target IAPs."""
    return 100.0 * float(np.mean([row["fooling"][c] for c in CATEGORICAL]))


def tradeoff_png(sweep: dict[str, Any], path: Path, title: str = "") -> Path:
    """Left: SSIM(orig, mod) vs fooling accuracy per setting (the paper's trade-off).
    Right: ground-truth SSIM per setting against the do-nothing and histogram baselines."""
    rows = [r for r in sweep["rows"] if r["kind"] == "cddgm"]
    base = {r["method"]: r for r in sweep["rows"] if r["kind"] == "baseline"}
    has_gt = all("gt" in r for r in sweep["rows"])
    fig, axes = _figure(1, 2 if has_gt else 1, figsize=(11 if has_gt else 5.5, 4.2))
    axes = np.atleast_1d(axes)
    ax = axes[0]
    guidances = sorted({r["guidance"] for r in rows})
    markers = dict(zip(guidances, "osD^v", strict=False))
    for g in guidances:
        sel = sorted((r for r in rows if r["guidance"] == g), key=lambda r: r["steps"])
        ax.plot(
            [r["ssim_orig"] for r in sel],
            [fooling_mean(r) for r in sel],
            marker=markers.get(g, "o"),
            label=f"gs {g:g}",
        )
        for r in sel:
            ax.annotate(f"{r['steps']}", (r["ssim_orig"], fooling_mean(r)), fontsize=7)
    if NO_EDIT in base:
        ax.scatter(
            [base[NO_EDIT]["ssim_orig"]],
            [fooling_mean(base[NO_EDIT])],
            c="k",
            marker="x",
            label="no edit",
        )
    ax.set_xlabel("SSIM(original, modified)  (higher = anatomy kept)")
    ax.set_ylabel("predictor top-1 acc. vs target IAPs (%)")
    ax.set_title("Steps (labels) / guidance trade-off")
    ax.legend(fontsize=8)
    if has_gt:
        ax = axes[1]
        for g in guidances:
            sel = sorted((r for r in rows if r["guidance"] == g), key=lambda r: r["steps"])
            ax.plot(
                [r["steps"] for r in sel],
                [r["gt"]["ssim"] for r in sel],
                marker=markers.get(g, "o"),
                label=f"cDDGM gs {g:g}",
            )
        styles = {NO_EDIT: ("k", "--", "do nothing"), HIST_MATCH: ("tab:red", ":", "hist. match")}
        for name, (colour, style, label) in styles.items():
            if name in base:
                ax.axhline(base[name]["gt"]["ssim"], color=colour, ls=style, label=label)
        ax.set_xlabel("steps (noise level t0 of 1000)")
        ax.set_ylabel("SSIM to the true re-acquisition")
        ax.set_title("Ground truth (simulator)")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def example_grid_png(sweep: dict[str, Any], path: Path, setting: str, title: str = "") -> Path:
    """Rows: examples; columns: original, donor (target protocol), histogram matching, the
    cDDGM at ``setting``, ground truth and |cDDGM - truth| (when the truth is known)."""
    ex = sweep["examples"]
    columns = [("original", "original"), ("donor", "donor (target IAPs)")]
    columns += [(HIST_MATCH, "histogram matching"), (setting, f"cDDGM {setting}")]
    if "truth" in ex:
        columns.append(("truth", "ground truth"))
    n = len(ex["original"])
    extra = 1 if "truth" in ex else 0
    fig, axes = _figure(n, len(columns) + extra, figsize=(2.1 * (len(columns) + extra), 2.2 * n))
    axes = np.atleast_2d(axes)
    for i in range(n):
        for j, (key, label) in enumerate(columns):
            ax = axes[i, j]
            ax.imshow(np.asarray(ex[key][i]), cmap="gray", vmin=0, vmax=1.2)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(label, fontsize=8)
        if extra:
            ax = axes[i, -1]
            diff = np.abs(np.asarray(ex[setting][i]) - np.asarray(ex["truth"][i]))
            ax.imshow(diff, cmap="magma", vmin=0, vmax=0.5)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title("|cDDGM - truth|", fontsize=8)
        sources = sweep.get("example_sources") or []
        targets = sweep.get("example_targets") or []
        if i < min(len(sources), len(targets)):
            axes[i, 0].set_ylabel(f"{sources[i][:30]}\n-> {targets[i][:30]}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
