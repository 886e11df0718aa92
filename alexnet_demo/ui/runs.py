"""How runs show on the Train tab: a run's outputs built from the engine's events in the main process (RunView),
its time-lapse (snapshots as small pictures, a slider over them, an animated GIF), and every finished run of this
browser session (a table, their curves overlaid, any of them used or saved)."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from ..inference import Classifier, load_classifier
from ..inspection import GAP, PALETTE, confusion_figure, filter_grid, grid_indices, mistakes_gallery
from ..training import DoneEvent, EpochEvent, FinalTestEvent, SnapshotEvent, StageEvent, StartEvent, StepEvent

MODELS_KEPT = 3  # finished runs whose model stays in memory; older ones are reloaded from their checkpoint
LAYERS_HEIGHT = 180  # px: the layers picture is scaled up by whole factors to about this height


# ---- the time-lapse -----------------------------------------------------------------------------------------


def layers_image(maps: dict[str, torch.Tensor]) -> Image.Image:
    """The most active channels of every conv layer side by side, each layer on its own scale (magma palette),
    its name above: one palette image, enlarged by a whole factor so that small maps stay crisp."""
    grids = [grid_indices(fmap, upscale=max(1, 45 // fmap.shape[1])) for fmap in maps.values()]  # ~45 px tiles
    height = max(g.shape[0] for g in grids)
    columns = []
    for grid in grids:
        padded = np.full((height, grid.shape[1]), GAP, np.uint8)
        padded[:grid.shape[0]] = grid
        columns += [padded, np.full((height, 6), GAP, np.uint8)]
    body = np.hstack(columns[:-1])
    factor = max(1, LAYERS_HEIGHT // height)
    body = np.kron(body, np.ones((factor, factor), np.uint8))
    image = Image.fromarray(np.vstack([np.full((16, body.shape[1]), GAP, np.uint8), body]), mode="P")
    image.putpalette(PALETTE.tobytes())
    draw, x = ImageDraw.Draw(image), 0
    for name, grid in zip(maps, grids):
        draw.text((x + 2, 2), name, fill=0)  # palette index 0: black
        x += (grid.shape[1] + 6) * factor
    return image


def snapshot_record(event, total_steps: int | None = None) -> dict:
    """A SnapshotEvent as what the session keeps: its numbers and two small pictures (no tensors)."""
    return {"step": event.step, "total": total_steps, "epoch": event.epoch, "probabilities": dict(event.probabilities),
            "layers": layers_image(event.maps), "filters": filter_grid(event.filters)}


def snapshot_caption(snapshot: dict) -> str:
    top, p = next(iter(snapshot["probabilities"].items()))
    of = f" of {snapshot['total']}" if snapshot.get("total") else ""
    return f"Step {snapshot['step']}{of} (epoch {snapshot['epoch']:.2f}): it reads the probe as **{top}** ({p:.0%})."


def timelapse_frame(snapshot: dict) -> Image.Image:
    """One GIF frame: a caption line, the conv1 filters beside the layers' most active channels."""
    filters, layers = snapshot["filters"].convert("RGB"), snapshot["layers"].convert("RGB")
    width, height = filters.width + 12 + layers.width, max(filters.height, layers.height) + 24
    frame = Image.new("RGB", (width, height), "white")
    frame.paste(filters, (0, 24))
    frame.paste(layers, (filters.width + 12, 24))
    top, p = next(iter(snapshot["probabilities"].items()))
    of = f"/{snapshot['total']}" if snapshot.get("total") else ""
    ImageDraw.Draw(frame).text((2, 6), f"step {snapshot['step']}{of}   epoch {snapshot['epoch']:.2f}   "
                                       f"reads the probe as {top} ({p:.0%})   left: conv1 filters   "
                                       "right: most active channels conv1 .. conv5", fill="black")
    return frame


def timelapse_gif(snapshots: list[dict], path: Path) -> str | None:
    """All snapshots as an animated GIF (0.25 s a frame, the last held 2 s, looping); None without snapshots."""
    if not snapshots:
        return None
    frames = [timelapse_frame(s) for s in snapshots]
    durations = [250] * (len(frames) - 1) + [2000]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return str(path)


