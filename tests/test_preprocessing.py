"""The digit path: ink found whatever the polarity, MNIST's layout, and strokes brought to an MNIST width."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from alexnet_demo import preprocessing
from alexnet_demo.confidence import doubt
from alexnet_demo.preprocessing import STROKE_BAND, digit_to_mnist, ink_box, stroke_fraction, stroke_width

ROOT = Path(__file__).resolve().parent.parent


def stroke_canvas(size=800, box=(100, 300, 200, 600), width=30, rgba=True):
    """A vertical bar drawn on a transparent canvas, like gradio's Sketchpad gives."""
    canvas = np.zeros((size, size, 4), np.uint8)
    top, bottom, left, right = box
    mid = (left + right) // 2
    canvas[top:bottom, mid - width // 2: mid + width // 2] = (0, 0, 0, 255)
    return canvas if rgba else 255 - canvas[:, :, :3]


SEVEN = [[(-3, -5), (3, -5), (-1, 5)]]  # strokes on a 10-unit-tall grid, centred
FOUR = [[(2, -5), (-4, 1), (4, 1)], [(1, -5), (1, 5)]]


def brushed(strokes, height: int, width: int) -> np.ndarray:
    """Strokes drawn on the app's 480x480 Sketchpad with a hard round brush `width` px wide so that the ink is
    `height` px tall: RGBA, ink in alpha."""
    image = Image.new("L", (480, 480), 0)
    draw = ImageDraw.Draw(image)
    s, r = (height - width) / 10, width / 2
    for stroke in strokes:
        points = [(240 + s * x, 240 + s * y) for x, y in stroke]
        draw.line(points, fill=255, width=width, joint="curve")
        for x, y in points:  # round caps, as gradio stamps circles
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    canvas = np.zeros((480, 480, 4), np.uint8)
    canvas[:, :, 3] = np.asarray(image)
    return canvas


def drawn_stroke_fraction(canvas: np.ndarray) -> float:
    return stroke_fraction(ink_box(canvas[:, :, 3] / 255.0))


def seen_stroke_fraction(seen: np.ndarray) -> float:
    """The stroke width of what the network sees, as a fraction of its ink's longer side."""
    return stroke_fraction(ink_box(seen.astype(np.float32) / 255))


# ---- MNIST's layout, whatever the input -----------------------------------------------------------------------


def test_real_mnist_digits_survive_the_normalization_unchanged(data_root):
    """MNIST's own test digits are already normalized: our pipeline must give them back nearly as they are."""
    from alexnet_demo.data import load_dataset
    digits = load_dataset("mnist", "test", data_root, download=False).images[:100, 0].numpy()
    error = np.mean([np.abs(digit_to_mnist(d).astype(int) - d).mean() for d in digits])
    assert error < 2.0  # mean absolute difference on a 0-255 scale (measured: 0.73)


def test_a_small_digit_in_a_corner_is_normalized_like_a_centred_one():
    corner = digit_to_mnist(stroke_canvas(box=(10, 110, 10, 60), width=8))
    centred = digit_to_mnist(stroke_canvas(box=(250, 550, 300, 500), width=24))
    assert corner.shape == (28, 28) and np.abs(corner.astype(int) - centred).mean() < 10
    ys, xs = np.nonzero(corner > 40)
    assert ys.min() >= 3 and ys.max() <= 24 and abs(xs.mean() - 14) < 1.5


@pytest.mark.parametrize("make", [
    lambda c: c,  # black strokes on a transparent layer (the Sketchpad)
    lambda c: np.where(c[:, :, 3:] > 0, 0, 255).repeat(3, 2).astype(np.uint8),  # dark on light RGB
    lambda c: np.where(c[:, :, 3] > 0, 255, 0).astype(np.uint8),  # light on dark gray
    lambda c: np.where(c[:, :, 3] > 0, 65535, 0).astype(np.uint16),  # 16-bit
])
def test_ink_is_found_whatever_the_polarity(make):
    reference = digit_to_mnist(stroke_canvas())
    assert np.abs(digit_to_mnist(make(stroke_canvas())).astype(int) - reference).mean() < 3


# ---- stroke width ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [3, 10, 25])
def test_stroke_width_of_a_bar_is_its_width(width):
    bar = torch.zeros(1, 1, 300, 300)
    bar[..., 50:250, 100:100 + width] = 1
    assert stroke_width(bar) == pytest.approx(width * 200 / (200 + width), rel=0.02)  # 2 x area / perimeter


def test_a_bold_brush_digit_comes_out_with_an_mnist_stroke_width():
    canvas = brushed(SEVEN, height=160, width=36)  # the app's default brush on a 160 px digit
    assert drawn_stroke_fraction(canvas) > STROKE_BAND[1] + 0.015
    assert seen_stroke_fraction(digit_to_mnist(canvas)) <= STROKE_BAND[1] + 0.005


def test_bolder_drawings_are_thinned_more():
    canvas = brushed(FOUR, height=100, width=30)  # brush 30% of the height: the triangle fills in
    before = drawn_stroke_fraction(canvas)
    assert before > 0.28 and seen_stroke_fraction(digit_to_mnist(canvas)) < before - 0.05


def test_thin_strokes_are_thickened():
    canvas = brushed(SEVEN, height=400, width=4)  # 1% of the height: a hairline once scaled to 20 px
    assert drawn_stroke_fraction(canvas) < 0.02
    assert seen_stroke_fraction(digit_to_mnist(canvas)) >= STROKE_BAND[0]


def test_a_digit_already_at_mnist_width_is_left_alone(monkeypatch):
    canvas = brushed(FOUR, height=200, width=24)  # 12% of its height: MNIST's median
    assert STROKE_BAND[0] < drawn_stroke_fraction(canvas) < STROKE_BAND[1]
    as_drawn = digit_to_mnist(canvas)
    monkeypatch.setattr(preprocessing, "STROKE_BAND", (0.0, 1.0))  # no stroke fitting at all
    assert np.array_equal(digit_to_mnist(canvas), as_drawn)


def test_bold_drawings_still_fill_mnist_s_box():
    seen = digit_to_mnist(brushed(FOUR, height=80, width=36))
    ys, xs = np.nonzero(seen > 40)
    assert max(np.ptp(ys), np.ptp(xs)) >= 17  # the 20x20 box, less the anti-aliased rim


@pytest.mark.parametrize("steps", [1, 4, 7])
def test_dilation_and_erosion_are_round_and_undo_each_other_on_a_blob(steps):
    dot = torch.zeros(1, 1, 41, 41)
    dot[..., 20, 20] = 1
    grown = preprocessing._morph(dot, steps)
    assert grown.shape[-1] == 41 + 2 * steps and int((grown[0, 0, 20 + steps] > 0).sum()) == 2 * steps + 1
    assert grown[0, 0, 0, 0] == 0 or steps == 0  # corners stay empty: an octagon, not a square
    square = torch.zeros(1, 1, 40, 40)
    square[..., 10:30, 10:30] = 1
    shrunk = preprocessing._morph(square, -steps)[..., steps:-steps, steps:-steps]
    assert int(shrunk.sum()) == (20 - 2 * steps) ** 2


# ---- the benchmark ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_drawing_benchmark_tiny_run_writes_its_tables(data_root, tmp_path):
    pytest.importorskip("skimage", reason="scikit-image (requirements-dev.txt) draws the benchmark's digits")
    sys.path.insert(0, str(ROOT / "bench"))
    import drawing
    assert drawing.main(["--tiny", "--data-root", data_root, "--out", str(tmp_path), "--misses", "60", "36"]) == 0
    assert (tmp_path / "misses-mnist-60px-36px.png").is_file()  # a 36 px brush on a 60 px digit: some misses
    result = json.loads((tmp_path / "drawing.json").read_text())
    assert {r["style"] for r in result["rows"]} == {"sketchpad_rgba", "dark_on_white", "light_on_dark"}
    assert all(0 <= r["accuracy"] <= 1 for r in result["rows"]) and result["not_a_digit"]["mnist"]
    assert {r["checkpoint"] for r in result["rows"]} == {"mnist"} and result["checkpoints"]["mnist"]["test_accuracy"]


# ---- "not sure" -------------------------------------------------------------------------------------------------


def test_a_filled_blob_is_doubted_whatever_the_model_says():
    blob = np.zeros((480, 480, 4), np.uint8)
    image = Image.new("L", (480, 480), 0)
    ImageDraw.Draw(image).ellipse((140, 140, 340, 340), fill=255)  # a filled disc: stroke fraction ~0.5
    blob[:, :, 3] = np.asarray(image)
    assert "too bold" in doubt(blob, {"0": 0.99, "8": 0.01})


def test_a_clear_stroke_digit_stands_and_a_weak_guess_does_not():
    seven = brushed(SEVEN, height=200, width=24)
    assert doubt(seven, {"7": 0.95, "1": 0.05}) is None
    assert "only 55%" in doubt(seven, {"7": 0.55, "1": 0.45})
    assert doubt(np.zeros((10, 10, 4), np.uint8), {}) is None  # nothing drawn is not "not sure"
