"""Inference: any image in, MNIST-style digits and CIFAR-style photos out, clear errors for bad input."""
import io

import numpy as np
import pytest
from PIL import Image

from alexnet_demo.preprocessing import photo_to_cifar, to_float_array
from alexnet_demo.models import CIFAR10_CLASSES, MNIST_CLASSES
from test_preprocessing import stroke_canvas


def test_empty_canvas_means_nothing_drawn(untrained_mnist):
    for blank in (np.zeros((800, 800, 4), np.uint8), np.full((300, 300, 3), 255, np.uint8)):
        assert untrained_mnist.predict(blank) == {}
        assert untrained_mnist.feature_maps(blank) == {}
    assert untrained_mnist.predict({"composite": np.zeros((50, 50, 4), np.uint8), "layers": []}) == {}


def test_prediction_is_a_distribution_over_class_names(untrained_mnist, untrained_cifar):
    probabilities = untrained_mnist.predict(stroke_canvas())
    assert set(probabilities) == set(MNIST_CLASSES) and sum(probabilities.values()) == pytest.approx(1, abs=1e-5)
    assert list(probabilities.values()) == sorted(probabilities.values(), reverse=True)
    photo = Image.fromarray((np.random.default_rng(0).random((120, 90, 3)) * 255).astype(np.uint8))
    assert set(untrained_cifar.predict(photo)) == set(CIFAR10_CLASSES)


def test_feature_maps_come_from_every_conv_layer(untrained_cifar):
    maps = untrained_cifar.feature_maps(np.zeros((32, 32, 3), np.uint8) + 100)
    assert {k: tuple(v.shape) for k, v in maps.items()} == {
        "conv1": (96, 11, 11), "conv2": (256, 5, 5), "conv3": (384, 3, 3), "conv4": (384, 3, 3),
        "conv5": (256, 3, 3)}
    assert all((v >= 0).all() for v in maps.values())  # after ReLU


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "CMYK", "I;16", "1", "LA"])
def test_every_pil_mode_becomes_a_cifar_input(mode, untrained_cifar):
    image = Image.new("RGB", (64, 48), (200, 30, 30)).convert(mode)
    assert photo_to_cifar(image).shape == (32, 32, 3)
    assert len(untrained_cifar.predict(image)) == 10


def test_animated_gif_uses_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (40, 40), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    assert photo_to_cifar(str(tmp_path / "a.gif"))[16, 16, 0] > 200  # red, not blue


@pytest.mark.parametrize("bad,message", [
    (b"this is a text file", "not a readable image"),
    (b"", "empty file"),
])
def test_bad_files_give_value_errors(tmp_path, bad, message):
    path = tmp_path / "x.png"
    path.write_bytes(bad)
    with pytest.raises(ValueError, match=message) as error:
        photo_to_cifar(str(path))
    assert str(tmp_path) not in str(error.value)  # the visitor sees the file's name, not the server's folders


def test_truncated_jpeg_is_a_value_error(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (200, 200), (10, 200, 10)).save(buffer, "JPEG")
    (tmp_path / "t.jpg").write_bytes(buffer.getvalue()[:300])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        photo_to_cifar(str(tmp_path / "t.jpg"))


@pytest.mark.parametrize("array,message", [
    (np.zeros((0, 5, 3), np.uint8), "empty"),
    (np.zeros((4, 4, 7), np.uint8), "shape"),
    (np.full((4, 4), np.nan, np.float32), "NaN"),
    (np.zeros((4, 4), np.complex64), "dtype"),
    ("not an image", "readable"),
])
def test_bad_arrays_give_value_errors(array, message, tmp_path):
    if isinstance(array, str):
        (tmp_path / "n.png").write_text(array)
        array = str(tmp_path / "n.png")
    with pytest.raises(ValueError, match=message):
        to_float_array(array)


def test_huge_images_are_refused_before_decoding(tmp_path):
    Image.new("L", (10_000, 10_000)).save(tmp_path / "big.png")
    with pytest.raises(ValueError, match="(100 MP|100000000 pixels).*the limit is 40 MP"):
        to_float_array(str(tmp_path / "big.png"))
