"""Model bundles: a directory with ``weights.safetensors`` and ``bundle.json``.

``bundle.json`` holds the format name and version, the kind (``cddgm``, ``iap_predictor`` or
``segmenter``), the architecture config, the IAP vocabulary (``IAPVocabulary.to_dict``), the
preprocessing settings, the noise schedule (cDDGM), inference defaults, training provenance
and metrics, and the sha256 of the weights file.

Loading validates everything before any weight reaches a network: JSON and format version,
kind, config, vocabulary against the config, the safetensors structure, the sha256, and the
exact set of state-dict keys and shapes. Only safetensors is read (never pickle).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..errors import BundleError, CfIapError
from ..iap.vocabulary import IAPVocabulary
from ..io.atomic import atomic_directory
from ..models.config import CONFIG_TYPES, CDDGMConfig, slot_sizes_of

FORMAT = "napari-cf-iap-bundle"
FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "bundle.json"
KINDS = tuple(CONFIG_TYPES)
NEEDS_VOCAB = ("cddgm", "iap_predictor")


@dataclass
class LoadedBundle:
    """A validated bundle with its network in eval mode on the requested device."""

    kind: str
    model: nn.Module
    config: Any
    vocab: IAPVocabulary | None
    preprocessing: dict[str, Any]
    path: Path
    sha256: str
    schedule: dict[str, Any] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    inference_defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    def preprocess_config(self) -> Any:
        """The stored preprocessing as a ``napari_cf_iap.preprocessing.PreprocessConfig``."""
        from ..preprocessing import PreprocessConfig

        names = {f.name for f in dataclasses.fields(PreprocessConfig)}
        return PreprocessConfig(**{k: v for k, v in self.preprocessing.items() if k in names})


# ---------------------------------------------------------------------- building
def build_model(kind: str, config: Any) -> nn.Module:
    """A freshly initialised network of ``kind`` for ``config``."""
    if kind == "cddgm":
        from ..models.cddgm import ConditionalDenoiser

        return ConditionalDenoiser(config)
    if kind == "iap_predictor":
        from ..models.iap_predictor import IAPPredictor

        return IAPPredictor(config)
    if kind == "segmenter":
        from ..models.segmenter import Segmenter

        return Segmenter(config)
    raise BundleError(f"unknown bundle kind {kind!r}; expected one of {KINDS}")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise BundleError(f"unknown bundle kind {kind!r}; expected one of {KINDS}")


def _check_vocab(kind: str, config: Any, vocab: IAPVocabulary | None) -> None:
    """The vocabulary must exist for conditional kinds and match the network's vector length."""
    if kind not in NEEDS_VOCAB:
        return
    if vocab is None:
        raise BundleError(f"a {kind} bundle needs its IAP vocabulary; none was given")
    want = config.iap_dim if isinstance(config, CDDGMConfig) else config.num_outputs
    if vocab.dim != want:
        raise BundleError(
            f"IAP vocabulary mismatch: the vocabulary encodes vectors of length {vocab.dim} but "
            f"the {kind} network was built for length {want}; use the vocabulary the model was "
            "trained with (or retrain the model for this vocabulary)"
        )
    if isinstance(config, CDDGMConfig) and config.context_mode == "per_iap":
        sizes = slot_sizes_of(vocab)
        if tuple(config.slot_sizes or ()) != sizes:
            raise BundleError(
                f"IAP vocabulary mismatch: slot widths {sizes} differ from the network's "
                f"{tuple(config.slot_sizes or ())}; use the vocabulary the model was trained with"
            )


