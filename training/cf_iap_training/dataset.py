"""A torch Dataset over a slice store: resized image, IAP vector and label per row."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from napari_cf_iap.errors import IAPValueError, InputError
from napari_cf_iap.iap import IAPVocabulary

from .slice_store import ORIGINAL, SliceStore, row_record


def resize_image(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a (..., H, W) float image to (size, size), bilinear with antialiasing."""
    if image.shape[-2:] == (size, size):
        return image
    shape = image.shape
    flat = image.reshape(-1, 1, *shape[-2:])
    out = F.interpolate(
        flat, size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )
    return out.reshape(*shape[:-2], size, size)


def resize_label(label: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a (..., H, W) integer label map to (size, size), nearest neighbour."""
    if label.shape[-2:] == (size, size):
        return label
    shape = label.shape
    flat = label.reshape(-1, 1, *shape[-2:]).float()
    out = F.interpolate(flat, size=(size, size), mode="nearest-exact")
    return out.reshape(*shape[:-2], size, size).to(label.dtype)


def store_vocabulary(store: SliceStore, choice: str = "auto") -> IAPVocabulary:
    """The IAP vocabulary to train with.

    ``duke``: the Duke default (bundles stay compatible with every Duke-vocabulary model);
    ``data``: built from the store's original rows; ``auto``: ``duke`` if every original row
    encodes under it, else ``data``; anything else is a path to a vocabulary JSON file.
    """
    records = {row_record(r) for r in store.rows if r["source"] == ORIGINAL}
    if not records:
        raise InputError(f"{store.path} has no original slices; run `prepare` first")
    if choice in ("duke", "auto"):
        duke = IAPVocabulary.duke_default()
        try:
            for record in records:
                duke.encode(record)
            return duke
        except IAPValueError as exc:
            if choice == "duke":
                raise IAPValueError(f"the store does not fit the Duke vocabulary: {exc}") from exc
    if choice in ("data", "auto"):
        return IAPVocabulary.from_records(sorted(records, key=lambda r: r.summary()))
    path = Path(choice)
    if not path.is_file():
        raise InputError(f"vocabulary {choice!r} is neither duke/data/auto nor a JSON file")
    return IAPVocabulary.load(path)


class SliceDataset(Dataset):
    """Rows of a store as ``(image (1,S,S) float32, iap (D,) float32, label (S,S) int64)``.

    Images are resized from the store size to ``image_size`` on the fly (antialiased bilinear),
    labels with nearest neighbour. IAP vectors are encoded once per distinct record.
    ``flip`` adds random left/right flips (a symmetric augmentation for breast MRI). Items are
    an index or an ``(index, sample_seed)`` pair (from :class:`~.data_order.ResumableSampler`):
    with a seed the flip is drawn from it, so a resumed run repeats it; without, from the
    global RNG.
    """

    def __init__(
        self,
        store: SliceStore,
        rows: Sequence[int],
        image_size: int,
        vocabulary: IAPVocabulary,
        *,
        flip: bool = False,
        allow_extrapolation: bool = True,
    ):
        self.store = store
        self.rows = np.asarray(list(rows), dtype=np.int64)
        self.image_size = int(image_size)
        self.vocabulary = vocabulary
        self.flip = flip
        cache: dict = {}
        vectors = np.zeros((len(self.rows), vocabulary.dim), dtype=np.float32)
        for i, row in enumerate(self.rows):
            record = store.record(int(row))
            if record not in cache:
                cache[record] = vocabulary.encode(record, allow_extrapolation=allow_extrapolation)
            vectors[i] = cache[record]
        self.vectors = torch.from_numpy(vectors)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(
        self, item: int | tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        index, seed = item if isinstance(item, tuple) else (item, None)
        row = int(self.rows[index])
        image = torch.from_numpy(np.array(self.store.image(row), dtype=np.float32))[None]
        label = torch.from_numpy(np.array(self.store.label(row), dtype=np.int64))
        gen = None if seed is None else torch.Generator().manual_seed(int(seed))
        if self.flip and torch.rand((), generator=gen) < 0.5:
            image, label = image.flip(-1), label.flip(-1)
        return (
            resize_image(image, self.image_size),
            self.vectors[index],
            resize_label(label, self.image_size),
        )
