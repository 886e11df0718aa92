"""Which number format a model answers in on this machine: bf16 weights (+ channels_last) only where measured faster
*and* answering as fp32 does on fixed inputs; fp32 otherwise, and always as the fallback.

Why measure instead of deciding by CPU name: on an Intel Xeon with AVX512-BF16 and AMX (this project's machines
from 2026-11) one MNIST drawing's forward took ~25 ms in fp32 and ~17 ms with bf16 weights, eight at once 120 ms
against 41 ms; on an AMD EPYC with AVX512-BF16 but no AMX (2026-12) 20.1 against 11.7 ms, 85 against 41 ms; on
earlier AMD EPYC machines bf16 was slower than fp32; a Space's CPU is unknown.
"""
from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .models import forward_with_maps

# Largest change of any class's probability on any probe input that still counts as "the same answer" (the Label
# shows whole percents; 2 points is below what a visitor can act on). The top class must not change at all.
TOLERANCE = 0.02
# bf16 must be at least this much faster (fp32 ms / bf16 ms) at a batch of BATCH inputs (several visitors at once:
# capacity), and no slower than SLOWEST at one input (a lone visitor must not wait longer). Below 1.1 the gain is
# within the noise of a shared 2-core VM and not worth a second copy of the weights.
MIN_SPEEDUP = 1.1
SLOWEST = 1.05
BATCH = 8

Measure = Callable[[nn.Module, torch.Tensor], float]  # (model, input batch) -> ms per forward


@dataclass(frozen=True)
class FormatChoice:
    dtype: torch.dtype  # what `Classifier.run` feeds and holds the weights in
    reason: str  # one line for the page: why this format
    fp32_ms: tuple[float, float] | None = None  # ms per forward: (one input, BATCH inputs)
    bf16_ms: tuple[float, float] | None = None
    max_change: float | None = None  # largest probability change bf16 made on the probe inputs
    same_top: bool | None = None  # bf16's top class equal to fp32's on every probe input

    @property
    def name(self) -> str:
        return "bf16" if self.dtype == torch.bfloat16 else "fp32"


def median_ms(model: nn.Module, x: torch.Tensor, repeats: int = 7) -> float:
    """Median wall ms of the forward walk `Classifier.run` makes, after two warm-up calls (oneDNN's first-call
    setup takes far longer than a call)."""
    with torch.inference_mode():
        for _ in range(2):
            forward_with_maps(model, x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            forward_with_maps(model, x)
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


@torch.inference_mode()
def probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    dtype = next(model.parameters()).dtype
    return model(x.to(dtype)).float().softmax(1)


def as_bf16(model: nn.Module) -> nn.Module:
    """A copy of `model` with bf16 weights, channels_last (oneDNN's fast layout for bf16 convolutions)."""
    return copy.deepcopy(model).to(torch.bfloat16).to(memory_format=torch.channels_last).eval()


def choose_format(model: nn.Module, probe: torch.Tensor, measure: Measure = median_ms,
                  tolerance: float = TOLERANCE, min_speedup: float = MIN_SPEEDUP) -> tuple[FormatChoice, nn.Module]:
    """(the choice, the model to answer with) for `model` (fp32, eval) on `probe`: a normalized (N, C, S, S) batch
    of fixed real inputs. bf16 is refused when any top class differs, any probability moves more than `tolerance`,
    it is not `min_speedup` times faster at BATCH inputs, or it is slower than SLOWEST times fp32 at one input.
    `measure` is the timer (tests pass a stand-in)."""
    model.eval()
    try:
        fast = as_bf16(model)
        p32, p16 = probabilities(model, probe), probabilities(fast, probe)
    except RuntimeError as e:  # a CPU or build without bf16 kernels
        return FormatChoice(torch.float32, f"fp32: bf16 does not run here ({e})"), model
    same_top = bool((p32.argmax(1) == p16.argmax(1)).all())
    max_change = float((p32 - p16).abs().max())
    if not same_top or max_change > tolerance:
        why = "changes a top class" if not same_top else f"moves a probability by {max_change:.1%}"
        return FormatChoice(torch.float32, f"fp32: bf16 {why} on the {len(probe)} probe images",
                            max_change=max_change, same_top=same_top), model
    one, batch = probe[:1], probe[:BATCH]
    fp32_ms = (measure(model, one), measure(model, batch))
    bf16_ms = (measure(fast, one.to(torch.bfloat16)), measure(fast, batch.to(torch.bfloat16)))
    timings = (f"one input {fp32_ms[0]:.1f} vs {bf16_ms[0]:.1f} ms, {len(batch)} at once {fp32_ms[1]:.0f} vs "
               f"{bf16_ms[1]:.0f} ms (fp32 vs bf16)")
    if fp32_ms[1] / bf16_ms[1] >= min_speedup and bf16_ms[0] <= SLOWEST * fp32_ms[0]:
        return FormatChoice(torch.bfloat16, f"bf16: faster on this CPU ({timings}), same answers (probabilities "
                            f"within {max_change:.2%})", fp32_ms, bf16_ms, max_change, same_top), fast
    return FormatChoice(torch.float32, f"fp32: bf16 is not faster on this CPU ({timings})",
                        fp32_ms, bf16_ms, max_change, same_top), model


# ---- training: bf16 autocast (TrainConfig.amp) on the CPU ----------------------------------------------------


def step_ms(config, steps: int = 2) -> float:
    """Median ms of the engine's own optimizer step (training.train_step) for `config`'s model, batch and input
    size, on random images on the CPU, after one warm-up step."""
    from .optimization import make_optimizer
    from .training import train_step
    from .models import PRESETS, build_model

    torch.manual_seed(0)
    model = build_model(config.preset, config.input_size, batch_norm=config.batch_norm, dropout=config.dropout,
                        classifier_width=config.classifier_width).to(memory_format=torch.channels_last).train()
    optimizer = make_optimizer(config, model, torch.device("cpu"))
    channels = PRESETS[config.preset].in_channels
    x = torch.randn(config.batch_size, channels, config.input_size, config.input_size)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (config.batch_size,))
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        train_step(model, optimizer, x, y, config)
        if i:  # the first step sets oneDNN up
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def choose_training_format(config, measure: Callable = step_ms,
                           min_speedup: float = MIN_SPEEDUP) -> FormatChoice:
    """Whether `config`'s run should train under bf16 autocast on this CPU: only where a step measured
    `min_speedup` times faster than fp32 (at 224 px on this project's Xeon: 2.5x; at the visitor's 65 px: none).
    The accuracy is the run's own to report; fp32 otherwise."""
    from dataclasses import replace
    fp32, bf16 = measure(replace(config, amp=False)), measure(replace(config, amp=True))
    timing = f"{config.batch_size} images at {config.input_size} px: a step {fp32:.0f} ms fp32, {bf16:.0f} ms bf16"
    if fp32 / bf16 >= min_speedup:
        return FormatChoice(torch.bfloat16, f"bf16 autocast: measured {fp32 / bf16:.1f}x faster on this CPU "
                            f"({timing})", (fp32, fp32), (bf16, bf16))
    return FormatChoice(torch.float32, f"fp32: bf16 autocast measured no faster on this CPU ({timing})",
                        (fp32, fp32), (bf16, bf16))
