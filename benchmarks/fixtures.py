"""Inputs of the benchmarks: simulated slices, the shipped bundles, or untrained stand-ins.

Speed and memory do not depend on training, so where a shipped bundle is missing the
throughput and memory benchmarks build an *untrained* bundle of the same architecture (the
``default`` training preset) and say so. Quality benchmarks never use untrained weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

#: kind -> (shipped bundle name, training model name)
KINDS = {
    "cddgm": ("cddgm-default", "cddgm"),
    "iap_predictor": ("iap-default", "iap"),
    "segmenter": ("seg-default", "seg"),
}


def simulated_volume(shape: tuple[int, int, int]):
    """A simulated GE 1.5 T volume (subject 4) with its IAPs known, as a twin edit needs."""
    from napari_cf_iap.simulator import simulate_volume

    return simulate_volume(4, shape=shape).volume


def siemens_skyra_3t(flip_angle: float = 10.0):
    """The benchmarks' target protocol: Siemens Skyra 3 T, fat-saturated."""
    from napari_cf_iap.iap import IAPRecord

    return IAPRecord.create(
        manufacturer="SIEMENS", model_name="Skyra", field_strength=3.0, scan_options="FS",
        flip_angle=flip_angle, slice_thickness=1.0, echo_time=1.4, repetition_time=4.2,
    )  # fmt: skip


def simulated_slices(n: int, size: int, seed: int = 0) -> np.ndarray:
    """(n, 1, size, size) float32 slices of one simulated subject, preprocessed like the
    pipeline does (resized, 10th/99th percentile to 0/1)."""
    from napari_cf_iap.pipeline.slices import to_model_stack
    from napari_cf_iap.preprocessing import PreprocessConfig
    from napari_cf_iap.simulator import acquire, make_phantom, sample_protocol
    from napari_cf_iap.simulator.noise_fields import substream

    phantom = make_phantom(seed, (max(n, 4), 128, 128))
    iap = sample_protocol(substream(seed, "protocol"))
    volume = acquire(phantom, iap, seed=seed).volume
    stack = to_model_stack(volume, list(range(n)), PreprocessConfig(size=size))
    return stack.images[:, None].astype(np.float32)


def randomise_zero_parameters(model: torch.nn.Module, seed: int = 0, std: float = 0.02) -> None:
    """Give the parameters an untrained MONAI UNet initialises to zero (its output convs) small
    random values, so an untrained network produces non-zero outputs to compare."""
    gen = torch.Generator("cpu").manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.numel() and not torch.any(param):
                param.copy_(torch.randn(param.shape, generator=gen).to(param.device) * std)


def shipped_bundle(kind: str) -> Path | None:
    """The shipped default bundle of ``kind``, or None while it is not trained yet."""
    from napari_cf_iap.bundles.registry import weights_root

    path = weights_root() / KINDS[kind][0]
    return path if (path / "bundle.json").is_file() else None


def default_config(kind: str, vocab_dim: int):
    """The architecture config of the ``default`` training preset for ``kind``."""
    from cf_iap_training.presets import get_preset

    from napari_cf_iap.models.config import CONFIG_TYPES

    preset = get_preset(KINDS[kind][1], "default")
    factory = getattr(CONFIG_TYPES[kind], preset.arch)
    sizes = {"image_size": preset.image_size, **preset.arch_overrides}
    if kind == "cddgm":
        return factory(vocab_dim, **sizes)
    if kind == "iap_predictor":
        return factory(vocab_dim, **sizes)
    return factory(**sizes)


def untrained_bundle(kind: str, root: Path, seed: int = 0) -> Path:
    """Write an untrained bundle of the default architecture of ``kind`` under ``root``."""
    from napari_cf_iap.bundles.bundle import build_model, save_bundle
    from napari_cf_iap.iap import IAPVocabulary

    vocab = IAPVocabulary.duke_default()
    config = default_config(kind, vocab.dim)
    torch.manual_seed(seed)
    model = build_model(kind, config)
    randomise_zero_parameters(model, seed)
    return save_bundle(
        model,
        config,
        Path(root) / f"untrained-{kind}",
        kind=kind,
        vocab=None if kind == "segmenter" else vocab,
        provenance={"note": "untrained benchmark stand-in (speed and memory only)"},
        inference_defaults={"steps": 50, "guidance": 3.0} if kind == "cddgm" else None,
        overwrite=True,
    )


def bundle_or_untrained(kind: str, path: str | Path | None, root: Path) -> tuple[Path, str]:
    """(bundle path, description): ``path``, else the shipped bundle, else an untrained one."""
    if path is not None:
        return Path(path), f"bundle {Path(path).name}"
    shipped = shipped_bundle(kind)
    if shipped is not None:
        return shipped, f"shipped {shipped.name}"
    return untrained_bundle(kind, root), "untrained default architecture"


def load_cddgm_or_untrained(path: str | Path | None, device: torch.device):
    """(ConditionalDenoiser, description) of the given / shipped cDDGM, else an untrained
    network of the default architecture (zero-initialised layers randomised)."""
    from napari_cf_iap.bundles.bundle import load_bundle
    from napari_cf_iap.iap import IAPVocabulary
    from napari_cf_iap.models.cddgm import ConditionalDenoiser

    bundle = Path(path) if path is not None else shipped_bundle("cddgm")
    if bundle is not None:
        return load_bundle(bundle, device, kind="cddgm").model, f"bundle {bundle.name}"
    torch.manual_seed(0)
    model = ConditionalDenoiser(default_config("cddgm", IAPVocabulary.duke_default().dim))
    randomise_zero_parameters(model)
    return model.to(device), "untrained, zero-init layers randomised"
