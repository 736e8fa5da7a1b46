"""Network configs and wrappers: cDDGM conditioning, IAP predictor, segmenter (tiny, CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from napari_cf_iap.errors import BundleError, CancelledError
from napari_cf_iap.iap import IAPRecord, IAPVocabulary
from napari_cf_iap.models.cddgm import ConditionalDenoiser, cfg_dropout
from napari_cf_iap.models.config import (
    CDDGMConfig,
    IAPPredictorConfig,
    SegmenterConfig,
    slot_sizes_of,
)
from napari_cf_iap.models.iap_predictor import (
    IAPPredictor,
    decode,
    iap_loss,
    iap_loss_terms,
    inverse_frequency_weights,
)
from napari_cf_iap.models.segmenter import Segmenter, segment_volume
from napari_cf_iap.volume import Volume

VOCAB = IAPVocabulary.duke_default()
RECORDS = [
    IAPRecord.create(
        manufacturer="SIEMENS",
        model_name="Skyra",
        field_strength=3.0,
        scan_options="PFP\\FS",
        flip_angle=10.0,
        slice_thickness=1.2,
        echo_time=1.5,
        repetition_time=4.2,
    ),
    IAPRecord.create(
        manufacturer="GE MEDICAL SYSTEMS",
        model_name="Optima MR450w",
        field_strength=1.5,
        scan_options="FAST_GEMS\\SAT_GEMS\\PFP\\FS",
        flip_angle=12.0,
        slice_thickness=2.0,
        echo_time=2.5,
        repetition_time=6.8,
    ),
]


def _randomise_zero_init(model: nn.Module, seed: int = 0) -> nn.Module:
    """MONAI zero-initialises output convs; give them values so the conditioning shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


# ---------------------------------------------------------------------- configs
def test_configs_round_trip_through_json() -> None:
    configs = [
        CDDGMConfig.paper(VOCAB.dim),
        CDDGMConfig.small(VOCAB.dim, context_mode="per_iap", slot_sizes=slot_sizes_of(VOCAB)),
        CDDGMConfig.tiny(5),
        IAPPredictorConfig.paper(VOCAB.dim),
        IAPPredictorConfig.tiny(7),
        SegmenterConfig.paper(),
        SegmenterConfig.tiny(),
    ]
    for config in configs:
        data = json.loads(json.dumps(config.to_dict()))
        assert type(config).from_dict(data) == config
    with pytest.raises(BundleError, match="unknown field"):
        CDDGMConfig.from_dict({**CDDGMConfig.tiny(5).to_dict(), "bogus": 1})


