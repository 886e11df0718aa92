"""The Feature maps tab: every conv layer's channels for the current drawing or photo, one layer large, conv1's
filters."""
from __future__ import annotations

import gradio as gr

from ..inspection import feature_maps_figure, filters_figure, top_channels_figure
from ..models import CONV_LAYERS
from .common import classifier_for, is_blank, user_errors


def feature_maps(source, layer, drawing, photo, trained_mnist=None, trained_cifar=None):
    """(all-layers figure, the layer's most active channels, conv1 filters, caption) for the chosen input."""
    if layer not in CONV_LAYERS:
        raise gr.Error(f"layer must be one of {CONV_LAYERS}")
    digit = source == "Drawing"
    preset, image, trained = ("mnist", drawing, trained_mnist) if digit else ("cifar10", photo, trained_cifar)
    classifier = classifier_for(preset, trained)
    if is_blank(image):
        return None, None, filters_figure(classifier.model), "Draw a digit or upload a photo first."
    with user_errors():
        result = classifier.run(image)
    if not result.feature_maps:
        return None, None, filters_figure(classifier.model), "Nothing drawn yet."
    top, p = next(iter(result.probabilities.items()))
    caption = f"Input read as **{top}** ({p:.1%}) by the {preset} model."
    return (feature_maps_figure(result.feature_maps), top_channels_figure(result.feature_maps, layer),
            filters_figure(classifier.model), caption)


def tab(sketch, photo, trained_mnist: gr.State, trained_cifar: gr.State) -> None:
    with gr.Tab("Feature maps", id="maps") as maps_tab:
        with gr.Row():
            source = gr.Radio(["Drawing", "Photo"], value="Drawing", label="Input")
            layer = gr.Dropdown(list(CONV_LAYERS), value="conv1", label="Layer to enlarge")
            show = gr.Button("Show", variant="primary")
        caption = gr.Markdown()
        all_maps = gr.Plot(label="Every conv layer's channels", show_label=False)
        with gr.Row():
            top_maps = gr.Plot(label="The layer's most active channels", show_label=False)
            filters = gr.Plot(label="conv1 filters", show_label=False)
    inputs = [source, layer, sketch, photo, trained_mnist, trained_cifar]
    outputs = [all_maps, top_maps, filters, caption]
    show.click(feature_maps, inputs, outputs, api_name="feature_maps", concurrency_limit=2)
    gr.on([maps_tab.select, layer.change, source.change], feature_maps, inputs, outputs, api_name=False,
          concurrency_limit=2)
