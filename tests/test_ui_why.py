"""The Why? tab's callbacks: Grad-CAM + occlusion, the probe, ablation and a channel's favourite images, with clear
messages for every bad input and nothing shipped written."""
import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio")

from alexnet_demo.ui import photo, why  # noqa: E402
from conftest import shipped_hashes, sketch_value  # noqa: E402

STATES = dict(trained_mnist=None, trained_cifar=None)


def test_each_view_answers_for_a_drawing_with_a_figure_and_a_sentence(untrained_mnist):
    drawn = sketch_value()
    fig, caption = why.explain_answer("Drawing", drawn, None, "7", "conv4", untrained_mnist, None)
    assert fig is not None and "explain **7**" in caption
    fig, summary = why.probe_answer("Drawing", drawn, None, "thickness", untrained_mnist, None)
    assert fig is not None and summary.startswith("It ")
    fig, caption = why.ablate_answer("Drawing", drawn, None, "conv2", 3, "0, 5", untrained_mnist, None)
    assert fig is not None and "5 of conv2's channels off" in caption and "weights are untouched" in caption


def test_each_view_answers_for_a_photo(untrained_cifar):
    example = str(photo.EXAMPLES_DIR / "cifar10" / "cat.png")
    assert why.explain_answer("Photo", None, example, why.PREDICTED, "conv3", None, untrained_cifar)[0]
    assert "It " in why.probe_answer("Photo", None, example, "brightness", None, untrained_cifar)[1]
    assert why.ablate_answer("Photo", None, example, "conv5", 0, "", None, untrained_cifar)[0]


@pytest.mark.parametrize("call,message", [
    (lambda m: why.explain_answer("Drawing", None, None, **STATES), "Draw a digit in the Draw tab first"),
    (lambda m: why.explain_answer("Photo", None, None, **STATES), "Upload a photo"),
    (lambda m: why.explain_answer("Drawing", sketch_value(), None, "cat", "conv5", m, None), "class 'cat' does not"),
    (lambda m: why.explain_answer("Drawing", sketch_value(), None, None, "fc1", m, None), "layer 'fc1' does not"),
    (lambda m: why.probe_answer("Drawing", sketch_value(), None, "blur", m, None), "'blur' does not exist for mnist"),
    (lambda m: why.ablate_answer("Drawing", sketch_value(), None, "conv1", 97, "", m, None), "k must be 0-96"),
    (lambda m: why.ablate_answer("Drawing", sketch_value(), None, "conv1", 1.5, "", m, None), "whole number"),
    (lambda m: why.ablate_answer("Drawing", sketch_value(), None, "conv1", 0, "3, x", m, None), "not x"),
    (lambda m: why.ablate_answer("Drawing", sketch_value(), None, "conv1", 0, "96", m, None), "channels 0-95"),
    (lambda m: why.channel_answer("Drawing", None, None, "conv1", 0, m, None), "no channel index yet"),
    (lambda m: why.channel_answer("Drawing", None, None, "conv9", 0, m, None), "layer 'conv9' does not"),
    (lambda m: why.explain_answer("Sideways", None, None, **STATES), "source must be one of"),
])
def test_bad_input_gets_a_clear_message(untrained_mnist, call, message):
    with pytest.raises(gr.Error, match=message):
        call(untrained_mnist)


def test_ablating_leaves_the_shipped_files_byte_identical():
    before = shipped_hashes()
    if not any(name == "mnist.safetensors" for name in before):
        pytest.skip("no shipped mnist checkpoint")
    why.ablate_answer("Drawing", sketch_value(), None, "conv5", 100, "1, 2, 3", **STATES)
    assert shipped_hashes() == before


