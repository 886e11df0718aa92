"""The optimizer and the learning-rate schedule a TrainConfig names."""
from __future__ import annotations

import torch

from .config import TrainConfig


def make_optimizer(config: TrainConfig, model: torch.nn.Module, device: torch.device) -> torch.optim.Optimizer:
    fused = device.type == "cuda"  # one kernel for the whole update instead of one per tensor
    params = [p for p in model.parameters() if p.requires_grad]  # frozen layers (config.tune) are not updated
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0,
                           weight_decay=config.weight_decay, fused=fused)


class Schedule:
    """The learning-rate schedule, called at the loop's two moments: after every optimizer step (onecycle: warm up
    over the first 25%, then anneal linearly, momentum or Adam's beta1 cycled against it from 0.95 to 0.85 and back,
    whatever config.momentum says) and after every epoch's evaluation (plateau, the CIFAR write-up's:
    ÷10 after 2 epochs without a lower evaluation loss). "none" keeps the optimizer's learning rate."""

    def __init__(self, config: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int):
        self.kind, self.scheduler = config.schedule, None
        if self.kind == "onecycle":  # +1: the step after the last batch must not run past the schedule's end
            # Warm-up of 25%, but at least 2 steps: OneCycleLR divides by its length, 0 for a 3-step run at 25%
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=config.lr, total_steps=total_steps + 1, pct_start=max(0.25, 2 / (total_steps + 1)),
                anneal_strategy="linear")
        elif self.kind == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=2)

    def after_step(self) -> None:
        if self.kind == "onecycle":
            self.scheduler.step()

    def after_epoch(self, eval_loss: float) -> None:
        if self.kind == "plateau":
            self.scheduler.step(eval_loss)

    def state_dict(self) -> dict:
        """The scheduler's plain values, JSON-able: they go into the state file's progress record."""
        if self.scheduler is None:
            return {}
        return {k: v for k, v in self.scheduler.state_dict().items()
                if isinstance(v, (int, float, str, bool, type(None)))}

    def load_state_dict(self, state: dict, step: int) -> None:
        if self.scheduler is None:
            return
        if self.kind == "onecycle" and not state:  # state files written before schedules were saved
            state = {"last_epoch": step}
        total = getattr(self.scheduler, "total_steps", None)  # one-cycle's length is fixed when the run starts
        if self.kind == "onecycle" and state.get("total_steps", total) != total:
            raise ValueError(f"the state file's one-cycle schedule is {state['total_steps'] - 1} steps long and this "
                             f"run's {total - 1}: resume with the --epochs, --subset and --batch-size of the run "
                             "that wrote it")
        self.scheduler.load_state_dict({**self.scheduler.state_dict(), **state})
