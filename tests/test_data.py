"""Datasets load as real uint8 tensors, splits are stratified, batches are resized/augmented on the device."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from alexnet_demo.data import (DataNotFoundError, load_dataset, load_image_folder, prepare_batch,
                               resolve_data_root, stratified_split)


def test_data_root_precedence(monkeypatch):
    monkeypatch.setenv("ALEXNET_DEMO_DATA", "/env/root")
    assert str(resolve_data_root("/flag/root")) == "/flag/root"
    assert str(resolve_data_root()) == "/env/root"
    monkeypatch.delenv("ALEXNET_DEMO_DATA")
    assert str(resolve_data_root()) == "data"


def test_missing_data_lists_where_it_looked(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("mnist", "train", tmp_path, download=False)
    assert str(tmp_path / "MNIST" / "raw") in str(info.value)
    assert "ALEXNET_DEMO_DATA" in str(info.value)


def test_real_mnist_has_the_official_label_counts(data_root):
    test = load_dataset("mnist", "test", data_root, download=False)
    assert test.images.shape == (10000, 1, 28, 28) and test.images.dtype == torch.uint8
    assert test.labels.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_cifar10_loads_from_the_jpeg_tree(cifar_root):
    test = load_dataset("cifar10", "test", cifar_root, download=False)
    assert test.images.shape == (10000, 3, 32, 32)
    assert test.classes[0] == "airplane" and test.classes[-1] == "truck"
    assert test.labels.bincount().tolist() == [1000] * 10


def test_any_folder_per_class_tree_loads_and_caches(tmp_path):
    from PIL import Image
    for label, cls in enumerate(["a", "b"]):
        (tmp_path / "tree" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (label * 200, i * 50, 0)).save(tmp_path / "tree" / cls / f"{i}.png")
    first = load_image_folder(tmp_path / "tree", cache_dir=tmp_path)
    second = load_image_folder(tmp_path / "tree", cache_dir=tmp_path)  # from the safetensors cache
    assert first.classes == ("a", "b") and first.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert torch.equal(first.images, second.images) and first.images[3, 0, 0, 0] == 200


def test_stratified_split_keeps_class_proportions():
    labels = torch.arange(10).repeat_interleave(100)
    train, val = stratified_split(labels, 0.1, seed=0)
    assert len(val) == 100 and labels[val].bincount().tolist() == [10] * 10
    assert len(set(train.tolist()) & set(val.tolist())) == 0
    assert torch.equal(val, stratified_split(labels, 0.1, seed=0)[1])


def test_prepare_batch_resizes_and_normalizes():
    images = torch.zeros(4, 1, 28, 28, dtype=torch.uint8)
    x = prepare_batch(images, "mnist", 224)
    assert x.shape == (4, 1, 224, 224)
    assert torch.allclose(x, torch.full_like(x, -0.1307 / 0.3081), atol=1e-5)


def test_augmentation_shifts_digits_but_keeps_their_ink():
    images = torch.zeros(64, 1, 28, 28, dtype=torch.uint8)
    images[:, :, 10:18, 10:18] = 255
    g = torch.Generator().manual_seed(0)
    plain = prepare_batch(images, "mnist", 56)
    shifted = prepare_batch(images, "mnist", 56, augment=True, generator=g)
    assert not torch.allclose(plain, shifted)  # some samples moved
    assert torch.allclose(plain.sum(dim=(1, 2, 3)), shifted.sum(dim=(1, 2, 3)), rtol=1e-3)  # nothing cut off


TORCHVISION_FROM_FOUR_THREADS = '''
import sys, tempfile, threading, time
import torch
from alexnet_demo.data import _TORCHVISION_LOCK, DataNotFoundError, load_dataset
from alexnet_demo.inspection import filter_grid, grid_indices

assert "torchvision" not in sys.modules, "importing the package must not import torchvision"
errors, empty = [], tempfile.mkdtemp()

def call(f):
    try:
        f()
    except DataNotFoundError:
        pass  # the empty folder: expected, and only after torchvision was imported
    except Exception as e:
        errors.append(repr(e))

calls = [lambda: grid_indices(torch.rand(4, 3, 3)), lambda: filter_grid(torch.rand(8, 1, 3, 3)),
         lambda: load_dataset("mnist", "test", empty, download=False),
         lambda: load_dataset("cifar10", "test", empty, download=False)]
threads = [threading.Thread(target=call, args=(f,)) for f in calls]
with _TORCHVISION_LOCK:
    for t in threads:
        t.start()
    time.sleep(0.5)
    assert "torchvision" not in sys.modules, "a caller imported torchvision without the lock"
for t in threads:  # released: all four want torchvision at the same moment
    t.join()
assert not errors, errors
assert "torchvision" in sys.modules
'''


def test_torchvision_imported_from_four_threads_at_once_does_not_deadlock():
    """CI once failed this way: the app's warm-up thread (feature-map tiles) and a test loading MNIST imported
    torchvision at the same moment and CPython raised _DeadlockError inside torchvision's circular package imports.
    Every lazy use of torchvision must wait on the one lock; then four threads at once all succeed."""
    result = subprocess.run([sys.executable, "-c", TORCHVISION_FROM_FOUR_THREADS], capture_output=True, text=True,
                            timeout=120, cwd=Path(__file__).parent.parent)
    assert result.returncode == 0, result.stderr[-2000:]
