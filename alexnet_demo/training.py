"""The one training engine: `train(config)` runs a run and yields events that the CLI, the app and the tests consume.

Speed ideas, in the spirit of airbench:
- the whole dataset sits on the training device as uint8 (60,000 MNIST digits are 47 MB);
- resize + random shift/flip + normalize happen per batch on the device in one `grid_sample` (data.prepare_batch),
  not per sample in PIL inside a DataLoader as the write-ups do;
- the loss and accuracy stay on the device and are read back every `log_every` steps, not every step;
- channels-last memory format and bf16 autocast on CUDA; a fused optimizer step on CUDA.
"""
from __future__ import annotations

import gc
import json
import math
import platform
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F
from safetensors import safe_open

from .checkpoints import CheckpointError, atomic_save, read_safetensors, save_checkpoint
from .data import DATASETS, Dataset, load_dataset, prepare_batch, stratified_split
from .models import PRESETS, build_model, min_input_size

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("none", "plateau", "onecycle")
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass
class TrainConfig:
    """Everything that defines a run; the CLI flags, the app's form and checkpoint metadata are made from it."""

    dataset: str = field(default="mnist", metadata={"help": "mnist or cifar10"})
    preset: str | None = field(default=None, metadata={"help": "model preset; None: the dataset's own"})
    epochs: int = field(default=5, metadata={"help": "passes over the training images (MNIST write-up: 5)"})
    batch_size: int = field(default=128, metadata={"help": "images per step (MNIST write-up: 128)"})
    optimizer: str = field(default="adam", metadata={"help": "adam (the write-ups') or sgd (Nesterov momentum)"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate (write-ups: Adam at 1e-3)"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum"})
    weight_decay: float = field(default=0.0, metadata={"help": "L2 penalty per step, as in torch.optim"})
    schedule: str = field(default="none", metadata={"help": "none, plateau (CIFAR write-up) or onecycle"})
    label_smoothing: float = field(default=0.0, metadata={"help": "cross-entropy label smoothing, 0 to 0.5"})
    augment: bool = field(default=False, metadata={"help": "random shift ±2 px (MNIST); crop ±4 px + flip (CIFAR)"})
    subset: int | None = field(default=None, metadata={"help": "training images to use, stratified; None: all"})
    val_fraction: float = field(default=0.0, metadata={
        "help": "held out of training (stratified) and evaluated each epoch; 0: evaluate on test each epoch"})
    input_size: int | None = field(default=None, metadata={"help": "px, square; None: the preset's (224 / 50)"})
    amp: bool = field(default=False, metadata={"help": "bf16 autocast (CUDA only; slower on this CPU)"})
    channels_last: bool = field(default=True, metadata={"help": "NHWC memory format for the convolutions"})
    seed: int = field(default=0, metadata={"help": "same seed on CPU gives the same numbers"})
    device: str = field(default="auto", metadata={"help": "auto (cuda, then mps, then cpu), cuda, mps or cpu"})
    data_root: str | None = field(default=None, metadata={"help": "else env ALEXNET_DEMO_DATA, else ./data"})
    log_every: int = field(default=20, metadata={"help": "steps between training events (one host sync each)"})
    eval_limit: int | None = field(default=None, metadata={"help": "evaluate on at most this many images"})
    max_batches: int | None = field(default=None, metadata={"help": "steps per epoch at most (dry runs)"})
    out: str | None = field(default=None, metadata={"help": "checkpoint path, written after every epoch"})

    def __post_init__(self):
        if self.preset is None:
            self.preset = self.dataset
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first field out of range."""
        def need(ok: bool, name: str, allowed: str):
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} is out of range: {allowed}")

        need(self.dataset in DATASETS, "dataset", f"one of {DATASETS}")
        need(self.preset in PRESETS, "preset", f"one of {tuple(PRESETS)}")
        need(PRESETS[self.preset].in_channels == PRESETS[self.dataset].in_channels, "preset",
             f"a preset taking {PRESETS[self.dataset].in_channels}-channel images like {self.dataset}")
        need(_is_int(self.epochs) and 1 <= self.epochs <= 1000, "epochs", "an integer from 1 to 1000")
        need(_is_int(self.batch_size) and 2 <= self.batch_size <= 8192, "batch_size", "an integer from 2 to 8192")
        need(self.optimizer in OPTIMIZERS, "optimizer", f"one of {OPTIMIZERS}")
        need(_is_num(self.lr) and 0 < self.lr <= 10, "lr", "a number in (0, 10]")
        need(_is_num(self.momentum) and 0 <= self.momentum < 1, "momentum", "a number in [0, 1)")
        need(_is_num(self.weight_decay) and 0 <= self.weight_decay <= 1, "weight_decay", "a number in [0, 1]")
        need(self.schedule in SCHEDULES, "schedule", f"one of {SCHEDULES}")
        need(_is_num(self.label_smoothing) and 0 <= self.label_smoothing <= 0.5, "label_smoothing", "0 to 0.5")
        need(self.subset is None or (_is_int(self.subset) and self.subset >= 2), "subset", "None or an integer ≥ 2")
        need(_is_num(self.val_fraction) and 0 <= self.val_fraction <= 0.5, "val_fraction", "a number in [0, 0.5]")
        if self.input_size is not None:
            low = _min_size(self.preset)
            need(_is_int(self.input_size) and low <= self.input_size <= 512, "input_size",
                 f"None or an integer from {low} (the smallest the {self.preset} layers take) to 512")
        need(self.device in DEVICES, "device", f"one of {DEVICES}")
        need(_is_int(self.log_every) and self.log_every >= 1, "log_every", "an integer ≥ 1")
        need(self.eval_limit is None or (_is_int(self.eval_limit) and self.eval_limit >= 1), "eval_limit",
             "None or an integer ≥ 1")
        need(self.max_batches is None or (_is_int(self.max_batches) and self.max_batches >= 1), "max_batches",
             "None or an integer ≥ 1")

    @property
    def size(self) -> int:
        return self.input_size or PRESETS[self.preset].input_size


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _min_size(preset: str) -> int:
    with torch.device("meta"):  # shape arithmetic only: no weights are allocated
        return min_input_size(build_model(preset).features)


# ---- events -------------------------------------------------------------------------------------------------


@dataclass
class StartEvent:
    device: str
    device_name: str
    train_images: int
    eval_images: int
    eval_split: str  # "validation" or "test"
    steps_per_epoch: int
    total_steps: int
    start_epoch: int


@dataclass
class StepEvent:
    step: int  # optimizer steps done in this run, counting resumed ones
    epoch: float  # fractional epochs done
    train_loss: float  # mean over the steps since the last event
    train_accuracy: float
    images_per_s: float  # over the steps since the last event
    lr: float
    elapsed_s: float
    eta_s: float


@dataclass
class EpochEvent:
    epoch: int  # 1-based, completed
    eval_split: str
    eval_loss: float
    eval_accuracy: float
    elapsed_s: float
    checkpoint: str | None


@dataclass
class DoneEvent:
    cancelled: bool
    test_loss: float | None
    test_accuracy: float | None
    per_class_accuracy: dict[str, float]
    confusion: list[list[int]]  # [true][predicted] counts on the test images
    mistakes: list[tuple]  # (uint8 image (C, h, w), true class, predicted class), at most 24
    checkpoint: str | None  # the last completed epoch's file
    elapsed_s: float
    train_time_s: float  # optimizer steps only, without evaluation
    model: torch.nn.Module | None = None  # on the CPU, eval mode
    meta: dict = field(default_factory=dict)


class TrainingError(RuntimeError):
    """A run that could not go on (out of memory, data too small); the message says what to change."""


# ---- pieces -------------------------------------------------------------------------------------------------


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but no CUDA GPU is available")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.machine()} CPU, {torch.get_num_threads()} threads" if device.type == "cpu" else device.type


def make_optimizer(config: TrainConfig, model: torch.nn.Module, device: torch.device) -> torch.optim.Optimizer:
    fused = device.type == "cuda"  # one kernel for the whole update instead of one per tensor
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0,
                           weight_decay=config.weight_decay, fused=fused)


def make_scheduler(config: TrainConfig, optimizer, total_steps: int):
    if config.schedule == "onecycle":  # warm up over the first 25%, then anneal: stepped after every batch
        # (+1: the step after the last batch must not run past the schedule's end)
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total_steps + 1,
                                                   pct_start=0.25, anneal_strategy="linear")
    if config.schedule == "plateau":  # the CIFAR write-up's: stepped every epoch on the evaluation loss
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=2)
    return None


def train_step(model, optimizer, x, y, config: TrainConfig):
    """One optimizer step; returns the loss and logits still on the device (no host sync)."""
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=config.amp):
        logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), logits.detach()


@torch.inference_mode()
def evaluate(model, data: Dataset, preset: str, input_size: int, batch_size: int = 500, amp: bool = False,
             channels_last: bool = True, stop: threading.Event | None = None) -> dict | None:
    """Loss, accuracy and predictions of `model` on `data` (already on the model's device); None if stopped."""
    model.eval()
    loss_sum, predictions = 0.0, []
    for start in range(0, len(data), batch_size):
        if stop is not None and stop.is_set():
            return None
        x = prepare_batch(data.images[start:start + batch_size], preset, input_size, channels_last=channels_last)
        y = data.labels[start:start + batch_size]
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        predictions.append(logits.argmax(1))
    predictions = torch.cat(predictions)
    accuracy = (predictions == data.labels).float().mean().item()
    return {"loss": loss_sum / len(data), "accuracy": accuracy, "predictions": predictions}


@torch.no_grad()
def round_to_float16_(model: torch.nn.Module) -> None:
    """Round the floating weights and buffers to float16 values in place (what a checkpoint stores)."""
    for t in model.state_dict().values():
        if t.is_floating_point():
            t.copy_(t.half())


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.bincount(labels.cpu() * num_classes + predictions.cpu(), minlength=num_classes ** 2) \
        .view(num_classes, num_classes)


def checkpoint_meta(config: TrainConfig, classes, device, **extra) -> dict:
    p = PRESETS[config.preset]
    return {
        "preset": config.preset, "dataset": config.dataset, "input_size": config.size, "classes": list(classes),
        "mean": list(p.mean), "std": list(p.std), "config": asdict(config),
        "hardware": device_name(device), "torch": torch.__version__,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), **extra,
    }


