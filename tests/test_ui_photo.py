"""The Photo tab's callback: examples, low confidence, unreadable uploads."""
import numpy as np
import pytest

gr = pytest.importorskip("gradio")

from alexnet_demo.ui import photo  # noqa: E402
from alexnet_demo.models import CIFAR10_CLASSES  # noqa: E402


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
