"""The cDDGM's validation diagnostic: how far the IAP condition moves the x0 estimate."""

from __future__ import annotations

import torch
from cf_iap_training.cddgm_module import CDDGMModule
from cf_iap_training.presets import get_preset

from napari_cf_iap.iap import IAPVocabulary
from napari_cf_iap.models.config import CDDGMConfig


def _module() -> CDDGMModule:
    vocab = IAPVocabulary.duke_default()
    config = CDDGMConfig.tiny(vocab.dim)
    preset = get_preset("cddgm", "tiny").to_dict()
    module = CDDGMModule(config.to_dict(), preset, vocab.to_dict()).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # MONAI zero-initialises output convolutions: give every weight a value
        for param in module.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=g))
    return module


def _batch(module: CDDGMModule):
    g = torch.Generator().manual_seed(0)
    size = module.config.image_size
    x0 = torch.rand((4, 1, size, size), generator=g)
    iap = torch.rand((4, module.config.iap_dim), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    return x0, iap, torch.tensor([5, 20, 40, 70]), noise


def test_condition_effect_is_zero_for_a_model_that_ignores_its_condition():
    module = _module()
    x0, iap, t, noise = _batch(module)
    with torch.no_grad():
        assert module.condition_effect(x0, iap, t, noise) > 0  # random weights react to IAPs
        inner = module.model.forward
        module.model.forward = lambda x, tt, vec: inner(x, tt, torch.zeros_like(vec))
        assert float(module.condition_effect(x0, iap, t, noise)) == 0.0


def test_condition_effect_is_in_image_units():
    """Scaling the noise-prediction gap by k scales the effect by k (x0 = (x_t - s eps) / a)."""
    module = _module()
    x0, iap, t, noise = _batch(module)
    with torch.no_grad():
        base = float(module.condition_effect(x0, iap, t, noise))
        inner = module.model.forward

        def doubled(x, tt, vec):
            null = inner(x, tt, torch.zeros_like(vec))
            return null + 2 * (inner(x, tt, vec) - null)

        module.model.forward = doubled
        assert abs(float(module.condition_effect(x0, iap, t, noise)) - 2 * base) < 1e-4 * (1 + base)