def test_a_visitors_model_gets_its_own_index_in_their_session(untrained_mnist, data_root, monkeypatch):
    monkeypatch.setattr(why, "INDEX_SUBSET", 200)
    monkeypatch.setenv("ALEXNET_DEMO_DATA", data_root)
    own, note = why.build_own_index("Drawing", untrained_mnist, None)
    assert "200 test images" in note and own["model"] is untrained_mnist.model
    fig, caption = why.channel_answer("Drawing", None, None, "conv3", 7, untrained_mnist, None, own)
    assert fig is not None and "of 200 searched" in caption
    drawn = sketch_value()
    fig, caption = why.channel_answer("Drawing", drawn, None, "conv3", None, untrained_mnist, None, own)
    busiest = int(untrained_mnist.run(drawn).feature_maps["conv3"].mean(dim=(1, 2)).argmax())
    assert caption.startswith(f"conv3 channel {busiest} of the mnist model (the most active for your input)")
    with pytest.raises(gr.Error, match="already there"):
        why.build_own_index("Drawing", None, None)


def test_channel_numbers_are_parsed_leniently_but_never_guessed():
    assert why.parse_channels(" 12, 40;7  3") == [12, 40, 7, 3] and why.parse_channels("") == []
    with pytest.raises(gr.Error, match="-1"):
        why.parse_channels("-1")
    assert np.array_equal(sorted(why.CHANNELS.values()), [96, 256, 256, 384, 384])


@pytest.mark.parametrize("channel,message", [("x", "whole number, not 'x'"), ("-3", "whole number"), ("2.5", "whole")])
def test_a_channel_number_that_is_not_one_gets_a_clear_message(untrained_mnist, channel, message):
    with pytest.raises(gr.Error, match=message):
        why.channel_answer("Drawing", sketch_value(), None, "conv3", channel, untrained_mnist, None, {})


def test_the_class_list_follows_the_model_that_answers(untrained_mnist):
    import torch
    from alexnet_demo.inference import Classifier
    from alexnet_demo.models import build_model
    torch.manual_seed(0)
    shapes = Classifier(build_model("mnist", 65, num_classes=3),
                        {"preset": "mnist", "input_size": 65, "classes": ("circle", "square", "triangle")})
    assert why._class_choices("Drawing", shapes, None)["choices"][1:] == ["circle", "square", "triangle"]
    assert why._class_choices("Drawing", None, None)["choices"][1:] == [str(d) for d in range(10)]
    assert why._class_choices("Photo", shapes, None)["choices"][1] == "airplane"  # the photo's model is the shipped one


def test_explaining_a_photo_with_the_shipped_model_shows_its_open_set_score(tmp_path, untrained_cifar):
    import random
    from alexnet_demo import openset, photos
    from alexnet_demo.checkpoints import CHECKPOINT_DIR
    if not openset.stats_path(CHECKPOINT_DIR / "cifar10.safetensors").is_file():
        pytest.skip("no checkpoints/cifar10.openset.safetensors shipped")
    sign = tmp_path / "sign.png"
    photos.text_photo(random.Random(7), photos._fonts()).save(sign)
    _, caption = why.explain_answer("Photo", None, str(sign), why.PREDICTED, "conv5", None, None)
    assert "Open-set score" in caption and "**none of the ten** (closest:" in caption and "threshold" in caption
    ship = str(photo.EXAMPLES_DIR / "cifar10" / "ship.png")
    assert "**one of the ten**" in why.explain_answer("Photo", None, ship, why.PREDICTED, "conv5", None, None)[1]
    astronaut = tmp_path / "astronaut.png"
    Image.fromarray(pytest.importorskip("skimage.data").astronaut()).save(astronaut)  # a person: her face
    _, caption = why.explain_answer("Photo", None, str(astronaut), why.PREDICTED, "conv5", None, None)
    assert "a face detector finds a person's face" in caption and "**none of the ten** (closest:" in caption
    # a visitor's own model has no open-set file: no score, rather than the shipped model's
    assert "Open-set" not in why.explain_answer("Photo", None, ship, why.PREDICTED, "conv5", None, untrained_cifar)[1]
