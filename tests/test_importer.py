"""Importing the authors' Lightning checkpoints: conversion, validation, pickle safety."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from napari_cf_iap.bundles.bundle import load_bundle
from napari_cf_iap.bundles.importer import import_authors_checkpoint, read_checkpoint
from napari_cf_iap.errors import BundleError
from napari_cf_iap.iap import IAPVocabulary
from napari_cf_iap.models.cddgm import ConditionalDenoiser
from napari_cf_iap.models.config import CDDGMConfig

VOCAB = IAPVocabulary.duke_default()


def _old_key(key: str) -> str:
    """Our (MONAI core) key -> the monai-generative name that load_old_state_dict maps back."""
    if "transformer_blocks" in key and ".out_proj." in key:
        key = key.replace(".out_proj.", ".to_out.0.")
    return key.replace(".postconv.", ".conv.")


def _source_model(seed: int = 0) -> ConditionalDenoiser:
    torch.manual_seed(seed)
    model = ConditionalDenoiser(CDDGMConfig.tiny(VOCAB.dim))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


def _hparams() -> dict:
    return {
        "model_hparams": {
            "spatial_size": (32, 32),
            "batch_size": 32,
            "features_dim": VOCAB.dim,
            "conditioning": "hybrid",
            "features_dropout": 0.15,
            "with_segmentation": False,
            "segmentation_dropout": 0.0,
        },
        "unet_hprams": {
            "spatial_dims": 2,
            "out_channels": 1,
            "num_res_blocks": 1,
            "num_channels": (8, 16),
            "attention_levels": (False, True),
            "num_head_channels": 4,
            "transformer_num_layers": 1,
            "norm_num_groups": 8,
            "use_flash_attention": True,
        },
        "noise_scheduler_hprams": {
            "schedule": "cosine",
            "num_train_timesteps": 1000,
            "prediction_type": "epsilon",
        },
        "optimizer_name": "Adam",
        "optimizer_hparams": {"lr": 1e-4, "weight_decay": 1e-3},
        "test_params": {"guidance_scale": 5, "steps": 25},
    }


def _authors_checkpoint(
    path: Path,
    model: ConditionalDenoiser,
    *,
    bare_linear: bool = False,
    extra: dict | None = None,
    hparams: bool = True,
) -> Path:
    state = {}
    for key, value in model.unet.state_dict().items():
        old = _old_key(key)
        if bare_linear and old == "class_embedding.0.weight":
            old = "class_embedding.weight"
        state["model." + old] = value.clone()
    ckpt = {
        "epoch": 14,
        "global_step": 12345,
        "pytorch-lightning_version": "2.1.3",
        "state_dict": state,
        "optimizer_states": [],
        **(extra or {}),
    }
    if hparams:
        ckpt["hyper_parameters"] = _hparams()
    torch.save(ckpt, path)
    return path


@pytest.fixture(scope="module")
def source() -> ConditionalDenoiser:
    return _source_model()


def _outputs(model: torch.nn.Module) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    x = torch.rand((2, 1, 32, 32), generator=g)
    vec = torch.rand((2, VOCAB.dim), generator=g)
    with torch.no_grad():
        return model(x, torch.tensor([4, 700]), vec)


def test_old_key_names_differ_from_ours(source: ConditionalDenoiser) -> None:
    renamed = [k for k in source.unet.state_dict() if _old_key(k) != k]
    assert any(".to_out.0." in _old_key(k) for k in renamed)
    assert any(".conv.conv." in _old_key(k) for k in renamed)


@pytest.mark.parametrize("bare_linear", [False, True])
def test_import_gives_a_bundle_with_the_source_outputs(
    tmp_path: Path, source: ConditionalDenoiser, bare_linear: bool
) -> None:
    ckpt = _authors_checkpoint(tmp_path / "authors.ckpt", source, bare_linear=bare_linear)
    out = import_authors_checkpoint(ckpt, tmp_path / "bundle", vocab=VOCAB)
    bundle = load_bundle(out)
    cfg = bundle.config
    assert (cfg.channels, cfg.attention_levels, cfg.num_res_blocks) == ((8, 16), (False, True), 1)
    assert (cfg.image_size, cfg.in_channels, cfg.iap_dim) == (32, 1, VOCAB.dim)
    assert cfg.context_mode == "single_token" and bundle.vocab == VOCAB
    assert bundle.provenance["epoch"] == 14 and "SDPA" in bundle.provenance["attention"]
    assert bundle.inference_defaults == {"steps": 50, "guidance": 3.0}
    torch.testing.assert_close(_outputs(bundle.model), _outputs(source), rtol=0, atol=1e-6)


def test_explicit_config_is_used_without_hyper_parameters(
    tmp_path: Path, source: ConditionalDenoiser
) -> None:
    ckpt = _authors_checkpoint(tmp_path / "bare.ckpt", source, hparams=False)
    with pytest.raises(BundleError, match="no hyper_parameters"):
        import_authors_checkpoint(ckpt, tmp_path / "b1", vocab=VOCAB)
    config = CDDGMConfig.tiny(VOCAB.dim).to_dict()
    out = import_authors_checkpoint(ckpt, tmp_path / "b2", vocab=VOCAB, config=config)
    torch.testing.assert_close(
        _outputs(load_bundle(out).model), _outputs(source), rtol=0, atol=1e-6
    )


def test_mismatches_are_refused(tmp_path: Path, source: ConditionalDenoiser) -> None:
    ckpt = _authors_checkpoint(tmp_path / "authors.ckpt", source)
    small = IAPVocabulary.from_dict(
        {
            **VOCAB.to_dict(),
            "categories": {**VOCAB.categories, "model_name": VOCAB.categories["model_name"][:5]},
        }
    )
    with pytest.raises(BundleError, match="length 23 but the vocabulary has length 20"):
        import_authors_checkpoint(ckpt, tmp_path / "b1", vocab=small)
    wrong = CDDGMConfig.tiny(VOCAB.dim, channels=(8, 24))
    with pytest.raises(BundleError, match="do not fit|lacks|no place"):
        import_authors_checkpoint(ckpt, tmp_path / "b2", vocab=VOCAB, config=wrong)
    deeper = CDDGMConfig.tiny(VOCAB.dim, num_res_blocks=2)
    with pytest.raises(BundleError):
        import_authors_checkpoint(ckpt, tmp_path / "b3", vocab=VOCAB, config=deeper)
    extra = {"model.surplus.weight": torch.zeros(3)}
    ckpt2 = tmp_path / "surplus.ckpt"
    data = torch.load(ckpt, weights_only=True)
    data["state_dict"].update(extra)
    torch.save(data, ckpt2)
    with pytest.raises(BundleError, match="no place"):
        import_authors_checkpoint(ckpt2, tmp_path / "b4", vocab=VOCAB)
    assert not any(p.name.startswith("b") for p in tmp_path.iterdir())


class _Payload:
    """Unpickling this would create ``marker`` (code execution)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_payload_in_checkpoint_is_not_executed(
    tmp_path: Path, source: ConditionalDenoiser
) -> None:
    marker = tmp_path / "pwned"
    ckpt = _authors_checkpoint(
        tmp_path / "evil.ckpt", source, extra={"callbacks": {"x": _Payload(marker)}}
    )
    with pytest.raises(BundleError, match="refuses to execute pickle payloads"):
        import_authors_checkpoint(ckpt, tmp_path / "bundle", vocab=VOCAB)
    assert not marker.exists()
    assert not (tmp_path / "bundle").exists()
    # a raw (non-zip) pickle stream is refused the same way
    raw = tmp_path / "raw.ckpt"
    raw.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}))
    with pytest.raises(BundleError):
        read_checkpoint(raw)
    assert not marker.exists()


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"\x00\x01not a checkpoint at all")
    with pytest.raises(BundleError):
        read_checkpoint(junk)
    with pytest.raises(BundleError, match="does not exist"):
        read_checkpoint(tmp_path / "absent.ckpt")
    tensor_only = tmp_path / "tensor.ckpt"
    torch.save(torch.zeros(3), tensor_only)
    with pytest.raises(BundleError, match="not a checkpoint dictionary"):
        read_checkpoint(tensor_only)
    no_unet = tmp_path / "nounet.ckpt"
    torch.save({"state_dict": {"model.fc.weight": torch.zeros(2, 2)}}, no_unet)
    with pytest.raises(BundleError, match="no DiffusionModelUNet weights"):
        import_authors_checkpoint(no_unet, tmp_path / "b", vocab=VOCAB)
