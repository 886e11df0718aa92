"""The Gradio app: draw a digit, classify a photo, look inside every conv layer, train live. Callbacks are thin."""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import torch
from PIL import Image

from .checkpoints import CHECKPOINT_DIR, CheckpointError, save_checkpoint
from .data import DataNotFoundError
from .inference import Classifier, load_classifier
from .inspection import (confusion_figure, enlarge, feature_gallery, feature_maps_figure, filters_figure,
                         mistakes_gallery, top_channels_figure)
from .models import CONV_LAYERS, PRESETS, model_table
from .training import (DoneEvent, EpochEvent, StartEvent, StepEvent, TrainConfig, TrainingError, pick_device,
                       state_path, train)

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
LOW_CONFIDENCE = 0.5  # below this top probability the photo may not show one of the ten classes
MAX_FILE_SIZE = "20mb"  # gradio refuses larger uploads before they reach a callback
TRAIN_LOCK = threading.Lock()  # one training run per machine
OUTPUT_DIR = Path(tempfile.gettempdir()) / "alexnet_demo"  # visitors' checkpoints; never checkpoints/


def _cap(name: str, default: int) -> int:
    """Training caps for a shared Space, set by its owner through environment variables."""
    return int(os.environ.get(name, default))


MAX_EPOCHS = _cap("ALEXNET_DEMO_MAX_EPOCHS", 30)
MAX_SUBSET = _cap("ALEXNET_DEMO_MAX_SUBSET", 60000)
MAX_TRAIN_S = _cap("ALEXNET_DEMO_MAX_TRAIN_S", 1800)
GPU_DURATION = _cap("ALEXNET_DEMO_GPU_DURATION", 120)  # s: one ZeroGPU slot

try:  # ZeroGPU on Hugging Face Spaces: GPU work runs inside @spaces.GPU; elsewhere nothing changes
    import spaces

    gpu = spaces.GPU(duration=GPU_DURATION)
    if os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true"):  # set by ZeroGPU (spaces.config)
        MAX_TRAIN_S = min(MAX_TRAIN_S, GPU_DURATION - 20)  # stop in time to test and save inside the slot
except ImportError:
    def gpu(fn):
        return fn


class PhotoInput(gr.Image):
    """gr.Image that hands an upload it cannot decode to the callback as a path, so that the visitor is told
    what is wrong with the file (gradio's own message is a generic "error")."""

    is_template = True  # rendered by the frontend as a plain gr.Image

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except Exception:  # PIL's errors for a text file, a truncated JPEG, an empty file, …
            return payload.path if payload is not None else None


# ---- models ------------------------------------------------------------------------------------------------


def _classifier(preset: str, trained: Classifier | None) -> Classifier:
    """This visitor's trained model if they chose one, else the shipped checkpoint."""
    if trained is not None:
        return trained
    try:
        return load_classifier(preset)
    except CheckpointError as e:
        raise gr.Error(f"No {preset} model is available: {e}. Train one in the Train tab.") from None


def _run(preset: str, image, trained, maps: bool = True):
    try:
        return _classifier(preset, trained).run(image, maps=maps)
    except ValueError as e:
        raise gr.Error(str(e)) from None


def _served(picture: np.ndarray | Image.Image) -> Image.Image:
    """An output picture tagged with a per-response id (a PNG text chunk; the pixels are untouched).

    gradio 6.31 stores an output image under the hash of its bytes and rewrites that file, not atomically, on
    every response; two visitors getting the same picture at once (the same example, or digits that normalise
    alike) could be served a half-written file. The tag gives every response its own files.
    """
    image = picture if isinstance(picture, Image.Image) else Image.fromarray(picture)
    image.info["response"] = uuid.uuid4().hex
    return image


def _outputs(result) -> tuple[Image.Image, list[tuple[Image.Image, str]]]:
    """(what the network sees, enlarged; one feature-map grid per conv layer) for a classify callback."""
    return _served(enlarge(result.seen, 224)), [(_served(grid), caption)
                                               for grid, caption in feature_gallery(result.feature_maps)]