# ---- this session's runs ------------------------------------------------------------------------------------


def run_record(number: int, config, curves: list[dict], event, classifier: Classifier | None) -> dict:
    """A finished run as the session keeps it: its settings, curves, result, model and checkpoint."""
    ended = "time limit" if event.timed_out else "finished"
    if event.test_accuracy is None:
        ended = "stopped"
    return {"name": f"run {number}", "dataset": config.dataset, "epochs": config.epochs,
            "batch size": config.batch_size, "learning rate": config.lr, "optimizer": config.optimizer,
            "schedule": config.schedule, "training images": config.subset, "input px": config.input_size,
            "augment": config.augment, "batch norm": config.batch_norm, "dropout": config.dropout,
            "label smoothing": config.label_smoothing, "classifier width": config.classifier_width,
            "test accuracy": event.test_accuracy, "test loss": event.test_loss,
            "training s": round(event.train_time_s),
            "ended": ended, "curves": curves, "classifier": classifier, "checkpoint": event.checkpoint}


# The result first (what a visitor compares), then the settings that made it: on a narrow screen the columns
# that scroll out of sight are settings, not the answer.
TABLE_COLUMNS = ["name", "test accuracy", "training s", "ended", "dataset", "epochs", "batch size", "learning rate",
                 "optimizer", "schedule", "training images", "input px", "augment", "batch norm", "dropout",
                 "label smoothing", "classifier width"]


def add_run(runs: list[dict] | None, record: dict) -> list[dict]:
    """The session's runs with `record` appended; only the newest MODELS_KEPT keep their model in memory."""
    runs = [*(runs or []), record]
    for old in runs[:-MODELS_KEPT]:
        old["classifier"] = None
    return runs


def runs_table(runs: list[dict] | None) -> pd.DataFrame:
    frame = pd.DataFrame([{k: run[k] for k in TABLE_COLUMNS} for run in runs or []], columns=TABLE_COLUMNS)
    frame["test accuracy"] = [f"{a:.2%}" if a is not None else "—" for a in frame["test accuracy"]]
    return frame.rename(columns={"name": "run"})


def run_names(runs: list[dict] | None) -> list[str]:
    return [run["name"] for run in runs or []]


def find_run(runs: list[dict] | None, name: str | None) -> dict | None:
    return next((run for run in runs or [] if run["name"] == name), None)


def run_classifier(run: dict | None) -> Classifier | None:
    """The run's model: kept in memory, else reloaded from its checkpoint file (None if that is gone too)."""
    if run is None:
        return None
    if run["classifier"] is None and run["checkpoint"] and Path(run["checkpoint"]).is_file():
        return load_classifier(run["checkpoint"])
    return run["classifier"]


def compare_figure(runs: list[dict] | None, names: list[str] | None) -> Figure | None:
    """The chosen runs' loss and accuracy curves on shared axes: one colour per run, dashed = training, solid with
    dots = each epoch's evaluation (series named like "run 2 · validation accuracy"), a star = the final test. The
    legends list only what is drawn."""
    chosen = [run for run in runs or [] if run["name"] in (names or [])]
    if not chosen:
        return None
    fig = Figure(figsize=(11, 3.6), layout="constrained")
    axes = dict(zip(("loss", "accuracy"), fig.subplots(1, 2)))
    for i, run in enumerate(chosen):
        curves = pd.DataFrame(run["curves"], columns=["step", "value", "series"]).dropna()
        for series, points in curves.groupby("series", sort=False):
            split, kind = series.rsplit(" ", 1)
            axes[kind].plot(points["step"], points["value"], color=f"C{i % 10}",
                            linestyle="--" if split == "train" else "-", marker=None if split == "train" else "o",
                            markersize=3, linewidth=1 if split == "train" else 2, label=f"{run['name']} · {series}")
        last = int(curves["step"].max()) if len(curves) else 0
        for kind, value in (("loss", run.get("test loss")), ("accuracy", run["test accuracy"])):
            if value is not None:
                axes[kind].plot([last], [value], linestyle="none", marker="*", markersize=12, color=f"C{i % 10}",
                                markeredgecolor="black", markeredgewidth=0.5,
                                label=f"{run['name']} · final test {kind}")
    for kind, ax in axes.items():
        ax.set_title(kind)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes["accuracy"].set_ylim(0, 1)
    fig.suptitle("Runs compared: dashed = training, solid with dots = evaluation after each epoch, ★ = final test",
                 fontsize=10)
    return fig


