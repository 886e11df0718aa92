"""The "Your classes" tab through the real gradio_client against the running app: add drawn examples, bad input
messages, train, classify with the visitor's model here and in the Draw tab; nothing reaches another visitor."""
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402

from alexnet_demo.preprocessing import data_url  # noqa: E402
from alexnet_demo.checkpoints import read_safetensors, sha256_of, CHECKPOINT_DIR  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from classes import draw_symbol  # noqa: E402  (bench/classes.py: drawn as a visitor draws on the pad)

pytestmark = pytest.mark.slow
NAMES = ["circle", "square", "triangle"]


@pytest.fixture(scope="module")
def url(live_app):
    return live_app[0]


def drawn(folder: Path, name: str, seed: int) -> Path:
    """The strokes as a visitor draws them: an RGBA PNG, black on transparent (data_url(...) is the pad's value,
    handle_file(...) an image input's)."""
    path = folder / f"{name}-{seed}.png"
    Image.fromarray(draw_symbol(name, np.random.default_rng(seed))).save(path)
    return path


def test_the_workspace_endpoints_are_listed(url):
    names = Client(url, verbose=False).view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/classes_add", "/classes_add_photo", "/classes_add_files", "/classes_add_zip", "/classes_delete",
            "/classes_delete_class", "/classes_clear", "/classes_train", "/classes_continue",
            "/classes_classify"} <= set(names)


def test_bad_input_gets_clear_messages(url, tmp_path):
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="Add examples first"):
        client.predict("head", 2, False, api_name="/classes_train")
    client.predict("drawings", "circle", data_url(drawn(tmp_path, "circle", 0)), api_name="/classes_add")
    client.predict("drawings", "circle", data_url(drawn(tmp_path, "circle", 1)), api_name="/classes_add")
    with pytest.raises(Exception, match=r"at least 2 classes to tell apart \(you have 1: circle\)"):
        client.predict("head", 2, False, api_name="/classes_train")
    with pytest.raises(Exception, match="class name"):
        client.predict("drawings", "../etc", data_url(drawn(tmp_path, "square", 0)), api_name="/classes_add")
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(Exception, match="broken.zip is not a readable zip file"):
        client.predict("drawings", handle_file(str(bad)), api_name="/classes_add_zip")
    mixed = tmp_path / "mixed.zip"
    with zipfile.ZipFile(mixed, "w") as z:
        z.writestr("square/a.png", b"not a png")
        z.writestr("square/notes.txt", "hello")
    note, counts, _, _ = client.predict("drawings", handle_file(str(mixed)), api_name="/classes_add_zip")
    assert "square/a.png: not a readable image" in note and "square/notes.txt: not an image" in note
    assert "**circle**: 2" in counts and "**square**: 0" in counts
    with pytest.raises(Exception, match=r"add more to: square \(0\)"):
        client.predict("head", 2, False, api_name="/classes_train")
    with pytest.raises(Exception, match="clear them before switching to photos"):
        client.predict("photos", "cat", handle_file(str(drawn(tmp_path, "circle", 2))), api_name="/classes_add_photo")


def test_teach_three_drawn_classes_then_every_tab_reads_with_them(url, tmp_path):
    if not (CHECKPOINT_DIR / "mnist.safetensors").is_file():
        pytest.skip("the shipped mnist checkpoint is not there")
    client, other = Client(url, verbose=False), Client(url, verbose=False)
    for name in NAMES:
        for seed in range(12):
            note, counts, gallery, _ = client.predict("drawings", name, data_url(drawn(tmp_path, name, seed)),
                                                      api_name="/classes_add")
    assert counts == "**circle**: 12 · **square**: 12 · **triangle**: 12" and len(gallery) == 36
    client.predict("drawings", "extra", data_url(drawn(tmp_path, "circle", 99)), api_name="/classes_add")
    client.predict("drawings", "extra", data_url(drawn(tmp_path, "circle", 98)), api_name="/classes_add")
    _, counts, _, _ = client.predict("extra", 2, api_name="/classes_delete")
    assert "**extra**: 1" in counts
    _, counts, _, _ = client.predict("extra", api_name="/classes_delete_class")
    assert "extra" not in counts
    *_, probe, _, snapshot_note, gif, progress, result, checkpoint = client.predict("classifier", 4, False,
                                                                                     api_name="/classes_train")
    assert progress == "Done." and "Held-out accuracy" in result and "on 6 of your examples" in result
    # the time-lapse watched a held-out example: its last reading is in the visitor's classes, and a GIF of it
    assert probe["label"] in NAMES and "it reads the probe as" in snapshot_note and gif.endswith(".gif")
    tensors, meta = read_safetensors(checkpoint)
    assert meta["classes"] == NAMES and meta["init_sha256"] == sha256_of(CHECKPOINT_DIR / "mnist.safetensors")
    assert not str(Path(checkpoint).resolve()).startswith(str(CHECKPOINT_DIR))
    for i, name in enumerate(NAMES):  # new drawings, never seen: the tab's own classify and the Draw tab
        fresh = drawn(tmp_path, name, 1000 + i)
        label, _ = client.predict(handle_file(str(fresh)), api_name="/classes_classify")
        assert label["label"] == name, label
        label, note, *_ = client.predict(data_url(fresh), api_name="/classify_digit")
        assert label["label"] == name, (label, note)
    triangle = data_url(drawn(tmp_path, "triangle", 2000))
    figure, caption = client.predict("Drawing", triangle, None, "the predicted class",
                                     "conv5", api_name="/explain")
    assert "triangle" in caption
    # another visitor: none of it
    label, _ = other.predict(data_url(drawn(tmp_path, "circle", 3000)), api_name="/classify_digit")[:2]
    assert label["label"] in [str(d) for d in range(10)]
    with pytest.raises(Exception, match="Train your classes first"):
        other.predict(handle_file(str(drawn(tmp_path, "circle", 3001))), api_name="/classes_classify")
    # a downloaded checkpoint continues in a new session, its classes named there
    third = Client(url, verbose=False)
    note, counts, _, _ = third.predict("drawings", handle_file(checkpoint), api_name="/classes_continue")
    assert "Continuing from your checkpoint (circle, square, triangle)" in note and "**square**: 0" in counts
    label, _ = third.predict(handle_file(str(drawn(tmp_path, "square", 4000))), api_name="/classes_classify")
    assert set(c["label"] for c in label["confidences"]) == set(NAMES)


def test_the_bf16_box_follows_the_engines_measured_choice_for_each_kind():
    from alexnet_demo.ui import classes, formats
    for kind, dataset in (("drawings", "mnist"), ("photos", "cifar10")):
        assert classes.amp_choice(kind) == formats.amp_default(dataset)[0]  # measured once, then the same answer
