"""The Train tab's callbacks: the form's validation, a finished run's outputs, using a trained model."""
import numpy as np
import pytest

gr = pytest.importorskip("gradio")

from alexnet_demo.ui import training as train_tab  # noqa: E402


@pytest.mark.parametrize("overrides,message", [
    ({"epochs": 0}, "epochs"), ({"epochs": -1}, "epochs"), ({"epochs": 10**6}, "cap"),
    ({"lr": 0}, "lr"), ({"lr": float("nan")}, "lr"), ({"lr": 1e9}, "lr"), ({"batch_size": 0}, "batch_size"),
    ({"input_size": 30}, "input_size"), ({"subset": 10**7}, "cap"), ({"epochs": 1.5}, "whole number"),
])
def test_training_form_rejects_out_of_range_values(overrides, message):
    form = dict(dataset="mnist", epochs=1, batch_size=32, lr=1e-3, optimizer="adam", schedule="none", subset=256,
                input_size=65, augment=False, amp=False)
    with pytest.raises(gr.Error, match=message):
        train_tab.make_config(**{**form, **overrides})


def test_using_a_trained_model_changes_only_the_matching_tab(untrained_mnist, untrained_cifar):
    mnist, cifar, note = train_tab.use_trained(untrained_mnist, None, None)
    assert mnist is untrained_mnist and cifar is None and "this browser session only" in note
    mnist, cifar, _ = train_tab.use_trained(untrained_cifar, None, None)
    assert mnist is None and cifar is untrained_cifar
    with pytest.raises(gr.Error):
        train_tab.use_trained(None, None, None)


@pytest.mark.slow
def test_a_finished_run_gives_accuracy_confusion_mistakes_a_file_and_a_model(data_root, monkeypatch):
    from alexnet_demo.training import state_path
    monkeypatch.setenv("ALEXNET_DEMO_DATA", data_root)
    outputs = list(train_tab.train_run("mnist", 1, 32, 3e-4, "adam", "none", 256, 65, False, False))
    losses, accuracies, progress, result, confusion, mistakes, checkpoint, model = outputs[-1]
    assert progress == "Done." and "Test accuracy" in result and confusion is not None
    assert len(mistakes) > 0 and " → " in mistakes[0][1]
    assert model.preset == "mnist" and len(model.predict(np.eye(28, dtype=np.uint8) * 255)) == 10
    assert checkpoint and not state_path(checkpoint).exists()
    assert set(losses["series"]) == {"train loss", "test loss"}
    assert not train_tab.TRAIN_LOCK.locked()
