"""The Train tab: a form made from TrainConfig's choices, a run streamed as live curves and a time-lapse of the
network learning, the result, and this session's runs to compare and use in the other tabs (never over a
shipped file).

On a ZeroGPU Space the device work runs in a forked worker process (`train_on_device`, decorated with
`spaces.GPU`): everything it yields is pickled back, so it yields the engine's CPU events, and the rest (the lock,
the plots, pictures and the session's runs) stays in the main process (`train_run`)."""
from __future__ import annotations

import os
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path

import gradio as gr
import torch

from ..checkpoints import CHECKPOINT_DIR, CheckpointError, save_checkpoint
from ..config import OPTIMIZERS, RECIPES, SCHEDULES, TrainConfig, smallest_input_size
from ..data import DATASETS, TRAIN_IMAGES, DataNotFoundError
from ..inference import Classifier, load_classifier
from ..inspection import filter_grid
from ..training import TrainingError, train
from . import formats, runs as session_runs
from .runs import OUTPUTS, RunView, frame, show_snapshot
from .common import classifier_for, is_blank, user_errors

TRAIN_LOCK = threading.Lock()  # one training run per machine, held in the main process
OUTPUT_DIR = Path(tempfile.gettempdir()) / "alexnet_demo"  # visitors' checkpoints; never checkpoints/


def _cap(name: str, default: int) -> int:
    """Training caps for a shared Space, set by its owner through environment variables."""
    return int(os.environ.get(name, default))


MAX_EPOCHS = _cap("ALEXNET_DEMO_MAX_EPOCHS", 30)
MAX_SUBSET = _cap("ALEXNET_DEMO_MAX_SUBSET", max(TRAIN_IMAGES.values()))
MAX_TRAIN_S = _cap("ALEXNET_DEMO_MAX_TRAIN_S", 1800)
GPU_DURATION = _cap("ALEXNET_DEMO_GPU_DURATION", 120)  # s: the longest ZeroGPU slot a run may ask for
SLOT_MARGIN_S = 20  # s of the slot left after training for the final test and the checkpoint
SNAPSHOTS_MIN = 20  # time-lapse pictures per run: steps // (steps // 20) is 20 to 40 (runs of 20+ steps)
# AlexNet images/s at 224 px on a ZeroGPU slice with bf16, training and evaluation together: a whole H100 trained the
# GPU form defaults at 18,800 (README: Performance, GPU); a slice (H200 MIG 3g.71gb, 60 of 132 SMs) should give about
# half; 4,000 leaves 2x headroom. The slot asked for is charged to the visitor's quota, so an estimate beats the
# maximum. Not yet measured on a real ZeroGPU Space.
GPU_IMAGES_PER_S_224 = 4000
TEST_IMAGES = 10_000  # both datasets' official test sets; tested once, at the end of a run
# Each epoch is evaluated on 1% of the training images held out (600 MNIST, 500 CIFAR-10 digits/photos), not on the
# 10,000 test images: on 2 CPU cores those take ~13 s at 65 px, a third of a visitor's run for every epoch.
VAL_FRACTION = 0.01
ZERO_GPU = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")  # as spaces.config reads it

try:  # ZeroGPU on Hugging Face Spaces: device work runs inside @spaces.GPU; elsewhere nothing changes
    import spaces

    gpu = spaces.GPU
except ImportError:
    def gpu(duration=None):
        return lambda fn: fn


def on_gpu() -> bool:
    """Whether runs train on a GPU. Under ZeroGPU the main process has no GPU, only an emulation (torch's CUDA
    calls answer with a configured device), so the answer is read from the environment, not from CUDA."""
    return ZERO_GPU or torch.cuda.is_available()


def device_line() -> str:
    if ZERO_GPU:
        return (f"Runs on a **ZeroGPU** slot: a GPU lent for each run (at most {GPU_DURATION} s, counted against "
                "your daily GPU quota), so the full-size recipe is preselected.")
    if torch.cuda.is_available():
        return f"Runs on the GPU: **{torch.cuda.get_device_name(0)}**."
    return (f"Runs on a **CPU** ({os.cpu_count()} cores): training is slow here, so a small subset, a reduced "
            "input size and BatchNorm after every conv are preselected. A GPU trains the full recipe in seconds to "
            "minutes.")


