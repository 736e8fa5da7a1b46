"""Beyond the paper: single-token cross-attention context vs one token per IAP.

With the paper's context (B, 1, D) the softmax over one key is always 1, so cross-attention
reduces to a learned per-layer bias (``performance-facts.md``); ``context_mode="per_iap"`` gives
each IAP its own token. Both variants are trained with the same preset, step budget, data and
seed, then scored on the same edit set (Tables 3/4 + ground truth) and, optionally, as
augmenters in the OOD segmentation settings of Table 2.

:func:`recommend` tallies fixed criteria (ground-truth SSIM, PSNR and MAE, settings that beat
both baselines, fooling accuracy, SSIM to the original, FID, OOD mean Dice) and names the
variant the default bundle should use; ties, and comparisons where neither variant beats the
baselines on ground truth, keep the paper's single token.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from napari_cf_iap.models.config import slot_sizes_of

from ..slice_store import SliceStore

VARIANTS = ("single_token", "per_iap")
Log = Callable[[str], None]


def with_context_mode(
    store: SliceStore,
    context_mode: str,
    preset: str = "default",
    overrides: dict[str, Any] | None = None,
    vocabulary: str = "auto",
) -> dict[str, Any]:
    """``overrides`` plus the architecture overrides that give a cDDGM ``context_mode``
    (``per_iap``: one context token per IAP, slot sizes from the store's vocabulary)."""
    from ..dataset import store_vocabulary
    from ..presets import get_preset

    if context_mode not in VARIANTS:
        raise ValueError(f"context mode must be one of {VARIANTS}, got {context_mode!r}")
    overrides = dict(overrides or {})
    arch = dict(get_preset("cddgm", preset).arch_overrides)
    arch.update(overrides.get("arch_overrides", {}))
    if context_mode == "per_iap":
        vocab = store_vocabulary(store, vocabulary)
        arch.update(context_mode="per_iap", slot_sizes=list(slot_sizes_of(vocab)))
    else:
        arch.update(context_mode="single_token", slot_sizes=None)
    overrides["arch_overrides"] = arch
    return overrides


def train_cddgm(
    store: SliceStore | str | Path,
    out: str | Path,
    *,
    context_mode: str = "single_token",
    preset: str = "default",
    overrides: dict[str, Any] | None = None,
    seed: int = 0,
    threads: int | None = None,
    accelerator: str = "auto",
) -> Path:
    """Train (or reuse a finished run of) a cDDGM with ``context_mode``; returns its bundle."""
    from ..train import HardwareOptions, RunOptions, run

    store = store if isinstance(store, SliceStore) else SliceStore.open(store)
    out = Path(out)
    if (out / "summary.json").is_file() and (out / "bundle" / "bundle.json").is_file():
        return out / "bundle"
    overrides = with_context_mode(store, context_mode, preset, overrides)
    opts = RunOptions(
        model="cddgm",
        store=store.path,
        out=out,
        preset=preset,
        overrides=overrides,
        seed=seed,
        resume=(out / "run.json").is_file(),
        command=f"(evaluation) train cddgm {store.path} --out {out} --preset {preset} "
        f"(context {context_mode}, overrides {overrides})",
    )
    return Path(run(opts, HardwareOptions(threads=threads, accelerator=accelerator))["bundle"])


def _grid_means(sweep: dict[str, Any]) -> dict[str, float]:
    rows = [r for r in sweep["rows"] if r["kind"] == "cddgm"]
    cats = ("model_name", "field_strength", "scan_options")
    out = {
        "fooling_accuracy": float(
            np.mean([np.mean([r["fooling"][c] for c in cats]) for r in rows])
        ),
        "ssim_orig": float(np.mean([r["ssim_orig"] for r in rows])),
        "fid": float(np.mean([r["fid"] for r in rows])),
    }
    if all("gt" in r for r in rows):
        out["gt_ssim"] = float(np.mean([r["gt"]["ssim"] for r in rows]))
        out["gt_psnr"] = float(np.mean([r["gt"]["psnr"] for r in rows]))
        out["gt_mae"] = float(np.mean([r["gt"]["mae"] for r in rows]))
        out["beats_baselines"] = float(np.mean([bool(r.get("beats_baselines")) for r in rows]))
    return out


def _ood_dice(table2: dict[str, Any] | None) -> float | None:
    if not table2:
        return None
    values = [
        r["summary"]["mean_dice"]["mean"]
        for r in table2["rows"]
        if r["kind"] == "OOD" and r["augmented"]
    ]
    return float(np.nanmean(values)) if values else None


#: criterion -> True when higher is better
CRITERIA = {
    "gt_ssim": True,
    "gt_psnr": True,
    "gt_mae": False,
    "beats_baselines": True,
    "fooling_accuracy": True,
    "ssim_orig": True,
    "fid": False,
    "ood_mean_dice": True,
}


def recommend(summaries: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Tally the criteria over the two variants (module docstring)."""
    a, b = VARIANTS
    wins = {a: [], b: []}
    for name, higher in CRITERIA.items():
        va, vb = summaries[a].get(name), summaries[b].get(name)
        if va is None or vb is None or not np.isfinite(va) or not np.isfinite(vb) or va == vb:
            continue
        better = a if (va > vb) == higher else b
        wins[better].append(name)
    beats = {v: summaries[v].get("beats_baselines") for v in VARIANTS}
    if all(x is not None and x == 0 for x in beats.values()):
        choice, why = (
            a,
            (
                "neither variant's edits beat both baselines on ground truth, so the comparison "
                "cannot justify a change: keep the paper's single token until a model that learns "
                "decides"
            ),
        )
    elif len(wins[b]) > len(wins[a]):
        choice, why = b, f"one token per IAP wins {len(wins[b])} of {len(CRITERIA)} criteria"
    else:
        choice, why = (
            a,
            (f"the single token wins or ties ({len(wins[a])} vs {len(wins[b])} criteria won)"),
        )
    return {"choice": choice, "reason": why, "wins": wins}


def run_context_compare(
    sweeps: dict[str, dict[str, Any]],
    table2s: dict[str, dict[str, Any] | None] | None = None,
    budgets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Summaries per variant and the recommendation, from their sweep (and Table 2) results."""
    summaries = {}
    for variant in VARIANTS:
        summary = _grid_means(sweeps[variant])
        dice = _ood_dice((table2s or {}).get(variant))
        if dice is not None:
            summary["ood_mean_dice"] = dice
        summaries[variant] = summary
    return {
        "summaries": summaries,
        "recommendation": recommend(summaries),
        "budgets": dict(budgets or {}),
        "sweeps": sweeps,
        "table2": table2s or {},
    }
