"""Inference: any image in, MNIST-style digits and CIFAR-style photos out, clear errors for bad input."""
import io

import numpy as np
import pytest
import torch
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
    with pytest.raises(ValueError, match="(100 MP|100000000 pixels).*the limit is 40 MP"), \
            pytest.warns(Image.DecompressionBombWarning):  # PIL's, at 100 MP; we refuse before decoding
        to_float_array(str(tmp_path / "big.png"))


def test_concurrent_inputs_share_batched_forwards_and_get_their_own_answers(untrained_mnist):
    """16 threads at once: each gets exactly what it gets alone (same top class, probabilities within float
    rounding of a batched convolution), and fewer forwards ran than inputs."""
    import threading
    from test_preprocessing import stroke_canvas
    canvases = [stroke_canvas(box=(100, 300 + 20 * i, 150 + 10 * i, 600), width=10 + 3 * i) for i in range(16)]
    alone = [untrained_mnist.run(c) for c in canvases]
    calls, forward_batch = [], untrained_mnist._forward_batch

    def counting(batch):
        calls.append(len(batch))
        forward_batch(batch)

    untrained_mnist._forward_batch = counting
    together, barrier = [None] * 16, threading.Barrier(16)

    def visitor(i):
        barrier.wait()
        together[i] = untrained_mnist.run(canvases[i])

    try:
        threads = [threading.Thread(target=visitor, args=(i,)) for i in range(16)]
        [t.start() for t in threads]
        [t.join() for t in threads]
    finally:
        del untrained_mnist._forward_batch
    assert sum(calls) == 16 and len(calls) < 16 and max(calls) > 1
    for one, many in zip(alone, together):
        assert list(one.probabilities)[0] == list(many.probabilities)[0]
        assert all(abs(one.probabilities[k] - many.probabilities[k]) < 1e-4 for k in one.probabilities)
        assert np.array_equal(one.seen, many.seen)
        for layer, fmap in one.feature_maps.items():
            assert torch.allclose(fmap, many.feature_maps[layer], atol=1e-4, rtol=1e-3)


def test_a_failed_batched_forward_reaches_its_caller_as_an_error(untrained_mnist):
    from alexnet_demo.inference import Classifier
    broken = Classifier(untrained_mnist.model, untrained_mnist.meta)
    broken.to_batch = lambda seen: torch.zeros(1, 3, 65, 65)  # 3 channels into a 1-channel conv1
    from test_preprocessing import stroke_canvas
    with pytest.raises(RuntimeError):
        broken.run(stroke_canvas())
    assert broken._waiting == [] and not broken._forward_lock.locked()


def test_a_classifier_pickles_without_its_queue(untrained_cifar):
    import pickle
    copy = pickle.loads(pickle.dumps(untrained_cifar))
    photo = np.zeros((32, 32, 3), np.uint8) + 90
    assert copy.predict(photo) == pytest.approx(untrained_cifar.predict(photo), abs=1e-6)


def test_the_shipped_mnist_model_answers_in_the_measured_format():
    """On the shipped file: whatever the machine chose, its answers on the probe images equal fp32's."""
    from alexnet_demo.checkpoints import CheckpointError
    from alexnet_demo.inference import Classifier, load_classifier
    from alexnet_demo import precision
    try:
        shipped = load_classifier("mnist")
    except CheckpointError as e:
        pytest.skip(f"no shipped mnist checkpoint: {e}")
    classifier = Classifier(shipped.model, shipped.meta, source=shipped.source)  # not the app's shared one
    probe = classifier.probe_images()
    assert probe is not None and len(probe) == 32
    choice = classifier.use_best_format(probe)
    p32, pfast = precision.probabilities(classifier.model, probe), precision.probabilities(classifier.fast, probe)
    assert (p32.argmax(1) == pfast.argmax(1)).all() and (p32 - pfast).abs().max() <= precision.TOLERANCE
    assert choice.reason.startswith(choice.name)
