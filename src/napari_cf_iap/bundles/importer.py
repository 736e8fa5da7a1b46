"""Import the authors' published cDDGM checkpoints as napari-cf-iap bundles.

The authors trained a PyTorch Lightning module whose ``model`` attribute is a monai-generative
``DiffusionModelUNet`` with the hybrid conditioning (``class_embedding`` = Linear(D, 4*ch0,
bias=False) + SiLU). A ``.ckpt`` therefore holds ``state_dict`` (keys prefixed ``model.``)
and ``hyper_parameters`` (``unet_hprams``, ``model_hparams``, ``noise_scheduler_hprams``).

Safety: the file is read with ``torch.load(weights_only=True)``, which rebuilds only tensors
and plain containers; a checkpoint that carries other pickled objects is refused with a
:class:`BundleError` and nothing in it is executed; a file that is no checkpoint at all
(empty, truncated, text, safetensors, unknown bytes) is named as such, with what to do. Old
monai-generative key names are mapped by MONAI's ``DiffusionModelUNet.load_old_state_dict``.
The authors' ``use_flash_attention`` (xformers) is replaced by PyTorch SDPA. The IAP vocabulary
is not stored in the checkpoint: the caller must supply the one the checkpoint was trained with
(its length is checked; the order of the categories cannot be checked and must follow the
vocabulary layout).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import BundleError
from ..iap.vocabulary import IAPVocabulary
from ..models.cddgm import ConditionalDenoiser
from ..models.config import CDDGMConfig
from .bundle import _json_default, default_preprocessing, save_bundle, sha256_file
from .checkpoint_files import describe_load_failure

# UNet options of the old network that our builder fixes; other values cannot be imported.
_FIXED_OPTIONS: dict[str, Any] = {
    "spatial_dims": 2,
    "out_channels": 1,
    "resblock_updown": False,
    "upcast_attention": False,
    "norm_eps": 1e-6,
    "with_conditioning": True,
}


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint's tensors and plain data only; never run pickled code.

    A file that ``torch.load(weights_only=True)`` refuses is told apart as either (a) a real
    checkpoint that pickles Python objects (refused for safety, with how to convert it) or (b)
    not a readable checkpoint at all (empty, truncated, text, safetensors, unknown bytes), with
    what the file looks like and what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure is classified and re-raised below
        raise describe_load_failure(path, exc) from exc
    if not isinstance(data, Mapping):
        raise BundleError(f"{path} holds a {type(data).__name__}, not a checkpoint dictionary")
    return dict(data)


def extract_state_dict(
    checkpoint: Mapping[str, Any], prefix: str = "model."
) -> dict[str, torch.Tensor]:
    """The UNet tensors: ``state_dict`` entries under ``prefix`` (or a bare UNet state dict)."""
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping):
        raise BundleError("the checkpoint's 'state_dict' is not a dictionary")
    if any(k.startswith(prefix) for k in state):
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    state = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if "conv_in.conv.weight" not in state:
        raise BundleError(
            "the checkpoint holds no DiffusionModelUNet weights (no 'conv_in.conv.weight'); "
            f"is it a cDDGM checkpoint with the network under '{prefix}'?"
        )
    if "class_embedding.weight" in state and "class_embedding.0.weight" not in state:
        state["class_embedding.0.weight"] = state.pop("class_embedding.weight")
    if "class_embedding.0.weight" not in state:
        raise BundleError(
            "the checkpoint has no Linear class embedding ('class_embedding.0.weight'); only "
            "the paper's hybrid conditioning can be imported"
        )
    return state


def _single(value: Any, name: str) -> int:
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise BundleError(f"per-level {name} {value} is not supported; all levels must match")
        value = value[0]
    return int(value)


def config_from_hparams(hparams: Mapping[str, Any], iap_dim: int) -> CDDGMConfig:
    """A :class:`CDDGMConfig` from the authors' Lightning ``hyper_parameters``."""
    unet = dict(hparams.get("unet_hprams") or hparams.get("unet_hparams") or {})
    model = dict(hparams.get("model_hparams") or {})
    sched = dict(
        hparams.get("noise_scheduler_hprams") or hparams.get("noise_scheduler_hparams") or {}
    )
    channels = unet.get("num_channels", unet.get("channels"))
    if not unet or channels is None or "attention_levels" not in unet:
        raise BundleError(
            "the checkpoint's hyper_parameters do not describe the UNet (need unet_hprams with "
            "num_channels and attention_levels); pass the architecture as a config JSON"
        )
    if model.get("conditioning", "hybrid") != "hybrid":
        raise BundleError(f"conditioning {model['conditioning']!r} is not supported; only 'hybrid'")
    for key, want in _FIXED_OPTIONS.items():
        if key in unet and unet[key] != want:
            raise BundleError(f"UNet option {key}={unet[key]!r} is not supported (need {want!r})")
    in_channels = int(unet.get("in_channels", 2 if model.get("with_segmentation") else 1))
    size = model.get("spatial_size", 224)
    size = int(size[0] if isinstance(size, (list, tuple)) else size)
    if sched.get("prediction_type", "epsilon") != "epsilon":
        raise BundleError(f"prediction_type {sched['prediction_type']!r} is not supported")
    return CDDGMConfig(
        iap_dim=iap_dim,
        image_size=size,
        in_channels=in_channels,
        channels=tuple(int(c) for c in channels),
        attention_levels=tuple(bool(a) for a in unet["attention_levels"]),
        num_res_blocks=_single(unet.get("num_res_blocks", 2), "num_res_blocks"),
        num_head_channels=_single(unet.get("num_head_channels", 8), "num_head_channels"),
        transformer_num_layers=int(unet.get("transformer_num_layers", 1)),
        norm_num_groups=int(unet.get("norm_num_groups", 32)),
        num_train_timesteps=int(sched.get("num_train_timesteps", 1000)),
        schedule=str(sched.get("schedule", "cosine")),
        cond_dropout=float(model.get("features_dropout", 0.15)),
    )


