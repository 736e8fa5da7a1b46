"""Reuse of a twin edit's reference renderings across edits of the same slices.

A twin edit denoises each slice twice, towards the target and towards the source's own IAPs,
and applies the difference. The reference rendering does not depend on the target: when only
the target changes (a what-if slider, a second Run to another scanner), the same slice, seed,
noise level, sampler and guidance give the same reference rendering. Keeping it turns the
next edit of that slice into a single (target-only) denoising, half the work.

A cache holds the renderings of one model: :meth:`ReferenceCache.for_model` empties it when a
different model (bundle hash) is used. It is bounded in bytes and drops the least recently
used entries first. Importing this module does not import torch, so a GUI can hold a cache
before any model is loaded.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported when a rendering is stored, not with this module
    import torch

#: default bound: 64 MB is 1000 model-resolution slices of 128 x 128 float32
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class ReferenceCache:
    """LRU map from a slice's edit key to its reference rendering ((C, H, W) float32, CPU)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self.model_id: str | None = None
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # a preview and a Run may share one cache

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def for_model(self, model_id: str) -> ReferenceCache:
        """Use the cache for the model ``model_id`` (e.g. a bundle's sha256); renderings of
        another model are dropped."""
        with self._lock:
            if model_id != self.model_id:
                self._entries.clear()
                self._bytes = 0
                self.model_id = model_id
        return self

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def get_all(self, keys: Sequence[str]) -> list[torch.Tensor] | None:
        """The renderings of every key, or ``None`` if any is missing (counted as misses)."""
        with self._lock:
            found = [self._entries.get(k) for k in keys]
            if any(f is None for f in found):
                self.misses += len(keys)
                return None
            for k in keys:
                self._entries.move_to_end(k)
            self.hits += len(keys)
            return found  # type: ignore[return-value]

    def put(self, key: str, rendering: torch.Tensor) -> None:
        """Keep ``rendering`` (copied to the CPU) under ``key``; evicts the oldest to fit."""
        value = rendering.detach().float().cpu().clone()
        size = value.numel() * value.element_size()
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.numel() * old.element_size()
            while self._entries and self._bytes + size > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= dropped.numel() * dropped.element_size()
            self._entries[key] = value
            self._bytes += size


def slice_key(
    image: torch.Tensor,
    reference: torch.Tensor,
    extra: torch.Tensor | None,
    seed: int,
    settings: tuple,
) -> str:
    """Digest of everything a slice's reference rendering depends on besides the model: the
    preprocessed slice, the reference IAP vector, any extra input, the seed and the sampler
    settings (noise-level pairs, guidance, sampler, eta, x0 transform, device)."""
    h = hashlib.blake2b(digest_size=20)
    for t in (image, reference, extra):
        if t is not None:
            a = t.detach().float().cpu().contiguous()
            h.update(str(tuple(a.shape)).encode())
            h.update(a.numpy().tobytes())
        else:
            h.update(b"none")
    h.update(repr((int(seed), settings)).encode())
    return h.hexdigest()