# ---- callbacks -------------------------------------------------------------------------------------------


def classify_digit(drawing, trained=None):
    """Sketchpad value -> (probabilities, what the network sees, feature-map gallery, note)."""
    if drawing is None or (isinstance(drawing, dict) and drawing.get("composite") is None):  # a cleared canvas
        return "Draw a digit", None, [], "Draw a digit 0–9 on the canvas."
    result = _run("mnist", drawing, trained)
    if not result.probabilities:
        return "Draw a digit", None, [], "Nothing drawn yet: draw a digit 0–9 on the canvas."
    top, p = next(iter(result.probabilities.items()))
    note = f"It reads **{top}** ({p:.1%})." if p >= LOW_CONFIDENCE else \
        f"Not sure: **{top}** at only {p:.1%}. Try a bigger, clearer digit."
    return result.probabilities, *_outputs(result), note


def classify_image(photo, trained=None):
    """Uploaded photo (a file path) -> (top-5 probabilities, the 32x32 seen, feature-map gallery, note)."""
    if photo is None:
        return None, None, [], "Upload a photo, paste one, use the webcam or click an example."
    result = _run("cifar10", photo, trained)
    top, p = next(iter(result.probabilities.items()))
    note = f"Looks like a **{top}** ({p:.1%})." if p >= LOW_CONFIDENCE else \
        f"Low confidence: best guess **{top}** at {p:.1%}. The photo may not show one of the ten CIFAR-10 " \
        f"classes ({', '.join(PRESETS['cifar10'].classes)})."
    return result.probabilities, *_outputs(result), note


def feature_maps(source, layer, drawing, photo, trained_mnist=None, trained_cifar=None):
    """(all-layers figure, the layer's most active channels, conv1 filters, caption) for the chosen input."""
    if layer not in CONV_LAYERS:
        raise gr.Error(f"layer must be one of {CONV_LAYERS}")
    digit = source == "Drawing"
    preset, image, trained = ("mnist", drawing, trained_mnist) if digit else ("cifar10", photo, trained_cifar)
    classifier = _classifier(preset, trained)
    if image is None or (isinstance(image, dict) and image.get("composite") is None):
        return None, None, filters_figure(classifier.model), "Draw a digit or upload a photo first."
    try:
        result = classifier.run(image)
    except ValueError as e:
        raise gr.Error(str(e)) from None
    if not result.feature_maps:
        return None, None, filters_figure(classifier.model), "Nothing drawn yet."
    top, p = next(iter(result.probabilities.items()))
    caption = f"Input read as **{top}** ({p:.1%}) by the {preset} model."
    return (feature_maps_figure(result.feature_maps), top_channels_figure(result.feature_maps, layer),
            filters_figure(classifier.model), caption)


def device_line() -> str:
    device = pick_device()
    if device.type == "cuda":
        return f"Runs on the GPU: **{torch.cuda.get_device_name(0)}**."
    return (f"Runs on a **CPU** ({os.cpu_count()} cores): training is slow here, so a small subset and a "
            "reduced input size are preselected. A GPU trains the full recipe in seconds to minutes.")


def _form_defaults() -> dict:
    on_gpu = pick_device().type == "cuda"
    return {"epochs": 5 if on_gpu else 3, "batch_size": 128, "lr": 1e-3 if on_gpu else 3e-4,
            "subset": 60000 if on_gpu else 5000, "input_size": 224 if on_gpu else 65}


