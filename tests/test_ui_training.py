"""The Train tab's callbacks: the form's validation, a run streamed from the engine's events (a scripted engine for
speed, the real one once), the time-lapse, this session's runs, using a trained model."""
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
import torch

gr = pytest.importorskip("gradio")

from alexnet_demo.config import RECIPES  # noqa: E402
from alexnet_demo.ui import formats, training as train_tab  # noqa: E402


@pytest.mark.parametrize("overrides,message", [
    ({"epochs": 0}, "epochs"), ({"epochs": -1}, "epochs"), ({"epochs": 10**6}, "cap"),
    ({"lr": 0}, "lr"), ({"lr": float("nan")}, "lr"), ({"lr": 1e9}, "lr"), ({"batch_size": 0}, "batch_size"),
    ({"input_size": 30}, "input_size"), ({"subset": 10**7}, "cap"), ({"epochs": 1.5}, "whole number"),
    ({"classifier_width": 8}, "classifier_width=8 is out of range"), ({"classifier_width": None}, "classifier width"),
])
def test_training_form_rejects_out_of_range_values(overrides, message):
    form = dict(dataset="mnist", epochs=1, batch_size=32, lr=1e-3, optimizer="adam", schedule="none", subset=256,
                input_size=65, augment=False, amp=False)
    with pytest.raises(gr.Error, match=message):
        train_tab.make_config(**{**form, **overrides})


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_the_cpu_form_defaults_are_the_measured_batch_norm_recipe_and_reach_the_config(dataset, monkeypatch):
    monkeypatch.setattr(train_tab, "on_gpu", lambda: False)
    defaults = train_tab._form_defaults(dataset)
    recipe = RECIPES[f"{dataset}_visitor"]
    assert defaults == {name: recipe[name] for name in train_tab.FORM_FIELDS} and defaults["batch_norm"]
    config = train_tab.make_config(dataset, **defaults, augment=False, amp=False)
    assert config.batch_norm and config.input_size == defaults["input_size"]
    assert (config.dropout, config.label_smoothing) == (defaults["dropout"], defaults["label_smoothing"])
    assert config.val_fraction == train_tab.VAL_FRACTION == recipe["val_fraction"]  # the full test set: once, at the end
    assert {k: v for k, v in asdict(config).items() if k in recipe} == recipe  # --recipe <dataset>_visitor is this run


def test_on_a_gpu_the_form_defaults_to_the_write_ups_model_at_224_px(monkeypatch):
    monkeypatch.setattr(train_tab, "on_gpu", lambda: True)
    for dataset in ("mnist", "cifar10"):
        defaults = train_tab._form_defaults(dataset)
        assert defaults["input_size"] == 224 and not defaults["batch_norm"] and defaults["dropout"] == 0.5
        assert defaults["subset"] == train_tab.TRAIN_IMAGES[dataset]  # all of it, and no more than there is


def test_choosing_a_dataset_puts_its_recipe_into_the_form(monkeypatch):
    monkeypatch.setattr(train_tab, "on_gpu", lambda: False)
    updates = dict(zip(train_tab.FORM_FIELDS, train_tab.dataset_defaults("cifar10")))
    assert {name: u["value"] for name, u in updates.items()} == train_tab._form_defaults("cifar10")
    assert updates["subset"]["value"] == RECIPES["cifar10_visitor"]["subset"]
    assert updates["subset"]["label"] == "Training images (subset, cifar10 has 50000)"


def test_using_a_trained_model_changes_only_the_matching_tab(untrained_mnist, untrained_cifar):
    mnist, cifar, note = train_tab.use_trained(untrained_mnist, None, None)
    assert mnist is untrained_mnist and cifar is None and "this browser session only" in note
    mnist, cifar, _ = train_tab.use_trained(untrained_cifar, None, None)
    assert mnist is None and cifar is untrained_cifar
    with pytest.raises(gr.Error):
        train_tab.use_trained(None, None, None)


FORM = ("mnist", 1, 32, 3e-4, "adam", "none", 256, 65, False, False)


def named(outputs):
    return dict(zip(train_tab.OUTPUTS, outputs))


