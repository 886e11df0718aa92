"""The Why? tab: where the network looked (Grad-CAM, occlusion), what moves its answer (a perturbation probe, channel
ablation), and what each channel likes (its favourite test images), for the current drawing or photo."""
from __future__ import annotations

import os
import re

import gradio as gr

from .. import ablation, channels, explain, openset
from ..data import DataNotFoundError, load_dataset
from ..explain_figures import ablation_figure, attribution_figure, probe_figure
from ..models import CONV_LAYERS, PRESETS, layer_table
from .common import classifier_for, is_blank, user_errors

SOURCES = ("Drawing", "Photo")
PREDICTED = "the predicted class"
CHANNELS = {row["layer"].removeprefix("features."): row["output"][0] for row in layer_table("mnist")
            if row["type"] == "Conv2d"}  # conv1 … conv5: 96, 256, 384, 384, 256 channels (cifar10 alike)
INDEX_SUBSET = 2000  # test images searched when a visitor's own model gets a channel index


def _preset(source: str) -> str:
    if source not in SOURCES:
        raise gr.Error(f"source must be one of {SOURCES}, not {source!r}")
    return "mnist" if source == "Drawing" else "cifar10"


def _subject(source, drawing, photo, trained_mnist, trained_cifar):
    """(classifier, image) for the chosen source; a clear message when there is nothing to explain yet."""
    preset = _preset(source)
    image, trained = (drawing, trained_mnist) if preset == "mnist" else (photo, trained_cifar)
    if is_blank(image):
        raise gr.Error("Draw a digit in the Draw tab first." if preset == "mnist" else
                       "Upload a photo (or click an example) in the Photo tab first.")
    return classifier_for(preset, trained), image


def explain_answer(source, drawing, photo, target=PREDICTED, layer="conv5", trained_mnist=None, trained_cifar=None):
    """Grad-CAM at `layer` and occlusion, for `target` (a class name, or the predicted class): (figure, caption)."""
    classifier, image = _subject(source, drawing, photo, trained_mnist, trained_cifar)
    target = None if target in (None, "", PREDICTED) else target
    with user_errors():
        cam = explain.grad_cam(classifier, image, target=target, layer=layer)
        occluded = explain.occlusion(classifier, image, target=cam.target)
    caption = (f"It answers **{cam.predicted}**. The maps explain **{cam.target_name}** "
               f"(P = {cam.probability:.1%}): bright = where the evidence for it lies.")
    return attribution_figure(cam, occluded), caption + openset_line(classifier, image)


def openset_line(classifier, image) -> str:
    """The open-set score of a photo, as the Photo tab judges it: score, threshold, a face, digit or ink found,
    verdict; "" for a model without an open-set file (a visitor's own, the drawings')."""
    with user_errors():
        verdict = openset.judge(classifier, image)
    if verdict is None:
        return ""
    found = {"face": ", but a face detector finds a person's face",
             "digit": f", but the digit model reads a {verdict.digit[0]} at {verdict.digit[1]:.1%}",
             "two-toned": ", but two gray levels make up almost all of it (ink on paper or a sign)"}
    return (f" Open-set score: a detector fitted on training photos and on photos of other things scores its "
            f"layers' activity **{verdict.score:+.1f}** (higher: less like the ten; threshold "
            f"{verdict.threshold:+.1f}){found.get(verdict.reason, '')}, "
            "so the Photo tab calls it "
            + ("**none of the ten** (closest: " + verdict.closest + ")." if verdict.none else "**one of the ten**."))


def probe_answer(source, drawing, photo, transform="rotation", trained_mnist=None, trained_cifar=None):
    """Every class's probability as one transformation of the input is swept: (figure, summary)."""
    classifier, image = _subject(source, drawing, photo, trained_mnist, trained_cifar)
    with user_errors():
        result = explain.probe(classifier, image, transform)
    return probe_figure(result), f"It {result.summary}."


def parse_channels(text: str | None) -> list[int]:
    """ "12, 40 7" -> [12, 40, 7]; a clear message for anything that is not a channel number."""
    words = [w for w in re.split(r"[\s,;]+", text or "") if w]
    bad = [w for w in words if not w.isdigit()]
    if bad:
        raise gr.Error(f"channels must be whole numbers separated by commas, not {', '.join(bad)}")
    return [int(w) for w in words]


