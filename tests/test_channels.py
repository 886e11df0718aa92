"""Channel index: the top images per channel are the true top by max activation, stored once, and read back."""
import time

import pytest
import torch
from matplotlib.figure import Figure

from alexnet_demo.channels import (
    ChannelIndexNotFound,
    build_index,
    channel_examples,
    channel_figure,
    index_path_for,
    load_index,
    save_index,
)
from alexnet_demo.checkpoints import CHECKPOINT_DIR
from alexnet_demo.data import Dataset, prepare_batch
from alexnet_demo.models import CONV_LAYERS, MNIST_CLASSES, forward_with_maps


@pytest.fixture(scope="module")
def digits():
    """30 random 'digits': sparse bright blobs on black, so channels disagree about which they like."""
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(30, 1, 28, 28, generator=g) > 0.8).to(torch.uint8) * 255
    return Dataset(images, torch.arange(30) % 10, MNIST_CLASSES, "synthetic")


@pytest.fixture(scope="module")
def small_index(untrained_mnist, digits):
    return build_index(untrained_mnist, digits, limit=25, batch_size=8)  # batches of 8: top-9 carried across


def test_index_path_sits_beside_the_checkpoint():
    assert index_path_for("checkpoints/mnist.safetensors").as_posix() == "checkpoints/mnist.channels.safetensors"


def test_each_channel_keeps_its_true_top_nine_by_max_activation(untrained_mnist, digits, small_index):
    x = prepare_batch(digits.images[:25], "mnist", untrained_mnist.input_size)
    with torch.no_grad():
        _, maps = forward_with_maps(untrained_mnist.model, x)
    for layer in CONV_LAYERS:
        peak = maps[layer].amax(dim=(2, 3))  # (25, C)
        expected = peak.topk(9, dim=0).values
        torch.testing.assert_close(small_index.values[layer], expected, rtol=1e-4, atol=1e-5)
        at = small_index.dataset_index[small_index.slots[layer]]  # (9, C) dataset positions
        got = peak.gather(0, at)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)  # the stored images are those images
    assert small_index.meta["images_used"] == 25
    assert int(small_index.dataset_index.max()) < 25  # --limit: nothing past the first 25


def test_images_are_stored_once_and_are_the_dataset_images(digits, small_index):
    index = small_index
    assert len(torch.unique(index.dataset_index)) == len(index.dataset_index)
    assert torch.equal(index.images, digits.images[index.dataset_index])
    assert index.images.dtype == torch.uint8


def test_round_trip_through_the_file(small_index, tmp_path):
    path = save_index(small_index, tmp_path / "m.channels.safetensors")
    back = load_index(path)
    assert torch.equal(back.images, small_index.images) and back.meta == small_index.meta
    for layer in CONV_LAYERS:
        assert torch.equal(back.slots[layer], small_index.slots[layer])
        assert torch.equal(back.maps[layer], small_index.maps[layer])
        torch.testing.assert_close(back.values[layer], small_index.values[layer])
    shown = channel_examples(back, "conv2", 5)
    assert shown.images.shape == (9, 28, 28) and shown.heat.shape == (9, 28, 28)
    assert shown.overlays[0].shape == (112, 112, 3) and len(shown.labels) == 9
    assert list(shown.activations) == sorted(shown.activations, reverse=True)
    assert isinstance(channel_figure(shown), Figure)


def test_a_missing_index_says_how_to_build_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m alexnet_demo.channels index --checkpoint") as e:
        load_index(tmp_path / "fresh.channels.safetensors")
    assert isinstance(e.value, ChannelIndexNotFound)


def test_bad_layer_or_channel_is_a_value_error(small_index):
    with pytest.raises(ValueError, match=r"layer 'fc6' does not exist"):
        channel_examples(small_index, "fc6", 0)
    with pytest.raises(ValueError, match=r"channel 96 does not exist: conv1 has channels 0-95"):
        channel_examples(small_index, "conv1", 96)


@pytest.mark.slow
@pytest.mark.parametrize("preset,channels", [("mnist", 96), ("cifar10", 96)])
def test_the_shipped_index_reads_fast_and_matches_its_checkpoint(preset, channels):
    checkpoint = CHECKPOINT_DIR / f"{preset}.safetensors"
    path = index_path_for(checkpoint)
    if not path.is_file():
        pytest.skip(f"{path} has not been built (python -m alexnet_demo.channels index --checkpoint {checkpoint})")
    from alexnet_demo.checkpoints import sha256_of
    index = load_index(path)
    assert index.meta["checkpoint_sha256"] == sha256_of(checkpoint)
    assert index.meta["images_used"] == 10_000
    assert path.stat().st_size < 10.5e6
    t0 = time.perf_counter()
    for layer in CONV_LAYERS:
        shown = channel_examples(load_index(path), layer, 3)
    assert (time.perf_counter() - t0) / len(CONV_LAYERS) < 0.2  # per channel, the index already in memory
    assert shown.activations[0] >= shown.activations[-1]
    size = 28 if preset == "mnist" else 32
    assert shown.images.shape[1:3] == (size, size)
    assert index.slots["conv1"].shape == (9, channels)
