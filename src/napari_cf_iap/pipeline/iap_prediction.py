"""Predict the IAPs of a volume (per slice, or aggregated over slices) with the IAP predictor."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import CancelledError, IAPValueError
from ..iap.vocabulary import IAPVocabulary, PredictedIAP
from ..volume import Volume
from .bundle_access import BundleLike, get_bundle, preprocessing_of
from .requests import ProgressCallback, StopCheck
from .slices import model_stacks, select_slices


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
    """Per-slice predictor outputs with categorical blocks as probabilities: (n, dim).

    Slices stream through in chunks of ``batch_size`` (memory does not grow with the count).
    """
    import torch

    from ..device import resolve_device

    loaded = get_bundle("iap_predictor", bundle, device)
    if loaded.vocab is None:
        raise IAPValueError(f"bundle {loaded.path} carries no IAP vocabulary")
    indices = select_slices(volume, slices)
    dev = resolve_device(device)
    model = loaded.model.to(dev).eval()
    out: np.ndarray | None = None
    done = 0
    stacks = model_stacks(volume, indices, preprocessing_of(loaded), batch_size, should_stop)
    try:
        for part, stack in stacks:
            with torch.inference_mode():
                images = torch.from_numpy(stack.images[:, None]).to(dev)
                raw = model(images).float().cpu().numpy()
            if out is None:
                out = np.empty((len(indices), raw.shape[1]), dtype=np.float32)
            out[done : done + len(part)] = raw
            done += len(part)
            del stack, images
            if progress is not None:
                progress(done, len(indices), "predicting IAPs")
    except CancelledError:
        raise CancelledError(
            f"IAP prediction cancelled after {done} of {len(indices)} slices"
        ) from None
    assert out is not None  # select_slices never returns an empty selection
    return _probabilities(out, loaded.vocab), loaded.vocab


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
