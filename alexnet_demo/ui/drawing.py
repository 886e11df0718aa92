"""The Draw tab: a sketchpad whose digit the MNIST model reads after every stroke; the probabilities come first,
then what the network sees and its most active channels (every channel one click away)."""
from __future__ import annotations

import gradio as gr

from ..confidence import doubt
from ..inference import MAX_BATCH
from ..models import MNIST_CLASSES
from .common import current_result, grids, is_blank, panel, picture, run_model, top_channels_image

def select_brush(selector: str, on_clear: str = "") -> str:
    """Page JS for the Sketchpad `selector`: it opens, and comes back from "Clear canvas", with no tool chosen; pick
    the brush so that a visitor can always just draw. `on_clear` is more JS run at once when its bin is clicked."""
    return """() => {
  // Until the editor has mounted and shows the brush as chosen: a busy page mounts it seconds after load, and a
  // single early click left visitors with "select the draw tool to start".
  const idle = (sketch) => sketch.innerText.includes('select the draw tool');
  const brush = (tries) => {
    const sketch = document.querySelector('SKETCH');
    const button = sketch?.querySelector('button[aria-label="Brush"]');
    if (button && idle(sketch)) button.click();
    if (tries > 0 && (!button || idle(sketch))) setTimeout(() => brush(tries - 1), 300);
  };
  // gradio 6.31's Clear resets the canvas to 100% zoom, while it opened "fit to screen" (113% on a desktop page):
  // choose "Fit to screen" in its zoom menu again, so that the paper does not jump
  const fit = () => {
    const zoom = document.querySelector('SKETCH .zoom-number span[role="button"]');
    if (!zoom) return;
    zoom.click();
    setTimeout(() => {
      const item = [...document.querySelectorAll('SKETCH *')].find(
        (e) => e.children.length === 0 && e.textContent.trim() === 'Fit to screen');
      if (item) item.click(); else zoom.click();  // no such item: close the menu again
    }, 50);
  };
  setTimeout(() => brush(60), 300);
  // once per page: this runs again each time its tab is opened, and a second listener re-opened the zoom menu
  window.sketchListeners = window.sketchListeners || {};
  if (window.sketchListeners['SKETCH']) return;
  window.sketchListeners['SKETCH'] = true;
  document.addEventListener('click', (e) => {
    if (e.target.closest('SKETCH button[aria-label="Clear canvas"]')) {
      ON_CLEAR
      setTimeout(() => { fit(); brush(10); }, 300);
    }
  }, true);
}""".replace("SKETCH", selector).replace("ON_CLEAR", on_clear)


# the Draw tab's: on Clear, the old digit's answer goes at once (CSS in app.py; SHOW_ANSWER brings the outputs back)
SELECT_BRUSH = select_brush("#sketch", on_clear="document.body.classList.add('digit-cleared');")
# The server's part of a Clear: every output of the old digit emptied; then the page shows the outputs again
SHOW_ANSWER = "() => { document.body.classList.remove('digit-cleared'); }"


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
    """(sketchpad label, note) when the Draw tab's model changes: a visitor's own classes answer here after the Your
    classes tab trains, and the page should not go on asking for digits."""
    if _digits(trained):
        note = f"{ask(trained)} on the canvas: the answer updates after every stroke."
    else:
        note = (f"Your own model answers here now ({', '.join(trained.classes)}): {ask(trained).lower()}; the answer "
                "updates after every stroke.")
    return gr.update(label=ask(trained)), note


def classify_digit(drawing, trained=None):
    """Sketchpad value -> (probabilities, note, the Result kept for the pictures): the fast half of an answer."""
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


def cleared(trained=None):
    """The Draw tab's outputs for a cleared canvas: (probabilities, note, kept, seen, top channels, every channel)."""
    return ask(trained), f"{ask(trained)} on the canvas.", None, None, None, []


def digit_panel(kept=None, all_channels=False):
    """(what the network sees, each layer's most active channels, every channel's grids if open) of an answer
    (`kept`), without the drawing again: an upload and a decode of three 480x480 PNGs less (bench/load.py)."""
    return panel(kept, all_channels)


def answer_digit(drawing, trained=None, all_channels=False):
    """A stroke's whole answer in one event: the probabilities at once, then its pictures. One event rather than
    two chained ones: gradio 6.31's page uploads the Sketchpad's three pictures again for each event of a chain
    (24 uploads a stroke with the pictures in a .then(), 9 in one event; ~2 ms of the app's CPU each;
    tests/test_browser.py counts them)."""
    label, note, kept = classify_digit(drawing, trained)
    yield label, note, kept, gr.skip(), gr.skip(), gr.skip()  # the old pictures stay until the new ones are drawn
    yield label, note, kept, *digit_panel(kept, all_channels)


def digit_grids(drawing, kept=None, trained=None):
    """Every channel's grids, when the visitor opens that part of the page."""
    return grids(current_result("mnist", drawing, kept, trained))


def tab(trained: gr.State) -> gr.Sketchpad:
    """Build the tab and wire its events; returns the sketchpad, which the other tabs read."""
    with gr.Tab("Draw a digit", id="draw"):
        kept = gr.State(None)  # this session's last Result, for the pictures that follow the probabilities
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=300):
                sketch = gr.Sketchpad(
                    label=ask(), canvas_size=(480, 480), height=600, type="numpy", image_mode="RGBA",
                    elem_id="sketch", brush=gr.Brush(default_size=18, colors=["#000000"], color_mode="fixed"),
                    layers=False)
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
    # As many at once as one batched forward takes: concurrent visitors' inputs share a forward (inference.py)
    sketch.change(answer_digit, [sketch, trained, grids_open], [label, note, kept, seen, top_maps, maps],
                  api_name="classify_digit", show_progress="hidden", concurrency_limit=MAX_BATCH,
                  trigger_mode="always_last")
    # Clear: the page hides the old answer at once (SELECT_BRUSH), the server empties it, then it is shown again
    sketch.clear(cleared, trained, [label, note, kept, seen, top_maps, maps], api_name=False, queue=False,
                 show_progress="hidden").then(None, js=SHOW_ANSWER)
    every.expand(lambda: True, None, grids_open, api_name=False, queue=False).then(
        digit_grids, [sketch, kept, trained], maps, api_name=False, concurrency_limit=2)
    every.collapse(lambda: False, None, grids_open, api_name=False, queue=False)
    trained.change(prompts, trained, [sketch, note], api_name=False, queue=False, show_progress="hidden")
    return sketch
