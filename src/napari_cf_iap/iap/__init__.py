"""IAP schema: the record of one acquisition, its normalisation and its vector encoding."""

from .record import CATEGORICAL_IAPS, CONTINUOUS_IAPS, IAP_LABELS, IAP_NAMES, IAPRecord
from .vocabulary import IAPExtrapolationWarning, IAPSlot, IAPVocabulary, PredictedIAP

__all__ = [
    "CATEGORICAL_IAPS",
    "CONTINUOUS_IAPS",
    "IAP_LABELS",
    "IAP_NAMES",
    "IAPExtrapolationWarning",
    "IAPRecord",
    "IAPSlot",
    "IAPVocabulary",
    "PredictedIAP",
]
