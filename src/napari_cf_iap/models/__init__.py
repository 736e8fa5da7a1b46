"""Networks: the conditional denoiser (cDDGM), the IAP predictor and the segmenter.

Import the submodules (``models.cddgm``, ``models.iap_predictor``, ``models.segmenter``)
for the torch networks; this package and ``models.config`` import no torch.
"""

from .config import CDDGMConfig, IAPPredictorConfig, SegmenterConfig, slot_sizes_of

__all__ = ["CDDGMConfig", "IAPPredictorConfig", "SegmenterConfig", "slot_sizes_of"]
