"""Why this answer: Grad-CAM and occlusion maps (Captum) and sweeps of one transformation (ablation: ablation.py)."""
from __future__ import annotations

import copy
import math
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam, Occlusion
from torch import nn

from .data import prepare_batch
from .models import CONV_LAYERS, PRESETS, feature_taps
from .sweeps import SWEEPS, native_float, sweep_values, transformed, transforms_for  # noqa: F401 (re-exported)

# ---- checking what was asked ---------------------------------------------------------------------------------


def seen_image(classifier, image) -> np.ndarray:
    """What the network sees (uint8, native size); ValueError when there is nothing to explain."""
    seen = classifier.preprocess(image)
    if seen is None:
        raise ValueError("nothing drawn: draw a digit first, there is nothing to explain")
    return seen


def class_index(classifier, target, default: int) -> int:
    """`target` as a class index: None (the default, usually the predicted class), an index or a class name."""
    if target is None:
        return default
    names = list(classifier.classes)
    if isinstance(target, str) and target in names:
        return names.index(target)
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool) and 0 <= target < len(names):
        return int(target)
    raise ValueError(f"class {target!r} does not exist: give one of {names} or an index 0-{len(names) - 1}")


def check_layer(layer: str) -> str:
    if layer not in CONV_LAYERS:
        raise ValueError(f"layer {layer!r} does not exist: choose one of {list(CONV_LAYERS)}")
    return layer


def to_uint8(native: torch.Tensor) -> np.ndarray:
    """float (N, C, h, w) in [0, 1] -> uint8 (N, h, w) or (N, h, w, 3), as `Classifier.preprocess` gives them."""
    array = (native.clamp(0, 1) * 255).round().to(torch.uint8)
    return array[:, 0].numpy() if array.shape[1] == 1 else array.permute(0, 2, 3, 1).numpy()


@torch.inference_mode()
def probabilities(classifier, native: torch.Tensor) -> torch.Tensor:
    """Softmax of a batch of native-size float images (N, C, h, w) in [0, 1]: resize + normalize, then forward."""
    x = prepare_batch(native * 255, classifier.preset, classifier.input_size, channels_last=True)
    return classifier.model(x).float().softmax(1)  # (N, classes)


# ---- Grad-CAM and occlusion (Captum) -------------------------------------------------------------------------


@dataclass
class Attribution:
    method: str  # "Grad-CAM" or "occlusion"
    heat: np.ndarray  # (h, w) float32 at the native size of `seen`, >= 0; what it measures is `label`
    seen: np.ndarray  # what the network sees, uint8 (h, w) or (h, w, 3)
    target: int  # the class explained
    target_name: str
    probability: float  # P(target) for this input
    predicted: str  # the top class, for the title
    label: str  # the colour bar's label: what the heat measures, in which unit


HOOKS = threading.Lock()  # one Captum call at a time on the copy: two would each see the other's hooks fire


@lru_cache(maxsize=4)
def hookable(model: nn.Module) -> nn.Module:
    """The model's own modules copied, its parameters and buffers shared: Captum's hooks go on this copy (under
    HOOKS), so the app's other requests running the original at the same time never fire them."""
    shared = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return copy.deepcopy(model, memo=shared)


def cam_module(model: nn.Module, layer: str) -> nn.Module:
    """Where Grad-CAM looks for `layer`: its ReLU when one follows the tap directly (mnist; cifar10 conv3-4), so
    the map is the rectified one at the conv's resolution; else the tap (cifar10 conv1-2: BatchNorm, pooled before
    the ReLU; conv5: pooled to 1x1 before the ReLU)."""
    names = [name for name, _ in model.features.named_children()]
    tap = feature_taps(model)[layer]
    after = names[names.index(tap) + 1] if names.index(tap) + 1 < len(names) else None
    chosen = after if after and isinstance(model.features.get_submodule(after), nn.ReLU) else tap
    return model.features.get_submodule(chosen)


