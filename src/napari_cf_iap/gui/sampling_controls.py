"""Guidance, noise steps, edit mode, sampler, DDIM steps, seed and extrapolation controls."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QSpinBox, QWidget

from ..pipeline.counterfactual import FALLBACK_DDIM_STEPS, FALLBACK_SAMPLER
from ..pipeline.edit_mode import FALLBACK_EDIT_MODE

BUNDLE_DEFAULT = "bundle default"


class SamplingControls(QWidget):
    """Sampler settings; ``request_kwargs()`` feeds :class:`CounterfactualRequest`."""

    changed = Signal()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.guidance = QDoubleSpinBox()
        self.guidance.setRange(-1.0, 20.0)  # the minimum stands for "bundle default"
        self.guidance.setSingleStep(0.5)
        self.guidance.setSpecialValueText(BUNDLE_DEFAULT)
        self.guidance.setValue(-1.0)
        self.guidance.setToolTip("Classifier-free guidance scale w (0 = conditional only)")
        form.addRow("Guidance", self.guidance)
        self.steps = QSpinBox()
        self.steps.setRange(0, 1000)  # 0 stands for "bundle default"
        self.steps.setSpecialValueText(BUNDLE_DEFAULT)
        self.steps.setToolTip("SDEdit noise level t0 (of 1000): higher edits more, keeps less")
        form.addRow("Noise steps", self.steps)
        self.edit_mode = QComboBox()
        self.edit_mode.addItems([BUNDLE_DEFAULT, "twin", "sdedit"])
        self.edit_mode.setToolTip(
            "sdedit: the paper's edit (re-renders noise and detail). twin: the same noise is "
            "also rendered with the source's own IAPs and only the difference is applied "
            "(keeps anatomy and noise; twice the time; needs the source's IAPs)"
        )
        form.addRow("Edit mode", self.edit_mode)
        self.sampler = QComboBox()
        self.sampler.addItems([BUNDLE_DEFAULT, "DDIM", "DDPM"])
        self.sampler.setToolTip(
            "DDIM: few deterministic steps (fast). DDPM: the paper's t0 steps. "
            "Bundle default: the sampler (and DDIM steps) the model was checked with"
        )
        form.addRow("Sampler", self.sampler)
        self.ddim_steps = QSpinBox()
        self.ddim_steps.setRange(1, 200)
        self.ddim_steps.setValue(10)
        form.addRow("DDIM steps", self.ddim_steps)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        form.addRow("Seed", self.seed)
        self.extrapolate = QCheckBox("allow IAPs outside the trained range")
        form.addRow("", self.extrapolate)
        for signal in (
            self.guidance.valueChanged,
            self.steps.valueChanged,
            self.edit_mode.currentTextChanged,
            self.sampler.currentTextChanged,
            self.ddim_steps.valueChanged,
            self.seed.valueChanged,
            self.extrapolate.toggled,
        ):
            signal.connect(self._emit)
        self._emit()

    def set_defaults(self, defaults: dict[str, Any]) -> None:
        """Show the bundle's recommended steps/guidance in the 'bundle default' entries."""
        steps, guidance = defaults.get("steps"), defaults.get("guidance")
        self.steps.setSpecialValueText(f"{BUNDLE_DEFAULT} ({steps})" if steps else BUNDLE_DEFAULT)
        text = f"{BUNDLE_DEFAULT} ({guidance:g})" if guidance is not None else BUNDLE_DEFAULT
        self.guidance.setSpecialValueText(text)
        mode = defaults.get("edit_mode", FALLBACK_EDIT_MODE)
        self.edit_mode.setItemText(0, f"{BUNDLE_DEFAULT} ({mode})")
        sampler = str(defaults.get("sampler", FALLBACK_SAMPLER)).upper()
        if sampler == "DDIM":
            sampler += f"-{defaults.get('ddim_steps', FALLBACK_DDIM_STEPS)}"
        self.sampler.setItemText(0, f"{BUNDLE_DEFAULT} ({sampler})")

    def _emit(self, *_: Any) -> None:
        self.ddim_steps.setEnabled(self.sampler.currentText() == "DDIM")  # chosen explicitly
        self.changed.emit()

    def request_kwargs(self) -> dict[str, Any]:
        guidance = self.guidance.value()
        return {
            "guidance": None if guidance <= self.guidance.minimum() else float(guidance),
            "steps": self.steps.value() or None,
            "edit_mode": self.edit_mode.currentText() if self.edit_mode.currentIndex() else None,
            "sampler": self.sampler.currentText().lower() if self.sampler.currentIndex() else None,
            "ddim_steps": self.ddim_steps.value() if self.sampler.currentIndex() else None,
            "seed": self.seed.value(),
            "allow_extrapolation": self.extrapolate.isChecked(),
        }