def _shapes(state: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def _compare_shapes(
    expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]], what: str
) -> None:
    """Raise a BundleError naming missing, unexpected and mis-shaped tensors."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    if not (missing or unexpected or wrong):
        return
    parts = []
    if wrong:
        shown = ", ".join(f"{k}: weights {found[k]} vs network {expected[k]}" for k in wrong[:4])
        parts.append(f"{len(wrong)} tensor(s) with a different shape ({shown})")
    if missing:
        parts.append(f"{len(missing)} missing tensor(s) (e.g. {missing[:3]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected tensor(s) (e.g. {unexpected[:3]})")
    raise BundleError(
        f"{what}: the weights do not fit the architecture in the config: "
        + "; ".join(parts)
        + ". The config (channels, levels, IAP vocabulary size) must be the one the weights "
        "were trained with; re-export the bundle with save_bundle from the trained model"
    )


# ---------------------------------------------------------------------- helpers
def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    return str(obj)


def _as_dict(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    raise BundleError(f"expected a mapping or dataclass, got {type(obj).__name__}")


def default_preprocessing(image_size: int) -> dict[str, Any]:
    """The paper's slice preprocessing at ``image_size`` (``method-facts.md``)."""
    return {"size": int(image_size), "drop_slices": 20, "low_pct": 10.0, "high_pct": 99.0}


# ---------------------------------------------------------------------- save
def save_bundle(
    model: nn.Module,
    config: Any,
    out_dir: str | Path,
    *,
    kind: str,
    vocab: IAPVocabulary | None = None,
    preprocessing: Any = None,
    provenance: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    inference_defaults: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    weights_dtype: str = "float32",
) -> Path:
    """Write ``model`` as a bundle directory (atomically); return its path.

    ``preprocessing`` is a ``PreprocessConfig`` or mapping (default: the paper's rule at the
    config's image size). ``inference_defaults`` e.g. ``{"steps": 50, "guidance": 3.0}``.
    ``weights_dtype="float16"`` halves the file (floating tensors stored as fp16; loading
    casts them back to the model's fp32 parameters) — used for the weights shipped in the package.
    """
    _check_kind(kind)
    if not isinstance(config, CONFIG_TYPES[kind]):
        raise BundleError(
            f"a {kind} bundle needs a {CONFIG_TYPES[kind].__name__}, got {type(config).__name__}"
        )
    _check_vocab(kind, config, vocab)
    if weights_dtype not in ("float32", "float16"):
        raise BundleError(f"weights_dtype must be 'float32' or 'float16', got {weights_dtype!r}")
    store_as = torch.float16 if weights_dtype == "float16" else None
    state = {
        k: (v.to(store_as) if store_as is not None and v.is_floating_point() else v)
        .detach()
        .to("cpu")
        .clone()
        .contiguous()
        for k, v in model.state_dict().items()
    }
    with torch.device("meta"):  # shapes only, no allocation
        expected = _shapes(build_model(kind, config).state_dict())
    _compare_shapes(expected, _shapes(state), "save_bundle")
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "config": config.to_dict(),
        "vocabulary": vocab.to_dict() if vocab is not None else None,
        "preprocessing": _as_dict(preprocessing) or default_preprocessing(config.image_size),
        "schedule": (
            {
                "num_train_timesteps": config.num_train_timesteps,
                "schedule": config.schedule,
                "prediction_type": config.prediction_type,
            }
            if isinstance(config, CDDGMConfig)
            else None
        ),
        "inference_defaults": dict(inference_defaults or {}),
        "provenance": dict(provenance or {}),
        "metrics": dict(metrics or {}),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "package_version": __version__,
    }
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        weights = tmp / WEIGHTS_FILE
        save_file(state, str(weights), metadata={"format": FORMAT, "kind": kind})
        manifest["weights"] = {"file": WEIGHTS_FILE, "sha256": sha256_file(weights)}
        text = json.dumps(manifest, indent=2, default=_json_default)
        (tmp / MANIFEST_FILE).write_text(text + "\n")
    return out_dir