# ---- a run on the page: train_run's outputs, by name -------------------------------------------------------------

OUTPUTS = ("losses", "accuracies", "progress", "result", "confusion", "mistakes", "checkpoint", "trained",
           "probe", "layers", "filters", "snapshot_note", "snapshots", "timelapse", "gif", "runs", "runs_table",
           "run_picker", "compare", "compare_plot")


def frame(**values) -> tuple:
    """A yield for the tab's outputs: the named values, gr.skip() (leave as is) for the others."""
    unknown = set(values) - set(OUTPUTS)
    assert not unknown, unknown
    return tuple(values.get(name, gr.skip()) for name in OUTPUTS)


def _curves(rows: list[dict]):
    """Long-format curve data with explicit dtypes (object columns make the plot treat numbers as categories).
    No rows yet: leave the plot alone, since an empty first frame leaves gradio 6.31's LinePlot with no colour
    domain, and it then draws no lines at all."""
    if not rows:
        return gr.skip()
    data = pd.DataFrame(rows, columns=["step", "value", "series"])
    return data.astype({"step": "int64", "value": "float64", "series": "str"})


class RunView:
    """One run as the page shows it, built from the engine's events in the main process."""

    def __init__(self, config, runs: list[dict] | None):
        self.config, self.runs = config, runs or []
        self.losses, self.accuracies, self.snapshots = [], [], []
        self.progress, self.last_yield, self.total_steps = "Starting…", 0.0, None
        self.evaluations = []  # each epoch's evaluation points, kept for the runs' chart when the live plots omit them

    def outputs(self, event):
        """The tab's outputs after `event`, or None when they need not be sent yet (at most two updates a
        second, besides stages, snapshots, every epoch's end and the last)."""
        urgent = isinstance(event, (StageEvent, StartEvent, EpochEvent, SnapshotEvent))
        extra = {}
        if isinstance(event, StageEvent):
            self.progress = event.message
        elif isinstance(event, StartEvent):
            self.start(event)
        elif isinstance(event, StepEvent):
            self.step(event)
        elif isinstance(event, EpochEvent):
            x = self.losses[-1]["step"] if self.losses else 0
            points = [(self.losses, {"step": x, "value": event.eval_loss, "series": f"{event.eval_split} loss"}),
                      (self.accuracies, {"step": x, "value": event.eval_accuracy,
                                         "series": f"{event.eval_split} accuracy"})]
            for rows, point in points:
                (rows if self.plots_evaluation else self.evaluations).append(point)
        elif isinstance(event, FinalTestEvent):
            urgent = event.done in (0, event.total)
            self.progress = (f"Testing on {event.total:,} test images… {event.done:,} done "
                             f"({event.done / event.total:.0%})")
        elif isinstance(event, SnapshotEvent):
            self.snapshots.append(snapshot_record(event, self.total_steps))
            extra = snapshot_views(self.snapshots, -1)
        elif isinstance(event, DoneEvent):
            return self.done(event)
        if not urgent and time.monotonic() - self.last_yield < 0.5:
            return None
        self.last_yield = time.monotonic()
        return frame(losses=_curves(self.losses), accuracies=_curves(self.accuracies), progress=self.progress,
                     **extra)

    @property
    def plots_evaluation(self) -> bool:
        """Whether the live plots show each epoch's evaluation: only when it makes a line (two epochs or more in
        this run); a lone point at the very end draws nothing, and its legend entry would promise a line."""
        return self.total_steps is not None and self.config.epochs - self.start_epoch >= 2

    def start(self, event: StartEvent) -> None:
        self.total_steps, self.start_epoch = event.total_steps, event.start_epoch
        self.progress = (f"Training on {event.device_name}: {event.train_images} images, {event.total_steps} steps"
                         + (f", evaluating on {event.eval_images} {event.eval_split} images after each epoch"
                            if self.plots_evaluation else "") + "; the test images are classified at the end.")
        splits = ("train", event.eval_split) if self.plots_evaluation else ("train",)
        for rows, kind in ((self.losses, "loss"), (self.accuracies, "accuracy")):
            # Every series from the first frame, with no value yet (drawn as nothing): gradio 6.31's
            # LinePlot fixes its colour domain at its first frame and never draws a series added later.
            rows += [{"step": 0, "value": None, "series": f"{split} {kind}"} for split in splits]

    def step(self, event: StepEvent) -> None:
        self.losses.append({"step": event.step, "value": event.train_loss, "series": "train loss"})
        self.accuracies.append({"step": event.step, "value": event.train_accuracy, "series": "train accuracy"})
        self.progress = (f"Step {event.step} · epoch {event.epoch:.2f} of {self.config.epochs} · "
                         f"{event.images_per_s:.0f} images/s · ETA {event.eta_s:.0f} s")

    def done(self, event: DoneEvent) -> tuple:
        classifier = Classifier(event.model, event.meta) if event.model is not None else None
        curves = [row for row in self.losses + self.accuracies + self.evaluations if row["value"] is not None]
        record = run_record(len(self.runs) + 1, self.config, curves, event, classifier)
        runs = add_run(self.runs, record) if event.test_accuracy is not None else self.runs
        stem = Path(self.config.out or Path(tempfile.gettempdir()) / f"alexnet_demo-{id(self):x}").with_suffix("")
        gif = timelapse_gif(self.snapshots, Path(f"{stem}-timelapse.gif"))
        last = len(self.snapshots) - 1
        names = run_names(runs)
        return frame(
            losses=_curves(self.losses), accuracies=_curves(self.accuracies), progress=_ending(event),
            result=_result(event, record["name"]), mistakes=mistakes_gallery(event.mistakes),
            confusion=confusion_figure(event.confusion, event.meta["classes"]) if event.confusion else None,
            checkpoint=event.checkpoint, trained=classifier, snapshots=self.snapshots, gif=gif,
            timelapse=gr.update(maximum=max(last, 1), value=max(last, 0), interactive=last > 0, visible=True),
            runs=runs, runs_table=runs_table(runs),
            run_picker=gr.update(choices=names, value=names[-1] if names else None), compare=gr.update(
                choices=names, value=names), compare_plot=compare_figure(runs, names),
            **(snapshot_views(self.snapshots, -1) if self.snapshots else {}))