def grad_cam(classifier, image, target=None, layer: str = "conv5") -> Attribution:
    """Grad-CAM (Selvaraju et al. 2017) of `target` (None: the predicted class) at `layer`, ReLU'd and upsampled
    to what the network sees (28x28 / 32x32). Gradients of the class's logit, as in the paper: a confident
    softmax saturates and would leave almost no gradient to show."""
    seen, layer = seen_image(classifier, image), check_layer(layer)
    asked = None if target is None else class_index(classifier, target, 0)
    x = classifier.to_batch(seen)  # (1, C, S, S), normalized
    model = hookable(classifier.model)
    kept = {}

    def logits_of(batch):  # Captum's one forward: keep the probabilities; no class asked: the predicted one's
        logits = model(batch)
        kept["p"] = logits.detach()[0].float().softmax(0)
        return logits if asked is not None else logits.gather(1, logits.argmax(1, keepdim=True))

    with HOOKS, torch.enable_grad():
        cam = LayerGradCam(logits_of, cam_module(model, layer))
        heat = cam.attribute(x, target=asked or 0, relu_attributions=True)  # (1, 1, h, w), the layer's resolution
    p = kept["p"]
    predicted = int(p.argmax())
    target = predicted if asked is None else asked
    heat = place(heat.detach().float(), layer_extent(model, layer, classifier.input_size), classifier.input_size,
                 seen.shape[0])
    name = classifier.classes[target]
    return Attribution("Grad-CAM", heat, seen, target, name, float(p[target]), classifier.classes[predicted],
                       f"Grad-CAM at {layer} for the “{name}” logit (relative)")


def layer_extent(model: nn.Module, layer: str, input_size: int) -> tuple[float, float]:
    """The span of input px (0 .. input_size) that `layer`'s map covers, from its first cell's centre to its last's,
    half a cell beyond each: receptive-field arithmetic. Padding and pooling shift the grid, so it is not the whole
    input: mnist conv5's 12 cells are centred 16 .. 192 px of 224, not spread evenly over 0 .. 224."""
    first, jump, size = 0.0, 1.0, input_size  # first cell's centre (px index), cell spacing (px), cells
    for name, module in model.features.named_children():
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
            k, stride, pad = (v[0] if isinstance(v, tuple) else v for v in (module.kernel_size, module.stride,
                                                                              module.padding))
            first += ((k - 1) / 2 - pad) * jump
            jump *= stride
            size = (size + 2 * pad - k) // stride + 1
        if name == feature_taps(model)[layer]:
            break
    return first + 0.5 - jump / 2, first + 0.5 + (size - 1) * jump + jump / 2


def place(heat: torch.Tensor, extent: tuple[float, float], input_size: int, native: int) -> np.ndarray:
    """A layer's (1, 1, h, w) map upsampled (Captum's LayerAttribution.interpolate) onto the native px it covers
    and set into a (native, native) frame, zero where it does not reach: float32, >= 0."""
    a, b = (round(v * native / input_size) for v in extent)
    span = b - a
    up = LayerAttribution.interpolate(heat, (span, span), interpolate_mode="bilinear")[0, 0].clamp(min=0)
    frame = torch.zeros(native, native)
    lo, hi = max(a, 0), min(b, native)  # the part of the span inside the frame
    frame[lo:hi, lo:hi] = up[lo - a:hi - a, lo - a:hi - a]
    return frame.numpy()


def occlusion_window(preset: str) -> tuple[int, int]:
    """(window, stride) in native px: 7/3 on a 28x28 digit (at most 36 occluded copies over its 20x20 box), 8/4 on
    a 32x32 photo (49): a drawing's strokes are 2-3 px wide, a photo's objects fill the frame."""
    return (7, 3) if preset == "mnist" else (8, 4)


def occlusion(classifier, image, target=None, window: int | None = None, stride: int | None = None) -> Attribution:
    """Occlusion (Zeiler & Fergus 2014) on what the network sees: each `window` x `window` patch (native px,
    every `stride` px) is set to the background (black digit paper; the CIFAR-10 mean colour for photos) and the
    drop in P(target) is averaged over the patches covering each pixel. Model-agnostic: no gradients.
    Patches slide over the box of pixels that differ from the background only: hiding background changes
    nothing, so a drawn digit needs 12-36 forwards instead of 64 (pixels outside the box get 0)."""
    seen = seen_image(classifier, image)
    default_window, default_stride = occlusion_window(classifier.preset)
    window, stride = window or default_window, stride or default_stride
    native = native_float(seen)  # (1, C, S, S)
    c, size = native.shape[1], native.shape[-1]
    if not 1 <= stride <= window <= size:
        raise ValueError(f"need 1 <= stride <= window <= {size} px, not window {window}, stride {stride}")
    p = probabilities(classifier, native)[0]
    predicted = int(p.argmax())
    target = class_index(classifier, target, predicted)
    background = torch.zeros(1, c, 1, 1) if classifier.preset == "mnist" else \
        torch.tensor(PRESETS["cifar10"].mean).view(1, 3, 1, 1)
    differs = (native != background).any(1)[0]  # (S, S)
    rows, cols = torch.nonzero(differs.any(1)).flatten(), torch.nonzero(differs.any(0)).flatten()
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    box = native[:, :, top:bottom, left:right]  # (1, C, h, w): what occlusion can change
    h, w = box.shape[-2:]
    shape = (c, min(window, h), min(window, w))

    def pasted(batch):  # (N, C, h, w) occluded boxes -> P(class) of the whole picture with each pasted in
        whole = native.repeat(len(batch), 1, 1, 1)
        whole[:, :, top:bottom, left:right] = batch
        return probabilities(classifier, whole)

    count = math.ceil(max(h - shape[1], 0) / stride + 1) * math.ceil(max(w - shape[2], 0) / stride + 1)
    with torch.inference_mode():
        drop = Occlusion(pasted).attribute(box, sliding_window_shapes=shape, strides=(c, stride, stride),
                                           baselines=background.expand_as(box).contiguous(), target=target,
                                           perturbations_per_eval=count)  # every occluded copy in one batch
    heat = torch.zeros(size, size)
    heat[top:bottom, left:right] = drop[0].mean(0).clamp(min=0)  # drops only: a rise = it hid counter-evidence
    name = classifier.classes[target]
    return Attribution("occlusion", heat.numpy(), seen, target, name, float(p[target]),
                       classifier.classes[predicted], f"drop in P({name}) when a {window}×{window} px patch is hidden")


