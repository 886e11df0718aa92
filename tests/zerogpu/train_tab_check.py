"""The Train tab's streaming callback through the ZeroGPU double, run by tests/test_zerogpu.py in a fresh Python
with SPACES_ZERO_GPU set: this script's folder comes first on sys.path, so `import spaces` is the double, and the
app module decorates its device work with it when it loads. Prints "all checks passed" or fails an assert."""
import multiprocessing
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(1, str(HERE.parent.parent))  # the repository, after the double

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import spaces  # noqa: E402

assert Path(spaces.__file__).parent.parent == HERE and spaces.ZERO_GPU, "not the double, or ZeroGPU unset"

from alexnet_demo.ui import training as ui  # noqa: E402

assert hasattr(ui.train_on_device, "zerogpu"), "the device work is not wrapped by spaces.GPU"
assert "ZeroGPU" in ui.device_line() and ui._form_defaults()["input_size"] == 224  # no CUDA asked


def short(*args, **kwargs):
    """The form's config, evaluated on 300 test images: the check's runs stay short on 2 busy cores."""
    config = make_config(*args, **kwargs)
    config.eval_limit = 300
    return config


make_config, ui.make_config = ui.make_config, short
ui.GPU_IMAGES_PER_S_224 = 30  # this CPU plays the GPU: a slot estimate at its speed (capped by GPU_DURATION)
FORM = ("mnist", 1, 32, 3e-4, "adam", "none", 256, 65, False, False)
SKETCH = np.zeros((480, 480, 4), np.uint8)
SKETCH[100:380, 220:250] = (0, 0, 0, 255)  # a "1"
DRAWING = {"background": np.zeros_like(SKETCH), "layers": [SKETCH], "composite": SKETCH}


def named(outputs):
    return dict(zip(ui.OUTPUTS, outputs))


def nothing_left():
    assert not ui.TRAIN_LOCK.locked(), "the training lock is still held"
    assert multiprocessing.active_children() == [], multiprocessing.active_children()


# No data and no network: the engine's clear message crosses from the worker as a gr.Error (other exceptions
# would arrive as their class name only)
data, os.environ["ALEXNET_DEMO_DATA"] = os.environ["ALEXNET_DEMO_DATA"], tempfile.mkdtemp()
try:
    list(ui.train_run(*FORM))
    raise AssertionError("a run without data did not fail")
except ui.gr.Error as e:
    assert "Looked in" in e.message and "ALEXNET_DEMO_DATA" in e.message, e.message
os.environ["ALEXNET_DEMO_DATA"] = data
nothing_left()
print("no data: ok")

# Stop (gradio closes the generator) after the first step: the worker ends, the lock is free
stream = ui.train_run(*FORM)
for outputs in stream:
    progress = named(outputs)["progress"]
    if isinstance(progress, str) and progress.startswith("Step"):
        break
assert ui.TRAIN_LOCK.locked() and len(multiprocessing.active_children()) == 1
stream.close()
nothing_left()
print("stop: ok")

# A whole run watching the visitor's drawing: plots and time-lapse stream, the model comes back usable
frames = [named(outputs) for outputs in ui.train_run(*FORM, drawing=DRAWING)]
nothing_left()
assert [f["progress"] for f in frames].count("Loading MNIST…") == 1
assert sum(isinstance(f["losses"], pd.DataFrame) for f in frames[:-1]) >= 3, "the plots did not stream"
live = [f for f in frames[:-1] if hasattr(f["layers"], "mode")]  # a picture, not gr.skip()
assert len(live) >= 4 and live[0]["layers"].mode == "P", "the time-lapse did not stream"
assert abs(sum(live[-1]["probe"].values()) - 1) < 1e-3
last = frames[-1]
assert last["progress"] == "Done." and "Test accuracy" in last["result"]
assert len(last["trained"].predict(DRAWING["composite"])) == 10
assert len(last["snapshots"]) == len(live) and Path(last["gif"]).is_file()
assert list(last["runs_table"]["run"]) == ["run 1"]
config = short(*FORM)
assert spaces.calls[-1] == ("train_on_device", ui.gpu_slot_s(config)), spaces.calls
assert config.time_limit_s == ui.gpu_slot_s(config) - ui.SLOT_MARGIN_S
print("run: ok")

# The next run works, and the session's runs carry over
again = [named(outputs) for outputs in ui.train_run(*FORM, runs=last["runs"])]
nothing_left()
assert list(again[-1]["runs_table"]["run"]) == ["run 1", "run 2"]
mnist, cifar, note = ui.use_run(again[-1]["runs"], "run 1", None, None)
assert mnist is not None and cifar is None and "run 1" in note
print("next run: ok")

# A run longer than its slot ends at its time limit with a tested model, not an abort
ui.GPU_DURATION = 30  # the owner's smallest slot: 10 s of training
long_run = [named(outputs) for outputs in ui.train_run("mnist", 3, 32, 3e-4, "adam", "none", 4096, 65, False, False)]
nothing_left()
assert long_run[-1]["progress"].startswith("Done: the time limit"), long_run[-1]["progress"]
assert long_run[-1]["trained"] is not None
print("time limit: ok")
print("all checks passed")
