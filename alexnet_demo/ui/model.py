"""The Model tab: both presets' layer tables, computed from the code."""
from __future__ import annotations

import gradio as gr

from ..models import model_table


def tab() -> None:
    with gr.Tab("Model", id="model"):
        gr.Markdown("## MNIST preset: 1×224×224 input\nThe MNIST write-up gives 47,686,346 parameters; that "
                    "total has an arithmetic slip in FC1 (6400·4096 + 4096 = 26,218,496). The real total, "
                    "computed from the code below, is **46,764,746**.\n\n" + model_table("mnist"))
        gr.Markdown("## CIFAR-10 preset: 3×50×50 input, BatchNorm on conv1–conv2\n\n" + model_table("cifar10"))
