"""The Photo tab's callback: examples, low confidence, unreadable uploads, photos of none of the ten."""
import random

import numpy as np
import pytest

gr = pytest.importorskip("gradio")

from alexnet_demo.ui import photo  # noqa: E402
from alexnet_demo import openset, photos  # noqa: E402
from alexnet_demo.checkpoints import CHECKPOINT_DIR  # noqa: E402
from alexnet_demo.models import CIFAR10_CLASSES  # noqa: E402

SHIPPED_RULE = openset.stats_path(CHECKPOINT_DIR / "cifar10.safetensors")


def test_photo_example_is_classified_with_a_low_confidence_note(untrained_cifar):
    example = sorted(photo.EXAMPLES_DIR.glob("cifar10/*.png"))[0]
    label, note, kept = photo.classify_image(str(example), untrained_cifar)
    seen, top, maps = photo.image_panel(str(example), kept, untrained_cifar, True)
    assert len(label) == 10 and np.asarray(seen).shape == (224, 224, 3) and len(maps) == 5 and top.mode == "P"
    assert "may not show one of the ten" in note  # an untrained model is never confident


def test_one_example_per_cifar10_class_is_shipped():
    assert sorted(p.stem for p in photo.EXAMPLES_DIR.glob("cifar10/*.png")) == sorted(CIFAR10_CLASSES)


def test_corrupt_upload_is_a_clear_error(tmp_path, untrained_cifar):
    bad = tmp_path / "notes.png"
    bad.write_text("this is a text file")
    with pytest.raises(gr.Error, match="not a readable image"):
        photo.classify_image(str(bad), untrained_cifar)


def test_after_an_unreadable_upload_the_note_says_why_and_nothing_of_the_photo_before_stays(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is a text file")
    label, note, kept, seen, top, maps = photo.unreadable(str(bad))
    assert note.startswith("**This file can't be read as a photo**: notes.png is not a readable image")
    assert label is None and kept is None and seen is None and top is None and maps == []


def test_answer_label_takes_a_headline_above_the_closest_classes():
    probabilities = {"ship": 0.6, "airplane": 0.2, "truck": 0.1, "bird": 0.05, "cat": 0.03, "dog": 0.02}
    shown = photo.AnswerLabel(num_top_classes=5).postprocess({"label": photo.NONE_HEADLINE,
                                                               "confidences": probabilities})
    assert shown.label == "None of the ten" and [c.label for c in shown.confidences] == list(probabilities)[:5]
    assert photo.AnswerLabel(num_top_classes=5).postprocess(probabilities).label == "ship"  # as gr.Label


@pytest.mark.skipif(not SHIPPED_RULE.is_file(), reason="no checkpoints/cifar10.openset.safetensors shipped")
def test_a_photo_of_none_of_the_ten_is_headed_none_of_the_ten_and_a_cifar10_example_by_its_class(tmp_path):
    sign = tmp_path / "sign.png"
    photos.text_photo(random.Random(7), photos._fonts()).save(sign)
    label, note, _ = photo.classify_image(str(sign))
    assert label["label"] == photo.NONE_HEADLINE and len(label["confidences"]) == 10
    assert "doesn't look like any of the ten" in note and "closest:" in note
    label, note, _ = photo.classify_image(str(photo.EXAMPLES_DIR / "cifar10" / "ship.png"))
    assert next(iter(label)) == "ship" and note.startswith("Looks like a **ship**")
