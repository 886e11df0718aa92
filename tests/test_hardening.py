"""Hardening: odd canvases and uploads, bad forms and files, simulated OOM, property-based preprocessing."""
import io
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from PIL import Image

gr = pytest.importorskip("gradio")

from alexnet_demo.ui import app, drawing, photo  # noqa: E402
from alexnet_demo.ui.common import panel  # noqa: E402
from conftest import shipped_hashes  # noqa: E402
from alexnet_demo.ui import training as train_tab  # noqa: E402
from alexnet_demo.checkpoints import CHECKPOINT_DIR, CheckpointError, save_checkpoint  # noqa: E402
from alexnet_demo.inference import load_classifier  # noqa: E402
from alexnet_demo.preprocessing import digit_to_mnist, photo_to_cifar  # noqa: E402
from alexnet_demo.models import CIFAR10_CLASSES, build_model  # noqa: E402


def canvas(kind):
    layer = np.zeros((480, 480, 4), np.uint8)
    if kind == "dot":
        layer[240:250, 240:250, 3] = 255
    elif kind == "edges":
        layer[:, :8, 3] = layer[:, -8:, 3] = layer[:8, :, 3] = layer[-8:, :, 3] = 255
        layer[:, 236:244, 3] = 255
    elif kind == "filled":
        layer[..., 3] = 255
    elif kind == "light_on_dark":
        layer = np.zeros((480, 480, 3), np.uint8)
        layer[100:380, 230:250] = 255
    elif kind == "transparent":
        layer[100:380, 230:250] = (255, 255, 255, 255)  # white ink on a transparent layer
    return {"background": None, "layers": [layer], "composite": layer}


@pytest.mark.parametrize("kind", ["empty", "dot", "edges", "filled", "light_on_dark", "transparent"])
def test_every_canvas_gets_an_answer_or_a_clear_message(kind, untrained_mnist):
    label, note, kept = drawing.classify_digit(canvas(kind), untrained_mnist)
    seen = panel(kept, False)[0]
    if isinstance(label, str):
        assert label == "Draw a digit 0–9" and "Nothing drawn" in note
    else:
        assert abs(sum(label.values()) - 1) < 1e-4 and np.asarray(seen).shape[:2] == (224, 224) and note


