"""Your classes: the workspace (names, limits, drawings, files, zips, bad input) and a run of the one engine on the
visitor's examples from the shipped MNIST model (new head, frozen convs, class names and parent's sha256 recorded)."""
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from alexnet_demo import classes
from alexnet_demo.checkpoints import CHECKPOINT_DIR, load_checkpoint, push_checkpoint, sha256_of
from alexnet_demo.classes import Workspace
from alexnet_demo.config import TrainConfig
from alexnet_demo.data import held_out_split, load_examples
from alexnet_demo.events import DoneEvent, EpochEvent
from alexnet_demo.inference import Classifier, load_classifier
from alexnet_demo.training import train
from conftest import SHARED_DATA, RecordingApi, shipped_hashes

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from classes import SYMBOLS, fill_workspace, sketch  # noqa: E402  (bench/classes.py: drawn as a visitor draws)

MNIST_FILE = CHECKPOINT_DIR / "mnist.safetensors"


@pytest.fixture
def workspace(tmp_path):
    ws = Workspace("drawings", tmp_path / "ws")
    yield ws
    ws.close()


def test_config_validates_tune_and_examples():
    with pytest.raises(ValueError, match="tune"):
        TrainConfig(tune="fc9")
    with pytest.raises(ValueError, match="tune"):
        TrainConfig(tune="head")  # frozen layers need a file to keep weights from
    with pytest.raises(ValueError, match="subset"):
        TrainConfig(examples="x", subset=100)
    assert TrainConfig(examples="x", init="a.safetensors", tune="conv5").tune == "conv5"


def test_held_out_split_keeps_one_of_every_class_and_refuses_a_lone_example():
    labels = torch.tensor([0] * 20 + [1] * 3 + [2] * 2)
    train_index, held = held_out_split(labels, 0.2, seed=0)
    assert sorted(labels[held].tolist()) == [0, 0, 0, 0, 1, 2]  # 20% of 20; at least one of 3 and of 2
    assert len(set(train_index.tolist()) | set(held.tolist())) == 25 and not set(train_index) & set(held)
    with pytest.raises(ValueError, match="at least 2"):
        held_out_split(torch.tensor([0, 0, 1]), 0.2)


def test_drawings_are_stored_as_the_draw_tab_reads_them(workspace):
    from alexnet_demo.preprocessing import digit_to_mnist
    first = sketch("circle", np.random.default_rng(0))
    workspace.add_drawing("circle", first)
    workspace.add_drawing("circle", sketch("circle", np.random.default_rng(1)))
    assert workspace.counts() == {"circle": 2}
    data = load_examples(workspace.folder, "mnist")
    assert data.images.shape == (2, 1, 28, 28) and data.images.dtype == torch.uint8 and data.classes == ("circle",)
    assert np.array_equal(data.images[0, 0].numpy(), digit_to_mnist(first))  # exactly what the Draw tab feeds
    workspace.remove_example("circle", 0)
    assert [p.name for p in workspace.examples("circle")] == ["1.png"]
    with pytest.raises(ValueError, match="no example 5"):
        workspace.remove_example("circle", 4)
    workspace.remove_class("circle")
    assert workspace.counts() == {}


def test_bad_names_empty_canvas_and_limits_get_clear_messages(workspace, monkeypatch):
    for bad in ("", "   ", "../up", "a/b", "x" * 41):
        with pytest.raises(ValueError, match="class name"):
            workspace.add_class(bad)
    with pytest.raises(ValueError, match="nothing drawn"):
        workspace.add_drawing("circle", sketch("circle", np.random.default_rng(0)) | {
            "layers": [np.zeros((480, 480, 4), np.uint8)], "composite": np.zeros((480, 480, 4), np.uint8)})
    for i in range(classes.MAX_CLASSES):
        workspace.add_class(f"c{i}")
    with pytest.raises(ValueError, match="at most 10 classes"):
        workspace.add_class("eleventh")
    monkeypatch.setattr(classes, "MAX_PER_CLASS", 2)
    rng = np.random.default_rng(0)
    workspace.add_drawing("c0", sketch("square", rng))
    workspace.add_drawing("c0", sketch("square", rng))
    with pytest.raises(ValueError, match="full"):
        workspace.add_drawing("c0", sketch("square", rng))


def test_single_class_and_empty_class_are_refused_before_training(workspace):
    with pytest.raises(ValueError, match="at least 2 classes"):
        workspace.check()
    fill_workspace(workspace, ["circle"], 3)
    with pytest.raises(ValueError, match=r"at least 2 classes to tell apart \(you have 1: circle\)"):
        workspace.config()
    workspace.add_class("square")
    with pytest.raises(ValueError, match=r"add more to: square \(0\)"):
        workspace.config()
    workspace.add_drawing("square", sketch("square", np.random.default_rng(0)))
    with pytest.raises(ValueError, match=r"square \(1\)"):
        workspace.check()


def test_uploaded_files_bad_ones_reported_by_name_and_skipped(tmp_path, workspace):
    from PIL import Image
    good = tmp_path / "good.png"
    Image.fromarray(sketch("tick", np.random.default_rng(0))["composite"]).save(good)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    blank = tmp_path / "blank.png"
    Image.new("RGB", (64, 64), "white").save(blank)
    report = workspace.add_files("tick", [good, broken, blank])
    assert report.added == 1 and [name for name, _ in report.skipped] == ["broken.png", "blank.png"]
    assert "broken.png: not a readable image" in report.message() and "blank.png: blank" in report.message()


