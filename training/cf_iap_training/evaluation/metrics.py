"""Image, distribution, IAP-prediction and segmentation metrics, as the authors computed them.

- SSIM: MONAI ``SSIMMetric(spatial_dims=2, data_range=1.0)`` with an 11-pixel Gaussian window
  per image pair (the authors' ``kernel_size=11`` is ``win_size=11`` in MONAI >= 1.3).
- PSNR: MONAI ``PSNRMetric(max_val=1.0)`` per image pair (images in the percentile-normalised
  range where the 10th percentile is 0 and the 99th is 1).
- MMD: MONAI ``MMDMetric()`` defaults: the *unbiased* estimator with a linear kernel on the
  flattened pixels. For two identical sets it is not exactly 0 but ``-2 tr(C) / (n - 1)``
  (``C`` the biased pixel covariance), which tends to 0 as the set grows.
- FID: MONAI ``FIDMetric`` on (N, F) feature sets from a :mod:`.features` extractor.
- IAP fooling: top-1 accuracy per categorical IAP and MSE (physical units: degrees, mm, ms)
  per continuous IAP of the predictor's output against reference records (the *target* IAPs
  for edited images, the true ones for Table 1).
- Segmentation: Dice and accuracy per tissue via :mod:`napari_cf_iap.metrics_basic`.

Image inputs are (N, H, W) or (N, 1, H, W) arrays or tensors.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from napari_cf_iap.errors import IAPValueError, InputError
from napari_cf_iap.iap import CATEGORICAL_IAPS, CONTINUOUS_IAPS, IAPRecord, IAPVocabulary
from napari_cf_iap.metrics_basic import accuracy_per_label, dice_per_label

#: Short names in the paper's tables.
IAP_SHORT = {
    "model_name": "MM",
    "field_strength": "FS",
    "scan_options": "SO",
    "flip_angle": "FA",
    "slice_thickness": "ST",
    "echo_time": "TE",
    "repetition_time": "TR",
}
TISSUES = {0: "background", 1: "fat", 2: "fgt"}


def as_batch(images: Any) -> torch.Tensor:
    """(N, 1, H, W) float32 CPU tensor from (N, H, W) or (N, 1, H, W) input."""
    t = (
        images.detach()
        if isinstance(images, torch.Tensor)
        else torch.from_numpy(np.asarray(images))
    )
    t = t.to("cpu", torch.float32)
    if t.ndim == 3:
        t = t[:, None]
    if t.ndim != 4 or t.shape[1] != 1:
        raise InputError(f"expected images shaped (N, H, W) or (N, 1, H, W), got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise InputError("images contain NaN or inf")
    return t


def _pair(a: Any, b: Any) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = as_batch(a), as_batch(b)
    if x.shape != y.shape:
        raise InputError(f"image sets differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    return x, y


def ssim_per_image(a: Any, b: Any, kernel_size: int = 11) -> np.ndarray:
    """SSIM of each pair ``a[i]``, ``b[i]`` (MONAI, data range 1, Gaussian kernel 11)."""
    from monai.metrics import SSIMMetric

    x, y = _pair(a, b)
    if min(x.shape[-2:]) < kernel_size:
        raise InputError(f"SSIM needs images of at least {kernel_size}x{kernel_size} pixels")
    metric = SSIMMetric(spatial_dims=2, data_range=1.0, win_size=kernel_size)
    return metric(y, x).reshape(-1).double().numpy()


def psnr_per_image(a: Any, b: Any, max_val: float = 1.0) -> np.ndarray:
    """PSNR in dB of each pair (MONAI ``PSNRMetric``); identical pairs give +inf."""
    from monai.metrics import PSNRMetric

    x, y = _pair(a, b)
    return PSNRMetric(max_val=max_val)(y, x).reshape(-1).double().numpy()


def finite_mean(values: Sequence[float] | np.ndarray) -> float:
    """Mean over finite values (NaN when there are none)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def mmd(a: Any, b: Any) -> float:
    """MONAI ``MMDMetric()`` (unbiased, linear kernel on pixels) between two image sets."""
    from monai.metrics import MMDMetric

    x, y = _pair(a, b)
    if x.shape[0] < 2:
        raise InputError("MMD needs at least two images per set")
    return float(MMDMetric()(x.double(), y.double()))


