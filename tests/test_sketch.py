"""Digits re-drawn as a visitor draws them: seeded, MNIST-shaped after the app's preprocessing, readable, and the
`sketch` training share that shows them to the network."""
import numpy as np
import pytest
import torch

pytest.importorskip("skimage", reason="scikit-image (requirements-dev.txt) traces the digits' skeletons")

from alexnet_demo import sketch  # noqa: E402
from alexnet_demo.config import TrainConfig  # noqa: E402
from alexnet_demo.data import load_dataset, with_drawn  # noqa: E402
from alexnet_demo.preprocessing import STROKE_BAND, ink_box, stroke_fraction  # noqa: E402


@pytest.fixture
def digits(data_root):
    return load_dataset("mnist", "train", data_root, download=False).subset(torch.arange(40))


def test_a_traced_skeleton_is_as_tall_as_asked_with_the_brush_asked(digits):
    points = sketch.skeleton_of(digits.images[0, 0].numpy())  # a 5
    ink = sketch.trace(points, height=200, width=24, rng=np.random.default_rng(0))
    rows = np.flatnonzero((ink > 127).any(1))
    assert ink.shape == (480, 480) and abs((rows[-1] - rows[0] + 1) - 200) <= 2
    assert set(np.unique(ink)) == {0, 255}  # hard-edged, as the Sketchpad draws
    soft = sketch.trace(points, height=200, width=24, rng=np.random.default_rng(0), supersample=2)
    assert len(np.unique(soft)) > 2  # anti-aliased, as an uploaded drawing


def test_a_redrawn_digit_is_seeded_and_comes_out_as_the_app_feeds_the_model(digits):
    first = sketch.redraw_chunk(digits.images, seed=3)
    assert torch.equal(first, sketch.redraw_chunk(digits.images, seed=3))
    assert not torch.equal(first, sketch.redraw_chunk(digits.images, seed=4))
    # digit i gets the same drawing whichever chunk (process) makes it
    assert torch.equal(first[10:], sketch.redraw_chunk(digits.images[10:], seed=3, first=10))
    assert first.dtype == torch.uint8 and first.shape == digits.images.shape
    widths = []
    for drawn in first[:, 0]:
        rows, cols = np.flatnonzero(drawn.numpy().any(1)), np.flatnonzero(drawn.numpy().any(0))
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 21  # MNIST's 20x20 box (+1 for the blur)
        widths.append(stroke_fraction(ink_box(drawn.numpy() / 255.0)))
    # brushes of up to 0.4 of the height are thinned toward MNIST's band (its boldest 1%: 0.22); a loop the brush
    # filled stays filled, so a few stay bolder than that
    assert np.median(widths) <= STROKE_BAND[1] + 0.02 and max(widths) < 0.35


def test_the_shipped_model_reads_redrawn_digits(digits):
    from alexnet_demo.inference import load_classifier
    classifier = load_classifier("mnist")
    drawn = sketch.redraw_chunk(digits.images, seed=0)
    with torch.inference_mode():
        guesses = torch.cat([classifier.model(classifier.to_batch(d[0].numpy())).argmax(1) for d in drawn])
    assert (guesses == digits.labels).float().mean() >= 0.9


def test_drawn_copies_are_cached_and_follow_their_digits_through_a_subset(digits, tmp_path):
    with_copies = with_drawn(digits, tmp_path, seed=0)  # 40 digits: two processes, 20 each
    assert torch.equal(with_copies.drawn, sketch.redraw_chunk(digits.images, seed=0))  # the drawings of one process
    assert len(list((tmp_path / ".alexnet_demo_cache").glob("*.safetensors"))) == 1
    again = with_drawn(digits, tmp_path, seed=0)  # from the cache
    assert torch.equal(again.drawn, with_copies.drawn)
    index = torch.tensor([5, 1, 30])
    part = with_copies.subset(index)
    assert torch.equal(part.drawn, with_copies.drawn[index]) and torch.equal(part.images, digits.images[index])


def test_sketch_is_for_digits_only():
    with pytest.raises(ValueError, match="sketch=0.5 is out of range.*mnist"):
        TrainConfig(dataset="cifar10", sketch=0.5)