@pytest.fixture
def scripted_engine(monkeypatch, untrained_mnist):
    """The engine's interface played back (8 steps, a snapshot every 2, one epoch), with a real model: the tab's
    handling of events in milliseconds. Records the probe it was given."""
    from alexnet_demo.training import (DoneEvent, EpochEvent, FinalTestEvent, SnapshotEvent, StageEvent,
                                       StartEvent, StepEvent)
    probes = []

    def train(config, stop=None, probe=None, **kwargs):
        probes.append(probe)
        yield StageEvent("Loading MNIST…")
        yield StartEvent("cpu", "a scripted CPU", 256, 300, "test", 8, 8, 0)
        for step in range(1, 9):
            yield StepEvent(step, step / 8, 2.3 - step / 10, step / 10, 100.0, 3e-4, step, 8 - step)
            if step % config.snapshot_every == 0:
                maps = {f"conv{i}": torch.rand(8, 13 - 2 * i, 13 - 2 * i) for i in range(1, 6)}
                yield SnapshotEvent(step, step / 8, {"1": 0.5 + step / 20, "7": 0.5 - step / 20}, maps,
                                    {name: list(range(8)) for name in maps}, torch.randn(96, 1, 11, 11))
        yield EpochEvent(1, "test", 1.2, 0.7, 8.0, None)
        for done in (0, 150, 300):
            yield FinalTestEvent(done, 300)
        confusion = np.eye(10, dtype=int).tolist()
        yield DoneEvent(False, 1.2, 0.7, {}, confusion, [(torch.zeros(1, 28, 28, dtype=torch.uint8), "1", "7")],
                        None, 9.0, 8.0, model=untrained_mnist.model, meta=dict(untrained_mnist.meta))
    monkeypatch.setattr(train_tab, "train", train)
    return probes


def test_a_run_streams_curves_and_a_live_time_lapse_of_the_visitors_drawing(scripted_engine):
    from conftest import sketch_value
    frames = [named(o) for o in train_tab.train_run(*FORM, drawing=sketch_value())]
    probe = scripted_engine[0]
    assert probe.dtype == torch.uint8 and probe.shape == (1, 28, 28) and probe.max() > 0  # the drawing, as seen
    assert "Loading MNIST…" in [f["progress"] for f in frames]
    assert "Testing on 300 test images… 0 done (0%)" in [f["progress"] for f in frames]  # not a silent pause
    live = [f for f in frames[:-1] if hasattr(f["layers"], "mode")]  # 8 steps: a snapshot each
    assert len(live) == 8 and live[-1]["probe"]["1"] > live[0]["probe"]["1"]  # what it reads, as it learns
    assert live[0]["filters"].size[0] > 100 and "Step 1" in live[0]["snapshot_note"]
    last = frames[-1]
    assert last["progress"] == "Done." and "Test accuracy 70.00%** (run 1)" in last["result"]
    assert len(last["snapshots"]) == 8 and last["gif"].endswith(".gif")
    assert last["timelapse"]["maximum"] == 7 and last["timelapse"]["interactive"]
    probabilities, layers, filters, note = train_tab.show_snapshot(last["snapshots"], 0)  # the slider, replayed
    assert probabilities == live[0]["probe"] and "Step 1 of 8" in note
    assert not train_tab.TRAIN_LOCK.locked()


def test_without_a_drawing_the_engine_picks_its_own_probe(scripted_engine):
    list(train_tab.train_run(*FORM))
    assert scripted_engine == [None]


@pytest.mark.parametrize("epochs,subset,batch", [(1, 256, 32), (1, 1248, 32), (1, 1280, 32), (3, 5000, 128),
                                                  (5, 60000, 128), (30, 50000, 8)])