def make_config(dataset, epochs, batch_size, lr, optimizer, schedule, subset, input_size, augment, amp) -> TrainConfig:
    """The form's values as a validated TrainConfig, within the Space owner's caps; gr.Error if out of range."""
    def whole(name, value):
        if value is None or not float(value).is_integer():
            raise gr.Error(f"{name} must be a whole number, got {value!r}")
        return int(value)

    try:
        epochs, batch_size, subset = whole("epochs", epochs), whole("batch size", batch_size), whole("subset", subset)
        if epochs > MAX_EPOCHS:
            raise ValueError(f"epochs={epochs} is over this app's cap of {MAX_EPOCHS} (ALEXNET_DEMO_MAX_EPOCHS)")
        if subset > MAX_SUBSET:
            raise ValueError(f"subset={subset} is over this app's cap of {MAX_SUBSET} (ALEXNET_DEMO_MAX_SUBSET)")
        size = whole("input size", input_size) if input_size else None
        return TrainConfig(dataset=dataset, epochs=epochs, batch_size=batch_size, lr=float(lr), optimizer=optimizer,
                           schedule=schedule, subset=subset, input_size=size, augment=bool(augment),
                           amp=bool(amp) and torch.cuda.is_available(), log_every=1,
                           data_root=os.environ.get("ALEXNET_DEMO_DATA"))
    except (ValueError, TypeError) as e:
        raise gr.Error(str(e)) from None


def _curves(rows: list[dict]):
    """Long-format curve data with explicit dtypes (object columns make the plot treat numbers as categories).
    No rows yet: leave the plot alone, since an empty first frame leaves gradio 6.31's LinePlot with no colour
    domain, and it then draws no lines at all."""
    if not rows:
        return gr.skip()
    frame = pd.DataFrame(rows, columns=["step", "value", "series"])
    return frame.astype({"step": "int64", "value": "float64", "series": "str"})


@gpu
def train_run(dataset, epochs, batch_size, lr, optimizer, schedule, subset, input_size, augment, amp):
    """Stream a training run: (loss curves, accuracy curves, progress, result, confusion, mistakes, file, model)."""
    config = make_config(dataset, epochs, batch_size, lr, optimizer, schedule, subset, input_size, augment, amp)
    if not TRAIN_LOCK.acquire(blocking=False):
        raise gr.Error("Busy: another visitor is training right now (one run per machine). Try again in a minute.")
    stop = threading.Event()
    timer = threading.Timer(MAX_TRAIN_S, stop.set)  # the Space owner's wall-time cap
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    config.out = str(OUTPUT_DIR / f"{dataset}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{id(stop):x}.safetensors")
    losses, accuracies, last_yield = [], [], 0.0
    progress = "Loading the data…"
    events = train(config, stop=stop)
    try:
        timer.start()
        yield _curves(losses), _curves(accuracies), progress, "", None, [], None, None
        for event in events:
            if isinstance(event, StartEvent):
                progress = (f"Training on {event.device_name}: {event.train_images} images, "
                            f"{event.total_steps} steps, evaluating on {event.eval_images} {event.eval_split} images.")
                for rows, kind in ((losses, "loss"), (accuracies, "accuracy")):
                    # Every series from the first frame, with no value yet (drawn as nothing): gradio 6.31's
                    # LinePlot fixes its colour domain at its first frame and never draws a series added later.
                    rows += [{"step": 0, "value": None, "series": f"{split} {kind}"}
                             for split in ("train", event.eval_split)]
            elif isinstance(event, StepEvent):
                losses.append({"step": event.step, "value": event.train_loss, "series": "train loss"})
                accuracies.append({"step": event.step, "value": event.train_accuracy, "series": "train accuracy"})
                progress = (f"Step {event.step} · epoch {event.epoch:.2f} of {config.epochs} · "
                            f"{event.images_per_s:.0f} images/s · ETA {event.eta_s:.0f} s")
            elif isinstance(event, EpochEvent):
                x = losses[-1]["step"] if losses else 0
                losses.append({"step": x, "value": event.eval_loss, "series": f"{event.eval_split} loss"})
                accuracies.append({"step": x, "value": event.eval_accuracy, "series": f"{event.eval_split} accuracy"})
            elif isinstance(event, DoneEvent):
                yield _done_outputs(event, losses, accuracies, stop.is_set())
                return
            if time.monotonic() - last_yield > 0.5 or isinstance(event, EpochEvent):
                last_yield = time.monotonic()
                yield _curves(losses), _curves(accuracies), progress, "", None, [], None, None
    except (ValueError, TrainingError, DataNotFoundError, OSError) as e:
        raise gr.Error(str(e)) from None
    finally:  # normal end, error, Stop or a closed browser (GeneratorExit): free the device and the lock
        events.close()
        timer.cancel()
        state_path(config.out).unlink(missing_ok=True)  # resume state is not offered here; don't fill the disk
        TRAIN_LOCK.release()


