"""Table 2: segmentation with and without counterfactual augmentation, ID and OOD, over seeds.

Settings (method-facts): train on one manufacturer's masked ``train`` patients, with or
without one counterfactual copy per slice whose target IAPs come from the other manufacturer
(``augment``, steps 50, guidance 3); test on the same manufacturer's masked ``test`` patients
(ID) and on *every* masked patient of the other manufacturer (OOD: never seen in training).
"Both" trains on all masked ``train`` patients and tests on all masked ``test`` patients.

Each manufacturer gets a *view store*: a new store whose chunk folders are symbolic links to
every original chunk of the main store, with its own ``splits.json`` in which only that
manufacturer's masked patients keep their split and every other patient is ``excluded`` (so
the segmenter never trains or validates on them, while ``augment`` still draws its target IAPs
from the other manufacturer's slices). Counterfactual chunks are written into the view, so the
main store is never modified. Segmenters train with ``cf-iap-train train seg`` (``train.run``), one
run per (setting, augmentation, seed); finished runs are reused, so the table resumes.

Scores: :func:`.metrics.segmentation_scores` at the segmenter's input size; every cell is the
mean ± sample standard deviation over the seeds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_cf_iap.errors import InputError

from ..dataset import resize_label
from ..slice_store import ORIGINAL, SliceStore
from .edit_set import load_images
from .metrics import segmentation_scores

GE, SIEMENS = "GE MEDICAL SYSTEMS", "SIEMENS"
SHORT = {GE: "GE", SIEMENS: "SIEMENS"}
EXCLUDED = "excluded"
METRICS = ("acc_background", "acc_fat", "acc_fgt", "dice_fat", "dice_fgt", "mean_dice")
Log = Callable[[str], None]


# ---------------------------------------------------------------------- stores
def masked_patients(store: SliceStore) -> dict[str, dict[str, str]]:
    """``{patient: {"manufacturer": ..., "split": ...}}`` of patients with masks."""
    out: dict[str, dict[str, str]] = {}
    for row in store.rows:
        if row["source"] == ORIGINAL and row["has_mask"]:
            out[row["patient"]] = {"manufacturer": row["manufacturer"], "split": row["split"]}
    return out


def make_view_store(store: SliceStore, path: Path, keep: set[str]) -> SliceStore:
    """A store at ``path`` linking every original chunk; patients outside ``keep`` are
    ``excluded`` from all splits (reused if the view exists)."""
    path = Path(path)
    if (path / "store.json").is_file():
        return SliceStore.open(path)
    meta = {k: v for k, v in store.meta.items() if k not in ("format", "version", "size")}
    view = SliceStore.create(path, store.size, {**meta, "view_of": str(store.path.resolve())})
    for chunk in store.chunk_ids():
        if chunk.startswith("o"):
            os.symlink((store.path / "chunks" / chunk).resolve(), path / "chunks" / chunk)
    info = json.loads((store.path / "splits.json").read_text())
    splits = {p: (s if p in keep else EXCLUDED) for p, s in info.pop("patients").items()}
    view.set_splits(splits, {**info, "view": f"only {len(keep)} patients keep their split"})
    return SliceStore.open(path)


# ---------------------------------------------------------------------- train / score
def train_segmenter(
    store: SliceStore,
    out: Path,
    *,
    preset: str,
    overrides: dict[str, Any] | None,
    seed: int,
    with_augmentations: bool,
    threads: int | None = None,
    accelerator: str = "auto",
) -> Path:
    """The bundle of one segmenter run (trained now, or reused when already finished)."""
    from ..train import HardwareOptions, RunOptions, run

    out = Path(out)
    if (out / "summary.json").is_file() and (out / "bundle" / "bundle.json").is_file():
        return out / "bundle"
    opts = RunOptions(
        model="seg",
        store=store.path,
        out=out,
        preset=preset,
        overrides=dict(overrides or {}),
        with_augmentations=with_augmentations,
        seed=seed,
        resume=(out / "run.json").is_file(),
        command=f"(evaluation table2) train seg {store.path} --out {out} --seed {seed}"
        + (" --with-augmentations" if with_augmentations else ""),
    )
    summary = run(opts, HardwareOptions(threads=threads, accelerator=accelerator))
    return Path(summary["bundle"])


def score_segmenter(
    bundle: Any, store: SliceStore, rows: Sequence[int], device: str = "cpu", batch: int = 32
) -> dict[str, float]:
    """Segmentation scores of a segmenter bundle on store ``rows`` (at its input size)."""
    from napari_cf_iap.bundles import load_bundle
    from napari_cf_iap.device import resolve_device

    if not hasattr(bundle, "model"):
        bundle = load_bundle(bundle, device=device, kind="segmenter")
    if not rows:
        return {m: float("nan") for m in METRICS}
    size = int(bundle.config.image_size)
    dev = resolve_device(device)
    model = bundle.model.to(dev).eval()
    preds, truths = [], []
    with torch.inference_mode():
        for start in range(0, len(rows), batch):
            part = [int(r) for r in rows[start : start + batch]]
            x = torch.from_numpy(load_images(store, part, size))[:, None].to(dev)
            preds.append(model(x).argmax(1).cpu().numpy())
            labels = torch.from_numpy(np.stack([np.array(store.label(r)) for r in part]))
            truths.append(resize_label(labels.long(), size).numpy())
    return segmentation_scores(np.concatenate(preds), np.concatenate(truths))


def mean_sd(runs: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per metric: mean, sample sd (0 for one run) and n over ``runs``."""
    out = {}
    for metric in METRICS:
        values = np.array([r[metric] for r in runs], dtype=np.float64)
        values = values[np.isfinite(values)]
        out[metric] = {
            "mean": float(values.mean()) if values.size else float("nan"),
            "sd": float(values.std(ddof=1)) if values.size > 1 else 0.0,
            "n": int(values.size),
        }
    return out