def test_a_run_has_20_to_40_snapshots(epochs, subset, batch):
    config = train_tab.make_config("mnist", epochs, batch, 1e-3, "adam", "none", subset, 65, False, False)
    steps = epochs * (subset // batch)
    snapshots = steps // config.snapshot_every
    assert 20 <= snapshots <= 40 or (steps < 20 and config.snapshot_every == 1), (steps, config.snapshot_every)


def test_runs_are_kept_per_session_compared_and_used(scripted_engine):
    first_session = named(list(train_tab.train_run(*FORM))[-1])["runs"]
    first_session = named(list(train_tab.train_run(*FORM, runs=first_session))[-1])
    other_session = named(list(train_tab.train_run(*FORM, runs=[]))[-1])  # another browser: its own empty state
    assert list(first_session["runs_table"]["run"]) == ["run 1", "run 2"]
    assert list(other_session["runs_table"]["run"]) == ["run 1"]
    assert first_session["run_picker"]["value"] == "run 2" and first_session["compare"]["value"] == ["run 1", "run 2"]
    assert list(first_session["runs_table"].columns[:2]) == ["run", "test accuracy"]  # the result first
    figure = first_session["compare_plot"]
    labels = [line.get_label() for ax in figure.axes for line in ax.lines]
    assert "run 2 · test accuracy" in labels and "run 1 · train loss" in labels
    assert "run 2 · final test accuracy" in labels  # the star
    for ax in figure.axes:  # every legend entry names a line with points on this axis
        drawn = {line.get_label() for line in ax.lines if len(line.get_xdata())}
        assert {t.get_text() for t in ax.get_legend().get_texts()} <= drawn
    mnist, cifar, note = train_tab.use_run(first_session["runs"], "run 1", None, None)
    assert mnist is first_session["runs"][0]["classifier"] and cifar is None and note.startswith("run 1")


def test_only_the_newest_runs_keep_their_model_in_memory(untrained_mnist, tmp_path):
    from alexnet_demo.checkpoints import save_checkpoint
    from alexnet_demo.ui import runs
    path = save_checkpoint(tmp_path / "old.safetensors", untrained_mnist.model, untrained_mnist.meta)
    kept = []
    for n in range(1, runs.MODELS_KEPT + 2):
        kept = runs.add_run(kept, {"name": f"run {n}", "classifier": untrained_mnist, "checkpoint": str(path)})
    assert kept[0]["classifier"] is None and kept[-1]["classifier"] is untrained_mnist
    assert runs.run_classifier(kept[0]).preset == "mnist"  # reloaded from its checkpoint


@pytest.mark.slow
def test_a_finished_run_gives_accuracy_confusion_mistakes_a_file_and_a_model(data_root, monkeypatch):
    from alexnet_demo.checkpoints import state_path
    monkeypatch.setenv("ALEXNET_DEMO_DATA", data_root)
    last = named(list(train_tab.train_run(*FORM))[-1])
    assert last["progress"] == "Done." and "Test accuracy" in last["result"] and last["confusion"] is not None
    assert len(last["mistakes"]) > 0 and " → " in last["mistakes"][0][1]
    model = last["trained"]
    assert model.preset == "mnist" and len(model.predict(np.eye(28, dtype=np.uint8) * 255)) == 10
    assert last["checkpoint"] and not state_path(last["checkpoint"]).exists()
    # one epoch: its one validation point would draw no line, so the live plot's legend does not promise one
    assert set(last["losses"]["series"]) == {"train loss"} and isinstance(last["losses"], pd.DataFrame)
    assert {"validation loss", "validation accuracy"} <= {row["series"] for row in last["runs"][-1]["curves"]}
    assert len(last["snapshots"]) >= 8  # 8 steps: one a step
    assert not train_tab.TRAIN_LOCK.locked()


def test_the_form_preselects_cpu_bf16_only_where_it_measured_faster(monkeypatch):
    import torch
    from alexnet_demo.precision import FormatChoice
    monkeypatch.setattr(train_tab, "on_gpu", lambda: False)
    monkeypatch.setattr(formats, "CPU_TRAINING_FORMATS", {})
    assert formats.amp_default("mnist")[0] is False and "not measured yet" in formats.amp_default("mnist")[1]
    formats.CPU_TRAINING_FORMATS.update(mnist=FormatChoice(torch.bfloat16, "bf16 autocast: measured 1.6x faster"),
                                          cifar10=FormatChoice(torch.float32, "fp32: measured no faster"))
    assert formats.training_format("mnist") == [True, "bf16 autocast: measured 1.6x faster."]  # no re-measuring
    assert formats.amp_default("cifar10")[0] is False
    config = train_tab.make_config("mnist", **train_tab._form_defaults("mnist"), augment=False, amp=True)
    assert config.amp  # the CPU run takes the checkbox as it is (it was forced off on a CPU before)


def test_opening_the_train_tab_measures_the_datasets_training_format_once(monkeypatch):
    from alexnet_demo import precision
    calls = []
    monkeypatch.setattr(train_tab, "on_gpu", lambda: False)
    monkeypatch.setattr(formats, "CPU_TRAINING_FORMATS", {})
    monkeypatch.setattr(formats, "choose_training_format",
                        lambda config: calls.append(config) or precision.choose_training_format(
                            config, measure=lambda c: 500.0 if c.amp else 1000.0))
    assert formats.training_format("cifar10")[0] is True and formats.training_format("cifar10")[0] is True
    assert len(calls) == 1 and calls[0].dataset == "cifar10" and calls[0].input_size == 47  # the visitor's form


def test_the_shipped_models_conv1_filters_are_shown_beside_a_runs_with_a_note_saying_what_they_are(untrained_mnist):
    from alexnet_demo.inspection import filter_grid
    for dataset in ("mnist", "cifar10"):
        picture, note = train_tab.filters_views(dataset)
        assert picture.size == filter_grid(untrained_mnist.model.features.conv1.weight).size  # the same 96 tiles
        assert "random noise" in note and "shipped" in note
    assert train_tab.filters_views("cifar10")[0].mode == "RGB" and train_tab.filters_views("mnist")[0].mode == "L"
