"""Classical baselines an edit must beat on ground truth.

- ``do_nothing``: the unedited input (a counterfactual that changes nothing);
- ``histogram_match``: each input's intensity histogram matched (scikit-image
  ``exposure.match_histograms``) to a reference image acquired with the target protocol — in
  the evaluation, the test image whose IAPs were borrowed (another patient, same target IAPs).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_cf_iap.errors import InputError


def do_nothing(images: Any) -> np.ndarray:
    """A float32 copy of ``images`` (N, H, W)."""
    return np.array(images, dtype=np.float32, copy=True)


def histogram_match(images: Any, references: Any) -> np.ndarray:
    """``images[i]`` histogram-matched to ``references[i]``; (N, H, W) float32, inputs unchanged."""
    from skimage.exposure import match_histograms

    src, ref = np.asarray(images, dtype=np.float32), np.asarray(references, dtype=np.float32)
    if src.ndim != 3 or src.shape[0] != ref.shape[0] or ref.ndim != 3:
        raise InputError(
            f"need (N, H, W) images and N reference images, got {src.shape} and {ref.shape}"
        )
    return np.stack([match_histograms(s, r) for s, r in zip(src, ref, strict=True)]).astype(
        np.float32
    )
