"""What the tabs share: this visitor's model or the shipped one, bad input as a message, tagged output pictures."""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import base64
import io
import uuid
from contextlib import contextmanager

import gradio as gr
import numpy as np
from gradio.data_classes import ImageData
from PIL import Image

from ..checkpoints import CheckpointError
from ..inference import Classifier, Result, load_classifier
from ..explain_figures import top_channels_panel
from ..inspection import enlarge, feature_gallery

@contextmanager
def user_errors(*kinds: type[Exception]):
    """Turn the package's errors about the visitor's input (ValueError and `kinds`) into a message in the page."""
    try:
        yield
    except (ValueError, *kinds) as e:
        raise gr.Error(str(e)) from None


class InlineImage(gr.Image):
    """An output picture sent inside the answer, as a PNG data URL, rather than saved to gradio's cache and fetched
    by the page with a request of its own (as gr.Image's SVGs are): a stroke's answer is one request instead of three,
    and no cache file is written that two visitors could share. API callers get {"url": "data:image/png;base64,…"}
    in place of a file. PNG at compress_level 1: the top channels (552×476) in 0.7 ms and 13 kB against 2.2 ms and
    9 kB at PIL's default (AMD EPYC)."""

    is_template = True  # the page draws it with gr.Image's own frontend (as gradio's templates, e.g. gr.Sketchpad)

    def postprocess(self, value: np.ndarray | Image.Image | None) -> ImageData | None:
        if value is None:
            return None
        image = value if isinstance(value, Image.Image) else Image.fromarray(value)
        buffer = io.BytesIO()
        image.save(buffer, "PNG", compress_level=1)
        return ImageData(url="data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode(),
                         orig_name="picture.png", mime_type="image/png")


def picture(heading: str, label: str, **kwargs) -> InlineImage:
    """An output picture under a heading of its own rather than gradio's floating label, which covers the picture's
    top (the top-channels panel's first row of channel numbers; on a phone, half a 28×28 digit). `label` names it
    for the API; class "picture" lets a phone hide its toolbar (app.CSS)."""
    gr.Markdown(heading)
    return InlineImage(label=label, show_label=False, interactive=False, buttons=["download", "fullscreen"],
                       format="png", elem_classes=["picture"], **kwargs)


def top_channels_image(**kwargs) -> InlineImage:
    """The Draw and Photo tabs' picture of each layer's most active channels."""
    return picture("**Each layer's 6 most active channels** (#channel number; the Why? tab uses them)",
                   "Each layer's 6 most active channels", **kwargs)


def classifier_for(preset: str, trained: Classifier | None) -> Classifier:
    """This visitor's trained model if they chose one, else the shipped checkpoint."""
    if trained is not None:
        return trained
    try:
        return load_classifier(preset)
    except CheckpointError as e:
        raise gr.Error(f"No {preset} model is available: {e}. Train one in the Train tab.") from None


def run_model(preset: str, image, trained: Classifier | None, maps: bool = True) -> Result:
    with user_errors():
        return classifier_for(preset, trained).run(image, maps=maps)


def is_blank(value) -> bool:
    """No input at all, or a Sketchpad cleared with its bin button (its composite is None)."""
    return value is None or (isinstance(value, dict) and value.get("composite") is None)


def served(picture: np.ndarray | Image.Image) -> Image.Image:
    """An output picture tagged with a per-response id (a PNG text chunk; the pixels are untouched).

    gradio 6.31 stores an output image under the hash of its bytes and rewrites that file, not atomically, on
    every response; two visitors getting the same picture at once (the same example, or digits that normalise
    alike) could be served a half-written file. The tag gives every response its own files.
    """
    image = picture if isinstance(picture, Image.Image) else Image.fromarray(picture)
    image.info["response"] = uuid.uuid4().hex
    return image


def current_result(preset: str, image, kept: Result | None, trained: Classifier | None) -> Result | None:
    """The Result for `image`: `kept` (what the probabilities event just computed for this session) when it is of
    this very input (its preprocessed picture is cheap to compare), else one forward now. None: nothing to show."""
    if is_blank(image):
        return None
    classifier = classifier_for(preset, trained)
    with user_errors():
        seen = classifier.preprocess(image)
    if seen is None:
        return None
    if kept is not None and kept.feature_maps and kept.seen is not None and np.array_equal(kept.seen, seen):
        return kept
    return run_model(preset, image, trained)


def grids(result: Result | None) -> list[tuple[Image.Image, str]]:
    """Every channel of every conv layer, one grid per layer, for the gallery behind "every channel"."""
    return [] if result is None else [(served(grid), caption) for grid, caption in feature_gallery(result.feature_maps)]


def panel(result: Result | None, all_channels: bool):
    """The pictures of an answer: (what the network sees, enlarged; each layer's most active channels, large and
    numbered; every channel's grid when that part of the page is open, else none: opening it draws them).

    Not gr.skip() for a closed gallery: gradio 6.31 answers an update by building a new Gallery and its API schema
    for the session (pydantic's JSON schema, ~5 ms of the GIL), which was the largest single cost of a stroke's
    answer under load (py-spy, bench/load.py); an empty list is a plain value."""
    if result is None:
        return None, None, []
    return (enlarge(result.seen, 224), top_channels_panel(result.feature_maps),
            grids(result) if all_channels else [])