def _done_outputs(event: DoneEvent, losses, accuracies, timed_out: bool):
    if event.test_accuracy is None:
        result = "Stopped" + (f" at the {MAX_TRAIN_S} s cap" if timed_out else "") + \
                 (": the last completed epoch's checkpoint is below." if event.checkpoint else " before an epoch ended.")
    else:
        result = (f"**Test accuracy {event.test_accuracy:.2%}** on {sum(map(sum, event.confusion))} test images, "
                  f"{event.train_time_s:.0f} s of training. Press *Use this model* to try it in the other tabs.")
    classifier = Classifier(event.model, event.meta) if event.model is not None else None
    confusion = confusion_figure(event.confusion, event.meta["classes"]) if event.confusion else None
    return (_curves(losses), _curves(accuracies), "Done." if not event.cancelled else "Stopped.", result,
            confusion, mistakes_gallery(event.mistakes), event.checkpoint, classifier)


def use_trained(trained: Classifier | None, mnist, cifar):
    """Put the model just trained into this visitor's Draw and CIFAR tabs (never anyone else's)."""
    if trained is None:
        raise gr.Error("No finished model yet: train one first.")
    if trained.preset == "mnist":
        return trained, cifar, "Your MNIST model now reads your drawings (this browser session only)."
    return mnist, trained, "Your CIFAR-10 model now classifies your photos (this browser session only)."


def use_shipped():
    return None, None, "Back to the shipped models."


def save_trained(trained: Classifier | None):
    """Explicitly save this visitor's model under checkpoints/trained/ (never over a shipped file)."""
    if trained is None:
        raise gr.Error("No finished model to save.")
    if os.environ.get("ALEXNET_DEMO_ALLOW_SAVE", "1") != "1":
        raise gr.Error("Saving is switched off on this server (ALEXNET_DEMO_ALLOW_SAVE).")
    name = f"{trained.preset}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.safetensors"
    path = save_checkpoint(CHECKPOINT_DIR / "trained" / name, trained.model, trained.meta)
    return f"Saved as `{path.relative_to(CHECKPOINT_DIR.parent)}`."


# ---- layout ------------------------------------------------------------------------------------------------

INTRO = """# AlexNet, live
Draw a digit and watch an AlexNet trained on MNIST read it stroke by stroke; show it a photo; look at what
every convolutional layer responds to; train your own and watch it learn."""

# The Sketchpad opens, and comes back from "Clear canvas", with no tool chosen: pick the brush so that a visitor
# can always just draw.
SELECT_BRUSH = """() => {
  const brush = () => document.querySelector('#sketch button[aria-label="Brush"]')?.click();
  setTimeout(brush, 300);
  document.addEventListener('click', (e) => {
    if (e.target.closest('#sketch button[aria-label="Clear canvas"]')) setTimeout(brush, 300);
  }, true);
}"""

CSS = """
#sketch {max-width: 640px}
#photo img {width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated}  /* 32 px examples, large */
.gallery-item .caption-label {font-size: 12px}
"""


