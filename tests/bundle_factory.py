"""Tiny, untrained bundles of every kind for tests (seconds to build, never shipped)."""

from __future__ import annotations

from pathlib import Path

import torch

from napari_cf_iap.bundles.bundle import build_model, save_bundle
from napari_cf_iap.iap import IAPVocabulary
from napari_cf_iap.models.config import CDDGMConfig, IAPPredictorConfig, SegmenterConfig


def make_tiny_bundles(root: Path, vocab: IAPVocabulary | None = None) -> dict[str, Path]:
    """Write tiny cddgm / iap_predictor / segmenter bundles under ``root``."""
    vocab = vocab or IAPVocabulary.duke_default()
    torch.manual_seed(0)
    configs = {
        "cddgm": CDDGMConfig.tiny(vocab.dim),
        "iap_predictor": IAPPredictorConfig.tiny(vocab.dim),
        "segmenter": SegmenterConfig.tiny(),
    }
    paths = {}
    for kind, config in configs.items():
        model = build_model(kind, config)
        paths[kind] = save_bundle(
            model,
            config,
            root / kind,
            kind=kind,
            vocab=None if kind == "segmenter" else vocab,
            provenance={"note": "tiny untrained test bundle"},
            inference_defaults={"steps": 4, "guidance": 2.0} if kind == "cddgm" else None,
        )
    return paths
