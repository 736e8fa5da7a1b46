"""``cf-iap-train augment STORE --bundle CDDGM``: counterfactual copies of the segmentation
training set, written back into the store with provenance.

Sources are the original slices of masked ``train`` patients (the segmenter's training set).
Each gets ``aug_ratio`` copies. A copy's target IAPs are

- with ``other_manufacturer``: the IAP record of a slice drawn (seeded) from the store's
  original slices of another manufacturer, so targets are real protocol combinations
  (method-facts: one counterfactual per slice with IAPs from the other manufacturer);
- then ``targets`` (KEY=VALUE) override single IAPs (alone they edit the source's record).

Editing is the core's :class:`CounterfactualSampler` (guided DDPM SDEdit, ``steps`` and
``guidance``) at the bundle's image size. The change is upsampled back to the store size and
added to the stored slice ("detail transfer", as the core pipeline does), so anatomy finer than
the model grid is kept; labels are copied from the source (anatomy does not change).

Every copy has a seed derived from (``seed``, source row, copy index); rows record the source
row, target IAPs (JSON), seed and the bundle's sha256. ``shard=(i, n)`` processes every n-th
job from the i-th, writing chunks ``x<i>-...`` so that shards never collide; ``resume`` skips
copies already in the store (same source row, seed and bundle).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_cf_iap.errors import InputError
from napari_cf_iap.iap import IAPRecord

from .dataset import resize_image
from .slice_store import COUNTERFACTUAL, ORIGINAL, SliceStore, iap_columns, row_record


@dataclass
class AugmentReport:
    store: Path
    written: int = 0
    skipped_existing: int = 0
    jobs: int = 0
    chunks: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"store {self.store}: wrote {self.written} counterfactual slices in {len(self.chunks)} "
            f"chunks ({self.skipped_existing} of {self.jobs} already present)"
        )


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n."""
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise InputError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise InputError(f"--shard {text}: need 0 <= i < n")
    return i, n


def parse_targets(items: list[str]) -> dict[str, Any]:
    """``["field_strength=3", "model_name=Skyra"]`` -> dict (strings, normalised later)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--target must be KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def copy_seed(seed: int, source_row: int, copy: int) -> int:
    """Deterministic per-copy seed (independent of sharding and batch size)."""
    return int(
        np.random.SeedSequence([int(seed), int(source_row), int(copy)]).generate_state(1)[0] >> 1
    )


def choose_target(
    store: SliceStore,
    source: IAPRecord,
    rng: np.random.Generator,
    other_manufacturer: bool,
    overrides: Mapping[str, Any],
    pool: Mapping[str, list[IAPRecord]],
) -> IAPRecord:
    """The target record of one copy (see the module docstring)."""
    target = source
    if other_manufacturer:
        others = [m for m in pool if m != source.manufacturer]
        if not others:
            raise InputError(
                f"{store.path} holds only {source.manufacturer} slices; give --target instead"
            )
        maker = others[int(rng.integers(len(others)))]
        target = pool[maker][int(rng.integers(len(pool[maker])))]
    return target.with_values(**overrides) if overrides else target


def augment(
    store_path: str | Path,
    bundle_path: str | Path,
    *,
    aug_ratio: int = 1,
    steps: int = 50,
    guidance: float = 3.0,
    targets: Mapping[str, Any] | None = None,
    other_manufacturer: bool = True,
    shard: tuple[int, int] = (0, 1),
    limit: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    device: str = "auto",
    resume: bool = False,
    detail_transfer: bool = True,
    show_progress: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> AugmentReport:
    """Generate counterfactual copies of the segmentation training slices (module docstring)."""
    from napari_cf_iap.bundles import load_bundle
    from napari_cf_iap.sampling.counterfactual import CounterfactualSampler

    if aug_ratio < 1:
        raise InputError(f"--aug-ratio must be >= 1, got {aug_ratio}")
    targets = dict(targets or {})
    if not other_manufacturer and not targets:
        raise InputError("give --target KEY=VALUE or --other-manufacturer")
    store = SliceStore.open(store_path)
    bundle = load_bundle(bundle_path, device=device, kind="cddgm")
    vocab, size = bundle.vocab, int(bundle.config.image_size)
    sources = store.select(split="train", has_mask=True, source=ORIGINAL)
    if not sources:
        raise InputError(
            f"{store.path} has no masked training slices; run `split` (and check masks)"
        )
    sources = sources[:limit] if limit else sources
    pool: dict[str, list[IAPRecord]] = {}
    for record in sorted(
        {row_record(r) for r in store.rows if r["source"] == ORIGINAL}, key=lambda r: r.summary()
    ):
        pool.setdefault(record.manufacturer, []).append(record)

    index, count = shard
    jobs = [(row, k) for row in sources for k in range(aug_ratio)]
    mine = [job for j, job in enumerate(jobs) if j % count == index]
    done = set()
    existing = [
        r for r in store.rows if r["source"] == COUNTERFACTUAL and r["bundle_sha"] == bundle.sha256
    ]
    if existing and not resume:
        raise InputError(
            f"{store.path} already holds counterfactuals of this bundle; pass --resume"
        )
    done = {(r["source_row"], r["seed"]) for r in existing}
    report = AugmentReport(store=store.path, jobs=len(mine))
    todo = []
    for row, k in mine:
        s = copy_seed(seed, row, k)
        if (row, s) in done:
            report.skipped_existing += 1
        else:
            todo.append((row, k, s))

    sampler = CounterfactualSampler(bundle.model, vocab, device=device)
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"augment {index}/{count}", unit="slice")
    prefix = f"x{index:03d}-"
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        originals = torch.from_numpy(
            np.stack([np.array(store.image(r), dtype=np.float32) for r, _, _ in batch])
        )[:, None]
        small = resize_image(originals, size)
        records, vectors = [], []
        for r, _, s in batch:
            rng = np.random.default_rng(s)
            record = vocab.validate(
                choose_target(store, store.record(r), rng, other_manufacturer, targets, pool)
            )
            records.append(record)
            vectors.append(vocab.encode(record))
        edited = sampler.generate(
            small,
            np.stack(vectors),
            steps=steps,
            guidance=guidance,
            seeds=[s for _, _, s in batch],
            batch_size=batch_size,
        )
        if detail_transfer:
            images = originals + resize_image(edited - small, store.size)
        else:
            images = resize_image(edited, store.size)
        labels = np.stack([np.array(store.label(r)) for r, _, _ in batch])
        rows = []
        for (r, _, s), record in zip(batch, records, strict=True):
            src = store.rows[r]
            rows.append(
                {
                    "patient": src["patient"],
                    "series_uid": src["series_uid"],
                    "slice_index": src["slice_index"],
                    **iap_columns(record),
                    "has_mask": True,
                    "source": COUNTERFACTUAL,
                    "source_row": r,
                    "target_iap": json.dumps(
                        {
                            **{k: v for k, v in record.to_dict().items() if k != "extras"},
                            "steps": steps,
                            "guidance": guidance,
                        },
                        sort_keys=True,
                    ),
                    "seed": s,
                    "bundle_sha": bundle.sha256,
                }
            )
        chunk = store.next_chunk_id(prefix)
        store.append_chunk(chunk, images[:, 0].numpy(), labels, rows)
        report.chunks.append(chunk)
        report.written += len(rows)
        if bar is not None:
            bar.update(len(rows))
        if progress is not None:
            progress(report.written, len(todo), chunk)
    if bar is not None:
        bar.close()
    store.write_table()
    return report