def build_demo() -> gr.Blocks:
    """The whole app; nothing is loaded or trained until a visitor asks."""
    defaults = _form_defaults()
    examples = sorted(EXAMPLES_DIR.glob("cifar10/*.png"))
    # delete_cache: output files older than an hour are swept every 30 min, so a busy Space's disk stays bounded
    with gr.Blocks(title="AlexNet, live", delete_cache=(1800, 3600)) as demo:
        trained_mnist, trained_cifar, trained_last = gr.State(None), gr.State(None), gr.State(None)
        gr.Markdown(INTRO)
        with gr.Tabs():
            with gr.Tab("Draw a digit", id="draw"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3):
                        sketch = gr.Sketchpad(
                            label="Draw a digit 0–9",
                            canvas_size=(480, 480), height=600, type="numpy", image_mode="RGBA", elem_id="sketch",
                            brush=gr.Brush(default_size=18, colors=["#000000"], color_mode="fixed"), layers=False)
                    with gr.Column(scale=2):
                        digit_note = gr.Markdown("Draw a digit 0–9 on the canvas: the answer updates after every stroke.")
                        digit_label = gr.Label(num_top_classes=10, label="Probabilities", value="Draw a digit")
                        digit_seen = gr.Image(label="What the network sees (28×28, MNIST-style)",
                                              height=260, interactive=False, format="png")
                digit_maps = gr.Gallery(label="Feature maps of conv1 … conv5 for this drawing (after ReLU)",
                                        columns=5, height=300, object_fit="contain", format="png")
            with gr.Tab("Classify a photo", id="cifar"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3):
                        photo = PhotoInput(label="A photo: upload, paste or webcam", type="filepath", height=360, elem_id="photo",
                                         sources=["upload", "clipboard", "webcam"])
                        if examples:
                            gr.Examples([[str(p)] for p in examples], inputs=photo, label="CIFAR-10 test images",
                                        examples_per_page=10)
                    with gr.Column(scale=2):
                        photo_note = gr.Markdown("Upload a photo, paste one, use the webcam or click an example.")
                        photo_label = gr.Label(num_top_classes=5, label="Top 5")
                        photo_seen = gr.Image(label="What the network sees (32×32 → 50×50)",
                                              height=260, interactive=False, format="png")
                photo_maps = gr.Gallery(label="Feature maps of conv1 … conv5 for this photo (after ReLU)",
                                        columns=5, height=300, object_fit="contain", format="png")
            with gr.Tab("Feature maps", id="maps") as maps_tab:
                with gr.Row():
                    source = gr.Radio(["Drawing", "Photo"], value="Drawing", label="Input")
                    layer = gr.Dropdown(list(CONV_LAYERS), value="conv1", label="Layer to enlarge")
                    show = gr.Button("Show", variant="primary")
                maps_caption = gr.Markdown()
                all_maps = gr.Plot(label="Every conv layer's channels", show_label=False)
                with gr.Row():
                    top_maps = gr.Plot(label="The layer's most active channels", show_label=False)
                    filters = gr.Plot(label="conv1 filters", show_label=False)
            with gr.Tab("Train", id="train"):
                gr.Markdown(device_line())
                with gr.Row():
                    dataset = gr.Radio(["mnist", "cifar10"], value="mnist", label="Dataset")
                    optimizer = gr.Dropdown(["adam", "sgd"], value="adam", label="Optimizer")
                    schedule = gr.Dropdown(["none", "onecycle", "plateau"], value="none", label="LR schedule")
                with gr.Row():
                    epochs = gr.Slider(1, MAX_EPOCHS, value=defaults["epochs"], step=1, label="Epochs")
                    batch_size = gr.Slider(8, 512, value=defaults["batch_size"], step=8, label="Batch size")
                    lr = gr.Number(value=defaults["lr"], label="Learning rate")
                with gr.Row():
                    subset = gr.Number(value=defaults["subset"], precision=0, label="Training images (subset)")
                    input_size = gr.Number(value=defaults["input_size"], precision=0,
                                           label="Input size, px (MNIST ≥ 65, CIFAR-10 ≥ 47)")
                    augment = gr.Checkbox(value=False, label="Augment (shift; CIFAR also flip)")
                    amp = gr.Checkbox(value=torch.cuda.is_available(), label="bf16 mixed precision (GPU)")
                with gr.Row():
                    start = gr.Button("Start training", variant="primary")
                    stop = gr.Button("Stop", variant="stop")
                progress = gr.Markdown()
                with gr.Row():
                    loss_plot = gr.LinePlot(x="step", y="value", color="series", title="Loss", height=280,
                                            elem_id="loss-plot")
                    accuracy_plot = gr.LinePlot(x="step", y="value", color="series", title="Accuracy", height=280,
                                                y_lim=[0, 1], elem_id="accuracy-plot")
                result = gr.Markdown()
                with gr.Row():
                    confusion = gr.Plot(label="Confusion matrix (test)", show_label=False)
                    mistakes = gr.Gallery(label="Misclassified test images (true → predicted)", columns=5, height=360,
                                          format="png")
                with gr.Row():
                    use = gr.Button("Use this model in Draw and Photo tabs")
                    back = gr.Button("Back to the shipped models")
                    save = gr.Button("Save under checkpoints/trained/")
                    download = gr.File(label="Checkpoint (safetensors)", interactive=False)
                use_note = gr.Markdown()
            with gr.Tab("Model", id="model"):
                gr.Markdown("## MNIST preset: 1×224×224 input\nThe MNIST write-up gives 47,686,346 parameters; that "
                            "total has an arithmetic slip in FC1 (6400·4096 + 4096 = 26,218,496). The real total, "
                            "computed from the code below, is **46,764,746**.\n\n" + model_table("mnist"))
                gr.Markdown("## CIFAR-10 preset: 3×50×50 input, BatchNorm on conv1–conv2\n\n" + model_table("cifar10"))

        sketch.change(classify_digit, [sketch, trained_mnist], [digit_label, digit_seen, digit_maps, digit_note],
                      api_name="classify_digit", show_progress="hidden", concurrency_limit=4,
                      trigger_mode="always_last")
        photo.change(classify_image, [photo, trained_cifar], [photo_label, photo_seen, photo_maps, photo_note],
                     api_name="classify_image", concurrency_limit=4)
        maps_inputs = [source, layer, sketch, photo, trained_mnist, trained_cifar]
        maps_outputs = [all_maps, top_maps, filters, maps_caption]
        show.click(feature_maps, maps_inputs, maps_outputs, api_name="feature_maps", concurrency_limit=2)
        gr.on([maps_tab.select, layer.change, source.change], feature_maps, maps_inputs, maps_outputs,
              api_name=False, concurrency_limit=2)
        run = start.click(train_run, [dataset, epochs, batch_size, lr, optimizer, schedule, subset, input_size,
                                      augment, amp],
                          [loss_plot, accuracy_plot, progress, result, confusion, mistakes, download, trained_last],
                          api_name="train", concurrency_limit=2,
                          show_progress="minimal")  # no overlay dimming the live plots; the progress line says it
        stop.click(None, cancels=[run])
        use.click(use_trained, [trained_last, trained_mnist, trained_cifar], [trained_mnist, trained_cifar, use_note],
                  api_name=False)
        back.click(use_shipped, None, [trained_mnist, trained_cifar, use_note], api_name=False)
        save.click(save_trained, trained_last, use_note, api_name=False)
        dataset.change(lambda d: gr.update(label=f"Training images (subset, {d} has "
                                                 f"{60000 if d == 'mnist' else 50000})"), dataset, subset,
                       api_name=False)
        demo.load(None, js=SELECT_BRUSH)
    demo.queue(default_concurrency_limit=4)
    return demo


def warm_up() -> None:
    """Load the shipped models and run one forward each, so that the first visitor's stroke is answered at full
    speed (loading 94 MB and oneDNN's first-call setup take seconds). Missing checkpoints are reported by the
    callbacks that need them, not here."""
    for preset in ("mnist", "cifar10"):
        try:
            classifier = load_classifier(preset)
        except CheckpointError:
            continue
        blank = torch.zeros(PRESETS[preset].in_channels, 28, 28, dtype=torch.uint8)
        blank[:, 4:24, 12:16] = 255  # a stroke, so that the digit path runs end to end
        feature_gallery(classifier.run(blank.permute(1, 2, 0).numpy()).feature_maps)  # and the panel's grids


def launch(demo: gr.Blocks, **kwargs):
    """Launch with this app's limits: upload size cap; files served only from the app's own folders. The models
    warm up in a background thread while the server starts."""
    threading.Thread(target=warm_up, name="warm-up", daemon=True).start()
    kwargs.setdefault("show_error", True)
    return demo.launch(max_file_size=MAX_FILE_SIZE, theme=gr.themes.Soft(), css=CSS, **kwargs)
