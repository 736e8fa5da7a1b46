"""Acceptance checks for the default bundles, on fresh simulated subjects (never trained on).

Each held-out subject is simulated twice with the same anatomy: with a source protocol of one
manufacturer and with a target protocol of the other, so the true re-acquisition is known.

* IAP predictor: top-1 manufacturer accuracy on the unedited slices (threshold 95 %), and the
  share of cDDGM edits it assigns to the target manufacturer (threshold 70 %).
* cDDGM: the edit beats "do nothing" on MAE to the truth, and the fat/FGT contrast moves
  towards the truth's: the mean over subjects of |ratio(edit) - ratio(truth)| is smaller than
  that of |ratio(source) - ratio(truth)| (per subject, so GE->SIEMENS and SIEMENS->GE edits
  cannot cancel out).
* Segmenter: mean Dice of fat and FGT against the simulator's labels (threshold 0.85).

The truth is a re-acquisition with fresh noise, coil fields and fat-saturation efficiency,
whose own randomness no edit can know. For information the report also gives the contrast
gaps against the *same* acquisition under the target IAPs (``*_same_acquisition``): there
only the IAPs differ, so the gap measures the IAP-driven contrast change alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from napari_cf_iap.fidelity import fidelity
from napari_cf_iap.metrics_basic import dice_per_label
from napari_cf_iap.pipeline import (
    CounterfactualRequest,
    generate_counterfactual,
    predict_iap_per_slice,
    segment,
)

THRESHOLDS = {
    "manufacturer_accuracy": 0.95,
    "edit_flip_rate": 0.70,
    "mean_dice": 0.85,
}


@dataclass
class AcceptanceConfig:
    """Held-out subjects: seeds far from any training seed, Duke-like geometry."""

    subjects: int = 8
    seed: int = 900_000
    shape: tuple[int, int, int] = (60, 224, 224)
    drop_slices: int = 18
    edit_slices: int = 6
    steps: int | None = None
    guidance: float | None = None
    edit_mode: str | None = None
    sampler: str | None = None
    ddim_steps: int | None = None
    device: str = "auto"


@dataclass
class AcceptanceReport:
    manufacturer_accuracy: float | None = None
    edit_flip_rate: float | None = None
    mae_edit: float | None = None
    mae_nothing: float | None = None
    ratio_source: float | None = None
    ratio_edit: float | None = None
    ratio_truth: float | None = None
    ratio_gap_edit: float | None = None
    ratio_gap_nothing: float | None = None
    ratio_gap_edit_same_acquisition: float | None = None
    ratio_gap_nothing_same_acquisition: float | None = None
    dice_fat: float | None = None
    dice_fgt: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def mean_dice(self) -> float | None:
        if self.dice_fat is None or self.dice_fgt is None:
            return None
        return (self.dice_fat + self.dice_fgt) / 2

    def verdicts(self) -> dict[str, bool | None]:
        """Pass/fail of each acceptance criterion (None where it was not measured)."""

        def at_least(value: float | None, name: str) -> bool | None:
            return None if value is None else value >= THRESHOLDS[name]

        beats = None if self.mae_edit is None else self.mae_edit < self.mae_nothing
        towards = None
        if self.ratio_gap_edit is not None:
            towards = self.ratio_gap_edit < self.ratio_gap_nothing
        return {
            "iap: manufacturer accuracy >= 95%": at_least(
                self.manufacturer_accuracy, "manufacturer_accuracy"
            ),
            "iap: edits flip to target >= 70%": at_least(self.edit_flip_rate, "edit_flip_rate"),
            "cddgm: edit beats do-nothing (MAE to truth)": beats,
            "cddgm: fat/FGT contrast moves towards truth": towards,
            "seg: mean Dice >= 0.85": at_least(self.mean_dice, "mean_dice"),
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean_dice"] = self.mean_dice
        data["verdicts"] = self.verdicts()
        return data


def _subjects(config: AcceptanceConfig):
    """Yield (source acquisition, truth acquisition, phantom), alternating GE->Siemens and back.

    The target protocol has the other manufacturer *and* the other field strength (issue #5:
    "edit towards another manufacturer and field strength"); the truth is acquired with its
    own seed, so its noise, coil fields and fat-saturation efficiency are fresh.
    """
    from napari_cf_iap.simulator import acquire, make_phantom, sample_protocol

    rng = np.random.default_rng(config.seed)
    for i in range(config.subjects):
        source_maker, target_maker = ("GE", "SIEMENS") if i % 2 == 0 else ("SIEMENS", "GE")
        phantom = make_phantom(config.seed + i, config.shape)
        source_iap = sample_protocol(rng, source_maker)
        target_iap = _other_field_protocol(rng, target_maker, source_iap.field_strength)
        source = acquire(phantom, source_iap, seed=config.seed + i)
        truth = acquire(phantom, target_iap, seed=config.seed + 10_000 + i)
        yield source, truth, phantom


def _same_acquisition(config: AcceptanceConfig, i: int, phantom: Any, iap: Any) -> Any:
    """Subject ``i``'s source acquisition (same seed: noise, coil fields, fat-sat efficiency)
    under ``iap`` instead: the truth without re-acquisition randomness."""
    from napari_cf_iap.simulator import acquire

    return acquire(phantom, iap, seed=config.seed + i).volume


def _other_field_protocol(rng: np.random.Generator, maker: str, field_strength: float):
    """A protocol of ``maker`` drawn from the mix, at a field strength other than the given."""
    from napari_cf_iap.simulator import sample_protocol

    for _ in range(1000):
        iap = sample_protocol(rng, maker)
        if float(iap.field_strength) != float(field_strength):
            return iap
    raise ValueError(f"the protocol mix has no {maker} protocol away from {field_strength} T")


def run_acceptance(
    config: AcceptanceConfig,
    bundles: dict[str, Any],
    progress: Callable[[int, int, str], None] | None = None,
) -> AcceptanceReport:
    """Measure each criterion whose bundles are given (keys: cddgm, iap_predictor, segmenter)."""
    report = AcceptanceReport(settings=asdict(config))
    kept = slice(config.drop_slices, config.shape[0] - config.drop_slices)
    middle = np.arange(config.shape[0])[kept]
    edit_idx = middle[np.linspace(0, len(middle) - 1, config.edit_slices).round().astype(int)]
    correct, seen, flipped, edited, dice, fid, same = 0, 0, 0, 0, [], [], []
    for i, (source, truth, phantom) in enumerate(_subjects(config)):
        if progress:
            progress(i, config.subjects, "acceptance subject")
        if bundles.get("iap_predictor"):
            for acq in (source, truth):
                preds = predict_iap_per_slice(
                    acq.volume, bundles["iap_predictor"], slices=middle, device=config.device
                )
                correct += sum(p.record.manufacturer == acq.volume.iap.manufacturer for p in preds)
                seen += len(preds)
        if bundles.get("segmenter"):
            labels = segment(source.volume, bundles["segmenter"], device=config.device)
            dice.append(dice_per_label(labels[kept], source.labels[kept]))
        if bundles.get("cddgm"):
            request = CounterfactualRequest(
                target=truth.volume.iap,
                steps=config.steps,
                guidance=config.guidance,
                edit_mode=config.edit_mode,
                sampler=config.sampler,
                ddim_steps=config.ddim_steps,
                slices=edit_idx.tolist(),
                seed=config.seed + i,
            )
            cf = generate_counterfactual(
                source.volume, request, bundles["cddgm"], device=config.device
            )
            fid.append(
                fidelity(
                    source.volume.data[edit_idx],
                    cf.data[edit_idx],
                    truth.volume.data[edit_idx],
                    source.labels[edit_idx],
                )
            )
            same.append(
                fidelity(
                    source.volume.data[edit_idx],
                    cf.data[edit_idx],
                    _same_acquisition(config, i, phantom, truth.volume.iap).data[edit_idx],
                    source.labels[edit_idx],
                )
            )
            report.settings["steps_used"] = cf.metadata["counterfactual"]["steps"]
            report.settings["guidance_used"] = cf.metadata["counterfactual"]["guidance"]
            report.settings["edit_mode_used"] = cf.metadata["counterfactual"]["edit_mode"]
            report.settings["sampler_used"] = cf.metadata["counterfactual"]["sampler"]
            report.settings["ddim_steps_used"] = cf.metadata["counterfactual"]["ddim_steps"]
            if bundles.get("iap_predictor"):
                preds = predict_iap_per_slice(
                    cf, bundles["iap_predictor"], slices=edit_idx, device=config.device
                )
                flipped += sum(
                    p.record.manufacturer == truth.volume.iap.manufacturer for p in preds
                )
                edited += len(preds)
    if seen:
        report.manufacturer_accuracy = correct / seen
    if edited:
        report.edit_flip_rate = flipped / edited
    if dice:
        report.dice_fat = float(np.nanmean([d[1] for d in dice]))
        report.dice_fgt = float(np.nanmean([d[2] for d in dice]))
    if fid:
        for name in ("mae_edit", "mae_nothing", "ratio_source", "ratio_edit", "ratio_truth"):
            setattr(report, name, float(np.nanmean([getattr(f, name) for f in fid])))
        report.ratio_gap_edit = float(np.nanmean([abs(f.ratio_edit - f.ratio_truth) for f in fid]))
        report.ratio_gap_nothing = float(
            np.nanmean([abs(f.ratio_source - f.ratio_truth) for f in fid])
        )
    if same:
        report.ratio_gap_edit_same_acquisition = float(
            np.nanmean([abs(f.ratio_edit - f.ratio_truth) for f in same])
        )
        report.ratio_gap_nothing_same_acquisition = float(
            np.nanmean([abs(f.ratio_source - f.ratio_truth) for f in same])
        )
    if progress:
        progress(config.subjects, config.subjects, "acceptance done")
    return report
