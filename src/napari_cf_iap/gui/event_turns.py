"""Split GUI-thread work across event-loop passes, so that no single pass stalls the GUI."""

from __future__ import annotations

from collections.abc import Callable

#: A real (1 ms) timer: Qt 5's ``QTimer.singleShot(0, ...)`` posts an event instead, and
#: posted events queued while others are handled run in the same pass as those, without the
#: due timers, paints and input in between.
LATER_MS = 1


def later(callback: Callable[[], object]) -> None:
    """Call ``callback`` on the GUI thread in a later event-loop pass."""
    from qtpy.QtCore import QTimer

    QTimer.singleShot(LATER_MS, callback)
