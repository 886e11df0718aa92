"""What a run starts from: the data split and on the device, the model, optimizer and schedule (joining the process
group under torchrun), all carried from stage to stage by a `Run`; and restoring one from a resume-state file."""
from __future__ import annotations

import copy
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import distributed
from .checkpoints import CheckpointError, load_state, start_from
from .config import PARENTS, RECIPES, TrainConfig
from .data import (DOWNLOAD_SIZES, Dataset, dataset_on_disk, held_out_split, load_dataset, load_examples,
                   prepare_batch, stratified_split, with_drawn)
from .models import PRESETS, build_model
from .optimization import Schedule, make_optimizer


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
    return f"{cpu_name()}, {torch.get_num_threads()} threads" if device.type == "cpu" else device.type


def cpu_name() -> str:
    """The CPU's model and its bf16 instructions, written beside every figure: the machines this project runs on
    change (AMD EPYC, then Intel Xeon with AVX512-BF16 and AMX), and bf16 pays only on the latter."""
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return f"{platform.machine()} CPU"
    name = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    bf16 = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return f"{name or platform.machine() + ' CPU'} ({', '.join(bf16) if bf16 else 'no bf16 instructions'})"


def _stratified_take(data: Dataset, count: int | None, seed: int) -> Dataset:
    if count is None or count >= len(data):
        return data
    _, keep = stratified_split(data.labels, count / len(data), seed)
    return data.subset(keep)


@dataclass
class Run:
    """What a run carries from stage to stage."""

    config: TrainConfig
    device: torch.device
    generator: torch.Generator
    classes: tuple[str, ...]
    train_data: Dataset  # on the device
    eval_data: Dataset  # on the device: validation images, or the test images when val_fraction is 0
    eval_split: str
    test: Dataset  # on the CPU until the final test
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    steps_per_epoch: int
    extra_meta: dict
    probe: torch.Tensor | None = None  # (1, C, H, W) prepared on the device, when snapshots are taken
    world: distributed.World = field(default_factory=distributed.World)
    net: torch.nn.Module | None = None  # what the steps call: `model`, or DDP around it under torchrun
    teacher: torch.nn.Module | None = None  # config.distill: the init file, frozen, in eval mode, on the device
    started: float = field(default_factory=time.perf_counter)
    start_epoch: int = 0
    step: int = 0
    train_time: float = 0.0  # s of optimizer steps, without evaluation
    history: list = field(default_factory=list)
    last_eval: dict | None = None
    checkpoint: str | None = None
    cancelled: bool = False
    timed_out: bool = False

    @property
    def total_steps(self) -> int:
        return self.config.epochs * self.steps_per_epoch

    @property
    def hardware(self) -> str:
        name = device_name(self.device)
        return name if self.world.size == 1 else f"{self.world.size} processes × {name}"


def staging_message(config: TrainConfig) -> str:
    if config.examples:
        return "Loading your examples…"
    name = {"mnist": "MNIST", "cifar10": "CIFAR-10"}[config.dataset]
    if dataset_on_disk(config.dataset, config.data_root):
        message = f"Loading {name}…"
    else:
        message = f"Downloading {name} (first run only, {DOWNLOAD_SIZES[config.dataset]})…"
    if config.sketch > 0:
        message += " then re-drawing its digits with a brush (first run with these digits only, ~7 ms a digit a core)…"
    return message


