"""Import napari's lazy dependencies on a helper thread, before a widget needs them.

napari's Labels layer imports pandas the first time one is built (~200 ms). On the GUI thread
that is a stall; imported on a helper thread when the widget opens, it is already done (or
runs interleaved with the event loop) by the time the first mask is shown.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Sequence

#: what napari imports when the first Labels layer is built
LABELS_LAYER_IMPORTS = ("pandas",)


def import_in_background(modules: Sequence[str] = LABELS_LAYER_IMPORTS) -> threading.Thread:
    """Start a daemon thread importing ``modules`` (missing ones are skipped); return it."""

    def run() -> None:
        for name in modules:
            with contextlib.suppress(ImportError):  # napari then does without it
                importlib.import_module(name)

    thread = threading.Thread(target=run, name="cf-iap-imports", daemon=True)
    thread.start()
    return thread
