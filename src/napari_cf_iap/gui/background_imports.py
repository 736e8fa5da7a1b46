"""Import heavy modules on a helper thread when a widget opens, before a Run needs them.

napari's Labels layer imports pandas the first time one is built (~200 ms on the GUI thread),
and the first model a worker loads imports MONAI (~1.6 s). An import holds the GIL while a
compiled extension initialises, so MONAI's import stalls the event loop in 60-120 ms pieces
wherever it runs; started when the widget opens, it is done before the user presses Run.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Sequence

#: what napari imports when the first Labels layer is built
LABELS_LAYER_IMPORTS = ("pandas",)
#: the segmenter's network (MONAI)
SEGMENTER_IMPORTS = ("napari_cf_iap.models.segmenter",)
#: the IAP predictor's network (MONAI)
PREDICTOR_IMPORTS = ("napari_cf_iap.models.iap_predictor",)


def import_in_background(modules: Sequence[str] = LABELS_LAYER_IMPORTS) -> threading.Thread:
    """Start a daemon thread importing ``modules`` (missing ones are skipped); return it."""

    def run() -> None:
        for name in modules:
            with contextlib.suppress(ImportError):  # napari then does without it
                importlib.import_module(name)

    thread = threading.Thread(target=run, name="cf-iap-imports", daemon=True)
    thread.start()
    return thread
