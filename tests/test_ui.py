"""UI callbacks in-process: they call the package, give clear gr.Error messages and never crash."""
import numpy as np
import pytest

gr = pytest.importorskip("gradio")

from alexnet_demo import ui  # noqa: E402
from alexnet_demo.models import CIFAR10_CLASSES, MNIST_CLASSES, model_table  # noqa: E402


def sketch_value(draw=True):
    layer = np.zeros((480, 480, 4), np.uint8)
    if draw:
        layer[100:380, 220:250] = (0, 0, 0, 255)
    return {"background": np.zeros_like(layer), "layers": [layer], "composite": layer}


def test_blank_canvas_asks_for_a_digit(untrained_mnist):
    label, seen, maps, note = ui.classify_digit(sketch_value(draw=False), untrained_mnist)
    assert label == "Draw a digit" and seen is None and maps == [] and "Nothing drawn" in note
    assert ui.classify_digit(None, untrained_mnist)[0] == "Draw a digit"


def test_drawing_gives_probabilities_what_the_network_sees_and_five_maps(untrained_mnist):
    label, seen, maps, note = ui.classify_digit(sketch_value(), untrained_mnist)
    assert set(label) == set(MNIST_CLASSES) and np.asarray(seen).shape[:2] == (224, 224)
    assert [caption.split(":")[0] for _, caption in maps] == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert "scale 0–" in maps[0][1] and np.asarray(maps[0][0]).dtype == np.uint8


def test_identical_requests_get_identical_pictures_in_distinct_files(untrained_mnist):
    """gradio caches an output under the hash of its PNG bytes and rewrites it non-atomically; a per-response
    text chunk keeps two visitors' identical answers in two files, with the same pixels."""
    from gradio.processing_utils import encode_pil_to_bytes

    first, second = (ui.classify_digit(sketch_value(), untrained_mnist) for _ in range(2))
    for a, b in [(first[1], second[1]), (first[2][4][0], second[2][4][0])]:
        assert np.array_equal(np.asarray(a), np.asarray(b))
        assert encode_pil_to_bytes(a, "png") != encode_pil_to_bytes(b, "png")


def test_photo_example_is_classified_with_a_low_confidence_note(untrained_cifar):
    example = sorted(ui.EXAMPLES_DIR.glob("cifar10/*.png"))[0]
    label, seen, maps, note = ui.classify_image(str(example), untrained_cifar)
    assert len(label) == 10 and np.asarray(seen).shape == (224, 224, 3) and len(maps) == 5
    assert "may not show one of the ten" in note  # an untrained model is never confident


def test_one_example_per_cifar10_class_is_shipped():
    assert sorted(p.stem for p in ui.EXAMPLES_DIR.glob("cifar10/*.png")) == sorted(CIFAR10_CLASSES)


def test_corrupt_upload_is_a_clear_error(tmp_path, untrained_cifar):
    bad = tmp_path / "notes.png"
    bad.write_text("this is a text file")
    with pytest.raises(gr.Error, match="not a readable image"):
        ui.classify_image(str(bad), untrained_cifar)


def test_feature_maps_tab_returns_figures(untrained_mnist):
    everything, top, filters, caption = ui.feature_maps("Drawing", "conv2", sketch_value(), None, untrained_mnist, None)
    assert everything is not None and top is not None and filters is not None and "read as" in caption
    with pytest.raises(gr.Error, match="layer must be one of"):
        ui.feature_maps("Drawing", "fc1", sketch_value(), None, untrained_mnist, None)


@pytest.mark.parametrize("overrides,message", [
    ({"epochs": 0}, "epochs"), ({"epochs": -1}, "epochs"), ({"epochs": 10**6}, "cap"),
    ({"lr": 0}, "lr"), ({"lr": float("nan")}, "lr"), ({"lr": 1e9}, "lr"), ({"batch_size": 0}, "batch_size"),
    ({"input_size": 30}, "input_size"), ({"subset": 10**7}, "cap"), ({"epochs": 1.5}, "whole number"),
])
def test_training_form_rejects_out_of_range_values(overrides, message):
    form = dict(dataset="mnist", epochs=1, batch_size=32, lr=1e-3, optimizer="adam", schedule="none", subset=256,
                input_size=65, augment=False, amp=False)
    with pytest.raises(gr.Error, match=message):
        ui.make_config(**{**form, **overrides})


def test_using_a_trained_model_changes_only_the_matching_tab(untrained_mnist, untrained_cifar):
    mnist, cifar, note = ui.use_trained(untrained_mnist, None, None)
    assert mnist is untrained_mnist and cifar is None and "this browser session only" in note
    mnist, cifar, _ = ui.use_trained(untrained_cifar, None, None)
    assert mnist is None and cifar is untrained_cifar
    with pytest.raises(gr.Error):
        ui.use_trained(None, None, None)


def test_model_tables_show_the_real_totals():
    assert "**46,764,746**" in model_table("mnist") and "**21,622,506**" in model_table("cifar10")


def test_demo_builds_with_named_api_endpoints():
    demo = ui.build_demo()
    names = {d.get("api_name") for d in demo.config["dependencies"]}
    assert {"classify_digit", "classify_image", "feature_maps", "train"} <= names


def test_cleared_canvas_asks_for_a_digit(untrained_mnist):
    cleared = {"background": None, "layers": [], "composite": None}
    assert ui.classify_digit(cleared, untrained_mnist)[0] == "Draw a digit"
    assert ui.feature_maps("Drawing", "conv1", cleared, None, untrained_mnist, None)[3].startswith("Draw a digit")


@pytest.mark.slow
def test_a_finished_run_gives_accuracy_confusion_mistakes_a_file_and_a_model(data_root, monkeypatch):
    from alexnet_demo.training import state_path
    monkeypatch.setenv("ALEXNET_DEMO_DATA", data_root)
    outputs = list(ui.train_run("mnist", 1, 32, 3e-4, "adam", "none", 256, 65, False, False))
    losses, accuracies, progress, result, confusion, mistakes, checkpoint, model = outputs[-1]
    assert progress == "Done." and "Test accuracy" in result and confusion is not None
    assert len(mistakes) > 0 and " → " in mistakes[0][1]
    assert model.preset == "mnist" and len(model.predict(np.eye(28, dtype=np.uint8) * 255)) == 10
    assert checkpoint and not state_path(checkpoint).exists()
    assert set(losses["series"]) == {"train loss", "test loss"}
    assert not ui.TRAIN_LOCK.locked()


def test_warm_up_loads_each_shipped_checkpoint_it_finds():
    from alexnet_demo.checkpoints import CHECKPOINT_DIR
    from alexnet_demo.inference import _load_cached, load_classifier

    shipped = [p for p in ("mnist", "cifar10") if (CHECKPOINT_DIR / f"{p}.safetensors").is_file()]
    if not shipped:
        pytest.skip("no shipped checkpoint in checkpoints/")
    ui.warm_up()  # missing files are skipped silently: the callbacks report them
    before = _load_cached.cache_info().misses
    for preset in shipped:
        assert load_classifier(preset).preset == preset
    assert _load_cached.cache_info().misses == before  # already loaded by the warm-up
