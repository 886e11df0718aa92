"""Concurrency on loopback: visitors classify while a run streams; two runs at once; stop and start again."""
import gc
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("gradio")
from gradio_client import Client  # noqa: E402

from alexnet_demo.ui import training as train_tab  # noqa: E402
from conftest import shipped_hashes  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import load  # noqa: E402

pytestmark = pytest.mark.slow


def wait_unlocked(seconds=60):
    deadline = time.monotonic() + seconds
    while train_tab.TRAIN_LOCK.locked() and time.monotonic() < deadline:
        time.sleep(0.25)
    return not train_tab.TRAIN_LOCK.locked()


def test_visitors_classify_without_failures_while_a_run_streams(live_app, data_root, tmp_path):
    """The short form of bench/load.py (20 clients x 30 s there)."""
    result = load.run_load(live_app[0], clients=4, seconds=8, folder=tmp_path)
    print(result)
    assert result["failed"] == 0, result["failures"]
    assert result["answers"] >= 8 and result["p95_ms"] is not None and result["panel_p95_ms"] >= result["p95_ms"]
    assert wait_unlocked()


def test_two_visitors_start_training_at_once(live_app, data_root):
    before = shipped_hashes()
    first, second = Client(live_app[0], verbose=False), Client(live_app[0], verbose=False)
    running = first.submit(**load.TRAIN_FORM, api_name="/train")
    deadline = time.monotonic() + 60
    while not train_tab.TRAIN_LOCK.locked() and time.monotonic() < deadline:
        time.sleep(0.2)
    with pytest.raises(Exception, match="Busy: another visitor is training"):
        second.predict(**load.TRAIN_FORM, api_name="/train")
    running.cancel()
    assert wait_unlocked()
    assert shipped_hashes() == before  # nobody's run touched the shipped files


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_stop_and_closed_clients_leave_no_lock_thread_or_memory_behind(live_app, data_root):
    def start_and_stop(close_client: bool):
        client = Client(live_app[0], verbose=False)
        job = client.submit(**load.TRAIN_FORM, api_name="/train")
        deadline = time.monotonic() + 120
        while not any(o[2] and o[2].startswith("Step") for o in job.outputs()) and time.monotonic() < deadline:
            time.sleep(0.25)
        if close_client:
            client.close()  # the visitor's browser goes away mid-run
        job.cancel()
        assert wait_unlocked(120), "the training lock was not released"

    start_and_stop(False)
    gc.collect()
    threads, rss = threading.active_count(), rss_mb()
    for close in (False, True, False):
        start_and_stop(close)
    gc.collect()
    time.sleep(2)
    assert threading.active_count() <= threads + 2  # gradio_client keeps a few idle workers
    assert rss_mb() < rss + 300, (rss, rss_mb())  # MB: no training run's tensors are kept
