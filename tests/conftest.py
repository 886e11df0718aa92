"""Shared fixtures: the real datasets in ../shared/data (skipped with a reason when absent)."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("ALEXNET_DEMO_DATA") or ROOT.parent / "shared" / "data")


def sketch_value(draw=True):
    """A Sketchpad value as gradio hands it to a callback: a 480x480 RGBA layer, a black bar drawn (or nothing)."""
    import numpy as np
    layer = np.zeros((480, 480, 4), np.uint8)
    if draw:
        layer[100:380, 220:250] = (0, 0, 0, 255)
    return {"background": np.zeros_like(layer), "layers": [layer], "composite": layer}


def shipped_hashes() -> dict[str, str]:
    """sha256 of every shipped file under checkpoints/: a test compares them before and after."""
    import hashlib
    from alexnet_demo.checkpoints import CHECKPOINT_DIR
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(CHECKPOINT_DIR.glob("*.safetensors"))}


class RecordingApi:
    """Stands in for huggingface_hub.HfApi (not ours): records the calls instead of sending them."""

    def __init__(self):
        self.calls = []

    def create_repo(self, **kwargs):
        self.calls.append(("create_repo", kwargs))

    def upload_file(self, **kwargs):
        self.calls.append(("upload_file", kwargs))


def has_data(name: str) -> bool:
    return (SHARED_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file() if name == "mnist" else \
        (SHARED_DATA / "cifar10-jpg" / "test").is_dir() or (SHARED_DATA / "cifar-10-batches-py").is_dir()


@pytest.fixture
def data_root():
    if not has_data("mnist"):
        pytest.skip(f"real MNIST not found under {SHARED_DATA} (set ALEXNET_DEMO_DATA to a data root)")
    return str(SHARED_DATA)


@pytest.fixture
def cifar_root():
    if not has_data("cifar10"):
        pytest.skip(f"real CIFAR-10 not found under {SHARED_DATA} (set ALEXNET_DEMO_DATA to a data root)")
    return str(SHARED_DATA)


@pytest.fixture(scope="session")
def live_app():
    """The app on a free loopback port, with the shipped checkpoints; (url, demo)."""
    from alexnet_demo.ui import app
    from alexnet_demo.checkpoints import CHECKPOINT_DIR
    if not all((CHECKPOINT_DIR / f"{p}.safetensors").is_file() for p in ("mnist", "cifar10")):
        pytest.skip("the shipped checkpoints are not in checkpoints/")
    if has_data("mnist"):
        os.environ["ALEXNET_DEMO_DATA"] = str(SHARED_DATA)  # the server reads it when a run starts
    demo = app.build_demo()
    _, url, _ = app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    yield url, demo
    demo.close()


@pytest.fixture(scope="session")
def untrained_mnist():
    """A real, randomly initialized mnist-preset classifier at the smallest input (65 px): fast, no checkpoint."""
    import torch
    from alexnet_demo.inference import Classifier
    from alexnet_demo.models import MNIST_CLASSES, build_model
    torch.manual_seed(0)
    return Classifier(build_model("mnist", 65), {"preset": "mnist", "input_size": 65, "classes": MNIST_CLASSES})


@pytest.fixture(scope="session")
def untrained_cifar():
    import torch
    from alexnet_demo.inference import Classifier
    from alexnet_demo.models import CIFAR10_CLASSES, build_model
    torch.manual_seed(0)
    return Classifier(build_model("cifar10"), {"preset": "cifar10", "input_size": 50, "classes": CIFAR10_CLASSES})