# ---------------------------------------------------------------------- the table
def run_table2(
    store: SliceStore | str | Path,
    cddgm: str | Path,
    out_dir: str | Path,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    seg_preset: str = "default",
    seg_overrides: dict[str, Any] | None = None,
    steps: int = 50,
    guidance: float = 3.0,
    aug_seed: int = 0,
    tag: str = "cddgm",
    include_both: bool = True,
    threads: int | None = None,
    device: str = "cpu",
    accelerator: str = "auto",
    log: Log | None = None,
) -> dict[str, Any]:
    """Train and score every Table 2 segmenter (module docstring); returns rows + run paths.

    ``tag`` names the view stores and run folders of this cDDGM, so two cDDGMs (the context
    comparison) never share counterfactuals.
    """
    from napari_cf_iap.bundles import load_bundle

    from ..augment import augment

    say = log or (lambda message: None)
    store = store if isinstance(store, SliceStore) else SliceStore.open(store)
    out_dir = Path(out_dir)
    masked = masked_patients(store)
    makers = sorted({m["manufacturer"] for m in masked.values()})
    if set(makers) != {GE, SIEMENS}:
        raise InputError(
            f"{store.path}: Table 2 needs masked patients of both GE and SIEMENS, found {makers}"
        )

    def rows_of(patients: set[str]) -> list[int]:
        return [
            r["row"] for r in store.rows if r["source"] == ORIGINAL and r["patient"] in patients
        ]

    def patients(maker: str | None, splits: set[str] | None) -> set[str]:
        return {
            p
            for p, m in masked.items()
            if (maker is None or m["manufacturer"] == maker)
            and (splits is None or m["split"] in splits)
        }

    common = dict(
        preset=seg_preset, overrides=seg_overrides, threads=threads, accelerator=accelerator
    )
    results: list[dict[str, Any]] = []
    if include_both:
        scores = []
        test_rows = rows_of(patients(None, {"test"}))
        for seed in seeds:
            bundle = train_segmenter(
                store,
                out_dir / "runs" / f"both-s{seed}",
                seed=seed,
                with_augmentations=False,
                **common,
            )
            scores.append(score_segmenter(bundle, store, test_rows, device))
            say(f"table 2: Both seed {seed}: mean Dice {scores[-1]['mean_dice']:.3f}")
        results.append(_row("Both", "Both", "Both", False, scores, len(test_rows)))
    for maker in (GE, SIEMENS):
        other = SIEMENS if maker == GE else GE
        view = make_view_store(
            store, out_dir / "views" / f"{SHORT[maker]}-{tag}", patients(maker, None)
        )
        say(f"table 2: augmenting {SHORT[maker]} training slices (steps {steps}, gs {guidance:g})")
        augment(
            view.path,
            cddgm,
            steps=steps,
            guidance=guidance,
            other_manufacturer=True,
            seed=aug_seed,
            device=device,
            resume=True,
        )  # resume: only missing copies are generated
        view = SliceStore.open(view.path)
        id_rows = rows_of(patients(maker, {"test"}))
        ood_rows = rows_of(patients(other, None))
        for aug in (False, True):
            id_scores, ood_scores = [], []
            for seed in seeds:
                run_dir = out_dir / "runs" / f"{SHORT[maker]}-{tag if aug else 'noaug'}-s{seed}"
                bundle = load_bundle(
                    train_segmenter(view, run_dir, seed=seed, with_augmentations=aug, **common),
                    device=device,
                    kind="segmenter",
                )
                id_scores.append(score_segmenter(bundle, store, id_rows, device))
                ood_scores.append(score_segmenter(bundle, store, ood_rows, device))
                say(
                    f"table 2: {SHORT[maker]} {'aug' if aug else 'no aug'} seed {seed}: mean Dice "
                    f"ID {id_scores[-1]['mean_dice']:.3f}, OOD {ood_scores[-1]['mean_dice']:.3f}"
                )
            results.append(_row(SHORT[maker], SHORT[maker], "ID", aug, id_scores, len(id_rows)))
            results.append(_row(SHORT[maker], SHORT[other], "OOD", aug, ood_scores, len(ood_rows)))
    return {
        "rows": results,
        "seeds": list(seeds),
        "seg_preset": seg_preset,
        "seg_overrides": dict(seg_overrides or {}),
        "augmentation": {"steps": steps, "guidance": guidance, "cddgm": str(cddgm), "tag": tag},
        "patients": {
            SHORT[m]: {s: len(patients(m, {s})) for s in ("train", "val", "test")} for m in makers
        },
    }


def _row(
    trained: str, tested: str, kind: str, aug: bool, runs: list[dict[str, float]], slices: int
) -> dict[str, Any]:
    return {
        "trained_on": trained,
        "tested_on": tested,
        "kind": kind if trained != "Both" else "Both",
        "augmented": aug,
        "test_slices": slices,
        "runs": runs,
        "summary": mean_sd(runs),
    }