def test_paper_presets_follow_method_facts() -> None:
    cfg = CDDGMConfig.paper(VOCAB.dim)
    assert cfg.channels == (64, 64, 128, 128, 256, 256)
    assert cfg.attention_levels == (False, False, True, False, True, False)
    assert (cfg.num_res_blocks, cfg.num_head_channels, cfg.transformer_num_layers) == (2, 8, 1)
    assert (cfg.image_size, cfg.cross_attention_dim, cfg.cond_dropout) == (224, VOCAB.dim, 0.15)
    assert (cfg.num_train_timesteps, cfg.schedule) == (1000, "cosine")
    with torch.device("meta"):
        model = ConditionalDenoiser(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    assert 36.0e6 < n_params < 36.8e6  # performance-facts.md: 36.4 M
    seg = SegmenterConfig.paper()
    assert seg.channels == (32, 64, 128, 256, 512, 512) and seg.num_res_units == 2
    assert IAPPredictorConfig.paper(VOCAB.dim).layers == (2, 2, 2, 2)


def test_invalid_configs_are_refused() -> None:
    with pytest.raises(BundleError, match="norm_num_groups"):
        CDDGMConfig.tiny(5, channels=(8, 12))
    with pytest.raises(BundleError, match="slot_sizes"):
        CDDGMConfig.tiny(5, context_mode="per_iap", slot_sizes=(2, 2))
    with pytest.raises(BundleError, match="context_mode"):
        CDDGMConfig.tiny(5, context_mode="tokens")


# ---------------------------------------------------------------------- cDDGM
def test_single_token_hybrid_conditioning() -> None:
    torch.manual_seed(0)
    model = _randomise_zero_init(ConditionalDenoiser(CDDGMConfig.tiny(5)))
    vec = torch.rand(3, 5)
    assert model.context(vec).shape == (3, 1, 5)
    emb = model.unet.class_embedding
    assert isinstance(emb[0], nn.Linear) and isinstance(emb[1], nn.SiLU)
    assert emb[0].weight.shape == (4 * 8, 5) and emb[0].bias is None
    x, t = torch.rand(3, 1, 32, 32), torch.tensor([0, 10, 999])
    with torch.no_grad():
        a, b = model(x, t, vec), model(x, t, vec)
        null = model(x, t, torch.zeros_like(vec))
    assert a.shape == x.shape
    assert torch.equal(a, b)  # eval mode is deterministic (no attention dropout)
    assert (a - null).abs().max() > 1e-4  # the IAP vector changes the estimate


def test_attention_is_fused_sdpa_without_dropout() -> None:
    model = ConditionalDenoiser(CDDGMConfig.tiny(5))
    attention = [m for n, m in model.named_modules() if n.endswith(("attn1", "attn2"))]
    assert attention
    for module in attention:
        assert module.use_flash_attention is True
        assert module.dropout_rate == 0.0


def test_per_iap_context_builds_and_runs() -> None:
    sizes = slot_sizes_of(VOCAB)
    torch.manual_seed(0)
    config = CDDGMConfig.tiny(VOCAB.dim, context_mode="per_iap", slot_sizes=sizes)
    model = _randomise_zero_init(ConditionalDenoiser(config))
    vec = torch.from_numpy(VOCAB.encode_many(RECORDS))
    ctx = model.context(vec)
    assert ctx.shape == (2, len(sizes), config.token_dim) == (2, 7, 8)
    changed = vec.clone()
    changed[:, VOCAB.slots[3].start] *= 0.5  # flip angle only
    diff = (model.context(changed) - ctx).abs().amax(dim=(0, 2))
    assert diff[3] > 0 and torch.all(diff[[0, 1, 2, 4, 5, 6]] == 0)
    with torch.no_grad():
        out = model(torch.rand(2, 1, 32, 32), torch.tensor([5, 50]), vec)
    assert out.shape == (2, 1, 32, 32) and torch.isfinite(out).all()


def test_cfg_dropout_zeroes_whole_vectors() -> None:
    vec = torch.rand(2000, 5) + 0.1
    assert torch.equal(cfg_dropout(vec, 0.0), vec)
    dropped = cfg_dropout(vec, 0.15, torch.Generator().manual_seed(0))
    zero_rows = (dropped == 0).all(dim=1)
    kept_rows = (dropped == vec).all(dim=1)
    assert torch.all(zero_rows | kept_rows)
    assert 0.12 < zero_rows.float().mean().item() < 0.18
    again = cfg_dropout(vec, 0.15, torch.Generator().manual_seed(0))
    assert torch.equal(dropped, again)


# ---------------------------------------------------------------------- IAP predictor
def test_predictor_shapes_and_features() -> None:
    model = IAPPredictor(IAPPredictorConfig.tiny(VOCAB.dim)).eval()
    x = torch.rand(3, 1, 32, 32)
    raw = model.predict(x)
    assert raw.shape == (3, VOCAB.dim)
    feats = model.features(x)
    assert feats.shape == (3, 16)
    torch.testing.assert_close(model.resnet.fc(feats), raw)
    preds = decode(raw, VOCAB)
    assert len(preds) == 3
    for pred in preds:
        for name, probs in pred.probabilities.items():
            assert sum(probs.values()) == pytest.approx(1.0)
            assert pred.confidence(name) == max(probs.values())


def test_predictor_decode_agrees_with_encode() -> None:
    encoded = VOCAB.encode_many(RECORDS)
    raw = encoded.copy()
    for slot in VOCAB.slots:  # one-hot blocks as confident logits; continuous values as is
        if slot.categorical:
            raw[:, slot.start : slot.stop] = encoded[:, slot.start : slot.stop] * 8.0 - 4.0
    decoded = decode(torch.from_numpy(raw), VOCAB)
    for pred, record in zip(decoded, RECORDS, strict=True):
        got = pred.record
        assert (got.manufacturer, got.model_name, got.scan_options) == (
            record.manufacturer,
            record.model_name,
            record.scan_options,
        )
        assert got.field_strength == record.field_strength
        for name in ("flip_angle", "slice_thickness", "echo_time", "repetition_time"):
            assert getattr(got, name) == pytest.approx(getattr(record, name), rel=1e-5)
        np.testing.assert_allclose(VOCAB.encode(got), VOCAB.encode(record), rtol=1e-5)


def test_iap_loss_weights_and_terms() -> None:
    targets = VOCAB.encode_many([RECORDS[0], RECORDS[0], RECORDS[0], RECORDS[1]])
    weights = inverse_frequency_weights(targets, VOCAB)
    model_w = weights["model_name"]
    skyra = VOCAB.categories["model_name"].index("Skyra")
    optima = VOCAB.categories["model_name"].index("Optima MR450w")
    assert model_w[skyra].item() == pytest.approx(4 / (2 * 3))
    assert model_w[optima].item() == pytest.approx(4 / (2 * 1))
    assert model_w.sum().item() == pytest.approx(4 / 6 + 2)  # absent categories weigh 0
    target = torch.from_numpy(targets)
    perfect = target.clone()
    for slot in VOCAB.slots:
        if slot.categorical:
            perfect[:, slot.start : slot.stop] = target[:, slot.start : slot.stop] * 40 - 20
    assert iap_loss(perfect, target, VOCAB, weights).item() < 1e-6
    raw = torch.randn(4, VOCAB.dim, generator=torch.Generator().manual_seed(0))
    terms = iap_loss_terms(raw, target, VOCAB, weights)
    assert set(terms) == {s.name for s in VOCAB.slots}
    s = VOCAB.slots[0]
    manual = torch.nn.functional.cross_entropy(
        raw[:, s.start : s.stop], target[:, s.start : s.stop].argmax(1), weight=weights[s.name]
    )
    torch.testing.assert_close(terms["model_name"], manual)
    c = VOCAB.slots[3]
    torch.testing.assert_close(
        terms["flip_angle"], ((raw[:, c.start] - target[:, c.start]) ** 2).mean()
    )
    torch.testing.assert_close(iap_loss(raw, target, VOCAB, weights), sum(terms.values()))


# ---------------------------------------------------------------------- segmenter
class _ThresholdSegmenter(nn.Module):
    """Stand-in network: label 1 where the normalised intensity > 0.5, else 0."""

    config = SegmenterConfig.tiny()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(x), 20 * (x - 0.5), torch.full_like(x, -50.0)], 1)


