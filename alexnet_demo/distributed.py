"""torchrun / DDP: the process group from torchrun's environment and the few collectives the engine needs."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

_STARTED_HERE = False  # whether this module started the process group (and so ends it)


@dataclass(frozen=True)
class World:
    rank: int = 0  # this process; rank 0 alone yields events, evaluates and writes files
    local_rank: int = 0  # this process on its node: its GPU
    size: int = 1  # processes in all; 1: no DDP

    @property
    def main(self) -> bool:
        return self.rank == 0


def world_from_env() -> World:
    """What torchrun puts in WORLD_SIZE, RANK and LOCAL_RANK; one process without them."""
    size = int(os.environ.get("WORLD_SIZE", 1))
    if size <= 1:
        return World()
    return World(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), size)


def setup(world: World, device: torch.device) -> torch.device:
    """Join the process group (NCCL on CUDA, gloo on the CPU); returns the device this rank trains on."""
    global _STARTED_HERE
    if device.type == "mps":
        raise ValueError("device='mps' cannot train with torchrun (no collective backend for MPS): use cpu or cuda")
    if device.type == "cuda":
        if world.local_rank >= torch.cuda.device_count():
            raise ValueError(f"process {world.local_rank} on this node has no GPU of its own (the node has "
                             f"{torch.cuda.device_count()}): start one process per GPU (--nproc_per_node) or train "
                             "on the CPU (--device cpu)")
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                device_id=device if device.type == "cuda" else None)
        _STARTED_HERE = True
    return device


def teardown() -> None:
    global _STARTED_HERE
    if _STARTED_HERE and dist.is_initialized():
        dist.destroy_process_group()
    _STARTED_HERE = False


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DDP around `model` (the same parameters: the optimizer, checkpoints and evaluation use `model` itself)."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def rank_noise(seed: int, epoch: int, rank: int, device: torch.device) -> torch.Generator:
    """This rank's generator for augmentation, with the global RNG (dropout) seeded alike. Ranks share the run's
    generator, since their shuffles must agree, but not their random shifts and dropout masks."""
    seed = (seed * 1_000_003 + epoch) * 1_009 + rank
    torch.manual_seed(seed)
    return torch.Generator(device=device).manual_seed(seed)


def sum_across(values: torch.Tensor) -> torch.Tensor:
    """Every rank's `values` summed, on every rank (the tensor, in place)."""
    dist.all_reduce(values)
    return values


def share_evaluation(result: dict | None, device: torch.device) -> dict | None:
    """Rank 0's evaluation (loss and accuracy; None: it was stopped) on every rank: a plateau schedule must step
    alike everywhere. The other ranks wait here while rank 0 evaluates."""
    stopped = result is None
    values = torch.tensor([stopped, 0.0 if stopped else result["loss"], 0.0 if stopped else result["accuracy"]],
                          dtype=torch.float64, device=device)
    dist.broadcast(values, src=0)
    if values[0].item():
        return None
    return result if dist.get_rank() == 0 else {"loss": values[1].item(), "accuracy": values[2].item()}
