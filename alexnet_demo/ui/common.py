"""What the tabs share: this visitor's model or the shipped one, bad input as a message, tagged output pictures."""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import uuid
from contextlib import contextmanager

import gradio as gr
import numpy as np
from PIL import Image

from ..checkpoints import CheckpointError
from ..inference import Classifier, Result, load_classifier
from ..inspection import enlarge, feature_gallery

LOW_CONFIDENCE = 0.5  # below this top probability the answer is shown as "not sure"


@contextmanager
def user_errors(*kinds: type[Exception]):
    """Turn the package's errors about the visitor's input (ValueError and `kinds`) into a message in the page."""
    try:
        yield
    except (ValueError, *kinds) as e:
        raise gr.Error(str(e)) from None


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


def panel(result: Result) -> tuple[Image.Image, list[tuple[Image.Image, str]]]:
    """(what the network sees, enlarged; one feature-map grid per conv layer) for a classify callback."""
    return served(enlarge(result.seen, 224)), [(served(grid), caption)
                                              for grid, caption in feature_gallery(result.feature_maps)]
