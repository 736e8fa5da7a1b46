"""Model bundles: round trip, validation of every failure mode, registry and cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from napari_cf_iap.bundles import bundle as bundle_mod
from napari_cf_iap.bundles import registry
from napari_cf_iap.bundles.bundle import MANIFEST_FILE, WEIGHTS_FILE, load_bundle, save_bundle
from napari_cf_iap.errors import BundleError, OutputExistsError
from napari_cf_iap.iap import IAPVocabulary
from napari_cf_iap.models.cddgm import ConditionalDenoiser
from napari_cf_iap.models.config import CDDGMConfig, IAPPredictorConfig, SegmenterConfig
from napari_cf_iap.models.iap_predictor import IAPPredictor
from napari_cf_iap.models.segmenter import Segmenter

VOCAB = IAPVocabulary.duke_default()


def _randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


@pytest.fixture(scope="module")
def cddgm() -> tuple[ConditionalDenoiser, CDDGMConfig]:
    torch.manual_seed(0)
    config = CDDGMConfig.tiny(VOCAB.dim)
    return _randomised(ConditionalDenoiser(config)), config


@pytest.fixture
def saved(tmp_path: Path, cddgm) -> Path:
    model, config = cddgm
    return save_bundle(
        model,
        config,
        tmp_path / "cddgm",
        kind="cddgm",
        vocab=VOCAB,
        provenance={"dataset": "toy", "epochs": 1, "path": tmp_path},
        metrics={"val_loss": 0.125},
        inference_defaults={"steps": 50, "guidance": 3.0},
    )


def _edit_manifest(path: Path, **changes) -> None:
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    manifest.update(changes)
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))


# ---------------------------------------------------------------------- round trip
def test_cddgm_round_trip_gives_identical_outputs(saved: Path, cddgm) -> None:
    model, config = cddgm
    assert sorted(p.name for p in saved.iterdir()) == [MANIFEST_FILE, WEIGHTS_FILE]
    loaded = load_bundle(saved)
    assert loaded.kind == "cddgm" and loaded.config == config and loaded.vocab == VOCAB
    assert not loaded.model.training
    assert loaded.sha256 == bundle_mod.sha256_file(saved / WEIGHTS_FILE)
    assert loaded.schedule == {
        "num_train_timesteps": 1000,
        "schedule": "cosine",
        "prediction_type": "epsilon",
    }
    assert loaded.preprocessing["size"] == config.image_size
    pre = loaded.preprocess_config()
    assert (pre.size, pre.drop_slices, pre.low_pct, pre.high_pct) == (32, 20, 10.0, 99.0)
    assert loaded.provenance["dataset"] == "toy" and loaded.metrics == {"val_loss": 0.125}
    assert loaded.inference_defaults == {"steps": 50, "guidance": 3.0}
    x = torch.rand(2, 1, 32, 32)
    vec = torch.from_numpy(VOCAB.null_vector()).expand(2, -1) + 0.3
    t = torch.tensor([3, 400])
    with torch.no_grad():
        assert torch.equal(loaded.model(x, t, vec), model(x, t, vec))


@pytest.mark.parametrize("kind", ["iap_predictor", "segmenter"])
def test_predictor_and_segmenter_round_trip(tmp_path: Path, kind: str) -> None:
    torch.manual_seed(1)
    if kind == "iap_predictor":
        config, vocab = IAPPredictorConfig.tiny(VOCAB.dim), VOCAB
        model = _randomised(IAPPredictor(config))
    else:
        config, vocab = SegmenterConfig.tiny(), None
        model = _randomised(Segmenter(config))
    path = save_bundle(model, config, tmp_path / kind, kind=kind, vocab=vocab)
    loaded = load_bundle(path, kind=kind)
    assert loaded.config == config and loaded.vocab == vocab
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model.eval()(x))
    buffers = dict(loaded.model.named_buffers())
    assert any(k.endswith("running_mean") for k in buffers)  # batch-norm statistics kept


def test_weights_are_safetensors_and_loading_never_unpickles(
    saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = (saved / WEIGHTS_FILE).read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    assert raw[8:9] == b"{" and json.loads(raw[8 : 8 + header_len])

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load must not be used for bundles")

    monkeypatch.setattr(torch, "load", refuse)
    assert load_bundle(saved).kind == "cddgm"


def test_save_refuses_to_overwrite_and_replaces_atomically(saved: Path, cddgm) -> None:
    model, config = cddgm
    with pytest.raises(OutputExistsError):
        save_bundle(model, config, saved, kind="cddgm", vocab=VOCAB)
    save_bundle(model, config, saved, kind="cddgm", vocab=VOCAB, overwrite=True)
    assert load_bundle(saved).provenance == {}
    assert [p.name for p in saved.parent.iterdir() if p.name.startswith(".")] == []


def test_save_refuses_inconsistent_inputs(tmp_path: Path, cddgm) -> None:
    model, config = cddgm
    small_vocab = IAPVocabulary.from_dict(
        {
            **VOCAB.to_dict(),
            "categories": {
                "model_name": ["Skyra"],
                "field_strength": ["3"],
                "scan_options": ["FS"],
            },
        }
    )
    with pytest.raises(BundleError, match="vocabulary mismatch"):
        save_bundle(model, config, tmp_path / "a", kind="cddgm", vocab=small_vocab)
    with pytest.raises(BundleError, match="needs its IAP vocabulary"):
        save_bundle(model, config, tmp_path / "b", kind="cddgm")
    with pytest.raises(BundleError, match="do not fit"):
        save_bundle(
            model, config.replace(channels=(8, 24)), tmp_path / "c", kind="cddgm", vocab=VOCAB
        )
    with pytest.raises(BundleError, match="needs a SegmenterConfig"):
        save_bundle(model, config, tmp_path / "d", kind="segmenter")
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------- refusals
def test_mismatched_vocabulary_is_refused(saved: Path) -> None:
    other = IAPVocabulary.from_dict(
        {
            **VOCAB.to_dict(),
            "categories": {**VOCAB.categories, "model_name": VOCAB.categories["model_name"][:5]},
        }
    )
    _edit_manifest(saved, vocabulary=other.to_dict())
    with pytest.raises(BundleError, match=r"vocabulary mismatch.*length 20.*length 23"):
        load_bundle(saved)


def test_mismatched_architecture_is_refused_with_the_tensors_named(saved: Path) -> None:
    manifest = json.loads((saved / MANIFEST_FILE).read_text())
    _edit_manifest(saved, config={**manifest["config"], "channels": [8, 24]})
    with pytest.raises(BundleError, match=r"do not fit the architecture.*different shape"):
        load_bundle(saved)


def test_vocabulary_and_config_changed_together_are_refused(saved: Path) -> None:
    """A consistent but different vocabulary/config pair still cannot hold these weights."""
    other = IAPVocabulary.from_dict(
        {
            **VOCAB.to_dict(),
            "categories": {**VOCAB.categories, "model_name": VOCAB.categories["model_name"][:5]},
        }
    )
    manifest = json.loads((saved / MANIFEST_FILE).read_text())
    _edit_manifest(
        saved, vocabulary=other.to_dict(), config={**manifest["config"], "iap_dim": other.dim}
    )
    with pytest.raises(BundleError, match="class_embedding"):
        load_bundle(saved)


def test_truncated_weights_are_refused(saved: Path) -> None:
    weights = saved / WEIGHTS_FILE
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="truncated or corrupt"):
        load_bundle(saved)
    weights.write_bytes(b"not a safetensors file")
    with pytest.raises(BundleError, match="truncated or corrupt"):
        load_bundle(saved)


def test_checksum_mismatch_is_refused(saved: Path) -> None:
    weights = saved / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF  # flip bits inside a tensor: still a valid safetensors file
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="checksum"):
        load_bundle(saved)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format_version": 99}, "upgrade napari-cf-iap"),
        ({"format": "something-else"}, "not a napari-cf-iap bundle"),
        ({"kind": "vae"}, "unknown bundle kind"),
        ({"config": {"iap_dim": 23, "depth": 3}}, "unknown field"),
        ({"vocabulary": {"categories": 3}}, "invalid IAP vocabulary"),
    ],
)
def test_invalid_manifests_are_refused(saved: Path, change: dict, message: str) -> None:
    _edit_manifest(saved, **change)
    with pytest.raises(BundleError, match=message):
        load_bundle(saved)


def test_broken_json_missing_folder_and_wrong_kind(saved: Path, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="segmenter bundle is needed"):
        load_bundle(saved, kind="segmenter")
    with pytest.raises(BundleError, match="not a model bundle"):
        load_bundle(tmp_path / "nowhere")
    (saved / MANIFEST_FILE).write_text("{ not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(saved)


# ---------------------------------------------------------------------- registry
def test_registry_defaults_missing_give_a_training_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "weights_root", lambda: tmp_path / "weights")
    with pytest.raises(BundleError, match=r"no default cddgm bundle shipped.*cf-iap-train"):
        registry.resolve_bundle("cddgm-default")
    with pytest.raises(BundleError, match="not found"):
        registry.resolve_bundle(tmp_path / "missing")
    infos = registry.list_bundles()
    assert [(i.name, i.kind, i.available) for i in infos] == [
        ("cddgm-default", "cddgm", False),
        ("iap-default", "iap_predictor", False),
        ("seg-default", "segmenter", False),
    ]


def test_registry_resolves_shipped_and_user_bundles_and_caches(
    saved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "weights"
    root.mkdir()
    saved.rename(root / "cddgm-default")
    monkeypatch.setattr(registry, "weights_root", lambda: root)
    registry.unload()
    assert registry.resolve_bundle("cddgm-default") == root / "cddgm-default"
    assert (
        registry.resolve_bundle(root / "cddgm-default" / MANIFEST_FILE)
        == (root / "cddgm-default").resolve()
    )
    assert [i.available for i in registry.list_bundles()] == [True, False, False]
    found = registry.list_bundles(extra_dirs=[root])
    assert found[-1].name == "cddgm-default" and found[-1].kind == "cddgm"

    first = registry.get_bundle("cddgm-default", device="cpu")
    assert registry.get_bundle(root / "cddgm-default", device="cpu") is first
    with pytest.raises(BundleError, match="segmenter bundle is needed"):
        registry.get_bundle("cddgm-default", device="cpu", kind="segmenter")
    assert registry.unload("cddgm-default") == 1
    assert registry.cached_bundles() == []
    assert registry.get_bundle("cddgm-default", device="cpu") is not first
    registry.unload()


def test_half_precision_bundle_is_smaller_and_close(tmp_path):
    """Shipped weights are stored as fp16: half the bytes, outputs within fp16 rounding."""
    import torch

    from napari_cf_iap.bundles.bundle import build_model, load_bundle, save_bundle
    from napari_cf_iap.iap import IAPVocabulary
    from napari_cf_iap.models.config import IAPPredictorConfig

    vocab = IAPVocabulary.duke_default()
    config = IAPPredictorConfig.tiny(vocab.dim)
    torch.manual_seed(0)
    model = build_model("iap_predictor", config).eval()
    full = save_bundle(model, config, tmp_path / "fp32", kind="iap_predictor", vocab=vocab)
    half = save_bundle(
        model, config, tmp_path / "fp16", kind="iap_predictor", vocab=vocab, weights_dtype="float16"
    )
    size32 = (full / "weights.safetensors").stat().st_size
    size16 = (half / "weights.safetensors").stat().st_size
    assert size16 < 0.6 * size32
    loaded = load_bundle(half)
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        ref, out = model(x), loaded.model(x)
    torch.testing.assert_close(out, ref, rtol=2e-2, atol=2e-2)
