"""Behaviour shared by the three Lightning modules."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl


class TrainingModule(pl.LightningModule):
    """Base class: ``self.model`` is the network that gets bundled.

    ``--max-time`` limits each invocation, not the sum over resumes: the Timer state is dropped
    from a checkpoint when it is loaded (Lightning would otherwise stop a resumed run at once).
    """

    kind = ""

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        callbacks = checkpoint.get("callbacks") or {}
        for key in [k for k in callbacks if str(k).startswith("Timer")]:
            del callbacks[key]