def _cifar_zip(path: Path, per_class: int, wrap: str = "") -> list[str]:
    """A zip of <class>/<image> folders made of real CIFAR-10 test photos (JPEG) of three classes."""
    root = SHARED_DATA / "cifar10-jpg" / "test"
    if not root.is_dir():
        pytest.skip(f"real CIFAR-10 JPEGs not found under {root}")
    names = ["cat", "ship", "truck"]
    with zipfile.ZipFile(path, "w") as z:
        for name in names:
            for f in sorted((root / name).glob("*.jpg"))[:per_class]:
                z.write(f, f"{wrap}{name}/{f.name}")
        z.writestr(f"{wrap}cat/notes.txt", "not an image")
        z.writestr(f"{wrap}ship/corrupt.jpg", b"\xff\xd8\xff garbage")
        z.writestr("README.md", "outside any class")
    return names


@pytest.mark.parametrize("wrap", ["", "my-photos/"])
def test_classes_from_a_zip_of_real_photos(tmp_path, wrap):
    names = _cifar_zip(tmp_path / "photos.zip", 6, wrap)
    ws = Workspace("photos", tmp_path / "ws")
    report = ws.add_zip(tmp_path / "photos.zip")
    assert ws.counts() == {name: 6 for name in names} and report.added == 18
    skipped = dict(report.skipped)
    assert f"{wrap}cat/notes.txt" in skipped and "not an image" in skipped[f"{wrap}cat/notes.txt"]
    assert "not a readable image" in skipped[f"{wrap}ship/corrupt.jpg"] and "README.md" in skipped
    data = load_examples(ws.folder, "cifar10")
    assert data.images.shape == (18, 3, 32, 32) and data.classes == tuple(names)
    assert ws.config().dataset == "cifar10" and ws.config().init.endswith("cifar10.safetensors")


def test_bad_and_oversized_zips_get_clear_messages(tmp_path, workspace):
    not_zip = tmp_path / "photos.zip"
    not_zip.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="photos.zip is not a readable zip file"):
        workspace.add_zip(not_zip)
    flat = tmp_path / "flat.zip"
    with zipfile.ZipFile(flat, "w") as z:
        z.writestr("a.png", b"x")
    with pytest.raises(ValueError, match="holds no images in <class>/<image> folders"):
        workspace.add_zip(flat)
    big = tmp_path / "big.zip"
    with open(big, "wb") as f:  # sparse: 51 MB on paper, nothing written
        f.truncate(51 * 2**20)
    with pytest.raises(ValueError, match="51.0 MB: a zip may be at most 50 MB"):
        workspace.add_zip(big)
    assert workspace.counts() == {}


@pytest.mark.slow
def test_a_run_on_the_visitors_drawings_through_the_engine(workspace, tmp_path):
    """3 classes x 6 drawn examples from the shipped MNIST model: the engine's events, a new 3-way head, the conv
    layers untouched (tune=classifier), and a file that records the classes and its parent and loads again."""
    if not MNIST_FILE.is_file():
        pytest.skip("the shipped checkpoints/mnist.safetensors is not there")
    before = shipped_hashes()
    names = ["circle", "square", "triangle"]
    fill_workspace(workspace, names, 6)
    config = workspace.config(epochs=2, out=str(tmp_path / "mine.safetensors"))
    assert config.tune == "classifier" and config.init == str(MNIST_FILE) and config.batch_size == 3  # 15 learnt from (5 of 6 a class), 5 steps an epoch
    events = list(train(config))
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    done = events[-1]
    assert isinstance(done, DoneEvent) and len(epochs) == 2 and epochs[0].eval_split == "test"
    assert sum(map(sum, done.confusion)) == 3  # one of each class held out
    assert done.meta["classes"] == names and done.meta["init_sha256"] == sha256_of(MNIST_FILE)
    assert done.meta["init_classes"] == [str(d) for d in range(10)] and done.meta["config"]["tune"] == "classifier"
    parent, _ = load_checkpoint(MNIST_FILE)
    assert torch.equal(done.model.features.conv5.weight, parent.features.conv5.weight)  # frozen: as in the file
    assert not torch.allclose(done.model.classifier[3].weight, parent.classifier[3].weight)  # fc7 learnt
    assert done.model.classifier[-1].out_features == 3
    mine = load_classifier(done.checkpoint)
    assert mine.classes == tuple(names) and set(mine.predict(sketch("circle", np.random.default_rng(9)))) == set(names)
    api = RecordingApi()
    push_checkpoint(done.checkpoint, "someone/my-shapes", api=api)  # the existing push path takes it
    assert [c[1]["path_in_repo"] for c in api.calls if c[0] == "upload_file"] == ["mnist.safetensors", "README.md"]
    assert shipped_hashes() == before


@pytest.mark.slow
def test_continuing_from_an_uploaded_checkpoint(workspace, tmp_path):
    """A file from an earlier run becomes the next run's parent; one of the other kind is refused."""
    if not MNIST_FILE.is_file():
        pytest.skip("the shipped checkpoints/mnist.safetensors is not there")
    fill_workspace(workspace, ["cross", "tick"], 5)
    first = [e for e in train(workspace.config(epochs=1, out=str(tmp_path / "a.safetensors")))][-1]
    workspace.use_parent(first.checkpoint)
    second = [e for e in train(workspace.config(epochs=1, out=str(tmp_path / "b.safetensors")))][-1]
    assert second.meta["init_sha256"] == sha256_of(first.checkpoint) and second.meta["init_classes"] == ["cross", "tick"]
    assert isinstance(Classifier(second.model, second.meta), Classifier)
    with pytest.raises(ValueError, match="drawings start from a mnist one"):
        workspace.use_parent(CHECKPOINT_DIR / "cifar10.safetensors")
