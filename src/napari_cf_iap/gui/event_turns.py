"""Split GUI-thread work across event-loop passes, so that no single pass stalls the GUI."""

from __future__ import annotations

from collections.abc import Callable

#: A real (1 ms) timer: Qt 5's ``QTimer.singleShot(0, ...)`` posts an event instead, and
#: posted events queued while others are handled run in the same pass as those, without the
#: due timers, paints and input in between.
LATER_MS = 1
#: long enough for the repaint a button press caused (~10-15 ms in software GL) to run first,
#: so that it and the next heavy step are two short stalls rather than one long one
AFTER_REPAINT_MS = 20


def later(callback: Callable[[], object], delay_ms: int = LATER_MS) -> None:
    """Call ``callback`` on the GUI thread in a later event-loop pass (after ``delay_ms``)."""
    from qtpy.QtCore import QTimer

    QTimer.singleShot(delay_ms, callback)
