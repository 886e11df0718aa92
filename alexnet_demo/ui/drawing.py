"""The Draw tab: a sketchpad whose digit the MNIST model reads after every stroke, with what it sees and its maps."""
from __future__ import annotations

import gradio as gr

from .common import LOW_CONFIDENCE, is_blank, panel, run_model

# The Sketchpad opens, and comes back from "Clear canvas", with no tool chosen: pick the brush so that a visitor
# can always just draw.
SELECT_BRUSH = """() => {
  const brush = () => document.querySelector('#sketch button[aria-label="Brush"]')?.click();
  setTimeout(brush, 300);
  document.addEventListener('click', (e) => {
    if (e.target.closest('#sketch button[aria-label="Clear canvas"]')) setTimeout(brush, 300);
  }, true);
}"""


def classify_digit(drawing, trained=None):
    """Sketchpad value -> (probabilities, what the network sees, feature-map gallery, note)."""
    if is_blank(drawing):
        return "Draw a digit", None, [], "Draw a digit 0–9 on the canvas."
    result = run_model("mnist", drawing, trained)
    if not result.probabilities:
        return "Draw a digit", None, [], "Nothing drawn yet: draw a digit 0–9 on the canvas."
    top, p = next(iter(result.probabilities.items()))
    note = f"It reads **{top}** ({p:.1%})." if p >= LOW_CONFIDENCE else \
        f"Not sure: **{top}** at only {p:.1%}. Try a bigger, clearer digit."
    return result.probabilities, *panel(result), note


def tab(trained: gr.State) -> gr.Sketchpad:
    """Build the tab and wire its events; returns the sketchpad, which the other tabs read."""
    with gr.Tab("Draw a digit", id="draw"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                sketch = gr.Sketchpad(
                    label="Draw a digit 0–9", canvas_size=(480, 480), height=600, type="numpy", image_mode="RGBA",
                    elem_id="sketch", brush=gr.Brush(default_size=18, colors=["#000000"], color_mode="fixed"),
                    layers=False)
            with gr.Column(scale=2):
                note = gr.Markdown("Draw a digit 0–9 on the canvas: the answer updates after every stroke.")
                label = gr.Label(num_top_classes=10, label="Probabilities", value="Draw a digit")
                seen = gr.Image(label="What the network sees (28×28, MNIST-style)", height=260, interactive=False,
                                format="png")
        maps = gr.Gallery(label="Feature maps of conv1 … conv5 for this drawing (after ReLU)", columns=5, height=300,
                          object_fit="contain", format="png")
    sketch.change(classify_digit, [sketch, trained], [label, seen, maps, note], api_name="classify_digit",
                  show_progress="hidden", concurrency_limit=4, trigger_mode="always_last")
    return sketch