def fid(features_a: Any, features_b: Any) -> float:
    """Fréchet distance between two (N, F) feature sets (MONAI ``FIDMetric``).

    With fewer samples than features the covariances are singular; if MONAI's matrix square
    root then fails, ``1e-6`` is added to both diagonals (as MONAI itself does for non-finite
    results).
    """
    from monai.metrics import FIDMetric
    from monai.metrics.fid import _cov, compute_frechet_distance

    fa = torch.as_tensor(np.asarray(features_a), dtype=torch.float64)
    fb = torch.as_tensor(np.asarray(features_b), dtype=torch.float64)
    if fa.ndim != 2 or fb.ndim != 2 or fa.shape[1] != fb.shape[1]:
        raise InputError(f"FID needs (N, F) feature sets, got {tuple(fa.shape)}, {tuple(fb.shape)}")
    if min(fa.shape[0], fb.shape[0]) < 2:
        raise InputError("FID needs at least two feature vectors per set")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy's "singular matrix" note for N < F
            return max(0.0, float(FIDMetric()(fb, fa)))
    except ValueError:
        eye = torch.eye(fa.shape[1], dtype=torch.float64) * 1e-6
        ca, cb = _cov(fa, rowvar=False) + eye, _cov(fb, rowvar=False) + eye
        return max(0.0, float(compute_frechet_distance(fb.mean(0), cb, fa.mean(0), ca)))


# ---------------------------------------------------------------------- IAP prediction
def iap_scores(raw: Any, references: Sequence[IAPRecord], vocab: IAPVocabulary) -> dict[str, float]:
    """Top-1 accuracy (categorical, in [0, 1]) and MSE (continuous, physical units) per IAP.

    ``raw`` is the predictor's (N, vocab.dim) output; ``references`` the records to score
    against (target IAPs for edits). References are encoded with the predictor's vocabulary;
    a categorical reference value the vocabulary lacks counts as wrong.
    """
    out = raw.detach().float().cpu().numpy() if isinstance(raw, torch.Tensor) else np.asarray(raw)
    if out.ndim != 2 or out.shape != (len(references), vocab.dim):
        raise InputError(
            f"predictor output {out.shape} does not match {len(references)} records of a "
            f"{vocab.dim}-long vocabulary"
        )
    encoded = [_encode_or_none(vocab, r) for r in references]
    scores: dict[str, float] = {}
    for slot in vocab.slots:
        block = out[:, slot.start : slot.stop]
        if slot.categorical:
            hits = [
                vec is not None and int(np.argmax(b)) == int(np.argmax(vec[slot.start : slot.stop]))
                for b, vec in zip(block, encoded, strict=True)
            ]
            scores[slot.name] = float(np.mean(hits)) if hits else float("nan")
        else:
            pred = block[:, 0].astype(np.float64) * vocab.continuous_max(slot.name)
            true = np.array([float(getattr(r, slot.name)) for r in references])
            scores[slot.name] = float(np.mean((pred - true) ** 2)) if len(true) else float("nan")
    return {name: scores[name] for name in (*CATEGORICAL_IAPS, *CONTINUOUS_IAPS)}


def _encode_or_none(vocab: IAPVocabulary, record: IAPRecord) -> np.ndarray | None:
    """The record's vector (extrapolating continuous values silently), None if not encodable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return vocab.encode(record, allow_extrapolation=True)
    except IAPValueError:
        return None


# ---------------------------------------------------------------------- segmentation
def segmentation_scores(prediction: Any, truth: Any) -> dict[str, float]:
    """Dice and accuracy per tissue over a stack of (N, H, W) label maps.

    ``acc_<tissue>``: fraction of the tissue's pixels (over all slices) labelled correctly.
    ``dice_<tissue>``: mean over slices of the per-slice Dice, skipping slices where the tissue
    is absent from the ground truth (MONAI ``DiceMetric(ignore_empty=True)`` semantics).
    ``mean_dice``: mean of the fat and FGT Dice.
    """
    pred, true = np.asarray(prediction), np.asarray(truth)
    if pred.shape != true.shape or pred.ndim != 3:
        raise InputError(
            f"need two (N, H, W) label stacks of one shape, got {pred.shape}, {true.shape}"
        )
    scores: dict[str, float] = {}
    for label, acc in accuracy_per_label(pred, true, TISSUES).items():
        scores[f"acc_{TISSUES[label]}"] = acc
    for label in (1, 2):
        per_slice = [
            dice_per_label(p, t, (label,))[label]
            for p, t in zip(pred, true, strict=True)
            if (t == label).any()
        ]
        scores[f"dice_{TISSUES[label]}"] = finite_mean(per_slice)
    scores["mean_dice"] = finite_mean([scores["dice_fat"], scores["dice_fgt"]])
    return scores