def state_path(checkpoint: str | Path) -> Path:
    """Where the resumable training state (float32 weights, optimizer, RNG) lives beside a checkpoint."""
    return Path(str(checkpoint).removesuffix(".safetensors") + ".state.safetensors")


def save_state(path: Path, model, optimizer, generator, progress: dict) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for i, s in opt["state"].items():
        tensors.update({f"optim.{i}.{k}": (v if torch.is_tensor(v) else torch.tensor(v)) for k, v in s.items()})
    tensors["rng.generator"] = generator.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    progress = {**progress, "param_groups": opt["param_groups"]}
    atomic_save(tensors, path, {"progress": json.dumps(progress)})


def load_state(path: Path, model, optimizer, generator) -> dict:
    tensors, _ = read_safetensors(path)
    with safe_open(str(path), framework="pt") as f:
        progress = json.loads((f.metadata() or {}).get("progress", "{}"))
    if "epoch" not in progress:
        raise CheckpointError(f"{path}: not a training-state file (no progress record)")
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": progress.pop("param_groups")})
    generator.set_state(tensors["rng.generator"])
    torch.set_rng_state(tensors["rng.torch"])
    return progress


# ---- the run ------------------------------------------------------------------------------------------------


def _stratified_take(data: Dataset, count: int | None, seed: int) -> Dataset:
    if count is None or count >= len(data):
        return data
    _, keep = stratified_split(data.labels, count / len(data), seed)
    return data.subset(keep)


