"""What `training.train` yields: plain dataclasses of CPU values, picklable for a forked worker."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class StageEvent:
    message: str  # what happens before training can start, e.g. "Downloading MNIST (first run only, ~12 MB)…"


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
class SnapshotEvent:
    step: int                       # optimizer steps done (0: before training)
    epoch: float                    # fractional epochs done
    probabilities: dict[str, float] # the probe's class probabilities, highest first
    maps: dict[str, torch.Tensor]   # "conv1".."conv5" -> (k, H, W) float32 CPU: the k=8 most active channels
    channels: dict[str, list[int]]  # "conv1".."conv5" -> those channels' numbers, most active first
    filters: torch.Tensor           # conv1 weights (96, C, 11, 11) float32 CPU


@dataclass
class EpochEvent:
    epoch: int  # 1-based, completed
    eval_split: str
    eval_loss: float
    eval_accuracy: float
    elapsed_s: float
    checkpoint: str | None


@dataclass
class FinalTestEvent:
    done: int  # test images classified so far in the final test
    total: int  # test images in all (10,000 for both datasets' full test sets)


@dataclass
class DoneEvent:
    cancelled: bool  # ended before its last epoch: `stop` was set, or the time limit passed (then timed_out)
    test_loss: float | None
    test_accuracy: float | None
    per_class_accuracy: dict[str, float | None]  # None: the class had no test image
    confusion: list[list[int]]  # [true][predicted] counts on the test images
    mistakes: list[tuple]  # (uint8 image (C, h, w), true class, predicted class), at most 24
    checkpoint: str | None  # the last completed epoch's file
    elapsed_s: float
    train_time_s: float  # optimizer steps only, without evaluation
    model: torch.nn.Module | None = None  # on the CPU, eval mode
    meta: dict = field(default_factory=dict)
    timed_out: bool = False  # config.time_limit_s ended the run; unlike a stop, the model as it was is tested


class TrainingError(RuntimeError):
    """A run that could not go on (out of memory, data too small); the message says what to change."""