def _form_defaults(dataset: str = "mnist") -> dict:
    """The form's starting values for `dataset`, the one place they come from: on a GPU the write-up's model at
    224 px on every training image; on a CPU the measured visitor's recipe (config.RECIPES "<dataset>_visitor")."""
    if on_gpu():
        return {"epochs": 5, "batch_size": 128, "lr": 1e-3, "optimizer": "adam", "schedule": "onecycle",
                "subset": TRAIN_IMAGES[dataset], "input_size": 224, "batch_norm": False, "dropout": 0.5,
                "label_smoothing": 0.0, "classifier_width": 4096}
    recipe = RECIPES[f"{dataset}_visitor"]
    return {name: recipe[name] for name in FORM_FIELDS}


def gpu_slot_s(config: TrainConfig, probe=None) -> int:
    """The ZeroGPU slot a run asks for (s): its images (training and every epoch's test) at its input size,
    plus the margin to test and save; at least 30 s, at most the owner's ALEXNET_DEMO_GPU_DURATION."""
    images = config.epochs * min(config.subset or TRAIN_IMAGES[config.dataset], TRAIN_IMAGES[config.dataset]) \
        + TEST_IMAGES + config.epochs * VAL_FRACTION * TRAIN_IMAGES[config.dataset]
    seconds = images * (config.input_size / 224) ** 2 / GPU_IMAGES_PER_S_224
    return int(min(GPU_DURATION, max(30, 10 + seconds + SLOT_MARGIN_S)))


