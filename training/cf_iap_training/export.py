"""Turn trained weights into a model bundle of the core (safetensors + JSON) with provenance.

``export_bundle`` is the only place that talks to ``napari_cf_iap.bundles.save_bundle``.
``checkpoint_state`` reads the weights of one of *our own* Lightning checkpoints (see
``load_checkpoint`` for the safety rule).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from napari_cf_iap.errors import BundleError
from napari_cf_iap.iap import IAPVocabulary

#: core bundle kind of each training model
BUNDLE_KIND = {"cddgm": "cddgm", "iap": "iap_predictor", "seg": "segmenter"}


def hardware() -> dict[str, Any]:
    """A short description of the machine that trained (for the model card)."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["cuda_devices"] = [
            torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
        ]
    return info


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load one of our own Lightning checkpoints (from a run directory this package wrote).

    Lightning checkpoints hold hyperparameters and optimiser state, so they are read with
    ``torch.load(weights_only=False)``, which can execute code embedded in the file. This is
    acceptable only for files this package wrote into the user's own run directory (resume and
    export); never point it at a downloaded file. Bundles, which are what gets shared, are
    safetensors + JSON and never unpickled.
    """
    try:
        return torch.load(Path(path), map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as exc:
        raise BundleError(f"cannot read checkpoint {path}: {exc}") from exc


def checkpoint_state(
    path: str | Path, prefix: str = "model."
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(network state dict, checkpoint info) of a Lightning checkpoint of ours.

    With EMA, Lightning's weight-averaging callback stores the averaged weights under
    ``state_dict`` (the raw ones under ``current_model_state``), so this returns the EMA weights.
    """
    ckpt = load_checkpoint(path)
    state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    if not state:
        raise BundleError(f"{path} holds no '{prefix}*' weights; is it a cf-iap-train checkpoint?")
    info = {"global_step": int(ckpt.get("global_step", 0)), "epoch": int(ckpt.get("epoch", 0))}
    return state, info


def export_bundle(
    out: str | Path,
    model: str,
    network: torch.nn.Module,
    config: Any,
    vocabulary: IAPVocabulary,
    *,
    preprocessing: dict[str, Any],
    provenance: dict[str, Any],
    metrics: dict[str, Any],
) -> Path:
    """Write ``network`` (its current weights) as a core bundle at ``out`` (replacing it)."""
    from napari_cf_iap.bundles import save_bundle

    provenance = {
        **provenance,
        "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "hardware": hardware(),
    }
    metrics = json.loads(json.dumps(metrics, default=float))
    inference_defaults = {"steps": 50, "guidance": 3.0} if model == "cddgm" else None
    return Path(
        save_bundle(
            network,
            config,
            out,
            kind=BUNDLE_KIND[model],
            vocab=vocabulary,
            preprocessing=preprocessing,
            provenance=provenance,
            metrics=metrics,
            inference_defaults=inference_defaults,
            overwrite=True,
        )
    )