# ---------------------------------------------------------------------- load
def read_manifest(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """(bundle directory, parsed and format-checked ``bundle.json``)."""
    path = Path(path)
    if path.is_file() and path.name == MANIFEST_FILE:
        path = path.parent
    manifest_path = path / MANIFEST_FILE
    if not path.is_dir() or not manifest_path.is_file():
        raise BundleError(
            f"{path} is not a model bundle "
            f"(expected a folder with {MANIFEST_FILE} and {WEIGHTS_FILE})"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(
            f"{manifest_path} is not valid JSON ({exc}); the bundle is corrupt"
        ) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{manifest_path} is not a napari-cf-iap bundle manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise BundleError(f"{manifest_path}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise BundleError(
            f"{path} uses bundle format {version}, newer than this napari-cf-iap supports "
            f"({FORMAT_VERSION}); upgrade napari-cf-iap"
        )
    for key in ("kind", "config", "weights"):
        if key not in manifest:
            raise BundleError(f"{manifest_path} lacks the required field {key!r}")
    _check_kind(manifest["kind"])
    return path, manifest


def _read_weights_header(weights: Path) -> dict[str, tuple[int, ...]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="pt") as fh:
            return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise BundleError(
            f"{weights} is truncated or corrupt ({exc}); re-download or re-export the bundle"
        ) from exc


def load_bundle(
    path: str | Path, device: str | torch.device = "cpu", *, kind: str | None = None
) -> LoadedBundle:
    """Validate and load a bundle; ``kind`` (optional) is the kind the caller needs."""
    from safetensors.torch import load_file

    from ..device import resolve_device

    path, manifest = read_manifest(path)
    found_kind = manifest["kind"]
    if kind is not None and found_kind != kind:
        raise BundleError(f"{path} is a {found_kind} bundle, but a {kind} bundle is needed here")
    config_type = CONFIG_TYPES[found_kind]
    if not isinstance(manifest["config"], Mapping):
        raise BundleError(f"{path}: 'config' must be an object")
    config = config_type.from_dict(manifest["config"])
    vocab = None
    if manifest.get("vocabulary") is not None:
        try:
            vocab = IAPVocabulary.from_dict(manifest["vocabulary"])
        except CfIapError as exc:
            raise BundleError(f"{path}: invalid IAP vocabulary: {exc}") from exc
    _check_vocab(found_kind, config, vocab)

    entry = manifest["weights"]
    if not isinstance(entry, Mapping) or "sha256" not in entry:
        raise BundleError(f"{path}: 'weights' must name the file and its sha256")
    weights = path / str(entry.get("file", WEIGHTS_FILE))
    if weights.parent != path or not weights.is_file():
        raise BundleError(f"{path}: weights file {weights.name} is missing")
    header = _read_weights_header(weights)
    digest = sha256_file(weights)
    if digest != entry["sha256"]:
        raise BundleError(
            f"{weights} does not match its checksum in {MANIFEST_FILE} (sha256 {digest[:12]}... vs "
            f"{str(entry['sha256'])[:12]}...); the file was modified or damaged: re-download or "
            "re-export the bundle"
        )
    model = build_model(found_kind, config)
    _compare_shapes(_shapes(model.state_dict()), header, str(path))
    try:
        state = load_file(str(weights), device="cpu")
        model.load_state_dict(state, strict=True)
    except Exception as exc:  # noqa: BLE001 - any failure here means a bad file
        raise BundleError(f"{weights} could not be loaded ({exc}); re-export the bundle") from exc
    model = model.to(resolve_device(device)).eval()
    return LoadedBundle(
        kind=found_kind,
        model=model,
        config=config,
        vocab=vocab,
        preprocessing=dict(
            manifest.get("preprocessing") or default_preprocessing(config.image_size)
        ),
        path=path,
        sha256=digest,
        schedule=manifest.get("schedule"),
        provenance=dict(manifest.get("provenance") or {}),
        metrics=dict(manifest.get("metrics") or {}),
        inference_defaults=dict(manifest.get("inference_defaults") or {}),
    )


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "KINDS",
    "MANIFEST_FILE",
    "WEIGHTS_FILE",
    "LoadedBundle",
    "build_model",
    "default_preprocessing",
    "load_bundle",
    "read_manifest",
    "save_bundle",
    "sha256_file",
]