def make_config(dataset, epochs, batch_size, lr, optimizer, schedule, subset, input_size, augment, amp,
                batch_norm=False, dropout=0.5, label_smoothing=0.0, classifier_width=4096) -> TrainConfig:
    """The form's values as a validated TrainConfig, within the Space owner's caps; gr.Error if out of range.
    Its time limit is the owner's cap, or on ZeroGPU the slot less the time to test and save."""
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
        width = whole("classifier width", classifier_width)
        steps = epochs * max(1, min(subset, TRAIN_IMAGES.get(dataset, subset)) // max(batch_size, 1))
        config = TrainConfig(dataset=dataset, epochs=epochs, batch_size=batch_size, lr=float(lr),
                             optimizer=optimizer, schedule=schedule, subset=subset, input_size=size,
                             augment=bool(augment), amp=bool(amp), batch_norm=bool(batch_norm),
                             dropout=float(dropout), label_smoothing=float(label_smoothing),
                             classifier_width=width, log_every=1,
                             save_state=False,
                             val_fraction=VAL_FRACTION,
                             data_root=os.environ.get("ALEXNET_DEMO_DATA"),
                             snapshot_every=max(1, steps // SNAPSHOTS_MIN), time_limit_s=MAX_TRAIN_S)
    if ZERO_GPU:
        config.time_limit_s = min(MAX_TRAIN_S, gpu_slot_s(config) - SLOT_MARGIN_S)
    return config


def probe_image(dataset: str, drawing=None, photo=None, trained_mnist=None, trained_cifar=None):
    """What the time-lapse watches: the visitor's drawing (mnist) or photo (cifar10) as the network sees it,
    uint8 (C, h, w) at native size; None (the engine then picks a test image) when there is none or it can't
    be read."""
    image, trained = (drawing, trained_mnist) if dataset == "mnist" else (photo, trained_cifar)
    if is_blank(image):
        return None
    try:
        seen = classifier_for(dataset, trained).preprocess(image)
    except (gr.Error, ValueError, OSError):
        return None
    if seen is None:
        return None
    seen = torch.from_numpy(seen)
    return seen[None] if seen.dim() == 2 else seen.permute(2, 0, 1).contiguous()


@gpu(duration=gpu_slot_s)
def train_on_device(config: TrainConfig, probe=None):
    """The device work, in a ZeroGPU worker on a Space: the engine's events (CPU values; the model comes back on
    the CPU in the DoneEvent). Errors about the visitor's choices become gr.Error here, since ZeroGPU passes only
    a gr.Error's message back (of other exceptions only their class name)."""
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    with user_errors(TrainingError, DataNotFoundError, OSError):
        yield from train(config, probe=probe)


def train_run(dataset, epochs, batch_size, lr, optimizer, schedule, subset, input_size, augment, amp,
              batch_norm=False, dropout=0.5, label_smoothing=0.0, classifier_width=4096, drawing=None, photo=None,
              trained_mnist=None, trained_cifar=None, runs=None):
    """Stream a training run as the tab's OUTPUTS. The lock is taken here, in the main process: inside a ZeroGPU
    worker it would be the worker's own copy and serialise nothing."""
    config = make_config(dataset, epochs, batch_size, lr, optimizer, schedule, subset, input_size, augment, amp,
                         batch_norm, dropout, label_smoothing, classifier_width)
    probe = probe_image(dataset, drawing, photo, trained_mnist, trained_cifar)
    if not TRAIN_LOCK.acquire(blocking=False):
        raise gr.Error("Busy: another visitor is training right now (one run per machine). Try again in a minute.")
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    config.out = str(OUTPUT_DIR / f"{dataset}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{id(config):x}.safetensors")
    events = train_on_device(config, probe)
    try:
        for _, outputs in run_events(config, runs=runs, events=events):
            if outputs is not None:
                yield outputs
    finally:  # normal end, error, Stop or a closed browser (GeneratorExit): end the device work, then unlock
        events.close()
        TRAIN_LOCK.release()


def run_events(config: TrainConfig, stop: threading.Event | None = None, runs=None, events=None):
    """(event, the tab's outputs or None) for each of the engine's events: `events` (train_run's, possibly from a
    ZeroGPU worker), else a run of `config` here (benchmarks)."""
    view = RunView(config, runs)
    yield None, frame(progress="Starting…", result="", confusion=None, mistakes=[], checkpoint=None)
    for event in events if events is not None else train(config, stop=stop):
        yield event, view.outputs(event)


def use_trained(trained: Classifier | None, mnist, cifar):
    """Put a trained model into this visitor's Draw and Photo tabs (never anyone else's)."""
    if trained is None:
        raise gr.Error("No finished model yet: train one first.")
    if trained.preset == "mnist":
        return trained, cifar, "Your MNIST model now reads your drawings (this browser session only)."
    return mnist, trained, "Your CIFAR-10 model now classifies your photos (this browser session only)."


def use_run(runs, name, mnist, cifar):
    """The run picked in the dropdown, into this visitor's Draw or Photo tab."""
    mnist, cifar, note = use_trained(session_runs.run_classifier(session_runs.find_run(runs, name)), mnist, cifar)
    return mnist, cifar, f"{name}: {note}"


def save_run(runs, name):
    return save_trained(session_runs.run_classifier(session_runs.find_run(runs, name)))


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


FILTERS_NOTE = {  # under the two conv1 pictures, per dataset: what a visitor is looking at
    "mnist": "Each tile is one of conv1's 96 filters (11×11 weights, each scaled from its own lowest, dark, to its "
             "highest, light). They start as random noise, and one short run barely moves them: they look like TV "
             "static. So do the shipped MNIST model's (right), trained for 3 epochs on 57,000 training digits: its "
             "digits are enlarged 8× to 224 px, so a filter sees a smooth patch little more than one MNIST pixel "
             "wide, where only its overall balance of weights matters and the pixel-to-pixel noise is never "
             "trained away. Pick CIFAR-10 to see filters that became edges and colour blobs.",
    "cifar10": "Each tile is one of conv1's 96 filters (11×11×3 weights, each scaled from its own lowest, dark, to "
               "its highest, light). They start as random noise, and one short run barely moves them: they look "
               "like TV static. The shipped CIFAR-10 model's (right), trained for 40 epochs on 47,500 training photos, "
               "became edges at every angle and colour blobs.",
}


def filters_views(dataset: str) -> tuple:
    """(the shipped model's conv1 filters, the note under them) for `dataset`."""
    return shipped_filters(dataset), FILTERS_NOTE[dataset]


def shipped_filters(dataset: str):
    """The shipped `dataset` model's conv1 filters, set beside a run's; None when its file cannot be loaded."""
    try:
        return filter_grid(load_classifier(dataset).model.features.conv1.weight)
    except (CheckpointError, OSError):
        return None


def _subset_label(dataset: str) -> str:
    return f"Training images (subset, {dataset} has {TRAIN_IMAGES[dataset]})"


FORM_FIELDS = ("epochs", "batch_size", "lr", "optimizer", "schedule", "subset", "input_size", "batch_norm", "dropout",
               "label_smoothing", "classifier_width")


def dataset_defaults(dataset: str) -> list:
    """Choosing a dataset puts its default recipe into the form (FORM_FIELDS' components, in order)."""
    defaults = _form_defaults(dataset)
    return [gr.update(value=defaults[name], **({"label": _subset_label(dataset)} if name == "subset" else {}))
            for name in FORM_FIELDS]


def tab(trained_last: gr.State, trained_mnist: gr.State, trained_cifar: gr.State, sketch=None, photo=None) -> None:
    """Build the tab; `sketch` and `photo` (the Draw and Photo tabs' inputs) are what the time-lapse watches."""
    defaults = _form_defaults()
    smallest = ", ".join(f"{d} ≥ {smallest_input_size(d)}" for d in DATASETS)
    with gr.Tab("Train", id="train") as page:
        # this session's time-lapse and finished runs (inside the Tab: a State directly under gr.Tabs shows
        # up as a second, empty "Train" tab)
        snapshots, runs = gr.State([]), gr.State([])
        gr.Markdown(device_line())
        with gr.Row():
            dataset = gr.Radio(list(DATASETS), value="mnist", label="Dataset")
            optimizer = gr.Dropdown(list(OPTIMIZERS), value=defaults["optimizer"], label="Optimizer")
            schedule = gr.Dropdown(list(SCHEDULES), value=defaults["schedule"], label="LR schedule")
        with gr.Row():
            epochs = gr.Slider(1, MAX_EPOCHS, value=defaults["epochs"], step=1, label="Epochs")
            batch_size = gr.Slider(8, 512, value=defaults["batch_size"], step=8, label="Batch size")
            lr = gr.Number(value=defaults["lr"], label="Learning rate")
        with gr.Row():
            subset = gr.Number(value=defaults["subset"], precision=0, label="Training images (subset)")
            input_size = gr.Number(value=defaults["input_size"], precision=0, label=f"Input size, px ({smallest})")
            augment = gr.Checkbox(value=False, label="Augment (shift; CIFAR also flip)")
            amp = gr.Checkbox(value=lambda: formats.amp_default("mnist")[0], label="bf16 mixed precision",
                              elem_id="amp")  # set again when the tab opens: measured then
        with gr.Row():
            batch_norm = gr.Checkbox(value=defaults["batch_norm"], label="BatchNorm after every conv (learns in "
                                     "far fewer images; off: the write-up's layers)")
            dropout = gr.Slider(0, 0.9, value=defaults["dropout"], step=0.05, label="Dropout (classifier)")
            label_smoothing = gr.Slider(0, 0.5, value=defaults["label_smoothing"], step=0.05, label="Label smoothing")
            classifier_width = gr.Number(value=defaults["classifier_width"], precision=0,
                                         label="Classifier width (FC neurons; the write-ups': 4096)")
        amp_note = gr.Markdown(lambda: formats.amp_default("mnist")[1], elem_id="amp-note")
        with gr.Row():
            start = gr.Button("Start training", variant="primary")
            stop = gr.Button("Stop", variant="stop")
        progress = gr.Markdown()
        with gr.Row():
            loss_plot = gr.LinePlot(x="step", y="value", color="series", title="Loss", height=280,
                                    elem_id="loss-plot")
            accuracy_plot = gr.LinePlot(x="step", y="value", color="series", title="Accuracy", height=280,
                                        y_lim=[0, 1], elem_id="accuracy-plot")
        gr.Markdown("### Watch it learn\nYour drawing (Draw tab; for CIFAR-10 your photo) as the network reads it "
                    "during training; with none, a test image.")
        with gr.Row(equal_height=False):
            probe = gr.Label(num_top_classes=5, label="What it reads", elem_id="probe-label")
            layers = gr.Image(label="Most active channels, conv1 … conv5", interactive=False, format="png",
                              height=240, scale=3, elem_id="timelapse-layers")
        snapshot_note = gr.Markdown()
        with gr.Row(equal_height=False):
            filters = gr.Image(label="conv1 filters of this run", interactive=False, format="png", height=240,
                               elem_id="run-filters")
            shipped = gr.Image(lambda: shipped_filters("mnist"), label="conv1 filters of the shipped model",
                               interactive=False, format="png", height=240, elem_id="shipped-filters")
        filters_note = gr.Markdown(FILTERS_NOTE["mnist"], elem_id="filters-note")
        with gr.Row(equal_height=False):
            timelapse = gr.Slider(0, 1, value=0, step=1, label="Replay training: drag through the snapshots",
                                  interactive=False, scale=3, elem_id="timelapse-slider")
            gif = gr.File(label="Time-lapse (animated GIF)", interactive=False, scale=1, height=90)
        result = gr.Markdown()
        with gr.Row():
            confusion = gr.Plot(label="Confusion matrix (test)", show_label=False)
            mistakes = gr.Gallery(label="Misclassified test images (true → predicted)", columns=5, height=360,
                                  format="png")
        gr.Markdown("### Your runs (this browser session only)")
        runs_table = gr.Dataframe(session_runs.runs_table([]), interactive=False, elem_id="runs-table")
        compare = gr.CheckboxGroup([], label="Overlay these runs' curves")
        compare_plot = gr.Plot(show_label=False, elem_id="compare-plot")
        with gr.Row(equal_height=True):
            run_picker = gr.Dropdown([], label="Run", interactive=True, scale=1)
            use = gr.Button("Use this run in the Draw and Photo tabs", variant="primary", scale=2)
            back = gr.Button("Back to the shipped models", scale=1)
            save = gr.Button("Save under checkpoints/trained/", scale=1)
        use_note = gr.Markdown()
        download = gr.File(label="Last run's checkpoint (safetensors)", interactive=False, height=90)
        watched = [c if c is not None else gr.State(None) for c in (sketch, photo)]
    components = dict(losses=loss_plot, accuracies=accuracy_plot, progress=progress, result=result,
                      confusion=confusion, mistakes=mistakes, checkpoint=download, trained=trained_last, probe=probe,
                      layers=layers, filters=filters, snapshot_note=snapshot_note, snapshots=snapshots,
                      timelapse=timelapse, gif=gif, runs=runs, runs_table=runs_table, run_picker=run_picker,
                      compare=compare, compare_plot=compare_plot)
    form = [dataset, epochs, batch_size, lr, optimizer, schedule, subset, input_size, augment, amp, batch_norm, dropout,
            label_smoothing, classifier_width]
    run = start.click(train_run, [*form, *watched, trained_mnist, trained_cifar, runs],
                      [components[name] for name in OUTPUTS], api_name="train",
                      concurrency_limit=2,  # the second visitor reaches the lock and is told "Busy" at once
                      show_progress="minimal")  # no overlay dimming the live plots; the progress line says it
    stop.click(None, cancels=[run])
    timelapse.change(show_snapshot, [snapshots, timelapse], [probe, layers, filters, snapshot_note],
                     api_name=False, show_progress="hidden")
    compare.change(session_runs.compare_figure, [runs, compare], compare_plot, api_name=False)
    use.click(use_run, [runs, run_picker, trained_mnist, trained_cifar], [trained_mnist, trained_cifar, use_note],
              api_name=False)
    back.click(use_shipped, None, [trained_mnist, trained_cifar, use_note], api_name=False)
    save.click(save_run, [runs, run_picker], use_note, api_name=False)
    dataset.change(dataset_defaults, dataset, [epochs, batch_size, lr, optimizer, schedule, subset, input_size,
                                               batch_norm, dropout, label_smoothing, classifier_width],
                   api_name=False)
    dataset.change(filters_views, dataset, [shipped, filters_note], api_name=False)
    dataset.change(formats.training_format, dataset, [amp, amp_note], api_name=False, concurrency_limit=1,
                   concurrency_id="training-format")
    page.select(formats.training_format, dataset, [amp, amp_note], api_name=False, concurrency_limit=1,
                concurrency_id="training-format", show_progress="minimal")
