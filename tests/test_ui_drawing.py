"""The Draw tab's callback: probabilities, what the network sees, five maps; blank and cleared canvases."""
import numpy as np
import pytest

gr = pytest.importorskip("gradio")

from alexnet_demo.ui import drawing  # noqa: E402
from alexnet_demo.models import MNIST_CLASSES  # noqa: E402
from conftest import sketch_value  # noqa: E402


def test_blank_canvas_asks_for_a_digit(untrained_mnist):
    label, seen, maps, note = drawing.classify_digit(sketch_value(draw=False), untrained_mnist)
    assert label == "Draw a digit" and seen is None and maps == [] and "Nothing drawn" in note
    assert drawing.classify_digit(None, untrained_mnist)[0] == "Draw a digit"


def test_drawing_gives_probabilities_what_the_network_sees_and_five_maps(untrained_mnist):
    label, seen, maps, note = drawing.classify_digit(sketch_value(), untrained_mnist)
    assert set(label) == set(MNIST_CLASSES) and np.asarray(seen).shape[:2] == (224, 224)
    assert [caption.split(":")[0] for _, caption in maps] == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert "scale 0–" in maps[0][1] and np.asarray(maps[0][0]).dtype == np.uint8


def test_identical_requests_get_identical_pictures_in_distinct_files(untrained_mnist):
    """gradio caches an output under the hash of its PNG bytes and rewrites it non-atomically; a per-response
    text chunk keeps two visitors' identical answers in two files, with the same pixels."""
    from gradio.processing_utils import encode_pil_to_bytes

    first, second = (drawing.classify_digit(sketch_value(), untrained_mnist) for _ in range(2))
    for a, b in [(first[1], second[1]), (first[2][4][0], second[2][4][0])]:
        assert np.array_equal(np.asarray(a), np.asarray(b))
        assert encode_pil_to_bytes(a, "png") != encode_pil_to_bytes(b, "png")


def test_cleared_canvas_asks_for_a_digit(untrained_mnist):
    cleared = {"background": None, "layers": [], "composite": None}
    assert drawing.classify_digit(cleared, untrained_mnist)[0] == "Draw a digit"
