"""The engine: config validation, the event stream, cancel, resume, determinism, and real learning on MNIST."""
import math
import threading

import pytest
import torch

from alexnet_demo import TrainConfig
from alexnet_demo.training import train
from alexnet_demo.training import (DoneEvent, EpochEvent, FinalTestEvent, StageEvent, StartEvent, StepEvent,
                                   TrainingError, state_path)

TINY = dict(dataset="mnist", input_size=65, subset=256, batch_size=32, epochs=2, max_batches=3, eval_limit=100,
            log_every=1)


@pytest.mark.parametrize("field,value,message", [
    ("epochs", 0, "epochs=0 is out of range"), ("epochs", -3, "epochs"), ("epochs", 10**6, "epochs"),
    ("lr", 0.0, "lr=0.0"), ("lr", -1.0, "lr"), ("lr", math.nan, "lr"), ("lr", 1e9, "lr"),
    ("batch_size", 0, "batch_size"), ("input_size", 64, "from 65"), ("optimizer", "lbfgs", "optimizer"),
    ("schedule", "cosine", "schedule"), ("dataset", "imagenet", "dataset"), ("preset", "cifar10", "preset"),
    ("sketch", 1.5, "sketch=1.5"), ("sketch", -0.1, "sketch"),
    ("classifier_width", 8, "classifier_width=8 is out of range"), ("classifier_width", 512.5, "classifier_width"),
    ("dropout", 1.0, "dropout=1.0 is out of range"), ("dropout", -0.1, "dropout"), ("batch_norm", 1, "batch_norm"),
    ("distill", -0.1, "distill=-0.1 is out of range"), ("distill", 11, "distill"), ("distill", math.inf, "distill"),
    ("distill", 1.0, "0 unless init names the checkpoint that teaches"),
    ("interpolate", 0.0, "interpolate=0.0 is out of range"), ("interpolate", 1.5, "interpolate"),
    ("interpolate", 0.5, "1 unless init names the checkpoint to start from"),
])
def test_invalid_config_names_the_field_and_range(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


def run(config, **kwargs):
    return list(train(config, **kwargs))


def test_event_stream_shape(data_root, tmp_path):
    events = run(TrainConfig(**TINY, data_root=data_root, out=str(tmp_path / "m.safetensors")))
    assert events[0] == StageEvent("Loading MNIST…")
    assert isinstance(events[1], StartEvent) and events[1].train_images == 256
    steps = [e for e in events if isinstance(e, StepEvent)]
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    done = events[-1]
    assert [s.step for s in steps] == [1, 2, 3, 4, 5, 6] and steps[0].images_per_s > 0
    assert [e.epoch for e in epochs] == [1, 2] and epochs[0].eval_split == "test"
    assert isinstance(done, DoneEvent) and not done.cancelled and 0 <= done.test_accuracy <= 1
    assert events[-3:-1] == [FinalTestEvent(0, 100), FinalTestEvent(100, 100)]  # it says it is testing, how far
    assert done.checkpoint == str(tmp_path / "m.safetensors") and state_path(done.checkpoint).is_file()
    assert sum(map(sum, done.confusion)) == 100 and done.meta["test_accuracy"] == done.test_accuracy


def test_evaluation_reports_its_progress_batch_by_batch_then_the_same_result(data_root):
    from alexnet_demo.data import load_dataset
    from alexnet_demo.evaluation import evaluate, evaluate_batches
    from alexnet_demo.models import build_model

    torch.manual_seed(0)
    model, test = build_model("mnist", 65), load_dataset("mnist", "test", data_root).subset(slice(0, 100))
    *progress, result = evaluate_batches(model, test, "mnist", 65, batch_size=40)
    assert progress == [(40, 100), (80, 100), (100, 100)]
    assert result["accuracy"] == evaluate(model, test, "mnist", 65)["accuracy"]
    stop = threading.Event()
    stop.set()
    assert list(evaluate_batches(model, test, "mnist", 65, stop=stop)) == []
    assert evaluate(model, test, "mnist", 65, stop=stop) is None


def test_final_test_accuracy_is_that_of_the_float16_file_as_loaded(data_root, tmp_path):
    from alexnet_demo.checkpoints import load_checkpoint
    from alexnet_demo.data import load_dataset
    from alexnet_demo.training import _stratified_take, evaluate

    done = run(TrainConfig(**TINY, data_root=data_root, out=str(tmp_path / "m.safetensors")))[-1]
    model, meta = load_checkpoint(done.checkpoint)
    test = _stratified_take(load_dataset("mnist", "test", data_root), 100, seed=0)  # the engine's eval_limit
    again = evaluate(model, test, "mnist", 65)
    assert meta["test_accuracy"] == done.test_accuracy == again["accuracy"]
    for name, tensor in done.model.state_dict().items():  # the returned model holds the stored float16 values
        assert torch.equal(tensor, model.state_dict()[name]), name


def test_same_seed_on_cpu_gives_the_same_numbers(data_root):
    a = [e.train_loss for e in run(TrainConfig(**TINY, data_root=data_root)) if isinstance(e, StepEvent)]
    b = [e.train_loss for e in run(TrainConfig(**TINY, data_root=data_root)) if isinstance(e, StepEvent)]
    assert a == b


def test_stop_flag_ends_the_run_cleanly_and_keeps_the_last_checkpoint(data_root, tmp_path):
    stop = threading.Event()
    out = tmp_path / "m.safetensors"
    events = []
    for event in train(TrainConfig(**{**TINY, "epochs": 3}, data_root=data_root, out=str(out)), stop=stop):
        events.append(event)
        if isinstance(event, EpochEvent):
            stop.set()  # cancel during epoch 2
    done = events[-1]
    assert done.cancelled and done.checkpoint == str(out)
    from alexnet_demo.checkpoints import load_checkpoint
    _, meta = load_checkpoint(out)
    assert meta["epochs_done"] == 1


def test_resume_continues_where_the_state_file_left_off(data_root, tmp_path):
    out = tmp_path / "m.safetensors"
    full = run(TrainConfig(**TINY, data_root=data_root, out=str(tmp_path / "full.safetensors")))
    run(TrainConfig(**{**TINY, "epochs": 1}, data_root=data_root, out=str(out)))
    resumed = run(TrainConfig(**TINY, data_root=data_root, out=str(out)), resume=state_path(out))
    assert resumed[1].start_epoch == 1  # resumed[0]: the StageEvent
    assert [e.step for e in resumed if isinstance(e, StepEvent)] == [4, 5, 6]
    full_losses = [e.train_loss for e in full if isinstance(e, StepEvent)][3:]
    assert [e.train_loss for e in resumed if isinstance(e, StepEvent)] == pytest.approx(full_losses, rel=1e-4)


def test_resuming_a_one_cycle_run_with_another_length_is_refused_with_what_to_do(data_root, tmp_path):
    out = tmp_path / "m.safetensors"
    config = {**TINY, "epochs": 1, "schedule": "onecycle", "data_root": data_root}
    run(TrainConfig(**config, out=str(out)))
    with pytest.raises(ValueError, match="one-cycle schedule is 3 steps long and this run's 6: resume with the --epochs"):
        run(TrainConfig(**{**config, "epochs": 2}, out=str(out)), resume=state_path(out))


def test_batch_larger_than_data_and_subset_larger_than_dataset_are_refused(data_root):
    with pytest.raises(ValueError, match="batch_size=512 is out of range: only 256"):
        run(TrainConfig(**{**TINY, "batch_size": 512}, data_root=data_root))
    with pytest.raises(ValueError, match="subset=70000 is out of range"):
        run(TrainConfig(**{**TINY, "subset": 70000}, data_root=data_root))


def test_out_of_memory_ends_the_run_with_a_message(data_root, monkeypatch):
    import alexnet_demo.training as training

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    monkeypatch.setattr(training, "train_step", exhausted)  # simulated on CPU, as a GPU would fail
    with pytest.raises(TrainingError, match="out of memory .* use a smaller batch"):
        run(TrainConfig(**TINY, data_root=data_root))


@pytest.mark.slow
def test_real_mnist_training_learns(data_root):
    """A few thousand real digits at a reduced size: the loss falls and accuracy ends far above chance."""
    config = TrainConfig(dataset="mnist", data_root=data_root, input_size=65, subset=3000, batch_size=64,
                         epochs=2, lr=1e-4, eval_limit=1000, log_every=10)
    events = run(config)
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert steps[-1].train_loss < steps[0].train_loss * 0.5
    assert events[-1].test_accuracy > 0.6  # chance is 0.1; measured 0.83 with this config


def test_time_limit_ends_the_run_between_steps_and_still_tests_the_model(data_root, tmp_path, monkeypatch):
    import alexnet_demo.training as training
    from alexnet_demo.checkpoints import load_checkpoint

    clock = iter(range(1000))  # a fake perf_counter: one "second" per reading, so the limit falls mid-run
    monkeypatch.setattr(training.time, "perf_counter", lambda: float(next(clock)))
    out = tmp_path / "m.safetensors"
    events = run(TrainConfig(**{**TINY, "epochs": 3}, data_root=data_root, out=str(out), time_limit_s=12))
    steps = [e.step for e in events if isinstance(e, StepEvent)]
    done = events[-1]
    assert 0 < len(steps) < 9 and done.cancelled and done.timed_out  # it stopped before its 9 steps
    assert 0 <= done.test_accuracy <= 1 and sum(map(sum, done.confusion)) == 100  # tested as it was
    model, meta = load_checkpoint(out)  # the file holds the weights that were tested
    assert meta["timed_out"] and meta["steps_done"] == steps[-1] and meta["test_accuracy"] == done.test_accuracy


def test_a_stopped_run_is_not_timed_out_and_gets_no_test(data_root):
    stop = threading.Event()
    stop.set()
    done = run(TrainConfig(**TINY, data_root=data_root, time_limit_s=3600), stop=stop)[-1]
    assert done.cancelled and not done.timed_out and done.test_accuracy is None


def test_snapshots_come_at_the_expected_steps_change_nothing_and_pickle(data_root):
    import pickle

    from alexnet_demo.training import SnapshotEvent

    config = dict(TINY, max_batches=5, log_every=2, data_root=data_root)  # 2 epochs of 5 steps
    plain = run(TrainConfig(**config))
    probe = torch.zeros(1, 28, 28, dtype=torch.uint8)
    probe[0, 4:24, 12:16] = 255  # a "1"
    events = run(TrainConfig(**config, snapshot_every=3), probe=probe)
    snaps = [e for e in events if isinstance(e, SnapshotEvent)]
    assert [s.step for s in snaps] == [0, 3, 5, 6, 9, 10]  # step 0, every 3 steps, each epoch's end (5, 10)
    assert [s.epoch for s in snaps] == [0, 0.6, 1, 1.2, 1.8, 2]
    assert isinstance(events[1], StartEvent) and events[2] is snaps[0]
    losses = lambda evs: [e.train_loss for e in evs if isinstance(e, StepEvent)]  # noqa: E731
    assert losses(events) == losses(plain)  # the probe leaves no trace in the training
    assert events[-1].test_accuracy == plain[-1].test_accuracy
    s = snaps[-1]
    assert list(s.probabilities) == sorted(s.probabilities, key=s.probabilities.get, reverse=True)
    assert set(s.probabilities) == set("0123456789") and sum(s.probabilities.values()) == pytest.approx(1, abs=1e-5)
    sides = {"conv1": 15, "conv2": 7, "conv3": 3, "conv4": 3, "conv5": 3}  # at 65 px
    for name, side in sides.items():
        assert s.maps[name].shape == (8, side, side) and s.maps[name].dtype == torch.float32
        assert len(s.channels[name]) == len(set(s.channels[name])) == 8
        means = s.maps[name].mean((1, 2))
        assert torch.equal(means, means.sort(descending=True).values)  # most active first
    assert s.filters.shape == (96, 1, 11, 11) and s.filters.device.type == "cpu"
    assert not torch.equal(snaps[0].filters, s.filters)  # the filters moved
    again = pickle.loads(pickle.dumps(events))  # the app may run the engine in a forked worker
    assert torch.equal(again[2].maps["conv3"], snaps[0].maps["conv3"])
    s.maps["conv1"].mul_(2)  # ordinary tensors, not inference-mode ones
    with pytest.raises(ValueError, match="probe must be a uint8 image"):
        run(TrainConfig(**config, snapshot_every=3), probe=torch.zeros(3, 32, 32, dtype=torch.uint8))


def test_a_snapshot_leaves_batchnorm_statistics_and_train_mode_alone():
    from alexnet_demo.models import CIFAR10_CLASSES, build_model
    from alexnet_demo.snapshots import take_snapshot

    torch.manual_seed(0)
    model = build_model("cifar10", 50).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    shot = take_snapshot(model, torch.randn(1, 3, 50, 50), CIFAR10_CLASSES)
    assert model.training and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert shot["filters"].shape == (96, 3, 11, 11) and shot["maps"]["conv5"].shape == (8, 3, 3)


def test_the_staging_message_says_when_the_data_will_be_downloaded(tmp_path):
    from alexnet_demo.training import staging_message

    assert staging_message(TrainConfig(data_root=str(tmp_path))) == "Downloading MNIST (first run only, ~12 MB)…"
    assert staging_message(TrainConfig(dataset="cifar10", data_root=str(tmp_path))).startswith("Downloading CIFAR-10")
    for name in ("train", "test"):
        (tmp_path / "cifar10-jpg" / name).mkdir(parents=True)
    assert staging_message(TrainConfig(dataset="cifar10", data_root=str(tmp_path))) == "Loading CIFAR-10…"


@pytest.mark.slow
def test_the_timelapse_benchmark_runs_at_tiny_sizes(data_root, tmp_path):
    import json
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import timelapse

    assert timelapse.main(["--tiny", "--data-root", data_root, "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "timelapse.json").read_text())["rows"]
    assert rows[0]["snapshots"] == 0 and rows[1]["snapshots"] == 4 and rows[1]["images_per_s"] > 0


def test_a_sketch_run_shows_the_network_its_digits_as_a_brush_draws_them(data_root):
    pytest.importorskip("skimage", reason="scikit-image (requirements-dev.txt) traces the digits' skeletons")
    one_step = {**TINY, "epochs": 1, "max_batches": 1}
    plain = run(TrainConfig(**one_step, data_root=data_root))
    drawn = run(TrainConfig(**one_step, sketch=1.0, data_root=data_root))
    first = [[e for e in events if isinstance(e, StepEvent)][0] for events in (plain, drawn)]
    assert first[0].train_loss != first[1].train_loss  # same seed, same order: other pictures of the same digits
    assert drawn[-1].meta["config"]["sketch"] == 1.0 and "re-drawing its digits" in drawn[0].message


def test_a_fine_tuning_run_starts_from_its_parent_and_records_it(data_root, tmp_path):
    from alexnet_demo.checkpoints import CheckpointError, sha256_of
    parent = run(TrainConfig(**TINY, data_root=data_root, out=str(tmp_path / "parent.safetensors")))[-1]
    child = run(TrainConfig(**{**TINY, "epochs": 1, "max_batches": 1}, lr=1e-12, data_root=data_root,
                            init=parent.checkpoint, out=str(tmp_path / "child.safetensors")))[-1]
    assert child.meta["init_sha256"] == sha256_of(parent.checkpoint)
    assert child.meta["init_test_accuracy"] == parent.test_accuracy
    for name, tensor in parent.model.state_dict().items():  # one step at lr 1e-12: the parent's weights
        assert torch.allclose(child.model.state_dict()[name], tensor, atol=1e-3), name
    with pytest.raises(CheckpointError, match="mnist model at 65 px without BatchNorm, 4096 wide cannot start a mnist run at 224 px"):
        run(TrainConfig(**{**TINY, "input_size": 224}, data_root=data_root, init=parent.checkpoint))
    with pytest.raises(CheckpointError, match="without BatchNorm, 4096 wide cannot start a mnist run at 65 px with BatchNorm"):
        run(TrainConfig(**TINY, batch_norm=True, data_root=data_root, init=parent.checkpoint))


def test_a_missing_parent_checkpoint_is_refused_before_any_data_is_loaded(tmp_path, monkeypatch):
    """The empty data folder would raise DataNotFoundError: the missing init file is found first, and the `mnist`
    recipe's message says which recipe makes it (a fresh clone has no runs/mnist-base.safetensors)."""
    from alexnet_demo.checkpoints import CheckpointError
    from alexnet_demo.config import recipe_config
    monkeypatch.chdir(tmp_path)  # a clone without runs/
    with pytest.raises(CheckpointError, match="no such checkpoint to start from"):
        run(TrainConfig(**TINY, data_root=str(tmp_path), init="nowhere.safetensors"))
    with pytest.raises(CheckpointError, match=r"the 'mnist' recipe fine-tunes this file.*--recipe mnist_base --out "
                                              r"runs/mnist-base.safetensors"):
        run(recipe_config("mnist", data_root=str(tmp_path)))


def test_a_batch_norm_run_rebuilds_from_its_checkpoint_and_runs_through_the_views(data_root, tmp_path):
    """A BN model trained a few steps: its file says batch_norm, loads with a BN after every conv and the same
    weights, and the Draw / Inside / Why views (maps, Grad-CAM, ablation) run on it as on the trained model."""
    from alexnet_demo import ablation as A
    from alexnet_demo import explain as E
    from alexnet_demo.inference import Classifier, load_classifier
    from test_preprocessing import stroke_canvas

    config = TrainConfig(**{**TINY, "epochs": 1}, batch_norm=True, dropout=0.0, classifier_width=256,
                         data_root=data_root, out=str(tmp_path / "bn.safetensors"))
    done = run(config)[-1]
    assert done.meta["batch_norm"] is True and done.meta["config"]["dropout"] == 0.0
    assert done.meta["classifier_width"] == 256
    loaded = load_classifier(done.checkpoint)
    assert loaded.model.features.bn5.num_features == 256 and loaded.model.features.conv5.bias is None
    assert [m.out_features for m in loaded.model.classifier if hasattr(m, "out_features")] == [256, 256, 10]
    for name, tensor in done.model.state_dict().items():  # running statistics included
        assert torch.equal(tensor, loaded.model.state_dict()[name]), name
    fresh = Classifier(done.model, done.meta)
    digit = stroke_canvas()
    assert loaded.predict(digit) == pytest.approx(fresh.predict(digit))
    maps = loaded.feature_maps(digit)
    assert list(maps) == ["conv1", "conv2", "conv3", "conv4", "conv5"] and maps["conv3"].shape == (384, 3, 3)
    assert E.grad_cam(loaded, digit, layer="conv3").heat.shape == (28, 28)
    ablation = A.ablate(loaded, digit, "conv4", k=3)
    assert len(ablation.switched_off) == 3 and ablation.ablated.shape == (10,)


def test_the_distillation_term_is_the_tempered_kl_divergence_times_t_squared():
    from alexnet_demo.training import distill_loss
    student, teacher = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 0.0]])
    p = 1 / (1 + math.exp(-1.0))  # the student's first probability at temperature 2: softmax([1, 0])
    expected = 4 * (0.5 * math.log(0.5 / p) + 0.5 * math.log(0.5 / (1 - p)))
    assert distill_loss(student, teacher, t=2.0).item() == pytest.approx(expected, rel=1e-5)
    assert distill_loss(teacher, teacher).item() == pytest.approx(0.0, abs=1e-7)


