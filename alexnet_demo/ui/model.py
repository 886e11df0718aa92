"""The Model tab: both presets' layer tables, computed from the code."""
from __future__ import annotations

import gradio as gr

from ..checkpoints import CheckpointError
from ..inference import load_classifier
from ..models import model_table


def formats() -> str:
    """Which number format each shipped model answers in on this machine, and why (measured at start)."""
    lines = []
    for preset in ("mnist", "cifar10"):
        try:
            choice = load_classifier(preset).format
        except CheckpointError:
            continue
        lines.append(f"- **{preset}**: " + (choice.reason if choice else "fp32 (the format check runs at start)"))
    return "**Number format on this machine** (bf16 only where measured faster and answering as fp32 does):\n" + \
        "\n".join(lines)


def tab() -> None:
    with gr.Tab("Model", id="model") as model_tab:
        note = gr.Markdown(formats, elem_id="formats")
        model_tab.select(formats, None, note, api_name=False, queue=False)
        gr.Markdown("## MNIST preset: 1×224×224 input\nThe MNIST write-up gives 47,686,346 parameters; that "
                    "total has an arithmetic slip in FC1 (6400·4096 + 4096 = 26,218,496). The real total, "
                    "computed from the code below, is **46,764,746**.\n\n" + model_table("mnist"))
        gr.Markdown("## CIFAR-10 preset: 3×50×50 input, BatchNorm on conv1–conv2\n\n" + model_table("cifar10"))
