"""Feature extractors for FID: (N, 1, H, W) images in [0, 1] -> (N, F) features.

- :class:`PredictorFeatures` (default): the pooled penultimate activations of a trained IAP
  predictor bundle (``IAPPredictor.features``). Always available offline, and trained on the
  very acquisition differences the edits are meant to change.
- :class:`ResNetWeightsFeatures`: a local ResNet weights file the user has (e.g. RadImageNet
  ResNet-50 converted to PyTorch), ``.safetensors`` or ``.pt/.pth`` read with
  ``torch.load(weights_only=True)`` (tensors only: nothing in the file is executed). The
  architecture (basic or bottleneck blocks, depth, widths) is read off the weights and built
  with MONAI's ``ResNet``; the grey image is repeated to the file's input channels, resized to
  ``input_size`` and normalised with ImageNet statistics; features are the global average of
  the last stage.

Every extractor has a ``name`` that the report prints next to the FID.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from napari_cf_iap.errors import BundleError, InputError

from .metrics import as_batch
from .scoring import bundle_label

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_PREFIXES = ("module.", "model.", "backbone.", "encoder.", "resnet.")


class FeatureExtractor(Protocol):
    name: str

    def __call__(self, images: Any) -> np.ndarray: ...


def _batched(fn: Any, images: Any, batch_size: int, device: torch.device) -> np.ndarray:
    x = as_batch(images)
    out = []
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            out.append(fn(x[start : start + batch_size].to(device)).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


class PredictorFeatures:
    """Penultimate features of an IAP predictor bundle (images resized to its input size)."""

    def __init__(self, bundle: Any, device: str = "cpu", batch_size: int = 64) -> None:
        from napari_cf_iap.bundles import load_bundle
        from napari_cf_iap.device import resolve_device

        self.device = resolve_device(device)
        if not hasattr(bundle, "model"):
            bundle = load_bundle(bundle, device=self.device, kind="iap_predictor")
        self.bundle = bundle
        self.size = int(bundle.config.image_size)
        self.batch_size = batch_size
        self.name = (
            f"IAP predictor penultimate layer ({bundle_label(bundle)}, {self.size}x{self.size})"
        )

    def __call__(self, images: Any) -> np.ndarray:
        model = self.bundle.model.to(self.device).eval()

        def run(x: torch.Tensor) -> torch.Tensor:
            return model.features(_resize(x, self.size))

        return _batched(run, images, self.batch_size, self.device)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a tensors-only ``.pt/.pth`` (never unpickles code)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"feature weights {path} not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(path), device="cpu")
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure means an unusable file
            raise InputError(
                f"{path} cannot be read as a tensors-only PyTorch file ({exc}); save the "
                "model's state_dict (or convert it to .safetensors)"
            ) from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise InputError(f"{path} does not hold a state dict of tensors")
    cleaned = {}
    for key, value in state.items():
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        cleaned[key] = value
    return cleaned


def resnet_from_state(state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    """A MONAI 2D ``ResNet`` shaped like a torchvision-layout state dict, with its weights."""
    from monai.networks.nets import ResNet

    if "conv1.weight" not in state or state["conv1.weight"].ndim != 4:
        raise InputError("the weights are not a 2D ResNet (no 2D conv1.weight)")
    stages = sorted({int(m.group(1)) for k in state if (m := re.match(r"layer(\d+)\.", k))})
    if stages != [1, 2, 3, 4]:
        raise InputError(f"the weights are not a 4-stage ResNet (stages found: {stages})")
    bottleneck = any(k.endswith("conv3.weight") for k in state)
    layers = [
        len({int(m.group(1)) for k in state if (m := re.match(rf"layer{s}\.(\d+)\.", k))})
        for s in stages
    ]
    expansion = 4 if bottleneck else 1
    inplanes = [int(state[f"layer{s}.0.conv1.weight"].shape[0]) for s in stages]
    conv1 = state["conv1.weight"]
    model = ResNet(
        block="bottleneck" if bottleneck else "basic",
        layers=layers,
        block_inplanes=inplanes,
        spatial_dims=2,
        n_input_channels=int(conv1.shape[1]),
        conv1_t_size=int(conv1.shape[-1]),
        conv1_t_stride=2,
        num_classes=1,
        feed_forward=False,
        bias_downsample=any(re.match(r"layer\d+\.0\.downsample\.0\.bias", k) for k in state),
    )
    wanted = {k: v for k, v in state.items() if not k.startswith("fc.")}
    mine = model.state_dict()
    missing = sorted(set(mine) - set(wanted))
    wrong = sorted(k for k in set(mine) & set(wanted) if mine[k].shape != wanted[k].shape)
    if missing or wrong:
        raise BundleError(
            f"the weights do not fit a {'bottleneck' if bottleneck else 'basic'} ResNet "
            f"{layers} x {inplanes} (x{expansion}): missing {missing[:3]}, mis-shaped {wrong[:3]}"
        )
    model.load_state_dict({k: wanted[k] for k in mine}, strict=True)
    return model.eval()


class ResNetWeightsFeatures:
    """Global-average features of the last stage of a ResNet from a local weights file."""

    def __init__(
        self,
        path: str | Path,
        device: str = "cpu",
        input_size: int = 224,
        batch_size: int = 32,
    ) -> None:
        from napari_cf_iap.bundles import sha256_file
        from napari_cf_iap.device import resolve_device

        self.device = resolve_device(device)
        self.model = resnet_from_state(read_weights(path)).to(self.device)
        self.in_channels = int(self.model.conv1.weight.shape[1])
        self.input_size = int(input_size)
        self.batch_size = batch_size
        self.name = (
            f"ResNet from {Path(path).name} (sha256 {sha256_file(path)[:12]}, "
            f"{self.input_size}x{self.input_size}, ImageNet normalisation)"
        )

    def __call__(self, images: Any) -> np.ndarray:
        c = self.in_channels
        mean = torch.tensor(IMAGENET_MEAN[:c] if c <= 3 else [0.5] * c).view(1, c, 1, 1)
        std = torch.tensor(IMAGENET_STD[:c] if c <= 3 else [0.25] * c).view(1, c, 1, 1)

        def run(x: torch.Tensor) -> torch.Tensor:
            x = _resize(x, self.input_size).repeat(1, c, 1, 1)
            x = (x - mean.to(x.device)) / std.to(x.device)
            return torch.flatten(self.model(x), 1)

        return _batched(run, images, self.batch_size, self.device)


def make_extractor(
    spec: str | None, predictor_bundle: Any, device: str = "cpu"
) -> FeatureExtractor:
    """The default predictor features (``None``/``"predictor"``) or a local weights file."""
    if spec in (None, "", "predictor"):
        return PredictorFeatures(predictor_bundle, device=device)
    return ResNetWeightsFeatures(spec, device=device)