def test_distillation_from_the_init_file_adds_nothing_until_the_student_answers_otherwise(data_root, tmp_path):
    """The student starts as its teacher: without dropout their logits agree at the first step and the term is 0;
    with dropout the student's differ and the term adds to the loss (same seed: same batch, same dropout)."""
    parent = run(TrainConfig(**TINY, data_root=data_root, out=str(tmp_path / "parent.safetensors")))[-1].checkpoint
    one_step = {**TINY, "epochs": 1, "max_batches": 1, "init": parent, "data_root": data_root, "eval_limit": 10}

    def first_loss(**kwargs):
        return next(e for e in run(TrainConfig(**one_step, **kwargs)) if isinstance(e, StepEvent)).train_loss

    assert first_loss(distill=1.0, dropout=0.0) == pytest.approx(first_loss(dropout=0.0), abs=1e-4)
    assert first_loss(distill=1.0, dropout=0.5) > first_loss(dropout=0.5) + 1e-3


def test_interpolate_writes_the_weights_that_share_of_the_way_from_the_init_file(data_root, tmp_path):
    """The same training run finished at share 1 and at share 0.25: the second file's weights are the init file's
    plus a quarter of what training changed (float16 as written)."""
    from alexnet_demo.checkpoints import load_checkpoint
    parent = run(TrainConfig(**TINY, data_root=data_root, out=str(tmp_path / "parent.safetensors")))[-1].checkpoint
    child = {**TINY, "epochs": 1, "max_batches": 2, "init": parent, "data_root": data_root, "lr": 1e-2}
    full = run(TrainConfig(**child, out=str(tmp_path / "full.safetensors")))[-1]
    part = run(TrainConfig(**child, interpolate=0.25, out=str(tmp_path / "part.safetensors")))[-1]
    start, trained, mixed = (load_checkpoint(p)[0].state_dict() for p in (parent, full.checkpoint, part.checkpoint))
    moved = max((trained[k] - start[k]).abs().max().item() for k in start)
    assert moved > 1e-2  # training changed the weights, far more than float16 rounds them: the shares differ
    for name in start:
        assert torch.allclose(mixed[name], start[name] + 0.25 * (trained[name] - start[name]), atol=moved / 50), name
    assert part.meta["config"]["interpolate"] == 0.25 and part.test_accuracy is not None
