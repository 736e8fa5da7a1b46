"""Turn trained weights into a model bundle of the core (safetensors + JSON) with provenance.

``export_bundle`` is the only place that talks to ``napari_cf_iap.bundles.save_bundle``.
``checkpoint_state`` reads the weights of one of our own Lightning checkpoints, tensors and
plain data only (see ``load_checkpoint``).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
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


#: The only Python classes a checkpoint may hold besides tensors, containers, numbers and
#: strings: paths (inert values, in case a callback or hyper-parameter stores one). The
#: checkpoints train.py writes (all three models, with EMA, ModelCheckpoint and EarlyStopping
#: state) need none of them today (tests/test_export_safe_load.py checks this).
CHECKPOINT_SAFE_GLOBALS: list[Any] = [
    pathlib.PosixPath,
    pathlib.PurePosixPath,
    pathlib.PureWindowsPath,
]


def load_checkpoint(path: str | Path, *, mmap: bool = False) -> dict[str, Any]:
    """Load one of our own Lightning checkpoints (resume and export) without running code.

    Read with ``torch.load(weights_only=True)`` plus :data:`CHECKPOINT_SAFE_GLOBALS`: tensors,
    containers, numbers, strings and paths are rebuilt; anything else (a pickled object that
    could execute code) is refused with a :class:`BundleError` naming it. A file that is not a
    readable checkpoint (empty, truncated by a kill, of another kind) gets the importer's
    description of what it looks like. ``mmap`` maps the tensors instead of reading them
    (for a look at the small entries of a large checkpoint).
    """
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"checkpoint {path} does not exist")
    try:
        with torch.serialization.safe_globals(CHECKPOINT_SAFE_GLOBALS):
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # noqa: BLE001 - classified below
        found: list[str] = []
        with contextlib.suppress(Exception):
            allowed = {f"{g.__module__}.{g.__qualname__}" for g in CHECKPOINT_SAFE_GLOBALS}
            found = [
                name
                for name in torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
                if name not in allowed
            ]
        if found:
            raise BundleError(
                f"{path} holds pickled Python objects ({', '.join(found[:5])}) that "
                "cf-iap-train checkpoints never contain, so it was not written by this package "
                "(or was altered); it is refused and nothing in it was executed"
            ) from exc
        from napari_cf_iap.bundles.checkpoint_files import describe_load_failure

        raise describe_load_failure(path, exc) from exc
    if not isinstance(data, dict) or "state_dict" not in data:
        raise BundleError(f"{path} is not a Lightning checkpoint (no 'state_dict')")
    return data


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
