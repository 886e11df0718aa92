"""The three command lines: train (recipes, overrides, a dry run on real data), evaluate, push."""
import json

import pytest

from alexnet_demo import checkpoints
from alexnet_demo.cli import evaluate_main, parse_config, push_main, train_main
from alexnet_demo.config import RECIPES
from conftest import RecordingApi


def test_a_recipe_gives_its_settings_and_flags_override_them():
    config, options = parse_config(["--recipe", "cifar10", "--epochs", "3", "--no-augment"])
    assert options["recipe"] == "cifar10" and config.optimizer == "sgd" and config.lr == 0.02
    assert config.epochs == 3 and config.augment is False  # the flags given win
    assert parse_config(["--recipe", "mnist"])[0].epochs == RECIPES["mnist"]["epochs"]
    plain, _ = parse_config([])
    assert plain.epochs == 5 and plain.schedule == "none" and plain.input_size == 224  # TrainConfig's defaults


def test_the_batch_norm_and_dropout_flags_reach_the_config():
    config, _ = parse_config(["--batch-norm", "--dropout", "0", "--label-smoothing", "0.1"])
    assert config.batch_norm is True and config.dropout == 0.0 and config.label_smoothing == 0.1
    plain, _ = parse_config([])
    assert plain.batch_norm is False and plain.dropout == 0.5  # the write-ups' layers


def test_bad_flags_exit_with_a_message(capsys):
    assert train_main(["--epochs", "0"]) == 2
    assert "epochs=0 is out of range" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_main(["--recipe", "imagenet"])


@pytest.mark.slow
def test_recipe_dry_run_trains_one_real_step_and_writes_a_checkpoint(data_root, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    assert train_main(["--recipe", "mnist_base", "--dry-run", "--data-root", data_root, "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["checkpoint"] == str(out) and 0 <= summary["test_accuracy"] <= 1
    _, meta = checkpoints.load_checkpoint(out)
    assert meta["recipe"] == "mnist_base" and meta["config"]["schedule"] == "onecycle" and meta["epochs_done"] == 1
    assert "--recipe mnist_base --dry-run" in meta["command"]
    # the shipped file's second run, the re-drawn-digits fine-tune, on top of that file: one more real step (on a
    # subset: the first run with a set of digits re-draws them all)
    pytest.importorskip("skimage", reason="scikit-image (requirements-dev.txt) re-draws the digits")
    child = tmp_path / "child.safetensors"
    assert train_main(["--recipe", "mnist", "--init", str(out), "--subset", "256", "--dry-run", "--data-root",
                       data_root, "--out", str(child)]) == 0
    _, meta = checkpoints.load_checkpoint(child)
    assert meta["init_sha256"] == checkpoints.sha256_of(out) and meta["config"]["sketch"] == 0.5


def test_a_fine_tuning_recipe_without_its_parent_file_says_which_file(data_root, tmp_path, capsys):
    missing = tmp_path / "mnist-base.safetensors"
    assert train_main(["--recipe", "mnist", "--init", str(missing), "--dry-run", "--data-root", data_root]) == 1
    assert f"{missing}: no such checkpoint to start from" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_on_a_slice_missing_classes_says_so_instead_of_nan(data_root, capsys):
    if not (checkpoints.CHECKPOINT_DIR / "mnist.safetensors").is_file():
        pytest.skip("no shipped mnist checkpoint")
    # MNIST's first 10 test digits are 7 2 1 0 4 1 4 9 5 9: no 3, 6 or 8
    assert evaluate_main(["--checkpoint", "mnist", "--data-root", data_root, "--eval-limit", "10"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["test_images"] == 10 and "nan" not in out.lower()
    assert result["per_class_accuracy"]["3"] is None and result["per_class_accuracy"]["7"] == 1.0
    assert "3: no test image in this slice" in out


def test_evaluate_a_missing_file_is_an_error_not_a_crash(tmp_path, capsys):
    assert evaluate_main(["--checkpoint", str(tmp_path / "none.safetensors")]) == 1
    assert "no such checkpoint file" in capsys.readouterr().err


def test_push_uploads_through_the_hub_api(tmp_path, monkeypatch, untrained_cifar, capsys):
    import huggingface_hub
    path = checkpoints.save_checkpoint(tmp_path / "c.safetensors", untrained_cifar.model,
                                       {**untrained_cifar.meta, "dataset": "cifar10"})
    api = RecordingApi()
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda token=None: api)
    assert push_main(["--checkpoint", str(path), "--repo-id", "someone/alexnet-cifar10"]) == 0
    assert capsys.readouterr().out.strip() == "https://huggingface.co/someone/alexnet-cifar10"
    assert [name for name, _ in api.calls] == ["create_repo", "upload_file", "upload_file"]


@pytest.mark.slow
def test_evaluate_in_bf16_reads_as_the_app_would_where_bf16_was_chosen(data_root, capsys):
    """The shipped MNIST file with bf16 weights on 200 real test digits: the same accuracy as fp32 give or take
    a digit (the full test set's figure is in the README)."""
    if not (checkpoints.CHECKPOINT_DIR / "mnist.safetensors").is_file():
        pytest.skip("no shipped mnist checkpoint")
    results = {}
    for flags in ([], ["--bf16"]):
        assert evaluate_main(["--checkpoint", "mnist", "--data-root", data_root, "--eval-limit", "200", *flags]) == 0
        result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        results[result["format"]] = result["test_accuracy"]
    assert set(results) == {"fp32", "bf16"} and abs(results["fp32"] - results["bf16"]) <= 0.005
