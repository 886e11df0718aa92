"""The Photo tab: an upload, paste or webcam shot that the CIFAR-10 model classifies, with what it sees and its maps."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from ..models import PRESETS
from .common import LOW_CONFIDENCE, panel, run_model

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"


class PhotoInput(gr.Image):
    """gr.Image that hands an upload it cannot decode to the callback as a path, so that the visitor is told
    what is wrong with the file (gradio's own message is a generic "error")."""

    is_template = True  # rendered by the frontend as a plain gr.Image

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except Exception:  # PIL's errors for a text file, a truncated JPEG, an empty file, …
            return payload.path if payload is not None else None


def classify_image(photo, trained=None):
    """Uploaded photo (a file path) -> (top-5 probabilities, the 32x32 seen, feature-map gallery, note)."""
    if photo is None:
        return None, None, [], "Upload a photo, paste one, use the webcam or click an example."
    result = run_model("cifar10", photo, trained)
    top, p = next(iter(result.probabilities.items()))
    note = f"Looks like a **{top}** ({p:.1%})." if p >= LOW_CONFIDENCE else \
        f"Low confidence: best guess **{top}** at {p:.1%}. The photo may not show one of the ten CIFAR-10 " \
        f"classes ({', '.join(PRESETS['cifar10'].classes)})."
    return result.probabilities, *panel(result), note


def tab(trained: gr.State) -> PhotoInput:
    """Build the tab and wire its events; returns the photo input, which the other tabs read."""
    examples = sorted(EXAMPLES_DIR.glob("cifar10/*.png"))
    with gr.Tab("Classify a photo", id="cifar"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                photo = PhotoInput(label="A photo: upload, paste or webcam", type="filepath", height=360,
                                   elem_id="photo", sources=["upload", "clipboard", "webcam"])
                if examples:
                    gr.Examples([[str(p)] for p in examples], inputs=photo, label="CIFAR-10 test images",
                                examples_per_page=10)
            with gr.Column(scale=2):
                note = gr.Markdown("Upload a photo, paste one, use the webcam or click an example.")
                label = gr.Label(num_top_classes=5, label="Top 5")
                seen = gr.Image(label="What the network sees (32×32 → 50×50)", height=260, interactive=False,
                                format="png")
        maps = gr.Gallery(label="Feature maps of conv1 … conv5 for this photo (after ReLU)", columns=5, height=300,
                          object_fit="contain", format="png")
    photo.change(classify_image, [photo, trained], [label, seen, maps, note], api_name="classify_image",
                 concurrency_limit=4)
    return photo