def ablate_answer(source, drawing, photo, layer="conv5", k=0, channel_numbers="", trained_mnist=None,
                  trained_cifar=None):
    """Switch off `layer`'s `k` most active channels and those named: (figure, caption)."""
    classifier, image = _subject(source, drawing, photo, trained_mnist, trained_cifar)
    if k is None or not float(k).is_integer():
        raise gr.Error(f"k must be a whole number, not {k!r}")
    with user_errors():
        result = ablation.ablate(classifier, image, layer, k=int(k), channels=parse_channels(channel_numbers))
    top = result.classes[result.top]
    after = result.classes[int(result.ablated.argmax())]
    caption = (f"{len(result.switched_off)} of {layer}'s channels off: P({top}) {result.original[result.top]:.1%} → "
               f"{result.ablated[result.top]:.1%}; it now answers **{after}**. The weights are untouched.")
    if ablation.largest(result) < ablation.NEGLIGIBLE:
        caption += (f" No single channel matters here: switching any one of them off changes P({top}) by "
                    f"{100 * ablation.largest(result):.2g} percentage points at most.")
    return ablation_figure(result), caption


def _index_for(classifier, own: dict | None):
    """The channel index of `classifier`: beside a shipped checkpoint, or the one built for this visitor's model."""
    if own is not None and own.get("model") is classifier.model:
        return own["index"]
    path = channels.index_path_for(classifier.source) if classifier.source else None
    if path is None:
        raise channels.ChannelIndexNotFound("your own model has no channel index yet: press *Build it* to search "
                                            f"{INDEX_SUBSET:,} test images for each channel's favourites")
    return channels.load_index(path)


def _most_active(classifier, image, layer: str) -> int:
    """The channel of `layer` most active (mean activation) for the current input; 0 when there is none."""
    if is_blank(image):
        return 0
    with user_errors():
        maps = classifier.run(image).feature_maps
    return int(maps[layer].mean(dim=(1, 2)).argmax()) if layer in maps else 0


def channel_answer(source, drawing=None, photo=None, layer="conv5", channel=None, trained_mnist=None,
                   trained_cifar=None, own=None):
    """The channel's 9 favourite test images with its activation over each: (figure, caption). No channel given:
    the one most active for the current drawing or photo."""
    preset = _preset(source)
    classifier = classifier_for(preset, trained_mnist if preset == "mnist" else trained_cifar)
    if layer not in CHANNELS:
        raise gr.Error(f"layer {layer!r} does not exist: choose one of {list(CHANNELS)}")
    picked = channel is None or str(channel).strip() == ""
    if picked:
        channel = _most_active(classifier, drawing if preset == "mnist" else photo, layer)
    elif not str(channel).strip().isdigit():
        raise gr.Error(f"channel must be a whole number, not {channel!r}")
    try:
        index = _index_for(classifier, own)
    except channels.ChannelIndexNotFound as e:
        raise gr.Error(str(e).splitlines()[0]) from None
    with user_errors():
        examples = channels.channel_examples(index, layer, int(channel))
    caption = (f"{layer} channel {int(channel)} of the {preset} model"
               + (" (the most active for your input)" if picked else "")
               + f": the {len(examples.images)} test images that excite it most, of {examples.images_used:,} "
               f"searched; magma = its activation over each.")
    return channels.channel_figure(examples), caption


def build_own_index(source, trained_mnist=None, trained_cifar=None):
    """Index this visitor's own model on a test subset (kept in their session only): (state, note)."""
    preset = _preset(source)
    trained = trained_mnist if preset == "mnist" else trained_cifar
    if trained is None:
        raise gr.Error("The shipped model's index is already there; this is for a model you trained.")
    with user_errors(DataNotFoundError, OSError):
        dataset = load_dataset(preset, "test", os.environ.get("ALEXNET_DEMO_DATA"))
        index = channels.build_index(trained, dataset, limit=INDEX_SUBSET)
    return {"model": trained.model, "index": index}, f"Indexed your model on {INDEX_SUBSET:,} test images."


def _class_choices(source: str, trained_mnist=None, trained_cifar=None):
    """The classes of the model that answers for `source`: the visitor's own (their class names) or the shipped."""
    trained = trained_mnist if _preset(source) == "mnist" else trained_cifar
    classes = trained.classes if trained is not None else PRESETS[_preset(source)].classes
    return gr.update(choices=[PREDICTED, *classes], value=PREDICTED)


