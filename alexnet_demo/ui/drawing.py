"""The Draw tab: a drawing pad whose digit the MNIST model reads after every stroke: the probabilities, what the
network sees and its most active channels (every channel one click away)."""
from __future__ import annotations

import gradio as gr

from ..confidence import doubt
from ..models import MNIST_CLASSES
from .common import current_result, grids, is_blank, panel, picture, run_model, top_channels_image
from .pad import DrawingPad


def _digits(trained) -> bool:
    """Whether the Draw tab's model reads digits (the shipped one, a Train tab run), not a visitor's own classes."""
    return trained is None or tuple(trained.classes) == tuple(MNIST_CLASSES)


def ask(trained=None) -> str:
    """What to draw for the model that answers: a digit, or one of a visitor's own classes (Your classes tab)."""
    if _digits(trained):
        return "Draw a digit 0–9"
    names = list(trained.classes)
    return "Draw a " + (names[0] if len(names) == 1 else ", a ".join(names[:-1]) + " or a " + names[-1])


def prompts(trained=None):
    """(pad label, note) when the Draw tab's model changes: a visitor's own classes answer here after the Your
    classes tab trains, and the page should not go on asking for digits."""
    if _digits(trained):
        note = f"{ask(trained)} on the canvas: the answer updates after every stroke."
    else:
        note = (f"Your own model answers here now ({', '.join(trained.classes)}): {ask(trained).lower()}; the answer "
                "updates after every stroke.")
    return gr.update(label=ask(trained)), note


def classify_digit(drawing, trained=None):
    """The drawing (RGBA) -> (probabilities, note, the Result kept for the pictures): the fast half of an answer."""
    if is_blank(drawing):
        return ask(trained), f"{ask(trained)} on the canvas.", None
    result = run_model("mnist", drawing, trained)
    if not result.probabilities:
        return ask(trained), f"Nothing drawn yet: {ask(trained).lower()} on the canvas.", None
    top, p = next(iter(result.probabilities.items()))
    reason = doubt(drawing, result.probabilities)  # measured on letters, scribbles and blobs: see confidence.py
    note = f"It reads **{top}** ({p:.1%})." if reason is None else \
        f"Not sure ({reason}): perhaps **{top}**. Try a bigger, clearer digit."
    return result.probabilities, note, result


def answer_digit(drawing, trained=None, all_channels=False):
    """A stroke's whole answer in one event and one message: the probabilities with their pictures (a cleared pad:
    the prompt and no pictures). Not a generator streaming the probabilities first: its first message had to keep
    the old pictures with gr.skip(), which gradio 6.31 answers by building new Image and Gallery components for the
    session, and a second message costs its own round: 49 -> 40 ms of the app's CPU a stroke under 40 visitors
    (bench/load.py); one visitor alone had seen the pictures 13 ms (p50) after the probabilities."""
    label, note, kept = classify_digit(drawing, trained)
    return label, note, kept, *panel(kept, all_channels)


def digit_grids(drawing, kept=None, trained=None):
    """Every channel's grids, when the visitor opens that part of the page."""
    return grids(current_result("mnist", drawing, kept, trained))


def tab(trained: gr.State) -> DrawingPad:
    """Build the tab and wire its events; returns the pad, which the other tabs read."""
    with gr.Tab("Draw a digit", id="draw"):
        kept = gr.State(None)  # this session's last Result: opening every channel's grids draws them from it
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=300):
                sketch = DrawingPad(ask(), "sketch")
            with gr.Column(scale=2, min_width=300):
                note = gr.Markdown(prompts()[1], elem_id="digit-note")
                label = gr.Label(num_top_classes=10, label="Probabilities", value=ask(), elem_id="digit-label")
                seen = picture("**What the network sees** (28×28, MNIST-style)",
                               "What the network sees (28×28, MNIST-style)", height=260, elem_id="digit-seen")
        top_maps = top_channels_image(elem_id="digit-top-channels")
        # whether "every channel" is open: a hidden checkbox rather than a State, so that API callers can ask for it
        grids_open = gr.Checkbox(False, visible=False, label="every channel's grids")
        with gr.Accordion("Every channel of every layer", open=False) as every:
            maps = gr.Gallery(label="Feature maps of conv1 … conv5 for this drawing (after ReLU)", columns=5,
                              height=300, object_fit="contain", format="png")
    # Off the queue: the page POSTs the stroke and gets its answer in that one request's reply (the queue's join and
    # event stream cost the app ~3 ms of CPU a stroke, 41 -> 38 ms under 30-50 visitors, bench/load.py). Concurrent
    # visitors' inputs still share one batched forward of up to MAX_BATCH (inference.py).
    sketch.change(answer_digit, [sketch, trained, grids_open], [label, note, kept, seen, top_maps, maps],
                  api_name="classify_digit", show_progress="hidden", queue=False, trigger_mode="always_last")
    every.expand(lambda: True, None, grids_open, api_name=False, queue=False).then(
        digit_grids, [sketch, kept, trained], maps, api_name=False, concurrency_limit=2)
    every.collapse(lambda: False, None, grids_open, api_name=False, queue=False)
    trained.change(prompts, trained, [sketch, note], api_name=False, queue=False, show_progress="hidden")
    return sketch
