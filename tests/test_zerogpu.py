"""ZeroGPU without ZeroGPU: the test double in tests/zerogpu/spaces behaves like spaces.GPU where an app can tell
(forked child per call, pickled arguments and yields, stop at the next yield, duration enforced); then the Train
tab's streaming callback runs through it in a fresh process (tests/zerogpu/train_tab_check.py)."""
import importlib.util
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

gr = pytest.importorskip("gradio")

DOUBLE = Path(__file__).resolve().parent / "zerogpu"


@pytest.fixture
def spaces(monkeypatch):
    """The double, imported fresh with SPACES_ZERO_GPU set (it reads the variable at import, as spaces does)."""
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    spec = importlib.util.spec_from_file_location("zerogpu_double", DOUBLE / "spaces" / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    assert multiprocessing.active_children() == []  # no child outlives its call


def test_without_zerogpu_the_function_is_returned_unchanged(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    spec = importlib.util.spec_from_file_location("zerogpu_off", DOUBLE / "spaces" / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def task():
        yield 1
    assert module.GPU(duration=5)(task) is task and module.GPU(task) is task


def test_yields_come_back_pickled_from_a_forked_child(spaces):
    parent = os.getpid()
    shared = {"touched": False}

    @spaces.GPU(duration=lambda n, box: 10 + n)
    def task(n, box):
        box["touched"] = True  # the child's copy: the caller's dict is not changed
        for i in range(n):
            yield i, os.getpid(), box

    values = list(task(3, shared))
    assert [v[0] for v in values] == [0, 1, 2]
    assert {v[1] for v in values} != {parent} and values[0][2] == {"touched": True}
    assert shared == {"touched": False} and values[0][2] is not values[1][2]  # each yield unpickled anew
    assert spaces.calls[-1] == ("task", 13.0)  # the duration callable got the call's arguments


def test_a_thread_lock_taken_in_the_child_is_the_childs_copy(spaces):
    import threading
    lock = threading.Lock()

    @spaces.GPU
    def task():
        yield lock.acquire(blocking=False)

    assert list(task()) == [True] and list(task()) == [True]  # never seen as held: nothing is serialised
    assert not lock.locked()


def test_errors_cross_as_gradio_errors_or_class_names(spaces):
    @spaces.GPU
    def refuses():
        yield 1
        raise gr.Error("a clear message")

    @spaces.GPU
    def crashes():
        raise RuntimeError("the details stay in the child")
        yield

    with pytest.raises(gr.Error, match="a clear message"):
        list(refuses())
    with pytest.raises(gr.Error) as info:
        list(crashes())
    assert info.value.message == "RuntimeError"


def test_an_unpicklable_yield_ends_the_call(spaces):
    import threading

    @spaces.GPU
    def task():
        yield 1
        yield threading.Lock()

    with pytest.raises(gr.Error, match="PicklingError"):
        list(task())


def test_closing_the_caller_stops_the_child_at_its_next_yield(spaces, tmp_path):
    marker = tmp_path / "finally-ran"

    @spaces.GPU(duration=30)
    def task():
        try:
            for i in range(10**6):
                yield i
        finally:
            marker.write_text("closed in the child")

    stream = task()
    assert next(stream) == 0 and next(stream) == 1
    stream.close()  # gradio does this on Stop or a closed tab
    assert marker.read_text() == "closed in the child"


def test_past_its_duration_the_child_is_killed_and_the_call_aborted(spaces):
    import time

    @spaces.GPU(duration=1)
    def task():
        yield "started"
        time.sleep(60)
        yield "never"

    stream = task()
    assert next(stream) == "started"
    with pytest.raises(gr.Error, match="GPU task aborted"):
        next(stream)


def test_a_regular_function_returns_its_value_pickled(spaces):
    @spaces.GPU(duration=10)
    def task(x):
        return {"pid": os.getpid(), "x": x}

    result = task(4)
    assert result["x"] == 4 and result["pid"] != os.getpid()


@pytest.mark.slow
def test_the_train_tab_streams_stops_and_hands_back_its_model_through_zerogpu(data_root):
    """A fresh Python with the double first on sys.path (a script's folder is) and SPACES_ZERO_GPU set."""
    done = subprocess.run([sys.executable, str(DOUBLE / "train_tab_check.py")], cwd=DOUBLE.parent.parent,
                          env={**os.environ, "SPACES_ZERO_GPU": "true", "ALEXNET_DEMO_DATA": data_root,
                               "ALEXNET_DEMO_GPU_DURATION": "90"},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "all checks passed" in done.stdout


def test_the_page_is_built_without_asking_cuda_anything():
    """On ZeroGPU the main process only emulates CUDA (spaces/zero/torch/patching.py: is_available() is True and
    get_device_name() answers a configured name; a real CUDA init raises). The page says "ZeroGPU" and
    preselects the GPU recipe without a CUDA call: here any call to those fails the build."""
    code = (
        "import sys\nsys.path.insert(0, 'tests/zerogpu')\nimport spaces, torch\n"
        "def asked(*a, **k):\n    raise AssertionError('CUDA was asked at page-build time')\n"
        "torch.cuda.get_device_name = torch.cuda.get_device_properties = torch._C._cuda_init = asked\n"
        "from alexnet_demo.ui import app, training as ui\n"
        "assert 'ZeroGPU' in ui.device_line() and ui._form_defaults()['input_size'] == 224\n"
        "app.build_demo()\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=DOUBLE.parent.parent, capture_output=True, text=True,
                          env={**os.environ, "SPACES_ZERO_GPU": "true"}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