def stage(config: TrainConfig, extra_meta: dict | None = None, probe: torch.Tensor | None = None) -> Run:
    """Under torchrun, join the process group; load the data, split off validation, take the subset, put it on
    the device; build model and optimizer; prepare the snapshots' probe image (None: the first test image)."""
    started = time.perf_counter()
    device, world = pick_device(config.device), distributed.world_from_env()
    if world.size > 1:
        device = distributed.setup(world, device)
        if config.batch_size % world.size:
            raise ValueError(f"batch_size={config.batch_size} is out of range: it is the global batch, shared by "
                             f"{world.size} processes (torchrun), so it must be a multiple of {world.size}")
    if config.init and not Path(config.init).is_file():  # now, not after minutes of loading and re-drawing digits
        raise CheckpointError(missing_parent(config.init))
    torch.manual_seed(config.seed)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    if config.examples:  # the visitor's own examples: a held-out share of each class is the test
        examples = load_examples(config.examples, config.dataset)
        train_index, held_index = held_out_split(examples.labels, config.val_fraction or 0.2, config.seed)
        full_train, test = examples.subset(train_index), examples.subset(held_index)
    else:
        full_train = load_dataset(config.dataset, "train", config.data_root)
        test = load_dataset(config.dataset, "test", config.data_root)
    channels = PRESETS[config.preset].in_channels
    if probe is not None and (probe.dtype != torch.uint8 or probe.dim() != 3 or probe.shape[0] != channels):
        raise ValueError(f"probe must be a uint8 image ({channels}, h, w) like the {config.dataset} images, not "
                         f"{probe.dtype} {tuple(probe.shape)}")
    if config.snapshot_every:  # resized and normalized once, as evaluation prepares an image
        probe = prepare_batch((test.images[0] if probe is None else probe)[None].to(device), config.preset,
                              config.input_size, channels_last=config.channels_last)
    if config.subset is not None and config.subset > len(full_train):
        raise ValueError(f"subset={config.subset} is out of range: the {config.dataset} training set has "
                         f"{len(full_train)} images")
    if config.val_fraction > 0 and not config.examples:
        train_index, val_index = stratified_split(full_train.labels, config.val_fraction, config.seed)
        train_data, eval_data, eval_split = full_train.subset(train_index), full_train.subset(val_index), "validation"
    else:
        train_data, eval_data, eval_split = full_train, test, "test"
    train_data = _stratified_take(train_data, config.subset, config.seed)
    if config.sketch > 0:  # each training digit's re-drawn copy, made once and cached
        train_data = with_drawn(train_data, config.data_root, config.seed)
    eval_data = _stratified_take(eval_data, config.eval_limit, config.seed)
    test = _stratified_take(test, config.eval_limit, config.seed)
    if config.batch_size > len(train_data):
        raise ValueError(f"batch_size={config.batch_size} is out of range: only {len(train_data)} training images")

    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = build_model(config.preset, config.input_size, batch_norm=config.batch_norm, dropout=config.dropout,
                        classifier_width=config.classifier_width, num_classes=len(full_train.classes)
                        ).to(device, memory_format=memory_format)
    teacher = None
    if config.init:  # fine-tuning: the parent's weights, and its fingerprint in every checkpoint this run writes
        parent = start_from(model, config.init, config, full_train.classes)
        extra_meta = {**parent, **(extra_meta or {})}
        if config.distill > 0:  # the init file's weights as just copied in, frozen: the student starts as its teacher
            if parent["init_classes"] != list(full_train.classes):
                raise ValueError(f"distill={config.distill} needs the init file's classes {parent['init_classes']}, "
                                 f"not {list(full_train.classes)}: its probabilities are what the run is pulled "
                                 "towards")
            teacher = copy.deepcopy(model).eval().requires_grad_(False)
    freeze(model, config.tune)
    optimizer = make_optimizer(config, model, device)
    steps_per_epoch = len(train_data) // config.batch_size  # the last partial batch is dropped (BatchNorm)
    if config.max_batches:
        steps_per_epoch = min(steps_per_epoch, config.max_batches)
    net = distributed.wrap(model, device) if world.size > 1 else model
    return Run(config, device, generator, full_train.classes, train_data.to(device), eval_data.to(device),
               eval_split, test, model, optimizer, Schedule(config, optimizer, config.epochs * steps_per_epoch),
               steps_per_epoch, extra_meta or {}, probe if config.snapshot_every else None, world, net,
               teacher=teacher, started=started)


def frozen_modules(model: torch.nn.Module, tune: str) -> list[torch.nn.Module]:
    """The layers a run with `tune` keeps as its starting file has them: head every layer but the last Linear,
    classifier every conv layer (and its BatchNorm), conv5 all but conv5 (and bn5), all none. Frozen layers also
    stay in eval mode while training (their BatchNorm statistics and dropout as in the file)."""
    layers = list(model.features.named_children())
    if tune == "all":
        return []
    if tune == "conv5":
        return [layer for _, layer in layers[:[name for name, _ in layers].index("conv5")]]
    frozen = [layer for _, layer in layers]
    if tune == "head":
        head = list(model.classifier.children())
        last = max(i for i, m in enumerate(head) if isinstance(m, torch.nn.Linear))
        frozen += head[:last]
    return frozen


def freeze(model: torch.nn.Module, tune: str) -> None:
    """Switch gradients off for the layers `tune` keeps (the optimizer then holds only the others)."""
    for layer in frozen_modules(model, tune):
        layer.requires_grad_(False)


def missing_parent(init: str) -> str:
    """What to do when a fine-tuning run's starting checkpoint is not there (a fresh clone has no runs/)."""
    child = next((name for name, parent in PARENTS.items() if RECIPES[name]["init"] == init), None)
    if child is None:
        return f"{init}: no such checkpoint to start from (init); pass an existing file, or none for fresh weights"
    return (f"{init}: the {child!r} recipe fine-tunes this file, which is not there yet. Make it first with "
            f"`python -m alexnet_demo.train --recipe {PARENTS[child]} --out {init}` (~7 s on an H100, ~2 h on 2 CPU "
            f"cores), or pass --init FILE")


def restore(run: Run, path: str | Path) -> None:
    """Continue from a training-state file: weights, optimizer, RNG, history and the schedule's position (every
    rank reads the same file)."""
    progress = load_state(Path(path), run.model, run.optimizer, run.generator)
    run.start_epoch, run.history = progress["epoch"], progress.get("history", [])
    run.step = run.start_epoch * run.steps_per_epoch
    run.schedule.load_state_dict(progress.get("scheduler", {}), run.step)