def _transform_choices(source: str):
    return gr.update(choices=list(explain.transforms_for(_preset(source))), value="rotation")


def tab(sketch, photo, trained_mnist: gr.State, trained_cifar: gr.State) -> None:
    with gr.Tab("Why?", id="why") as why_tab:
        own_index = gr.State(None)  # {"model", "index"} for this visitor's own model, this session only
        gr.Markdown("Why does it answer as it does? Each view works on your current drawing (Draw tab) or photo "
                    "(Photo tab), with the shipped model or the one you trained.")
        source = gr.Radio(list(SOURCES), value="Drawing", label="Explain the answer for my")
        with gr.Accordion("1 · Where it looked", open=True):
            with gr.Row():
                # choices follow the source in the page; API callers may name any class (the callback checks it)
                target = gr.Dropdown([PREDICTED, *PRESETS["mnist"].classes], value=PREDICTED, allow_custom_value=True,
                                     label="Explain the evidence for", info="why 7 … and why not 1?")
                cam_layer = gr.Dropdown(list(CONV_LAYERS), value="conv5", label="Grad-CAM layer",
                                        info="conv3–4: finer maps")
                explain_button = gr.Button("Explain", variant="primary")
            explain_caption = gr.Markdown()
            explain_plot = gr.Plot(show_label=False, elem_id="why-explain")
        with gr.Accordion("2 · What moves the answer: sweep one change", open=True):
            with gr.Row():
                transform = gr.Dropdown(list(explain.transforms_for("mnist")), value="rotation",
                                        allow_custom_value=True, label="Transformation")
                probe_button = gr.Button("Sweep", variant="primary")
            probe_caption = gr.Markdown()
            probe_plot = gr.Plot(show_label=False, elem_id="why-probe")
        with gr.Accordion("3 · Switch channels off", open=True):
            with gr.Row():
                ablate_layer = gr.Dropdown(list(CONV_LAYERS), value="conv5", label="Layer")
                k = gr.Slider(0, 64, value=8, step=1, label="Switch off its k most active channels")
                channel_numbers = gr.Textbox(label="… and these channels", placeholder="e.g. 12, 40")
                ablate_button = gr.Button("Switch off", variant="primary")
            ablate_caption = gr.Markdown()
            ablate_plot = gr.Plot(show_label=False, elem_id="why-ablate")
        with gr.Accordion("4 · What a channel likes: its favourite test images", open=True):
            with gr.Row():
                channel_layer = gr.Dropdown(list(CONV_LAYERS), value="conv5", label="Layer")
                # text, not gr.Number: a Number shows 0 when empty, and empty means "the most active for your input"
                channel = gr.Textbox(value="", label="Channel number", placeholder="e.g. 41",
                                     info="empty: the most active one for your input")
                channel_button = gr.Button("Show", variant="primary")
                build_button = gr.Button("Build it (your own model)")
            channel_caption = gr.Markdown()
            channel_plot = gr.Plot(show_label=False, elem_id="why-channel")
    images = [sketch, photo]
    states = [trained_mnist, trained_cifar]
    explain_button.click(explain_answer, [source, *images, target, cam_layer, *states],
                         [explain_plot, explain_caption], api_name="explain", concurrency_limit=2)
    probe_button.click(probe_answer, [source, *images, transform, *states], [probe_plot, probe_caption],
                       api_name="probe", concurrency_limit=2)
    ablate_button.click(ablate_answer, [source, *images, ablate_layer, k, channel_numbers, *states],
                        [ablate_plot, ablate_caption], api_name="ablate", concurrency_limit=2)
    channel_button.click(channel_answer, [source, *images, channel_layer, channel, *states, own_index],
                         [channel_plot, channel_caption], api_name="channel_examples", concurrency_limit=2)
    build_button.click(build_own_index, [source, *states], [own_index, channel_caption], api_name=False,
                       concurrency_limit=1)
    # the class list follows the model: the source chosen, and a model trained or chosen since (Train, Your classes)
    source.change(_class_choices, [source, *states], target, api_name=False, queue=False)
    why_tab.select(_class_choices, [source, *states], target, api_name=False, queue=False)
    source.change(_transform_choices, source, transform, api_name=False, queue=False)
    ablate_layer.change(lambda layer: gr.update(maximum=CHANNELS[layer]), ablate_layer, k, api_name=False,
                        queue=False)
