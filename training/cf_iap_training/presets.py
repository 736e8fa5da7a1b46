"""Training presets: ``paper`` (the authors' hyperparameters), ``default`` (what ships, trainable
on a CPU in a working day) and ``tiny`` (tests and smoke runs; only has to run).

``arch`` names the architecture preset of the core config (``CDDGMConfig.paper/small/tiny``,
likewise ``IAPPredictorConfig`` and ``SegmenterConfig``); ``arch_overrides`` changes single
fields. A step budget is ``max_steps`` (optimiser steps) and/or ``max_epochs``.

cDDGM timesteps: with ``t_max`` set, a fraction ``t_focus`` of the training timesteps is drawn
uniformly from ``[0, t_max)`` and the rest from the full ``[0, 1000)``. SDEdit edits only ever
start at t0 <= 75 (method-facts), so the ``default`` preset spends most of its small budget
where the edits happen while keeping the model valid at every noise level.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from napari_cf_iap.errors import InputError

MODELS = ("cddgm", "iap", "seg")
PRESETS = ("paper", "default", "tiny")


@dataclass(frozen=True)
class TrainPreset:
    """Everything a training run needs besides the data and the hardware flags."""

    name: str
    model: str
    arch: str
    image_size: int
    batch_size: int
    lr: float
    weight_decay: float
    max_steps: int = -1
    max_epochs: int | None = None
    arch_overrides: dict[str, Any] = field(default_factory=dict)
    #: validate every N optimiser steps (None = once per epoch)
    val_every_steps: int | None = None
    #: number of validation batches (None = all)
    val_batches: int | None = None
    #: EMA decay of the weights (None = no EMA); the bundle holds the EMA weights
    ema_decay: float | None = None
    #: cDDGM: probability of replacing the IAP vector by the null vector
    cond_dropout: float = 0.15
    #: cDDGM: focus timesteps on [0, t_max) with probability t_focus (None = uniform)
    t_max: int | None = None
    t_focus: float = 0.8
    #: segmenter: early-stopping patience in validations (None = off)
    patience: int | None = None
    #: also export a bundle every N optimiser steps (None = only at the end)
    bundle_every_steps: int | None = None
    #: random left/right flips
    flip: bool = True
    #: mixed precision used on GPU (CPU always trains in fp32: no native bf16)
    gpu_precision: str = "16-mixed"

    def replace(self, **changes: Any) -> TrainPreset:
        changes = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_PRESETS: dict[tuple[str, str], TrainPreset] = {
    # ---------------------------------------------------------------- cDDGM
    ("cddgm", "paper"): TrainPreset(
        name="paper",
        model="cddgm",
        arch="paper",
        image_size=224,
        batch_size=32,
        lr=1e-4,
        weight_decay=1e-3,
        max_epochs=15,
        gpu_precision="16-mixed",
    ),
    ("cddgm", "default"): TrainPreset(
        name="default",
        model="cddgm",
        arch="small",
        image_size=64,
        batch_size=16,
        lr=2e-4,
        weight_decay=1e-3,
        max_steps=12000,
        # one residual block per level and attention only at 8x8: 1.0 s/step at batch 16 on
        # 2 CPU threads instead of 2.1 s (measured), so twice the steps in a working day
        arch_overrides={"attention_levels": (False, False, False, True), "num_res_blocks": 1},
        val_every_steps=500,
        val_batches=16,
        ema_decay=0.999,
        t_max=200,
        t_focus=0.8,
        bundle_every_steps=500,
    ),
    ("cddgm", "tiny"): TrainPreset(
        name="tiny",
        model="cddgm",
        arch="tiny",
        image_size=32,
        batch_size=4,
        lr=1e-3,
        weight_decay=1e-3,
        max_steps=4,
        val_every_steps=2,
        val_batches=1,
        ema_decay=0.9,
        t_max=200,
    ),
    # ---------------------------------------------------------------- IAP predictor
    ("iap", "paper"): TrainPreset(
        name="paper",
        model="iap",
        arch="paper",
        image_size=224,
        batch_size=512,
        lr=1e-5,
        weight_decay=1e-4,
        max_epochs=30,
        flip=False,
    ),
    ("iap", "default"): TrainPreset(
        name="default",
        model="iap",
        arch="small",
        image_size=96,
        batch_size=32,
        lr=5e-4,
        weight_decay=1e-4,
        max_steps=3000,
        val_every_steps=250,
        val_batches=16,
        bundle_every_steps=500,
        flip=False,
    ),
    ("iap", "tiny"): TrainPreset(
        name="tiny",
        model="iap",
        arch="tiny",
        image_size=32,
        batch_size=4,
        lr=1e-3,
        weight_decay=1e-4,
        max_steps=4,
        val_every_steps=2,
        val_batches=1,
        flip=False,
    ),
    # ---------------------------------------------------------------- segmenter
    ("seg", "paper"): TrainPreset(
        name="paper",
        model="seg",
        arch="paper",
        image_size=224,
        batch_size=256,
        lr=2e-3,
        weight_decay=1e-3,
        max_epochs=500,
        patience=25,
    ),
    ("seg", "default"): TrainPreset(
        name="default",
        model="seg",
        arch="small",
        image_size=128,
        batch_size=16,
        lr=2e-3,
        weight_decay=1e-3,
        max_steps=4000,
        val_every_steps=200,
        val_batches=16,
        patience=10,
        arch_overrides={"channels": (16, 32, 64, 128, 256), "strides": (2, 2, 2, 2)},
        bundle_every_steps=1000,
    ),
    ("seg", "tiny"): TrainPreset(
        name="tiny",
        model="seg",
        arch="tiny",
        image_size=32,
        batch_size=4,
        lr=2e-3,
        weight_decay=1e-3,
        max_steps=4,
        val_every_steps=2,
        val_batches=1,
        patience=3,
    ),
}


def get_preset(model: str, name: str) -> TrainPreset:
    """The preset ``name`` of ``model`` (``cddgm``, ``iap`` or ``seg``)."""
    try:
        return _PRESETS[(model, name)]
    except KeyError:
        raise InputError(
            f"unknown preset {name!r} for {model!r}; choose one of {PRESETS} for one of {MODELS}"
        ) from None