# ---- probing one transformation ------------------------------------------------------------------------------


@dataclass
class Probe:
    transform: str
    unit: str
    values: np.ndarray  # (V,) the swept values
    probabilities: np.ndarray  # (V, classes) every class's probability at each value
    classes: tuple[str, ...]
    identity: int  # index of the untransformed input in `values`
    flips: list[tuple[float, str]]  # (value, new top class) nearest the identity on each side where it changes
    summary: str  # e.g. "stops being 7 at 36° clockwise (becomes 4) and at 48° anticlockwise (becomes 1)"
    filmstrip: list[tuple[float, np.ndarray]]  # five (value, transformed native uint8 image) along the sweep


def probe(classifier, image, transform: str, points: int = 31) -> Probe:
    """Sweep one transformation of what the network sees over `points` values and read every class's probability
    at each, in one batched forward. Drawings: shift_x, shift_y, rotation, scale, thickness; photos: the four
    geometric ones, brightness and blur."""
    seen = seen_image(classifier, image)
    allowed = transforms_for(classifier.preset)
    if transform not in allowed:
        raise ValueError(f"transform {transform!r} does not exist for {classifier.preset}: choose one of "
                         f"{list(allowed)}")
    if not 5 <= points <= 121:
        raise ValueError(f"points must be 5-121, not {points}")
    values = sweep_values(transform, points)
    images = transformed(classifier, seen, transform, values)  # (V, C, S, S)
    p = probabilities(classifier, images).numpy()  # (V, classes): one forward
    identity = int(np.abs(values - SWEEPS[transform][2]).argmin())
    flips, summary = flip_points(p, values, identity, classifier.classes, SWEEPS[transform][3])
    strip = np.linspace(0, points - 1, 5).round().astype(int)
    frames = to_uint8(images[strip])
    return Probe(transform, SWEEPS[transform][3], values, p, tuple(classifier.classes), identity, flips, summary,
                 [(float(values[i]), frame) for i, frame in zip(strip, frames)])


# Units whose negative values read better as the opposite direction: -36 ° anticlockwise is 36° clockwise
OPPOSITES = {"° anticlockwise": "° clockwise", "px right": "px left", "px down": "px up", "px bolder": "px thinner"}


def say_value(value: float, unit: str) -> str:
    """A swept value as words: (-36, "° anticlockwise") -> "36° clockwise", (0.63, "× size") -> "0.63× size",
    (-2, "px right") -> "2 px left"."""
    if value < 0 and unit in OPPOSITES:
        value, unit = -value, OPPOSITES[unit]
    return f"{value:.3g}{'' if unit[:1] in '°×' else ' '}{unit}"


def flip_points(p: np.ndarray, values: np.ndarray, identity: int, classes, unit: str):
    """Where the top class first changes on each side of the untransformed input, and a sentence saying so
    ("stops being 7 at 36° clockwise (becomes 4) and at 48° anticlockwise (becomes 1)")."""
    top = p.argmax(1)
    start = classes[top[identity]]
    flips, parts = [], []
    for side in (range(identity - 1, -1, -1), range(identity + 1, len(values))):
        for i in side:
            if top[i] != top[identity]:
                flips.append((float(values[i]), classes[top[i]]))
                parts.append(f"at {say_value(values[i], unit)} (becomes {classes[top[i]]})")
                break
    if not parts:
        return flips, (f"stays {start} over the whole sweep, from {say_value(values[0], unit)} to "
                       f"{say_value(values[-1], unit)}")
    return flips, f"stops being {start} " + " and ".join(parts)