def _coerce_config(config: CDDGMConfig | Mapping[str, Any] | str | Path) -> CDDGMConfig:
    if isinstance(config, CDDGMConfig):
        return config
    if isinstance(config, (str, Path)):
        try:
            config = json.loads(Path(config).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise BundleError(f"cannot read the config JSON {config}: {exc}") from exc
    if not isinstance(config, Mapping):
        raise BundleError("config must be a CDDGMConfig, a mapping or a JSON file path")
    return CDDGMConfig.from_dict(config)


def convert_state_dict(
    state: Mapping[str, torch.Tensor], config: CDDGMConfig
) -> ConditionalDenoiser:
    """A :class:`ConditionalDenoiser` holding the old-format ``state`` (every tensor checked)."""
    if config.context_mode != "single_token":
        raise BundleError("the authors' checkpoints use the single-token context; set context_mode")
    model = ConditionalDenoiser(config)
    unet = model.unet
    with torch.no_grad():  # mark every weight, so that any weight not loaded is detected
        for tensor in unet.state_dict().values():
            if tensor.is_floating_point():
                tensor.fill_(float("nan"))
    old = {k: v.detach().float() if v.is_floating_point() else v for k, v in state.items()}
    expected = set(unet.state_dict())
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            unet.load_old_state_dict(old)
    except KeyError as exc:
        raise BundleError(
            f"the checkpoint lacks the tensor {exc} needed by the architecture in the config; "
            "check channels, attention_levels and num_res_blocks"
        ) from exc
    except RuntimeError as exc:
        raise BundleError(
            f"the checkpoint's tensors do not fit the architecture in the config: {exc}"
        ) from exc
    leftover = sorted(set(old) - expected)
    if leftover:
        raise BundleError(
            f"{len(leftover)} checkpoint tensor(s) have no place in the configured network "
            f"(e.g. {leftover[:3]}); the config does not match the checkpoint"
        )
    unloaded = [
        k for k, v in unet.state_dict().items() if v.is_floating_point() and torch.isnan(v).any()
    ]
    if unloaded:
        raise BundleError(
            f"{len(unloaded)} network tensor(s) were not in the checkpoint (e.g. {unloaded[:3]}) "
            "or hold NaN; the config does not match the checkpoint"
        )
    return model.eval()


def import_authors_checkpoint(
    ckpt_path: str | Path,
    out_dir: str | Path,
    *,
    vocab: IAPVocabulary,
    config: CDDGMConfig | Mapping[str, Any] | str | Path | None = None,
    image_size: int | None = None,
    overwrite: bool = False,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Convert an authors' Lightning ``.ckpt`` into a cDDGM bundle at ``out_dir``.

    ``vocab`` must be the vocabulary the checkpoint was trained with (e.g.
    ``IAPVocabulary.duke_default()`` for Duke). ``config`` (a ``CDDGMConfig``, mapping or JSON
    path) overrides what is read from the checkpoint's ``hyper_parameters``; ``image_size``
    overrides the image size.
    """
    ckpt_path = Path(ckpt_path)
    checkpoint = read_checkpoint(ckpt_path)
    state = extract_state_dict(checkpoint)
    weight = state["class_embedding.0.weight"]
    if weight.ndim != 2:
        raise BundleError(
            f"class_embedding weight has shape {tuple(weight.shape)}, expected (4*ch0, D)"
        )
    iap_dim = int(weight.shape[1])
    if vocab.dim != iap_dim:
        raise BundleError(
            f"the checkpoint conditions on IAP vectors of length {iap_dim} but the vocabulary "
            f"has length {vocab.dim}; supply the vocabulary the checkpoint was trained with"
        )
    hparams = checkpoint.get("hyper_parameters") or {}
    if config is not None:
        cfg = _coerce_config(config)
    elif hparams:
        cfg = config_from_hparams(hparams, iap_dim)
    else:
        raise BundleError(
            f"{ckpt_path} has no hyper_parameters describing the network; pass the architecture "
            "as a config (CDDGMConfig fields as JSON)"
        )
    if image_size is not None:
        cfg = cfg.replace(image_size=int(image_size))
    if cfg.iap_dim != iap_dim:
        raise BundleError(f"config iap_dim {cfg.iap_dim} differs from the checkpoint's {iap_dim}")
    model = convert_state_dict(state, cfg)

    unet_hp = dict(hparams.get("unet_hprams") or {})
    meta = {
        "source": "authors' checkpoint (pedromorao/Counterfactual-MRI-Data-Augmentation format)",
        "checkpoint": ckpt_path.name,
        "checkpoint_sha256": sha256_file(ckpt_path),
        "epoch": checkpoint.get("epoch"),
        "global_step": checkpoint.get("global_step"),
        "lightning_version": checkpoint.get("pytorch-lightning_version"),
        "attention": (
            "source used use_flash_attention="
            f"{unet_hp.get('use_flash_attention', False)} (xformers); imported with PyTorch SDPA"
        ),
        "hyper_parameters": json.loads(json.dumps(hparams, default=_json_default)),
        "vocabulary_note": "supplied at import; the category order must match the training run",
        **dict(provenance or {}),
    }
    defaults = {"steps": 50, "guidance": 3.0}  # the paper's segmentation-augmentation setting
    return save_bundle(
        model,
        cfg,
        out_dir,
        kind="cddgm",
        vocab=vocab,
        preprocessing=default_preprocessing(cfg.image_size),
        provenance=meta,
        inference_defaults=defaults,
        overwrite=overwrite,
    )
