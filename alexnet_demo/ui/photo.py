"""The Photo tab: an upload, paste or webcam shot that the CIFAR-10 model classifies; the top 5 first, then what the
network sees and its most active channels (every channel one click away)."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
from gradio.components.label import LabelConfidence, LabelData

from ..inference import MAX_BATCH
from .. import openset
from ..models import PRESETS
from ..preprocessing import open_image
from .common import classifier_for, current_result, grids, panel, picture, run_model, top_channels_image, user_errors

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
# Below this top probability a visitor's own model (which has no open-set file) says the photo may show none of the ten
# classes; the shipped model answers by its measured open-set rule (openset.py) instead
LOW_CONFIDENCE = 0.5
NONE_HEADLINE = "None of the ten"  # the Top 5's headline when the open-set rule says the photo shows none of them


class PhotoInput(gr.Image):
    """gr.Image that hands an upload it cannot decode to the callback as a path, so that the visitor is told
    what is wrong with the file (gradio's own message is a generic "error")."""

    is_template = True  # rendered by the frontend as a plain gr.Image

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except Exception:  # PIL's errors for a text file, a truncated JPEG, an empty file, …
            return payload.path if payload is not None else None


class AnswerLabel(gr.Label):
    """gr.Label that also takes {"label": headline, "confidences": {class: probability}}, so that the headline can
    say "None of the ten" above the closest classes' bars instead of titling the closest class as the answer."""

    is_template = True  # rendered by the frontend as a plain gr.Label

    def postprocess(self, value):
        if isinstance(value, dict) and set(value) == {"label", "confidences"}:
            shown = list(value["confidences"].items())[:self.num_top_classes]
            return LabelData(label=value["label"], confidences=[LabelConfidence(label=c, confidence=p)
                                                                for c, p in shown])
        return super().postprocess(value)


def classify_image(photo, trained=None):
    """Uploaded photo (a file path) -> (top-5 probabilities, note, the Result kept for the pictures). When the
    open-set rule says the photo shows none of the ten, the probabilities come under the headline "None of the ten"
    ({"label": NONE_HEADLINE, "confidences": probabilities}): they are then only the closest classes."""
    if photo is None:
        return None, "Upload a photo, paste one, use the webcam or click an example.", None
    result = run_model("cifar10", photo, trained)
    top, p = next(iter(result.probabilities.items()))
    with user_errors():
        verdict = openset.judge(classifier_for("cifar10", trained), photo)
    if verdict is not None:
        note = verdict.text(PRESETS["cifar10"].classes) if verdict.none else \
            f"Looks like a **{top}** ({p:.1%}). {verdict.text(PRESETS['cifar10'].classes)}"
    elif p >= LOW_CONFIDENCE:
        note = f"Looks like a **{top}** ({p:.1%})."
    else:
        note = f"Low confidence: best guess **{top}** at {p:.1%}. The photo may not show one of the ten CIFAR-10 " \
            f"classes ({', '.join(PRESETS['cifar10'].classes)})."
    shown = {"label": NONE_HEADLINE, "confidences": result.probabilities} if verdict is not None and verdict.none \
        else result.probabilities
    return shown, note, result


def unreadable(photo):
    """The answer's place after a photo that could not be answered: why, in the note (the toast says it too, and
    goes), and no Top 5, pictures or kept Result, which would otherwise still be the photo before's under the error."""
    try:
        open_image(photo).close()
        reason = "it could not be classified (see the message)"
    except ValueError as e:
        reason = str(e)
    return (None, f"**This file can't be read as a photo**: {reason}. Upload a PNG, JPEG, GIF or WebP picture, "
            "or click an example.", None, None, None, [])


def image_panel(photo, kept=None, trained=None, all_channels=False):
    """(what the network sees, each layer's most active channels, every channel's grids if open) for the photo."""
    return panel(current_result("cifar10", photo, kept, trained), all_channels)


def image_grids(photo, kept=None, trained=None):
    return grids(current_result("cifar10", photo, kept, trained))


def tab(trained: gr.State) -> PhotoInput:
    """Build the tab and wire its events; returns the photo input, which the other tabs read."""
    examples = sorted(EXAMPLES_DIR.glob("cifar10/*.png"))
    with gr.Tab("Classify a photo", id="cifar"):
        kept = gr.State(None)  # this session's last Result, for the pictures that follow the probabilities
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=300):
                photo = PhotoInput(label="A photo: upload, paste or webcam", type="filepath", height=360,
                                   elem_id="photo", sources=["upload", "clipboard", "webcam"])
                if examples:
                    gr.Examples([[str(p)] for p in examples], inputs=photo, label="CIFAR-10 test images",
                                examples_per_page=10)
            with gr.Column(scale=2, min_width=300):
                note = gr.Markdown("Upload a photo, paste one, use the webcam or click an example.")
                label = AnswerLabel(num_top_classes=5, label="Top 5")
                seen = picture("**What the network sees** (32×32 → 50×50)", "What the network sees (32×32 → 50×50)",
                               height=260, elem_id="photo-seen")
        top_maps = top_channels_image(elem_id="photo-top-channels")
        # whether "every channel" is open: a hidden checkbox rather than a State, so that API callers can ask for it
        grids_open = gr.Checkbox(False, visible=False, label="every channel's grids")
        with gr.Accordion("Every channel of every layer", open=False) as every:
            maps = gr.Gallery(label="Feature maps of conv1 … conv5 for this photo (after ReLU)", columns=5,
                              height=300, object_fit="contain", format="png")
    # As many at once as one batched forward takes: concurrent visitors' inputs share a forward (inference.py)
    answer = photo.change(classify_image, [photo, trained], [label, note, kept], api_name="classify_image",
                          concurrency_limit=MAX_BATCH)
    # One worker for all visitors' pictures (this tab's and the other's), so that the probabilities, which come
    # first, never wait behind them (bench/load.py: 20 visitors drawing on 2 cores while a run trains).
    answer.success(image_panel, [photo, kept, trained, grids_open], [seen, top_maps, maps], api_name="image_panel",
                   concurrency_limit=1, concurrency_id="pictures")
    answer.failure(unreadable, photo, [label, note, kept, seen, top_maps, maps], api_name=False, queue=False)
    every.expand(lambda: True, None, grids_open, api_name=False, queue=False).then(
        image_grids, [photo, kept, trained], maps, api_name=False, concurrency_limit=2)
    every.collapse(lambda: False, None, grids_open, api_name=False, queue=False)
    return photo
