"""A worker of several threads (`hookyard worker --threads N`): its jobs' remote calls overlap, each run still runs
once, and it stops as a one-thread worker does (tests/test_recovery.py runs those cases in every worker mode)."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import purchase, worker_env
from .processes import alive, descendants
from .test_e2e import wait_status
from .waiting import wait_for

pytestmark = pytest.mark.e2e
BUYERS = [f"buyer{i}@example.com" for i in range(4)]


def test_a_worker_of_four_threads_has_four_calls_in_flight_at_once(setup, api, recorder, start_worker):
    setup.rule(setup.integration())
    for email in BUYERS:
        recorder.holds[email] = 4  # a slow remote: each call is answered 4 s after it arrives (the action waits 5)
    start_worker(HOOKYARD_WORKER_THREADS="4")
    events = [setup.emit(purchase(email=email)) for email in BUYERS]
    for event in events:
        [run] = wait_status(api, event["id"])
        assert (run["status"], run["attempts"]) == ("succeeded", 1)
    # One thread would have had one call at a time (each answered before the next was made).
    assert recorder.most_in_flight == 4
    assert sorted(c["email"] for c in recorder.calls) == sorted(BUYERS)  # each buyer called once


def test_a_second_stop_signal_stops_a_threaded_worker_at_once(setup, api, recorder, start_worker):
    """Warm, then cold, as RQ's own worker does: the run in flight is left to its lease (tests/test_recovery.py)."""
    setup.rule(setup.integration())
    recorder.holds["ada@example.com"] = 4
    worker = start_worker(HOOKYARD_WORKER_THREADS="2", HOOKYARD_WORKER_STOP_TIMEOUT="30")
    setup.emit(purchase())
    wait_for(lambda: recorder.calls_for("ada@example.com"), message="the action never started")
    below = descendants(worker.pid)  # its RQ scheduler, a process of its own
    assert below
    worker.send_signal(signal.SIGTERM)
    wait_for(lambda: "stopping 2 worker threads" in _log(start_worker), message="the first signal was not seen")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == 1  # well before the call's hold ends and the 30 s grace
    # Not left behind holding the queues' scheduler locks with a live heartbeat, for ever.
    wait_for(lambda: not any(alive(pid) for pid in below), timeout=10, message=f"outlived the worker: {below}")


def _log(start_worker) -> str:
    return start_worker.procs[-1][2].read_text()


def test_threads_cannot_be_combined_with_fork(settings, plugin_site):
    done = subprocess.run(
        [str(Path(sys.executable).parent / "hookyard"), "worker", "--fork", "--threads", "2"],
        env=worker_env(settings, plugin_site),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--threads runs the jobs in this process: it cannot be combined with --fork" in done.stderr


@pytest.mark.parametrize("value", ["0", "33", "many"])
def test_a_bad_thread_count_is_refused_in_one_line(settings, plugin_site, value):
    done = subprocess.run(
        [str(Path(sys.executable).parent / "hookyard"), "worker"],
        env=worker_env(settings, plugin_site, HOOKYARD_WORKER_THREADS=value),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--threads" in done.stderr, done.stderr
