"""The "Your classes" tab: name 2 to 10 classes, give examples (draw, upload, webcam, a zip of folders), train a new
head on the shipped model through the one engine (live curves, Stop), then the Draw/Photo and Why? tabs use it."""
from __future__ import annotations

import shutil
from datetime import datetime, timezone

import gradio as gr

from ..checkpoints import CheckpointError
from ..classes import KINDS, MAX_CLASSES, MAX_PER_CLASS, MAX_ZIP_BYTES, Workspace
from ..config import TUNES
from ..data import DataNotFoundError
from ..events import DoneEvent
from ..inference import Classifier, load_classifier
from ..inspection import enlarge
from ..training import TrainingError
from . import formats, training
from .common import is_blank, served, user_errors
from .pad import DrawingPad
from .runs import OUTPUTS, RunView

SESSION_S = 2 * 3600  # a visitor's examples and model are dropped this long after their last change
THUMBNAILS = 40  # per class shown in the gallery (the counts say how many there are)

INTRO = f"""### Teach it your own classes
Name 2 to {MAX_CLASSES} classes and give each a few examples: **draw** them (shapes, letters, arrows, ticks,
crosses), **upload** several images at once, take **webcam** photos, or upload a **zip** of folders
(`<class>/<image>`, at most {MAX_ZIP_BYTES // 2**20} MB; up to {MAX_PER_CLASS} examples a class). Drawings start
from the shipped MNIST model, photos from the CIFAR-10 one: their conv layers are kept and the classifier, with a
new last layer, learns your classes in seconds. A fifth of each class (at least one example) is held out to give an honest accuracy.
Then the Draw/Photo tabs read with your model and the Why? tab explains it. Yours only, for this browser session."""


def close_workspace(workspace: Workspace | None) -> None:
    """The session ended or its time ran out: its examples' folder goes."""
    if workspace is not None:
        workspace.close()


def _workspace(workspace: Workspace | None, kind: str) -> Workspace:
    if kind not in KINDS:
        raise gr.Error(f"examples must be one of {tuple(KINDS)}, not {kind!r}")
    if workspace is None:
        return Workspace(kind)
    if workspace.kind != kind:
        if workspace.counts():
            raise gr.Error(f"Your examples are {workspace.kind}: clear them before switching to {kind}.")
        workspace.close()
        return Workspace(kind)
    return workspace


def view(workspace: Workspace | None, note: str = ""):
    """(workspace, note, counts line, gallery, class choices) as the tab shows them."""
    counts = workspace.counts() if workspace else {}
    if counts:
        line = " · ".join(f"**{name}**: {n}" for name, n in counts.items())
    else:
        line = "No classes yet: type a class name, then add examples."
    items = [(str(path), f"{name} #{i + 1}") for name in counts
             for i, path in enumerate(workspace.examples(name)[:THUMBNAILS])]
    names = list(counts)
    return workspace, note, line, items, gr.update(choices=names, value=names[-1] if names else None)


def add_drawing(workspace, kind, name, drawing):
    """The pad's drawing (or a webcam/uploaded photo) as one example of class `name`."""
    workspace = _workspace(workspace, kind)
    if is_blank(drawing):
        raise gr.Error("Nothing to add: draw (or take a photo of) an example first.")
    with user_errors():
        workspace.add_drawing(name, drawing)
    return view(workspace, f"Added one example to **{name.strip()}**.")


def add_files(workspace, kind, name, files):
    workspace = _workspace(workspace, kind)
    if not files:
        raise gr.Error("Choose one or more image files first.")
    with user_errors():
        report = workspace.add_files(name, [getattr(f, "name", f) for f in files])
    return view(workspace, f"**{name.strip()}**: {report.message()}")


def add_zip(workspace, kind, archive):
    workspace = _workspace(workspace, kind)
    if not archive:
        raise gr.Error("Choose a zip of <class>/<image> folders first.")
    with user_errors(OSError):
        report = workspace.add_zip(getattr(archive, "name", archive))
    return view(workspace, report.message())


