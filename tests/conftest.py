"""Shared fixtures: the real datasets in ../shared/data (skipped with a reason when absent)."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("ALEXNET_DEMO_DATA") or ROOT.parent / "shared" / "data")


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
    from alexnet_demo import ui
    from alexnet_demo.checkpoints import CHECKPOINT_DIR
    if not all((CHECKPOINT_DIR / f"{p}.safetensors").is_file() for p in ("mnist", "cifar10")):
        pytest.skip("the shipped checkpoints are not in checkpoints/")
    if has_data("mnist"):
        os.environ["ALEXNET_DEMO_DATA"] = str(SHARED_DATA)  # the server reads it when a run starts
    demo = ui.build_demo()
    _, url, _ = ui.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
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
