"""Predict the IAPs of a volume (per slice, or aggregated over slices) with the IAP predictor."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import CancelledError, IAPValueError
from ..iap.vocabulary import IAPVocabulary, PredictedIAP
from ..volume import Volume
from .bundle_access import BundleLike, get_bundle, preprocessing_of
from .requests import ProgressCallback, StopCheck
from .slices import select_slices, to_model_stack


def _probabilities(raw: np.ndarray, vocab: IAPVocabulary) -> np.ndarray:
    """Softmax every categorical block of raw predictor outputs (B, dim), in place of logits."""
    out = raw.astype(np.float64).copy()
    for slot in vocab.slots:
        if slot.categorical:
            block = out[:, slot.start : slot.stop]
            block = np.exp(block - block.max(axis=1, keepdims=True))
            out[:, slot.start : slot.stop] = block / block.sum(axis=1, keepdims=True)
    return out


def predict_iap_raw(
    volume: Volume,
    bundle: BundleLike = None,
    *,
    slices: Sequence[int] | None = None,
    device: str = "auto",
    batch_size: int = 32,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> tuple[np.ndarray, IAPVocabulary]:
    """Per-slice predictor outputs with categorical blocks as probabilities: (n, dim)."""
    import torch

    from ..device import resolve_device

    loaded = get_bundle("iap_predictor", bundle, device)
    if loaded.vocab is None:
        raise IAPValueError(f"bundle {loaded.path} carries no IAP vocabulary")
    indices = select_slices(volume, slices)
    preprocessing = preprocessing_of(loaded)
    dev = resolve_device(device)
    model = loaded.model.to(dev).eval()
    rows = []
    for start in range(0, len(indices), batch_size):
        if should_stop is not None and should_stop():
            raise CancelledError(f"IAP prediction cancelled after {start} of {len(indices)} slices")
        chunk = indices[start : start + batch_size]
        stack = to_model_stack(volume, chunk, preprocessing)
        with torch.inference_mode():
            raw = model(torch.from_numpy(stack.images[:, None]).to(dev)).float().cpu().numpy()
        rows.append(raw)
        if progress is not None:
            progress(start + len(chunk), len(indices), "predicting IAPs")
    return _probabilities(np.concatenate(rows), loaded.vocab), loaded.vocab


def predict_iap_per_slice(
    volume: Volume, bundle: BundleLike = None, **kwargs
) -> list[PredictedIAP]:
    """One decoded prediction per selected slice."""
    probs, vocab = predict_iap_raw(volume, bundle, **kwargs)
    return [vocab.decode(row) for row in probs]


def predict_iap(volume: Volume, bundle: BundleLike = None, **kwargs) -> PredictedIAP:
    """The volume's IAPs: class probabilities and continuous values averaged over slices."""
    probs, vocab = predict_iap_raw(volume, bundle, **kwargs)
    return vocab.decode(probs.mean(axis=0))
