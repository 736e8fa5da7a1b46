"""The thread-worker Job: progress on the GUI thread, results, errors, cancel, sync switch."""

from __future__ import annotations

import threading
import time

import pytest

from napari_cf_iap.errors import CancelledError, InputError
from napari_cf_iap.gui.workers import Job

pytestmark = pytest.mark.gui


def _steps(n, delay=0.0, record=None):
    def call(progress, should_stop):
        for i in range(n):
            if should_stop():
                raise CancelledError("stopped")
            if record is not None:
                record.append(threading.current_thread().name)
            time.sleep(delay)
            progress(i + 1, n, f"step {i + 1}")
        return "result"

    return call


def _collect(**extra):
    seen = {"progress": [], "result": [], "error": [], "cancelled": 0, "finished": 0}
    callbacks = dict(
        on_progress=lambda d, t, m: seen["progress"].append((d, t, m, threading.current_thread())),
        on_result=seen["result"].append,
        on_error=seen["error"].append,
        on_cancelled=lambda: seen.__setitem__("cancelled", seen["cancelled"] + 1),
        on_finished=lambda: seen.__setitem__("finished", seen["finished"] + 1),
    )
    callbacks.update(extra)
    return seen, callbacks


def test_job_runs_off_the_gui_thread_and_reports_every_step(qtbot):
    seen, callbacks = _collect()
    threads = []
    job = Job(_steps(4, record=threads), label="t", **callbacks).start()
    qtbot.waitUntil(lambda: seen["finished"] == 1, timeout=5000)
    assert seen["result"] == ["result"] and seen["cancelled"] == 0 and not seen["error"]
    assert [p[:2] for p in seen["progress"]] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    main = threading.main_thread()
    assert all(p[3] is main for p in seen["progress"])  # callbacks on the GUI thread
    assert threads and all(name != main.name for name in threads)  # compute elsewhere
    assert not job.running


def test_cancel_stops_within_a_step_and_never_delivers_a_result(qtbot):
    seen, callbacks = _collect()
    job = Job(_steps(200, delay=0.01), label="t", **callbacks).start()
    qtbot.waitUntil(lambda: len(seen["progress"]) >= 2, timeout=5000)
    started = time.perf_counter()
    job.cancel()
    qtbot.waitUntil(lambda: seen["finished"] == 1, timeout=5000)
    assert time.perf_counter() - started < 1.0
    assert seen["cancelled"] == 1 and seen["result"] == [] and len(seen["progress"]) < 200


def test_quit_from_the_activity_dock_also_stops_the_core(qtbot):
    seen, callbacks = _collect()
    job = Job(_steps(200, delay=0.01), label="t", **callbacks).start()
    qtbot.waitUntil(lambda: len(seen["progress"]) >= 1, timeout=5000)
    job.worker.quit()  # what napari's cancel button calls
    qtbot.waitUntil(lambda: seen["finished"] == 1, timeout=5000)
    assert seen["cancelled"] == 1 and seen["result"] == []
    assert job.cancel_requested


@pytest.mark.parametrize("error", [InputError("bad input: fix it"), RuntimeError("torch says no")])
def test_core_errors_reach_on_error_and_a_notification(qtbot, monkeypatch, error):
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", shown.append)

    def fail(progress, should_stop):
        raise error

    seen, callbacks = _collect()
    Job(fail, label="t", **callbacks).start()
    qtbot.waitUntil(lambda: seen["finished"] == 1, timeout=5000)
    assert seen["error"] == [error] and seen["result"] == []
    assert shown and str(error) in shown[0]


def test_sync_switch_runs_on_the_calling_thread(monkeypatch):
    monkeypatch.setenv("CF_IAP_SYNC_WORKERS", "1")
    seen, callbacks = _collect()
    threads = []
    job = Job(_steps(3, record=threads), label="t", **callbacks).start()
    assert job.worker is None and seen["result"] == ["result"] and seen["finished"] == 1
    assert threads == [threading.current_thread().name] * 3

    seen, callbacks = _collect()

    def cancel_on_first_step(done, total, message):
        job2.cancel()

    job2 = Job(_steps(5), label="t", **{**callbacks, "on_progress": cancel_on_first_step})
    job2.start()
    assert seen["cancelled"] == 1 and seen["result"] == []


def test_next_turn_start_prepares_and_launches_in_separate_event_loop_turns(qtbot):
    from qtpy.QtCore import QTimer

    order: list[str] = []

    def prepare():
        order.append("prepare")
        QTimer.singleShot(0, lambda: order.append("tick"))  # the loop runs before the launch

    def call(progress, should_stop):
        order.append("core")
        return "result"

    seen, callbacks = _collect(on_prepare=prepare)
    job = Job(call, notify=False, **callbacks).start(next_turn=True)
    assert job.running and order == []  # nothing in the caller's own turn
    qtbot.waitUntil(lambda: job.finished, timeout=5000)
    assert order == ["prepare", "tick", "core"] and seen["result"] == ["result"]


def test_a_failing_prepare_ends_the_job_without_starting_the_core(qtbot, monkeypatch):
    errors: list[str] = []
    monkeypatch.setattr("napari.utils.notifications.show_error", errors.append)
    called: list[bool] = []

    def prepare():
        raise InputError("no room for the result layer: close some layers")

    seen, callbacks = _collect(on_prepare=prepare)
    job = Job(lambda p, s: called.append(True), **callbacks).start(next_turn=True)
    qtbot.waitUntil(lambda: job.finished, timeout=5000)
    assert not called and not job.running and seen["finished"] == 1
    assert [type(e) for e in seen["error"]] == [InputError] and seen["result"] == []
    assert any("close some layers" in text for text in errors)


def test_background_imports_load_modules_off_the_calling_thread(monkeypatch):
    import sys

    from napari_cf_iap.gui.background_imports import LABELS_LAYER_IMPORTS, import_in_background

    assert LABELS_LAYER_IMPORTS == ("pandas",)  # what napari's first Labels layer imports
    name = "napari_cf_iap.metrics_basic"
    monkeypatch.delitem(sys.modules, name, raising=False)
    thread = import_in_background((name, "no_such_module_for_cf_iap"))
    assert thread is not threading.current_thread() and thread.daemon
    thread.join(timeout=30)
    assert not thread.is_alive() and name in sys.modules  # the missing one was skipped
