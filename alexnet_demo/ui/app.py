"""The app assembled: one tab per module, the per-visitor model states, the queue, launch with this app's limits."""
from __future__ import annotations

import threading

import gradio as gr
import torch

from ..checkpoints import CheckpointError
from ..inference import load_classifier
from ..explain_figures import top_channels_panel
from ..inspection import feature_gallery
from ..models import PRESETS
from . import classes, drawing, inside, model, photo, training, why

# gradio refuses larger uploads before they reach a callback. 100 MB: a zip of your classes (the workspace takes up
# to 50 MB) and a checkpoint of your MNIST-based model (~94 MB in float16) to continue from must get through;
# pictures are capped at 40 MP by the package.
MAX_FILE_SIZE = "100mb"

INTRO = """# AlexNet, live
Draw a digit and watch an AlexNet trained on MNIST read it stroke by stroke; show it a photo; look at what
every convolutional layer responds to; train your own and watch it learn."""

CSS = """
#photo img {width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated}  /* 32 px examples, large */
.gallery-item .caption-label {font-size: 12px}
/* from the moment the pad is cleared until the server's empty answer arrives: no old digit's pictures */
body:has(#sketch .pad.blank) :is(#digit-seen, #digit-top-channels) img {visibility: hidden}
@media (max-width: 640px) {  /* a phone */
  /* gradio's floating label sat over the photo; the tab and icons name it */
  #photo > label[data-testid="block-label"] {display: none}
  .picture .icon-button-wrapper {display: none}  /* over the top-channels panel's conv1 row; fingers zoom anyway */
}
"""


def build_demo() -> gr.Blocks:
    """The whole app; nothing is loaded or trained until a visitor asks."""
    # delete_cache: output files older than an hour are swept every 30 min, so a busy Space's disk stays bounded
    with gr.Blocks(title="AlexNet, live", delete_cache=(1800, 3600)) as demo:
        # This visitor's models (None: the shipped ones), per browser session
        trained_mnist, trained_cifar, trained_last = gr.State(None), gr.State(None), gr.State(None)
        gr.Markdown(INTRO)
        with gr.Tabs(overflow_behavior="wrap"):  # a phone shows every tab (in rows), not one and a "…" menu
            sketch = drawing.tab(trained_mnist)
            image = photo.tab(trained_cifar)
            inside.tab(sketch, image, trained_mnist, trained_cifar)
            why.tab(sketch, image, trained_mnist, trained_cifar)
            training.tab(trained_last, trained_mnist, trained_cifar, sketch, image)
            classes.tab(trained_mnist, trained_cifar)
            model.tab()
    demo.queue(default_concurrency_limit=4)
    return demo


def warm_up() -> None:
    """Load the shipped models, choose each one's number format by measuring it on this CPU (bf16 only where
    faster and answering as fp32 does: precision.py), and run one forward each, so that the first visitor's stroke
    is answered at full speed (loading 94 MB and oneDNN's first-call setup take seconds). Missing checkpoints are
    reported by the callbacks that need them, not here."""
    for preset in ("mnist", "cifar10"):
        try:
            classifier = load_classifier(preset)
        except CheckpointError:
            continue
        classifier.use_best_format()
        blank = torch.zeros(PRESETS[preset].in_channels, 28, 28, dtype=torch.uint8)
        blank[:, 4:24, 12:16] = 255  # a stroke, so that the digit path runs end to end
        maps = classifier.run(blank.permute(1, 2, 0).numpy()).feature_maps
        feature_gallery(maps), top_channels_panel(maps)  # and the panel's pictures


def launch(demo: gr.Blocks, **kwargs):
    """Launch with this app's limits: upload size cap; files served only from the app's own folders. The models
    warm up in a background thread while the server starts."""
    # not a daemon: a process that exits during the warm-up waits for its forward to end, where a daemon thread was
    # killed inside it and the process aborted ("terminate called without an active exception", exit status 134)
    threading.Thread(target=warm_up, name="warm-up").start()
    kwargs.setdefault("show_error", True)
    return demo.launch(max_file_size=MAX_FILE_SIZE, theme=gr.themes.Soft(), css=CSS, **kwargs)
