"""The Hub path: the model card, the upload calls' arguments (offline), and downloads from a local Hub cache."""
import pytest

from alexnet_demo import build_model, load_classifier
from alexnet_demo import checkpoints
from alexnet_demo.checkpoints import CheckpointError, model_card, push_checkpoint, save_checkpoint
from conftest import RecordingApi

META = {"preset": "cifar10", "dataset": "cifar10", "input_size": 50, "classes": [f"c{i}" for i in range(10)],
        "test_accuracy": 0.8312, "epochs_done": 12, "command": "python -m alexnet_demo.train --dataset cifar10"}


def test_model_card_states_accuracy_command_and_data_caveat():
    card = model_card(META)
    assert "83.12%" in card and "python -m alexnet_demo.train --dataset cifar10" in card
    assert "JPEG at quality 75" in card and card.startswith("---\nlicense:")


def test_push_uploads_the_weights_and_the_card(tmp_path):
    path = save_checkpoint(tmp_path / "c.safetensors", build_model("cifar10"), META)
    api = RecordingApi()
    push_checkpoint(path, "someone/alexnet-cifar10", api=api)
    (_, create), (_, weights), (_, card) = api.calls
    assert create == {"repo_id": "someone/alexnet-cifar10", "repo_type": "model", "exist_ok": True}
    assert weights["path_in_repo"] == "cifar10.safetensors" and weights["path_or_fileobj"] == str(path)
    assert card["path_in_repo"] == "README.md" and b"83.12%" in card["path_or_fileobj"]


def test_download_from_a_local_hub_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants as constants
    snapshot = tmp_path / "hub" / "models--someone--alexnet" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (tmp_path / "hub" / "models--someone--alexnet" / "refs").mkdir()
    (tmp_path / "hub" / "models--someone--alexnet" / "refs" / "main").write_text("a" * 40)
    save_checkpoint(snapshot / "cifar10.safetensors", build_model("cifar10"), META)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(checkpoints, "CHECKPOINT_DIR", tmp_path / "empty")  # nothing shipped locally
    monkeypatch.setenv("ALEXNET_DEMO_HUB_REPO", "someone/alexnet")
    classifier = load_classifier("cifar10")
    assert classifier.preset == "cifar10"
    assert classifier.source == str((snapshot / "cifar10.safetensors").resolve())


def test_offline_without_a_cached_file_says_so(tmp_path, monkeypatch):
    import huggingface_hub.constants as constants
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(checkpoints, "CHECKPOINT_DIR", tmp_path / "empty")
    monkeypatch.setenv("ALEXNET_DEMO_HUB_REPO", "someone/alexnet")
    with pytest.raises(CheckpointError, match="missing locally, and the Hub repo 'someone/alexnet' gave none"):
        load_classifier("mnist")
