"""The Train tab: a form made from TrainConfig's choices, a run streamed as live loss and accuracy plots, the
result, and the visitor's model for the other tabs (this browser session only; never over a shipped file)."""
from __future__ import annotations

import os
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import gradio as gr
import pandas as pd
import torch

from ..checkpoints import CHECKPOINT_DIR, save_checkpoint
from ..config import OPTIMIZERS, SCHEDULES, TrainConfig, smallest_input_size
from ..data import DATASETS, TRAIN_IMAGES, DataNotFoundError
from ..inference import Classifier
from ..inspection import confusion_figure, mistakes_gallery
from ..training import DoneEvent, EpochEvent, StartEvent, StepEvent, TrainingError, pick_device, train
from .common import user_errors

TRAIN_LOCK = threading.Lock()  # one training run per machine
OUTPUT_DIR = Path(tempfile.gettempdir()) / "alexnet_demo"  # visitors' checkpoints; never checkpoints/


def _cap(name: str, default: int) -> int:
    """Training caps for a shared Space, set by its owner through environment variables."""
    return int(os.environ.get(name, default))


MAX_EPOCHS = _cap("ALEXNET_DEMO_MAX_EPOCHS", 30)
MAX_SUBSET = _cap("ALEXNET_DEMO_MAX_SUBSET", max(TRAIN_IMAGES.values()))
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

    with user_errors(TypeError):
        epochs, batch_size, subset = whole("epochs", epochs), whole("batch size", batch_size), whole("subset", subset)
        if epochs > MAX_EPOCHS:
            raise ValueError(f"epochs={epochs} is over this app's cap of {MAX_EPOCHS} (ALEXNET_DEMO_MAX_EPOCHS)")
        if subset > MAX_SUBSET:
            raise ValueError(f"subset={subset} is over this app's cap of {MAX_SUBSET} (ALEXNET_DEMO_MAX_SUBSET)")
        size = whole("input size", input_size) if input_size else None
        return TrainConfig(dataset=dataset, epochs=epochs, batch_size=batch_size, lr=float(lr), optimizer=optimizer,
                           schedule=schedule, subset=subset, input_size=size, augment=bool(augment),
                           amp=bool(amp) and torch.cuda.is_available(), log_every=1, save_state=False,
                           data_root=os.environ.get("ALEXNET_DEMO_DATA"))


def _curves(rows: list[dict]):
    """Long-format curve data with explicit dtypes (object columns make the plot treat numbers as categories).
    No rows yet: leave the plot alone, since an empty first frame leaves gradio 6.31's LinePlot with no colour
    domain, and it then draws no lines at all."""
    if not rows:
        return gr.skip()
    frame = pd.DataFrame(rows, columns=["step", "value", "series"])
    return frame.astype({"step": "int64", "value": "float64", "series": "str"})


def run_events(config: TrainConfig, stop: threading.Event):
    """The engine's events, each with the tab's outputs after it: (event, outputs or None). None when the
    outputs need not be sent (at most two updates a second, besides every epoch's end and the last)."""
    losses, accuracies, last_yield = [], [], 0.0
    progress = "Loading the data…"
    yield None, (_curves(losses), _curves(accuracies), progress, "", None, [], None, None)
    for event in train(config, stop=stop):
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
            yield event, _done_outputs(event, losses, accuracies, stop.is_set())
            return
        if time.monotonic() - last_yield > 0.5 or isinstance(event, EpochEvent):
            last_yield = time.monotonic()
            yield event, (_curves(losses), _curves(accuracies), progress, "", None, [], None, None)
        else:
            yield event, None


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
    stream = run_events(config, stop)
    try:
        timer.start()
        with user_errors(TrainingError, DataNotFoundError, OSError):
            for _, outputs in stream:
                if outputs is not None:
                    yield outputs
    finally:  # normal end, error, Stop or a closed browser (GeneratorExit): free the device and the lock
        stream.close()
        timer.cancel()
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


def _subset_label(dataset: str) -> str:
    return f"Training images (subset, {dataset} has {TRAIN_IMAGES[dataset]})"


def tab(trained_last: gr.State, trained_mnist: gr.State, trained_cifar: gr.State) -> None:
    defaults = _form_defaults()
    smallest = ", ".join(f"{d} ≥ {smallest_input_size(d)}" for d in DATASETS)
    with gr.Tab("Train", id="train"):
        gr.Markdown(device_line())
        with gr.Row():
            dataset = gr.Radio(list(DATASETS), value="mnist", label="Dataset")
            optimizer = gr.Dropdown(list(OPTIMIZERS), value="adam", label="Optimizer")
            schedule = gr.Dropdown(list(SCHEDULES), value="none", label="LR schedule")
        with gr.Row():
            epochs = gr.Slider(1, MAX_EPOCHS, value=defaults["epochs"], step=1, label="Epochs")
            batch_size = gr.Slider(8, 512, value=defaults["batch_size"], step=8, label="Batch size")
            lr = gr.Number(value=defaults["lr"], label="Learning rate")
        with gr.Row():
            subset = gr.Number(value=defaults["subset"], precision=0, label="Training images (subset)")
            input_size = gr.Number(value=defaults["input_size"], precision=0, label=f"Input size, px ({smallest})")
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
    run = start.click(train_run, [dataset, epochs, batch_size, lr, optimizer, schedule, subset, input_size, augment,
                                  amp],
                      [loss_plot, accuracy_plot, progress, result, confusion, mistakes, download, trained_last],
                      api_name="train", concurrency_limit=2,
                      show_progress="minimal")  # no overlay dimming the live plots; the progress line says it
    stop.click(None, cancels=[run])
    use.click(use_trained, [trained_last, trained_mnist, trained_cifar], [trained_mnist, trained_cifar, use_note],
              api_name=False)
    back.click(use_shipped, None, [trained_mnist, trained_cifar, use_note], api_name=False)
    save.click(save_trained, trained_last, use_note, api_name=False)
    dataset.change(lambda d: gr.update(label=_subset_label(d)), dataset, subset, api_name=False)