def png_bytes(image, fmt="PNG", **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def truncated_jpeg():
    return png_bytes(Image.new("RGB", (300, 300), (0, 100, 0)), "JPEG")[:400]


@pytest.mark.parametrize("name,content,message", [
    ("text.png", b"just some text, renamed", "not a readable image"),
    ("cut.jpg", truncated_jpeg(), "corrupt or truncated"),
    ("zero.png", b"", "empty file"),
])
def test_bad_uploads_get_clear_messages(tmp_path, name, content, message, untrained_cifar):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(gr.Error, match=message):
        photo.classify_image(str(tmp_path / name), untrained_cifar)


@pytest.mark.parametrize("make", [
    lambda: Image.new("CMYK", (60, 40), (0, 200, 200, 0)),
    lambda: Image.fromarray(np.full((40, 40), 40000, np.uint16)),
    lambda: Image.new("RGB", (50, 50), (9, 9, 200)).convert("P"),
    lambda: Image.new("RGB", (1, 1), (255, 0, 0)),
    lambda: Image.new("RGB", (1, 10_000), (0, 255, 0)),
    lambda: Image.new("RGB", (10_000, 1), (0, 255, 0)),
])
def test_unusual_images_are_classified(tmp_path, make, untrained_cifar):
    path = tmp_path / "odd.png" if make().mode != "CMYK" else tmp_path / "odd.jpg"
    make().save(path)
    label, note, kept = photo.classify_image(str(path), untrained_cifar)
    seen = photo.image_panel(str(path), kept, untrained_cifar)[0]
    assert len(label) == 10 and np.asarray(seen).shape == (224, 224, 3)


def test_animated_gif_is_read_from_its_first_frame(tmp_path, untrained_cifar):
    frames = [Image.new("RGB", (64, 64), c) for c in ((250, 0, 0), (0, 0, 250), (0, 250, 0))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert photo_to_cifar(str(tmp_path / "a.gif"))[0, 0].tolist()[0] > 200
    assert len(photo.classify_image(str(tmp_path / "a.gif"), untrained_cifar)[0]) == 10


def test_a_10000_pixel_square_image_is_refused_clearly(tmp_path, untrained_cifar):
    Image.new("L", (10_000, 10_000)).save(tmp_path / "huge.png")
    with pytest.raises(gr.Error, match="the limit is 40 MP"), pytest.warns(Image.DecompressionBombWarning):
        photo.classify_image(str(tmp_path / "huge.png"), untrained_cifar)


def test_upload_size_cap_is_set():
    assert app.MAX_FILE_SIZE == "100mb"


def test_missing_training_data_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("ALEXNET_DEMO_DATA", str(tmp_path))
    run = train_tab.train_run("mnist", 1, 32, 1e-3, "adam", "none", 256, 65, False, False)
    with pytest.raises(gr.Error) as info:
        list(run)
    assert f"Looked in:\n  - {tmp_path}" in info.value.message and "ALEXNET_DEMO_DATA" in info.value.message
    assert not train_tab.TRAIN_LOCK.locked()


def test_simulated_out_of_memory_ends_the_run_with_a_message_and_frees_the_lock(data_root, monkeypatch):
    import alexnet_demo.training as training

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")
    monkeypatch.setattr(training, "train_step", exhausted)
    monkeypatch.setenv("ALEXNET_DEMO_DATA", data_root)
    with pytest.raises(gr.Error, match="out of memory"):
        list(train_tab.train_run("mnist", 1, 32, 1e-3, "adam", "none", 256, 65, False, False))
    assert not train_tab.TRAIN_LOCK.locked()


def test_second_training_run_is_told_busy():
    assert train_tab.TRAIN_LOCK.acquire(blocking=False)
    try:
        with pytest.raises(gr.Error, match="Busy: another visitor is training"):
            next(train_tab.train_run("mnist", 1, 32, 1e-3, "adam", "none", 256, 65, False, False))
    finally:
        train_tab.TRAIN_LOCK.release()


@pytest.mark.parametrize("damage", ["truncate", "pickle", "wrong_preset"])
def test_bad_checkpoint_is_refused_and_the_shipped_model_keeps_serving(tmp_path, damage):
    path = tmp_path / "bad.safetensors"
    if damage == "pickle":
        torch.save({"features.conv1.weight": torch.zeros(1)}, path)
    else:
        meta = {"preset": "cifar10", "input_size": 50, "classes": list(CIFAR10_CLASSES)}
        save_checkpoint(path, build_model("cifar10"), {**meta, **({"preset": "mnist"} if damage == "wrong_preset"
                                                                  else {})})
        if damage == "truncate":
            path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_classifier(path)
    if (CHECKPOINT_DIR / "mnist.safetensors").is_file():
        assert len(load_classifier("mnist").predict(canvas("transparent")["composite"])) == 10


def test_saving_a_visitor_model_never_touches_the_shipped_files(untrained_mnist, tmp_path, monkeypatch):
    before = shipped_hashes()
    monkeypatch.setattr(train_tab, "CHECKPOINT_DIR", tmp_path)
    note = train_tab.save_trained(untrained_mnist)
    assert "trained/mnist-" in note and len(list((tmp_path / "trained").glob("mnist-*.safetensors"))) == 1
    assert shipped_hashes() == before


# ---- property-based: any array either becomes a valid network input or raises ValueError -------------------

images = arrays(dtype=st.sampled_from([np.uint8, np.uint16, np.float32, np.float64, np.int32, np.bool_]),
                shape=array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=40),
                elements=None)


@pytest.mark.parametrize("convert,shape", [(digit_to_mnist, (28, 28)), (photo_to_cifar, (32, 32, 3))])
@settings(max_examples=150, deadline=None)
@given(array=images)
def test_any_array_becomes_a_network_input_or_a_clear_error(convert, shape, array):
    try:
        converted = convert(array)
    except ValueError as e:
        assert str(e)
        return
    if converted is None:  # an empty canvas: "nothing drawn", digits only
        assert convert is digit_to_mnist
        return
    assert converted.shape == shape and converted.dtype == np.uint8


def run_in_a_fresh_process(code: str, **env: str) -> None:
    """Run `code` in a new Python in the repository, with `env` added: settings read when the app module loads."""
    done = subprocess.run([sys.executable, "-c", code], cwd=photo.EXAMPLES_DIR.parent.parent,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_space_owner_caps_training_through_environment_variables():
    """ALEXNET_DEMO_MAX_EPOCHS / _MAX_SUBSET / _MAX_TRAIN_S are read when the app starts (a fresh process here)."""
    run_in_a_fresh_process(
        "from alexnet_demo.ui import training as ui\n"
        "assert (ui.MAX_EPOCHS, ui.MAX_SUBSET, ui.MAX_TRAIN_S) == (2, 500, 60)\n"
        "for epochs, subset, cap in [(3, 100, 'ALEXNET_DEMO_MAX_EPOCHS'), (1, 501, 'ALEXNET_DEMO_MAX_SUBSET')]:\n"
        "    try:\n"
        "        ui.make_config('mnist', epochs, 64, 1e-3, 'adam', 'none', subset, 65, False, False)\n"
        "        raise SystemExit('no cap')\n"
        "    except ui.gr.Error as e:\n"
        "        assert cap in str(e), str(e)\n"
        "ui.make_config('mnist', 2, 64, 1e-3, 'adam', 'none', 500, 65, False, False)\n",
        ALEXNET_DEMO_MAX_EPOCHS="2", ALEXNET_DEMO_MAX_SUBSET="500", ALEXNET_DEMO_MAX_TRAIN_S="60")


@pytest.mark.slow
def test_visitors_cannot_fetch_files_outside_the_apps_folders(live_app):
    """gradio's file route serves only its own cache and the app's folders: not the weights, the code, the system
    files, nor a path climbing out with '..'."""
    import httpx
    url = live_app[0].rstrip("/")
    repo = photo.EXAMPLES_DIR.parent.parent
    for path in [CHECKPOINT_DIR / "mnist.safetensors", repo / "app.py", "/etc/passwd",
                 f"{train_tab.OUTPUT_DIR}/../../etc/passwd"]:
        response = httpx.get(f"{url}/gradio_api/file={path}", timeout=30)
        assert response.status_code in (403, 404), (path, response.status_code)
    example = photo.EXAMPLES_DIR / "cifar10" / "ship.png"  # an upload lands in gradio's cache and is served back
    uploaded = httpx.post(f"{url}/gradio_api/upload", files={"files": example.open("rb")}, timeout=30).json()[0]
    assert httpx.get(f"{url}/gradio_api/file={uploaded}", timeout=30).content == example.read_bytes()


def test_on_zerogpu_the_run_asks_for_a_slot_and_stops_inside_it():
    """With the ZeroGPU double (tests/zerogpu/spaces) and SPACES_ZERO_GPU set, the device work runs inside
    @spaces.GPU, its slot is estimated from the form and capped by the owner's ALEXNET_DEMO_GPU_DURATION, and the
    run's time limit leaves 20 s of the slot to test and save."""
    run_in_a_fresh_process(
        "import sys\nsys.path.insert(0, 'tests/zerogpu')\nimport spaces\nassert spaces.ZERO_GPU\n"
        "from alexnet_demo.ui import training as ui\n"
        "assert hasattr(ui.train_on_device, 'zerogpu')\n"
        "big = ui.make_config('mnist', 30, 128, 1e-3, 'adam', 'none', 60000, 224, False, False)\n"
        "assert ui.gpu_slot_s(big) == 90 and big.time_limit_s == 70, (ui.gpu_slot_s(big), big.time_limit_s)\n"
        "small = ui.make_config('mnist', 1, 128, 1e-3, 'adam', 'none', 1000, 65, False, False)\n"
        "assert 30 <= ui.gpu_slot_s(small) < 90 and small.time_limit_s == ui.gpu_slot_s(small) - 20\n",
        SPACES_ZERO_GPU="true", ALEXNET_DEMO_GPU_DURATION="90")
