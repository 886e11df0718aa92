"""A drawing pad for the page: a plain canvas whose value is its PNG as a data URL, sent once a stroke.

Why not gr.Sketchpad: gradio 6.31's page sends a Sketchpad's three pictures (background, composite, layer) to the
editor and uploads each again for every event it feeds, 3 + 9 requests a stroke before and around the one that
matters, ~2 ms of the app's CPU each (bench/load.py, tests/test_browser.py). This pad's stroke is the event's own
request: the PNG travels inside it, nothing is uploaded.
"""
from __future__ import annotations

import io

import gradio as gr
import numpy as np

from ..preprocessing import data_url_bytes, open_image

PAPER = 480  # the canvas's own pixels a side, as the Sketchpad's canvas_size was (the PNG sent is this size)
BRUSH = 36  # the pen's width in canvas pixels (the Sketchpad's brush: radius 18)

TEMPLATE = """<div class="pad ${value ? '' : 'blank'}">
  <canvas width="PAPER" height="PAPER" aria-label="Drawing area"></canvas>
  <div class="tools">
    <button type="button" class="undo" title="Undo the last stroke">↶ Undo</button>
    <button type="button" class="clear" title="Clear the drawing">✕ Clear</button>
  </div>
</div>""".replace("PAPER", str(PAPER))

CSS = """
/* the top margin keeps gradio's floating label off the paper */
.pad {position: relative; width: 100%; max-width: 560px; margin: 34px auto 0}
/* touch-action: a finger on the paper draws; it does not scroll or zoom the page */
canvas {display: block; width: 100%; aspect-ratio: 1; background: #fff; border: 1px solid var(--border-color-primary);
        border-radius: var(--radius-lg); cursor: crosshair; touch-action: none}
.pad.blank::after {content: "draw here"; position: absolute; inset: 0; display: flex; align-items: center;
                   justify-content: center; color: #c8c8c8; font-size: 22px; pointer-events: none}
.tools {position: absolute; top: 8px; right: 8px; display: flex; gap: 6px}
.tools button {padding: 4px 10px; border-radius: var(--radius-md); border: 1px solid var(--border-color-primary);
               background: var(--background-fill-secondary); color: var(--body-text-color); font-size: 14px}
.tools button:hover {background: var(--background-fill-primary)}
"""

# `element` is this pad, `props.value` its value: setting it fires the component's change event (one request, and the
# template's "blank" class follows it), and `watch` hears the server setting it (None, which reaches the page as "":
# an empty pad, e.g. after an example is added).
JS = """
const canvas = element.querySelector('canvas');
const ctx = canvas.getContext('2d', {willReadFrequently: true});
const undo = [];  // the paper before each stroke or clear, and whether it was blank; the last 30
let last = null, blank = true;
const at = (e) => {
  const box = canvas.getBoundingClientRect();
  return [(e.clientX - box.left) * canvas.width / box.width, (e.clientY - box.top) * canvas.height / box.height];
};
const line = (from, to) => {
  ctx.lineWidth = BRUSH; ctx.lineCap = 'round'; ctx.lineJoin = 'round'; ctx.strokeStyle = '#000';
  ctx.beginPath(); ctx.moveTo(...from); ctx.lineTo(...to); ctx.stroke();
};
const remember = () => {
  undo.push({paper: ctx.getImageData(0, 0, canvas.width, canvas.height), blank});
  if (undo.length > 30) undo.shift();
};
const send = () => {
  props.value = blank ? null : canvas.toDataURL('image/png');  // the template's "blank" class follows it
};
canvas.addEventListener('pointerdown', (e) => {
  if (e.button > 0) return;  // a right or middle click does not draw
  e.preventDefault();
  canvas.setPointerCapture(e.pointerId);
  remember();
  last = at(e);
  line(last, last);
});
canvas.addEventListener('pointermove', (e) => {
  if (!last) return;
  const to = at(e);
  line(last, to);
  last = to;
});
const lift = () => {
  if (!last) return;
  last = null;
  blank = false;
  send();
};
canvas.addEventListener('pointerup', lift);
canvas.addEventListener('pointercancel', lift);
element.querySelector('.undo').addEventListener('click', () => {
  const before = undo.pop();
  if (!before) return;
  ctx.putImageData(before.paper, 0, 0);
  blank = before.blank;
  send();
});
element.querySelector('.clear').addEventListener('click', () => {
  if (blank) return;
  remember();
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  blank = true;
  send();
});
watch('value', () => {
  if (!props.value && !blank) {  // the server emptied the pad (None reaches the page as "")
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    blank = true;
  }
});
""".replace("BRUSH", str(BRUSH))


class DrawingPad(gr.HTML):
    """The pad (gradio 6's way to a custom component: gr.HTML with its template, CSS and JS). Its value on the page
    and for API callers is a PNG as a data URL, None when blank; events receive it decoded, an RGBA uint8 array
    (black ink on transparent), as a Sketchpad's composite was."""

    def __init__(self, label: str, elem_id: str, **kwargs):
        super().__init__(None, label=label, show_label=True, container=True, html_template=TEMPLATE,
                         css_template=CSS, js_on_load=JS, elem_id=elem_id, **kwargs)

    def preprocess(self, payload) -> np.ndarray | None:
        if payload is None or payload == "":
            return None
        try:  # only a data URL: a plain string would be a path on the server
            with open_image(io.BytesIO(data_url_bytes(payload))) as image:
                return np.asarray(image.convert("RGBA"))
        except ValueError as e:
            raise gr.Error(str(e)[:1].upper() + str(e)[1:] + ".") from None

    def api_info(self) -> dict:
        return {"type": "string", "description": "the drawing: a PNG as a data URL (data:image/png;base64,…), "
                "black ink on a transparent or white background; null when blank"}

    def example_payload(self):
        return None

    def example_value(self):
        return None