def train(config: TrainConfig, stop: threading.Event | None = None, resume: str | Path | None = None,
          extra_meta: dict | None = None) -> Iterator[StartEvent | StepEvent | EpochEvent | DoneEvent]:
    """Run `config`, yielding a StartEvent, StepEvents every `log_every` steps, an EpochEvent per epoch and a
    final DoneEvent. Setting `stop` ends the run cleanly between steps. `resume` is a training-state file."""
    config.validate()
    started = time.perf_counter()
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    generator = torch.Generator(device=device).manual_seed(config.seed)

    full_train = load_dataset(config.dataset, "train", config.data_root)
    test = load_dataset(config.dataset, "test", config.data_root)
    if config.subset is not None and config.subset > len(full_train):
        raise ValueError(f"subset={config.subset} is out of range: the {config.dataset} training set has "
                         f"{len(full_train)} images")
    if config.val_fraction > 0:
        train_index, val_index = stratified_split(full_train.labels, config.val_fraction, config.seed)
        train_data, eval_data, eval_split = full_train.subset(train_index), full_train.subset(val_index), "validation"
    else:
        train_data, eval_data, eval_split = full_train, test, "test"
    train_data = _stratified_take(train_data, config.subset, config.seed)
    eval_data = _stratified_take(eval_data, config.eval_limit, config.seed)
    test = _stratified_take(test, config.eval_limit, config.seed)
    if config.batch_size > len(train_data):
        raise ValueError(f"batch_size={config.batch_size} is out of range: only {len(train_data)} training images")
    train_data, eval_data = train_data.to(device), eval_data.to(device)

    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = build_model(config.preset, config.size).to(device, memory_format=memory_format)
    optimizer = make_optimizer(config, model, device)
    steps_per_epoch = len(train_data) // config.batch_size  # the last partial batch is dropped (BatchNorm)
    if config.max_batches:
        steps_per_epoch = min(steps_per_epoch, config.max_batches)
    total_steps = config.epochs * steps_per_epoch
    scheduler = make_scheduler(config, optimizer, total_steps)

    start_epoch, history = 0, []
    if resume is not None:
        progress = load_state(Path(resume), model, optimizer, generator)
        start_epoch, history = progress["epoch"], progress.get("history", [])
        if isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR):
            scheduler.last_epoch = start_epoch * steps_per_epoch
        elif scheduler is not None and "scheduler" in progress:
            scheduler.load_state_dict(progress["scheduler"])

    yield StartEvent(str(device), device_name(device), len(train_data), len(eval_data), eval_split,
                     steps_per_epoch, total_steps, start_epoch)

    step, train_time, checkpoint, last_eval = start_epoch * steps_per_epoch, 0.0, None, None
    cancelled = False
    try:
        for epoch in range(start_epoch, config.epochs):
            model.train()
            order = torch.randperm(len(train_data), generator=generator, device=device)
            window_loss = torch.zeros((), device=device)
            window_correct = torch.zeros((), device=device, dtype=torch.int64)
            window_steps, window_start = 0, time.perf_counter()
            for i in range(steps_per_epoch):
                if stop is not None and stop.is_set():
                    cancelled = True
                    break
                index = order[i * config.batch_size:(i + 1) * config.batch_size]
                x = prepare_batch(train_data.images[index], config.preset, config.size, augment=config.augment,
                                  generator=generator, channels_last=config.channels_last)
                y = train_data.labels[index]
                try:
                    loss, logits = train_step(model, optimizer, x, y, config)
                except torch.OutOfMemoryError as e:
                    raise TrainingError(f"out of memory on {device_name(device)} at batch size "
                                        f"{config.batch_size}, input {config.size} px: use a smaller batch or "
                                        f"input size ({str(e).splitlines()[0]})") from None
                if isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR):
                    scheduler.step()
                step += 1
                window_steps += 1
                window_loss += loss
                window_correct += (logits.argmax(1) == y).sum()
                if window_steps == config.log_every or i == steps_per_epoch - 1:
                    seen = window_steps * config.batch_size
                    mean_loss, correct = window_loss.item() / window_steps, window_correct.item()  # the sync
                    now = time.perf_counter()
                    train_time += now - window_start
                    done_this_run = step - start_epoch * steps_per_epoch
                    yield StepEvent(step, step / steps_per_epoch, mean_loss, correct / seen,
                                    seen / (now - window_start), optimizer.param_groups[0]["lr"],
                                    now - started, (total_steps - step) * train_time / max(done_this_run, 1))
                    window_loss.zero_()
                    window_correct.zero_()
                    window_steps, window_start = 0, time.perf_counter()
            if cancelled:
                break
            result = evaluate(model, eval_data, config.preset, config.size, amp=config.amp,
                              channels_last=config.channels_last, stop=stop)
            if result is None:
                cancelled = True
                break
            last_eval = result
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(result["loss"])
            history.append({"epoch": epoch + 1, "eval_loss": result["loss"], "eval_accuracy": result["accuracy"]})
            if config.out:
                meta = checkpoint_meta(config, full_train.classes, device, epochs_done=epoch + 1,
                                       eval_split=eval_split, eval_accuracy=result["accuracy"],
                                       train_time_s=round(train_time, 1), history=history, **(extra_meta or {}))
                checkpoint = str(save_checkpoint(config.out, model, meta))
                progress = {"epoch": epoch + 1, "history": history}
                if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    progress["scheduler"] = {k: v for k, v in scheduler.state_dict().items()
                                             if isinstance(v, (int, float, str, bool, type(None)))}
                save_state(state_path(config.out), model, optimizer, generator, progress)
            yield EpochEvent(epoch + 1, eval_split, result["loss"], result["accuracy"],
                             time.perf_counter() - started, checkpoint)

        final = None
        if not cancelled:
            if config.out:  # the final figure is of the weights as shipped: float16, upcast on loading
                round_to_float16_(model)
            reuse = eval_split == "test" and last_eval is not None and not config.out
            final = last_eval if reuse else evaluate(model, test.to(device), config.preset, config.size,
                                                     amp=config.amp, channels_last=config.channels_last, stop=stop)
        meta = checkpoint_meta(config, full_train.classes, device, epochs_done=len(history),
                               train_time_s=round(train_time, 1), history=history, **(extra_meta or {}))
        summary = _summarize(final, test, full_train.classes)
        if final is not None:
            meta["test_accuracy"] = final["accuracy"]
            if config.out:  # the finished file records its test accuracy
                checkpoint = str(save_checkpoint(config.out, model, meta))
        model = model.to("cpu", memory_format=torch.contiguous_format).eval()
        yield DoneEvent(cancelled or final is None, final and final["loss"], final and final["accuracy"],
                        checkpoint=checkpoint, elapsed_s=time.perf_counter() - started, train_time_s=train_time,
                        model=model, meta=meta, **summary)
    finally:
        # On cancel (GeneratorExit), error or completion: drop device tensors so the memory is released.
        del train_data, eval_data, optimizer
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _summarize(final: dict | None, test: Dataset, classes) -> dict:
    if final is None:
        return {"per_class_accuracy": {}, "confusion": [], "mistakes": []}
    predictions, labels = final["predictions"].cpu(), test.labels.cpu()
    cm = confusion_matrix(labels, predictions, len(classes))
    per_class = {c: (cm[i, i] / cm[i].sum().clamp(min=1)).item() for i, c in enumerate(classes)}
    wrong = (predictions != labels).nonzero().flatten()[:24]
    mistakes = [(test.images[i].cpu(), classes[labels[i]], classes[predictions[i]]) for i in wrong.tolist()]
    return {"per_class_accuracy": per_class, "confusion": cm.tolist(), "mistakes": mistakes}


def config_fields() -> list:
    """The dataclass fields, for building CLI flags and forms from one definition."""
    return list(fields(TrainConfig))
