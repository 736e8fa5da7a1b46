"""Edit an :class:`EditSet` with a cDDGM and score any set of edited images on every metric.

A *method* is a name plus (N, S, S) images aligned with the edit set: the cDDGM at one
(steps, guidance), "Without cDDGM" (the input unchanged) or histogram matching. Each is scored
on the paper's metrics (FID, SSIM orig./shuffled vs modified, MMD: Table 3; predictor fooling
against the target IAPs: Table 4) and, on simulated data, against the ground-truth
re-acquisition: SSIM, PSNR, breast MAE and fat/FGT contrast-ratio error. For the ground-truth
comparison every image is re-normalised per slice (10th -> 0, 99th -> 1) with the lead's
:func:`napari_cf_iap.fidelity.normalise_per_slice`, because an edit's intensity scale is
arbitrary; MAE and the contrast ratio reuse :mod:`napari_cf_iap.fidelity`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from napari_cf_iap.errors import InputError
from napari_cf_iap.fidelity import fat_fgt_ratio, masked_mae, normalise_per_slice

from .edit_set import EditSet
from .ground_truth import TruthSlices
from .metrics import fid, finite_mean, iap_scores, mmd, psnr_per_image, ssim_per_image

Progress = Callable[[int, int, str], None]
NO_EDIT = "Without cDDGM"
HIST_MATCH = "Histogram matching"


def bundle_label(bundle: Any) -> str:
    """``<run>/bundle`` or the bundle folder's name, with the start of its sha256."""
    path = bundle.path
    name = f"{path.parent.name}/{path.name}" if path.name == "bundle" else path.name
    return f"{name} (sha256 {bundle.sha256[:12]})"


def setting_name(steps: int, guidance: float) -> str:
    """The paper's row label of one sweep setting."""
    return f"# steps: {int(steps)}; gs: {guidance:g}"


def edit_with_bundle(
    bundle: Any,
    edit_set: EditSet,
    steps: int,
    guidance: float,
    *,
    sampler: str = "ddpm",
    batch_size: int = 16,
    device: str = "auto",
    progress: Progress | None = None,
) -> np.ndarray:
    """The cDDGM's edits of ``edit_set`` towards its target IAPs: (N, S, S) float32."""
    from napari_cf_iap.sampling.counterfactual import CounterfactualSampler

    size = int(bundle.config.image_size)
    if edit_set.size != size:
        raise InputError(f"the edit set is {edit_set.size}^2 but the cDDGM takes {size}^2 slices")
    if int(bundle.config.in_channels) != 1:
        raise InputError("evaluating cDDGMs with a segmentation input channel is not supported")
    sampler_ = CounterfactualSampler(bundle.model, bundle.vocab, device=device)
    out = sampler_.generate(
        edit_set.images[:, None],
        edit_set.target_vectors(bundle.vocab),
        steps=steps,
        guidance=guidance,
        sampler=sampler,
        seeds=edit_set.seeds,
        batch_size=batch_size,
        progress=progress,
    )
    return out[:, 0].numpy()


@dataclass
class Scorer:
    """Scores methods on one edit set with one predictor and one FID feature extractor."""

    edit_set: EditSet
    predictor: Any  # a loaded iap_predictor bundle
    extractor: Any  # a features.FeatureExtractor
    truth: TruthSlices | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        self._original_features = self.extractor(self.edit_set.images)

    def predict_raw(self, images: np.ndarray) -> torch.Tensor:
        """The predictor's raw outputs for (N, S, S) images (resized to its input size)."""
        return predict_raw(self.predictor, images, device=self.device)

    def score(self, method: str, edited: np.ndarray) -> dict[str, Any]:
        """Every metric of one method's images (see the module docstring)."""
        es = self.edit_set
        edited = np.asarray(edited, dtype=np.float32)
        if edited.shape != es.images.shape:
            raise InputError(f"{method}: edits {edited.shape} vs edit set {es.images.shape}")
        result: dict[str, Any] = {"method": method, "n": len(es)}
        result["fid"] = fid(self._original_features, self.extractor(edited))
        result["ssim_orig"] = finite_mean(ssim_per_image(es.images, edited))
        result["ssim_shuffled"] = finite_mean(ssim_per_image(es.donor_images, edited))
        result["mmd"] = mmd(es.images, edited)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = self.predict_raw(edited)
        result["fooling"] = iap_scores(raw, es.target_records, self.predictor.vocab)
        if self.truth is not None:
            result["gt"] = ground_truth_scores(edited, self.truth)
        return result


def ground_truth_scores(edited: np.ndarray, truth: TruthSlices) -> dict[str, float]:
    """SSIM, PSNR, breast MAE and fat/FGT-ratio error of ``edited`` against the truth."""
    ed, tr = normalise_per_slice(edited), normalise_per_slice(truth.images)
    breast = truth.labels > 0
    ratio_errors = [
        abs(fat_fgt_ratio(e, lab) - fat_fgt_ratio(t, lab))
        for e, t, lab in zip(ed, tr, truth.labels, strict=True)
    ]
    return {
        "ssim": finite_mean(ssim_per_image(ed, tr)),
        "psnr": finite_mean(psnr_per_image(ed, tr)),
        "mae": masked_mae(ed, tr, breast) if breast.any() else masked_mae(ed, tr),
        "ratio_error": finite_mean(ratio_errors),
    }


def predict_raw(
    bundle: Any, images: np.ndarray, device: str = "cpu", batch: int = 64
) -> torch.Tensor:
    """Raw IAP-predictor outputs (N, dim) for (N, S, S) images in [0, 1]."""
    from napari_cf_iap.device import resolve_device

    from ..dataset import resize_image

    dev = resolve_device(device)
    model = bundle.model.to(dev).eval()
    size = int(bundle.config.image_size)
    x = torch.from_numpy(np.asarray(images, dtype=np.float32))[:, None]
    outs = []
    with torch.inference_mode():
        for start in range(0, len(x), batch):
            outs.append(model(resize_image(x[start : start + batch], size).to(dev)).float().cpu())
    return torch.cat(outs) if outs else torch.zeros((0, bundle.vocab.dim))


def beats_baselines(row: dict[str, Any], baselines: list[dict[str, Any]]) -> bool | None:
    """True when the row's ground-truth SSIM *and* PSNR beat every baseline's (None: no truth)."""
    if "gt" not in row or any("gt" not in b for b in baselines):
        return None
    return all(
        row["gt"]["ssim"] > b["gt"]["ssim"] and row["gt"]["psnr"] > b["gt"]["psnr"]
        for b in baselines
    )
