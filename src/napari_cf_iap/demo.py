"""The main job on the embedded default: simulate, edit, predict, segment, score.

A GE 1.5 T volume is simulated, edited to a Siemens 3 T protocol with the cDDGM, and the
same anatomy is also *acquired* under that protocol, so the edit is scored against the
ground-truth re-acquisition. Used by ``cf-iap demo`` (and reusable from Python).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fidelity import FidelityReport, fidelity
from .iap.vocabulary import PredictedIAP
from .metrics_basic import dice_per_label
from .pipeline import CounterfactualRequest, generate_counterfactual, predict_iap, segment
from .pipeline.requests import ProgressCallback
from .volume import Volume


@dataclass
class DemoResult:
    source: Volume
    counterfactual: Volume
    truth: Volume
    labels: np.ndarray
    predicted_source: PredictedIAP
    predicted_counterfactual: PredictedIAP
    seg_source: np.ndarray
    seg_counterfactual: np.ndarray
    report: FidelityReport

    def dice(self) -> dict[str, dict[int, float]]:
        return {
            "source": dice_per_label(self.seg_source, self.labels),
            "counterfactual": dice_per_label(self.seg_counterfactual, self.labels),
        }


def run_demo(
    *,
    seed: int = 7,
    shape: tuple[int, int, int] = (24, 160, 160),
    request_overrides: dict | None = None,
    device: str = "auto",
    bundles: dict[str, str | None] | None = None,
    progress: ProgressCallback | None = None,
) -> DemoResult:
    """Run the whole demo in memory; ``progress(done, total, message)`` reports each stage."""
    from .simulator import acquire, make_phantom
    from .simulator.reference_protocols import GE_15T, SIEMENS_3T

    bundles = bundles or {}
    source_iap, target_iap = GE_15T, SIEMENS_3T
    report = progress or (lambda done, total, message: None)

    report(0, 5, "simulating")
    phantom = make_phantom(seed, shape)
    source = acquire(phantom, source_iap, seed=seed)
    truth = acquire(phantom, target_iap, seed=seed + 1)

    report(1, 5, "counterfactual")
    request = CounterfactualRequest(target=target_iap, seed=seed, **(request_overrides or {}))
    edited = generate_counterfactual(source.volume, request, bundles.get("cddgm"), device=device)
    report(2, 5, "IAP prediction")
    pred_src = predict_iap(source.volume, bundles.get("iap_predictor"), device=device)
    pred_cf = predict_iap(edited, bundles.get("iap_predictor"), device=device)
    report(3, 5, "segmentation")
    seg_src = segment(source.volume, bundles.get("segmenter"), device=device)
    seg_cf = segment(edited, bundles.get("segmenter"), device=device)
    report(4, 5, "scoring")
    score = fidelity(source.volume.data, edited.data, truth.volume.data, source.labels)
    report(5, 5, "done")
    return DemoResult(
        source=source.volume,
        counterfactual=edited,
        truth=truth.volume,
        labels=source.labels,
        predicted_source=pred_src,
        predicted_counterfactual=pred_cf,
        seg_source=seg_src,
        seg_counterfactual=seg_cf,
        report=score,
    )