def test_segment_volume_maps_back_to_source_geometry() -> None:
    data = np.zeros((4, 40, 56), dtype=np.float32)
    data[:, 5:20, 8:30] = 100.0  # a bright block, off-centre, in a non-square slice
    data += np.random.default_rng(0).normal(0, 1, data.shape).astype(np.float32)
    volume = Volume(data)
    original = data.copy()
    labels = segment_volume(_ThresholdSegmenter(), volume, {"size": 32}, batch_size=3)
    assert labels.shape == (4, 40, 56) and labels.dtype == np.uint8
    assert np.array_equal(data, original)
    assert labels[:, 7:18, 10:28].min() == 1  # inside the block
    assert labels[:, 25:, :].max() == 0 and labels[:, :, 35:].max() == 0  # far outside


def test_segment_volume_with_unet_labels_progress_and_cancel() -> None:
    torch.manual_seed(0)
    model = Segmenter(SegmenterConfig.tiny()).eval()
    rng = np.random.default_rng(1)
    volume = Volume(rng.random((5, 24, 20), dtype=np.float32))
    seen: list[tuple[int, int]] = []
    labels = segment_volume(
        model, volume, None, batch_size=2, progress=lambda d, t, m: seen.append((d, t))
    )
    assert labels.shape == (5, 24, 20) and set(np.unique(labels)) <= {0, 1, 2}
    assert seen == [(2, 5), (4, 5), (5, 5)]
    one_by_one = segment_volume(model, volume, None, batch_size=1)
    assert np.array_equal(labels, one_by_one)
    with pytest.raises(CancelledError):
        segment_volume(model, volume, None, batch_size=2, should_stop=lambda: True)