def delete_example(workspace, name, number):
    if workspace is None:
        raise gr.Error("Nothing to delete yet.")
    with user_errors(TypeError):
        workspace.remove_example(name, int(number) - 1)
    return view(workspace, f"Deleted {name} #{int(number)}.")


def delete_class(workspace, name):
    if workspace is None:
        raise gr.Error("Nothing to delete yet.")
    with user_errors():
        workspace.remove_class(name)
    return view(workspace, f"Deleted the class {name}.")


def clear(workspace):
    if workspace is not None:
        workspace.clear()
    return view(workspace, "Cleared: no classes.")


def pick(workspace, event: gr.SelectData):
    """A thumbnail clicked: its class and number into the delete controls."""
    caption = event.value.get("caption", "") if isinstance(event.value, dict) else ""
    name, _, number = caption.rpartition(" #")
    return gr.update(value=name or None), int(number) if number.isdigit() else 1


def continue_from(workspace, kind, upload):
    """An uploaded checkpoint (one this tab made): the next run starts from it, its classes are named here, and the
    other tabs use it now. Copied into the workspace's folder (never under checkpoints/)."""
    workspace = _workspace(workspace, kind)
    if not upload:
        raise gr.Error("Choose a .safetensors checkpoint first.")
    kept = workspace.folder / "parent.safetensors"
    shutil.copyfile(getattr(upload, "name", upload), kept)
    with user_errors(CheckpointError):
        meta = workspace.use_parent(kept)
        for name in meta["classes"]:
            if len(workspace.classes()) < MAX_CLASSES:
                workspace.add_class(name)
    mine = load_classifier(kept)
    note = (f"Continuing from your checkpoint ({', '.join(meta['classes'])}): the next run starts from it, and the "
            f"{'Draw' if workspace.dataset == 'mnist' else 'Photo'} and Why? tabs use it now.")
    return (*view(workspace, note), mine, *_placed(mine))


def _placed(mine: Classifier | None):
    """(trained_mnist, trained_cifar) updates that put `mine` into its tabs, leaving the other alone."""
    if mine is None:
        return gr.skip(), gr.skip()
    return (mine, gr.skip()) if mine.preset == "mnist" else (gr.skip(), mine)


# the Train tab's outputs this tab shows too (in this order: the API returns them so), then its own
SHOWN = ("losses", "accuracies", "probe", "layers", "snapshot_note", "gif", "progress")
TRAIN_OUTPUTS = (*SHOWN, "result", "checkpoint", "mine", "trained_mnist", "trained_cifar")


def train_classes(workspace, tune, epochs, amp):
    """Stream a run on the visitor's examples (the Train tab's engine, lock and device path) as TRAIN_OUTPUTS."""
    if workspace is None:
        raise gr.Error("Add examples first: at least 2 classes with 2 examples each.")
    with user_errors(CheckpointError, TypeError):
        config = workspace.config(tune=tune, epochs=int(epochs), amp=bool(amp),
                                  time_limit_s=training.MAX_TRAIN_S)
    if not training.TRAIN_LOCK.acquire(blocking=False):
        raise gr.Error("Busy: another visitor is training right now (one run per machine). Try again in a minute.")
    training.OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{id(config):x}"
    config.out = str(training.OUTPUT_DIR / f"classes-{workspace.kind}-{stamp}.safetensors")
    events = training.train_on_device(config, None)  # the time-lapse watches the first held-out example
    run = RunView(config, [])
    try:
        for event in events:
            outputs = run.outputs(event)
            if outputs is None:
                continue
            shown = dict(zip(OUTPUTS, outputs))
            seen = tuple(shown[name] for name in SHOWN)
            if isinstance(event, DoneEvent):
                mine = shown["trained"] if event.test_accuracy is not None else None
                yield (*seen, result_line(event, config), event.checkpoint,
                       mine if mine is not None else gr.skip(), *_placed(mine))
            else:
                yield (*seen, *(gr.skip(),) * 5)
    except (TrainingError, DataNotFoundError) as e:
        raise gr.Error(str(e)) from None
    finally:  # an end, an error, Stop or a closed browser: end the device work, then unlock
        events.close()
        training.TRAIN_LOCK.release()


