"""The Draw tab's callbacks: probabilities first, then what the network sees, the numbered top channels and every
channel's grids; blank and cleared canvases."""
import numpy as np
import pytest

gr = pytest.importorskip("gradio")

from alexnet_demo.ui import drawing  # noqa: E402
from alexnet_demo.ui.common import panel  # noqa: E402
from alexnet_demo.models import MNIST_CLASSES  # noqa: E402
from conftest import sketch_value  # noqa: E402


def test_blank_canvas_asks_for_a_digit(untrained_mnist):
    label, note, kept = drawing.classify_digit(sketch_value(draw=False), untrained_mnist)
    assert label == "Draw a digit 0–9" and kept is None and "Nothing drawn" in note
    assert drawing.classify_digit(None, untrained_mnist)[0] == "Draw a digit 0–9"
    assert panel(None, True) == (None, None, [])


def test_drawing_gives_probabilities_then_what_the_network_sees_and_five_maps(untrained_mnist):
    label, note, kept = drawing.classify_digit(sketch_value(), untrained_mnist)
    assert set(label) == set(MNIST_CLASSES) and kept.probabilities == label
    seen, top, maps = panel(kept, True)
    assert np.asarray(seen).shape[:2] == (224, 224) and top.mode == "P" and top.size[0] > 400
    assert [caption.split(":")[0] for _, caption in maps] == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert "scale 0–" in maps[0][1] and np.asarray(maps[0][0]).dtype == np.uint8
    assert drawing.digit_grids(sketch_value(), kept, untrained_mnist)[4][1] == maps[4][1]


def test_closed_grids_cost_nothing_and_the_pictures_are_of_the_answer_kept(untrained_mnist):
    import gradio as gr
    _, _, kept = drawing.classify_digit(sketch_value(), untrained_mnist)
    seen, top, maps = panel(kept, False)
    # closed: no grids drawn, and a plain empty value, not gr.skip() (an update gradio rebuilds the component for)
    assert maps == [] and maps != gr.skip() and top is not None
    # the pictures are those of the kept answer (the one shown), not of another drawing
    assert np.array_equal(np.asarray(seen), np.asarray(panel(kept, False)[0]))
    other = sketch_value()
    other["composite"][100:200, 100:380] = (0, 0, 0, 255)
    _, _, kept_other = drawing.classify_digit(other, untrained_mnist)
    assert not np.array_equal(np.asarray(panel(kept_other, False)[0]), np.asarray(seen))


def test_identical_requests_get_identical_grids_in_distinct_files(untrained_mnist):
    """gradio caches a gallery picture under the hash of its PNG bytes and rewrites it non-atomically; a
    per-response text chunk keeps two visitors' identical grids in two files, with the same pixels."""
    from gradio.processing_utils import encode_pil_to_bytes

    first, second = (panel(drawing.classify_digit(sketch_value(), untrained_mnist)[2], True)
                     for _ in range(2))
    a, b = first[2][4][0], second[2][4][0]
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert encode_pil_to_bytes(a, "png") != encode_pil_to_bytes(b, "png")


def test_the_answer_pictures_travel_inside_the_answer_as_png_data_urls(untrained_mnist):
    """What the network sees and the top channels are sent in the reply itself (no cache file, no second request),
    pixel for pixel."""
    import base64
    import io

    from PIL import Image

    from alexnet_demo.ui.common import InlineImage
    seen, top, _ = panel(drawing.classify_digit(sketch_value(), untrained_mnist)[2], False)
    for picture in (seen, top):
        sent = InlineImage(interactive=False).postprocess(picture)
        assert sent.path is None and sent.url.startswith("data:image/png;base64,")
        decoded = Image.open(io.BytesIO(base64.b64decode(sent.url.split(",", 1)[1])))
        assert np.array_equal(np.asarray(decoded), np.asarray(picture))
    assert InlineImage(interactive=False).postprocess(None) is None


def test_cleared_canvas_asks_for_a_digit(untrained_mnist):
    cleared = {"background": None, "layers": [], "composite": None}  # a Sketchpad's, as API callers may still send
    assert drawing.classify_digit(cleared, untrained_mnist)[0] == "Draw a digit 0–9"


def test_a_filled_blob_is_not_sure_rather_than_a_confident_digit(untrained_mnist):
    blob = sketch_value(draw=False)
    yy, xx = np.mgrid[:480, :480]
    blob["composite"][(yy - 240) ** 2 + (xx - 240) ** 2 < 90 ** 2] = (0, 0, 0, 255)  # a filled disc
    label, note, _ = drawing.classify_digit(blob, untrained_mnist)
    assert len(label) == 10 and note.startswith("Not sure (the strokes are too bold")


def test_clear_empties_every_output_of_the_old_digit(untrained_mnist):
    """A cleared pad sends None: its one event answers with the prompt and no pictures."""
    label, note, kept, seen, top, maps = drawing.answer_digit(None, untrained_mnist)
    assert label == "Draw a digit 0–9" and "Draw a digit" in note
    assert (kept, seen, top, list(maps or [])) == (None, None, None, [])


def test_with_a_visitors_own_classes_the_tab_asks_for_them_not_for_digits(untrained_mnist):
    import copy
    mine = copy.copy(untrained_mnist)
    mine.classes = ("circle", "triangle", "square")
    assert drawing.ask(None) == drawing.ask(untrained_mnist) == "Draw a digit 0–9"
    assert drawing.ask(mine) == "Draw a circle, a triangle or a square"
    sketch_label, note = drawing.prompts(mine)
    assert sketch_label["label"] == "Draw a circle, a triangle or a square" and "circle, triangle, square" in note
    assert drawing.classify_digit(None, mine)[0] == "Draw a circle, a triangle or a square"
    assert drawing.answer_digit(None, mine)[1] == "Draw a circle, a triangle or a square on the canvas."
    assert drawing.prompts(None)[0]["label"] == "Draw a digit 0–9" and "digit" in drawing.prompts(None)[1]


def test_a_stroke_is_one_answer_the_probabilities_with_the_pictures_of_that_answer(untrained_mnist):
    label, note, kept, seen, top, maps = drawing.answer_digit(sketch_value(), untrained_mnist, True)
    assert (label, note) == drawing.classify_digit(sketch_value(), untrained_mnist)[:2]
    assert np.array_equal(np.asarray(seen), np.asarray(panel(kept, False)[0])) and top and len(maps) == 5
