"""Volume-level jobs shared by the CLI, the napari widgets and training.

Every job takes ``progress(done, total, message)`` and ``should_stop()`` callbacks and raises
:class:`~napari_cf_iap.errors.CancelledError` when stopped; none touches Qt.
"""

from .bundle_access import DEFAULT_BUNDLES, get_bundle
from .counterfactual import generate_counterfactual
from .iap_prediction import predict_iap, predict_iap_per_slice, predict_iap_raw
from .requests import CounterfactualRequest
from .segmentation import segment

__all__ = [
    "DEFAULT_BUNDLES",
    "CounterfactualRequest",
    "generate_counterfactual",
    "get_bundle",
    "predict_iap",
    "predict_iap_per_slice",
    "predict_iap_raw",
    "segment",
]