def amp_choice(kind):
    """The bf16 box as the Train tab would preselect it for this kind's model (measured once per machine)."""
    return formats.training_format(KINDS.get(kind, "mnist"))[0]


def result_line(event: DoneEvent, config) -> str:
    if event.test_accuracy is None:
        return "Stopped before the end: your model was not changed."
    held = sum(map(sum, event.confusion))
    per_class = ", ".join(f"{name} {a:.0%}" for name, a in event.per_class_accuracy.items() if a is not None)
    tab = "Draw" if config.dataset == "mnist" else "Photo"
    return (f"**Held-out accuracy {event.test_accuracy:.1%}** on {held} of your examples it never trained on "
            f"({per_class}); {event.train_time_s:.1f} s of training, {event.elapsed_s:.1f} s in all. The {tab} tab "
            f"now reads with your model and the Why? tab explains it; download it below.")


def classify(image, mine):
    """Your model's answer for a drawing or photo (the API's way to use it)."""
    if mine is None:
        raise gr.Error("Train your classes first.")
    if is_blank(image):
        return None, None
    with user_errors():
        result = mine.run(image, maps=False)
    if not result.probabilities:
        raise gr.Error("Nothing drawn in that image.")
    return result.probabilities, served(enlarge(result.seen, 224))


def tab(trained_mnist: gr.State, trained_cifar: gr.State) -> None:
    with gr.Tab("Your classes", id="classes") as page:
        # this visitor's examples (a folder, removed when the session ends) and the model made from them
        workspace = gr.State(None, time_to_live=SESSION_S, delete_callback=close_workspace)
        mine = gr.State(None, time_to_live=SESSION_S)
        gr.Markdown(INTRO)
        with gr.Row():
            kind = gr.Radio(list(KINDS), value="drawings", label="Your examples are", elem_id="classes-kind")
            name = gr.Textbox(label="Class name (the class the next examples go into)", placeholder="e.g. circle",
                              elem_id="class-name", max_length=40)
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=300):
                sketch = DrawingPad("Draw one example", "classes-sketch")
                add_sketch = gr.Button("Add drawing", variant="primary", elem_id="add-drawing")
            with gr.Column(scale=2, min_width=300):
                camera = gr.Image(label="A photo (webcam or upload)", sources=["webcam", "upload"], type="numpy",
                                  height=220, elem_id="classes-photo")
                add_camera = gr.Button("Add photo")
                files = gr.File(label="Several images for this class", file_count="multiple", file_types=["image"],
                                height=160)  # room for the label and the whole drop prompt (90 px cut it off)
                add_many = gr.Button("Add these images")
                archive = gr.File(label="A zip of <class>/<image> folders", file_types=[".zip"], height=160)
                add_archive = gr.Button("Add the zip's classes")
        note = gr.Markdown(elem_id="classes-note")
        counts = gr.Markdown("No classes yet: type a class name, then add examples.", elem_id="classes-counts")
        gallery = gr.Gallery(label="Your examples (as the network sees them; click one to pick it)", columns=10,
                             height=240, object_fit="contain", format="png", elem_id="classes-gallery")
        with gr.Row(equal_height=True):
            chosen = gr.Dropdown([], label="Class", interactive=True)
            number = gr.Number(1, precision=0, minimum=1, label="Example number")
            delete_one = gr.Button("Delete this example")
            delete_all = gr.Button("Delete this class")
            wipe = gr.Button("Clear everything", variant="stop")
        gr.Markdown("#### Train")
        with gr.Row():
            tune = gr.Radio(list(TUNES), value="classifier", label="Layers to train (classifier: the fully "
                            "connected ones, seconds on a CPU; head: the new last layer only; conv5, all: more of "
                            "the net, for a GPU)")
            epochs = gr.Slider(1, 30, value=3, step=1, label="Epochs")
            # preselected where the engine's step measured bf16 faster on this CPU, when the tab is opened and the
            # kind changes (bench/classes.py: 16.1 s fp32, 12.0 s bf16 for 10 classes x 20 drawings, AMD EPYC)
            amp = gr.Checkbox(value=lambda: formats.amp_default("mnist")[0], label="bf16 mixed precision")
        with gr.Row():
            start = gr.Button("Train my classes", variant="primary", elem_id="train-classes")
            stop = gr.Button("Stop", variant="stop")
        progress = gr.Markdown(elem_id="classes-progress")
        with gr.Row():
            loss_plot = gr.LinePlot(x="step", y="value", color="series", title="Loss", height=240)
            accuracy_plot = gr.LinePlot(x="step", y="value", color="series", title="Accuracy", height=240,
                                        y_lim=[0, 1])
        with gr.Row(equal_height=False):  # the time-lapse: one held-out example as the run reads it
            probe = gr.Label(num_top_classes=5, label="A held-out example", scale=1)
            layers = gr.Image(label="Its most active channels, conv1 … conv5", interactive=False, format="png",
                              height=200, scale=2)
            gif = gr.File(label="Time-lapse (animated GIF)", interactive=False, height=90, scale=1)
        snapshot_note = gr.Markdown()
        result = gr.Markdown(elem_id="classes-result")
        with gr.Row():
            download = gr.File(label="Your model (safetensors)", interactive=False, height=90)
            upload = gr.File(label="Continue from a checkpoint you downloaded", file_types=[".safetensors"],
                             height=160)
        with gr.Row(equal_height=False):
            trial = gr.Image(label="Try your model on an image", type="numpy", image_mode="RGBA", height=220,
                             sources=["upload"])
            answer = gr.Label(num_top_classes=5, label="Your model reads")
            seen = gr.Image(label="What it sees", interactive=False, height=220, format="png")
    shown = [workspace, note, counts, gallery, chosen]
    # the pad is emptied once its drawing is in, ready for the next example
    add_sketch.click(add_drawing, [workspace, kind, name, sketch], shown, api_name="classes_add").success(
        lambda: None, None, sketch, api_name=False, queue=False, show_progress="hidden")
    add_camera.click(add_drawing, [workspace, kind, name, camera], shown, api_name="classes_add_photo")
    add_many.click(add_files, [workspace, kind, name, files], shown, api_name="classes_add_files")
    add_archive.click(add_zip, [workspace, kind, archive], shown, api_name="classes_add_zip")
    delete_one.click(delete_example, [workspace, chosen, number], shown, api_name="classes_delete")
    delete_all.click(delete_class, [workspace, chosen], shown, api_name="classes_delete_class")
    wipe.click(clear, workspace, shown, api_name="classes_clear")
    gallery.select(pick, workspace, [chosen, number], api_name=False)
    run = start.click(train_classes, [workspace, tune, epochs, amp],
                      [loss_plot, accuracy_plot, probe, layers, snapshot_note, gif, progress, result, download,
                       mine, trained_mnist, trained_cifar],
                      api_name="classes_train", concurrency_limit=2, show_progress="minimal")
    stop.click(None, cancels=[run])
    upload.upload(continue_from, [workspace, kind, upload], [*shown, mine, trained_mnist, trained_cifar],
                  api_name="classes_continue")
    trial.change(classify, [trial, mine], [answer, seen], api_name="classes_classify")
    for opened in (page.select, kind.change):
        opened(amp_choice, kind, amp, api_name=False, concurrency_limit=1, concurrency_id="training-format",
               show_progress="hidden")
