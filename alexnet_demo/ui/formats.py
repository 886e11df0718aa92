"""The training number format a form preselects on this machine (bf16 autocast or fp32), measured once per dataset:
the Train tab's and the Your classes tab's bf16 box and the line that says why."""
from __future__ import annotations

import threading

from ..precision import choose_training_format
from . import training  # the Train form's defaults and device (read at call time: training imports this module)

# Whether bf16 autocast trains each dataset's default CPU run faster on this machine: measured the first time a
# visitor opens the Train tab or picks the dataset (a few seconds, once per process), not at start, where the
# measuring would compete with the first visitors' drawings.
CPU_TRAINING_FORMATS: dict = {}
_MEASURE_LOCK = threading.Lock()


def measure_training_format(dataset: str) -> None:
    """Time the engine's step for `dataset`'s default CPU run in fp32 and under bf16 autocast, once. Nothing to
    measure on a GPU: bf16 is preselected there."""
    with _MEASURE_LOCK:
        if training.on_gpu() or dataset in CPU_TRAINING_FORMATS:
            return
        config = training.make_config(dataset, **training._form_defaults(dataset), augment=False, amp=False)
        CPU_TRAINING_FORMATS[dataset] = choose_training_format(config)


def amp_default(dataset: str) -> tuple[bool, str]:
    """(preselect bf16 autocast?, the line that says why) for `dataset`'s form, as far as measured."""
    if training.on_gpu():
        return True, "bf16 mixed precision: on a GPU it trains several times faster."
    choice = CPU_TRAINING_FORMATS.get(dataset)
    if choice is None:
        return False, "fp32: bf16 autocast is offered where the app measured it faster on this CPU (not measured yet)."
    return choice.name == "bf16", choice.reason + "."


def training_format(dataset: str) -> list:
    """The form's bf16 checkbox and its line for `dataset`, measuring first if not yet done (Train tab opened,
    dataset picked)."""
    measure_training_format(dataset)
    return [*amp_default(dataset)]
