"""Datasets load as real uint8 tensors, splits are stratified, batches are resized/augmented on the device."""
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


def test_a_closing_fills_a_ring_s_hole_and_keeps_its_outline():
    from alexnet_demo.data import dilate_erode
    yy, xx = torch.meshgrid(torch.arange(56), torch.arange(56), indexing="ij")
    r = ((yy - 28) ** 2 + (xx - 28) ** 2).float().sqrt()
    ring = ((r >= 6) & (r <= 9)).float()[None, None].repeat(3, 1, 1, 1)  # a 0 with a 12 px hole
    out = dilate_erode(ring, torch.tensor([0, 2, 6]), torch.tensor([0, 2, 6]))
    assert torch.equal(out[0], ring[0])  # 0 steps: untouched
    assert out[1, 0, 28, 28] == 0 and out[2, 0, 28, 28] == 1  # 2 steps leave the hole open; 6 fill it
    for closed in out[1:]:  # a closing only adds ink inside: the outline (everything beyond r = 9) is unchanged
        assert torch.equal(closed[0][r > 9], ring[0, 0][r > 9]) and torch.all(closed[0] >= ring[0, 0])


def test_bold_strokes_touch_only_their_share_of_digits(data_root):
    from alexnet_demo.data import load_dataset
    images = load_dataset("mnist", "test", data_root).images[:200]
    plain = prepare_batch(images, "mnist", 56)
    none = prepare_batch(images, "mnist", 56, bold=1e-9, generator=torch.Generator().manual_seed(0))
    half = prepare_batch(images, "mnist", 56, bold=0.5, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(none, plain, atol=1e-5)  # the 2x detour alone changes nothing at the input size
    changed = (half - plain).abs().flatten(1).amax(1) > 1e-3
    assert 70 <= int(changed.sum()) <= 130  # about half, each drawn bolder: more ink, never less
    assert torch.all(half[changed].sum((1, 2, 3)) > plain[changed].sum((1, 2, 3)))