def snapshot_views(snapshots: list[dict], index) -> dict:
    """The time-lapse at snapshot `index`: the probe's probabilities, the layers' channels, the conv1 filters."""
    snapshot = snapshots[min(int(index), len(snapshots) - 1)]  # -1: the latest
    return {"probe": snapshot["probabilities"], "layers": snapshot["layers"], "filters": snapshot["filters"],
            "snapshot_note": snapshot_caption(snapshot)}


def _ending(event: DoneEvent) -> str:
    if event.timed_out:
        return "Done: the time limit ended training early; the test ran on the model as it was."
    return "Stopped." if event.cancelled else "Done."


def _result(event: DoneEvent, name: str) -> str:
    if event.test_accuracy is None:
        return ("Stopped: the last completed epoch's checkpoint is below." if event.checkpoint
                else "Stopped before an epoch ended.")
    return (f"**Test accuracy {event.test_accuracy:.2%}** ({name}) on {sum(map(sum, event.confusion))} test "
            f"images, {event.train_time_s:.0f} s of training. Replay it with the slider above; compare it with "
            "your other runs and use it in the Draw and Photo tabs below.")


def show_snapshot(snapshots, index):
    """The slider moved: the time-lapse's three views at that snapshot."""
    if not snapshots:
        return gr.skip(), gr.skip(), gr.skip(), "Train a run first: its snapshots appear here."
    views = snapshot_views(snapshots, index)
    return views["probe"], views["layers"], views["filters"], views["snapshot_note"]


