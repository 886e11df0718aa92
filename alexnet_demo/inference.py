"""Inference: any image -> what the network sees -> probabilities and feature maps, on a warm CPU model."""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from .checkpoints import load_checkpoint, resolve_checkpoint
from .data import prepare_batch
from .models import feature_taps

MAX_PIXELS = 40_000_000  # larger images are refused before decoding (a 10,000 x 10,000 photo is 100 MP)
INK_THRESHOLD = 0.15  # ink level (0-1, after background removal) that counts as drawn


@dataclass
class Result:
    probabilities: dict[str, float]  # class -> probability, highest first; empty when nothing was drawn
    seen: np.ndarray | None  # the native-size image the network received, uint8 (h, w) or (h, w, 3)
    feature_maps: dict[str, torch.Tensor] = field(default_factory=dict)  # conv1..conv5 -> (C, H, W), after ReLU


# ---- reading any image into a float array ----------------------------------------------------------------


def open_image(source) -> Image.Image:
    """A PIL image from a path, bytes or an open file, with clear errors for what is not an image."""
    try:
        if isinstance(source, (str, os.PathLike)):
            if os.path.getsize(source) == 0:
                raise ValueError(f"{os.path.basename(source)} is an empty file (0 bytes), not an image")
        image = Image.open(source)
        w, h = image.size
        if w * h > MAX_PIXELS:
            raise ValueError(f"image is {w}x{h} = {w * h / 1e6:.0f} MP; the limit is {MAX_PIXELS / 1e6:.0f} MP")
        image.seek(0)  # an animated GIF/PNG/WebP: its first frame
        image.load()
        return image
    except ValueError:
        raise
    except Image.DecompressionBombError as e:  # PIL's own guard, for images far over our limit
        raise ValueError(f"{e.args[0].split(',')[0]}; the limit is {MAX_PIXELS / 1e6:.0f} MP") from None
    except UnidentifiedImageError:  # PIL's message carries the server-side path: name the file only
        name = os.path.basename(source) if isinstance(source, (str, os.PathLike)) else "the data"
        raise ValueError(f"{name} is not a readable image (not a format Pillow decodes: PNG, JPEG, GIF, WebP, "
                         "BMP, TIFF, …)") from None
    except (OSError, SyntaxError, EOFError) as e:  # truncated or corrupt data
        raise ValueError(f"the image file is corrupt or truncated ({e})") from None


def to_float_array(image) -> tuple[np.ndarray, np.ndarray | None]:
    """(rgb or gray float32 in [0, 1] of shape (h, w, 1|3), alpha in [0, 1] of shape (h, w) or None)."""
    if isinstance(image, dict) and "composite" in image:  # a gradio ImageEditor/Sketchpad value
        image = image["composite"]
    if image is None:
        raise ValueError("no image given")
    if isinstance(image, (str, os.PathLike, bytes)):
        image = open_image(image)
    if isinstance(image, Image.Image):
        return _pil_to_array(image)
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected a PIL image or a numpy array, got {type(image).__name__}")
    return _numpy_to_array(image)


def _pil_to_array(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    w, h = image.size
    if w < 1 or h < 1:
        raise ValueError(f"image is {w}x{h}: empty")
    if w * h > MAX_PIXELS:
        raise ValueError(f"image is {w}x{h} = {w * h / 1e6:.0f} MP; the limit is {MAX_PIXELS / 1e6:.0f} MP")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16/32-bit gray: scale by the type's range
        array = np.asarray(image, dtype=np.float32)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        return _numpy_to_array(np.clip(array / top, 0, 1))
    if image.mode == "P":
        image = image.convert("RGBA")  # a palette may carry transparency
    if image.mode == "CMYK":
        image = image.convert("RGB")
    if image.mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
    return _numpy_to_array(np.asarray(image))


def _numpy_to_array(array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if array.dtype == bool:
        array = array.astype(np.float32)
    if array.dtype.kind not in "uif":
        raise ValueError(f"unsupported array dtype {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected an image array of shape (h, w), (h, w, 1|2|3|4), got {array.shape}")
    h, w = array.shape[:2]
    if h < 1 or w < 1:
        raise ValueError(f"image is {w}x{h}: empty")
    if h * w > MAX_PIXELS:
        raise ValueError(f"image is {w}x{h} = {w * h / 1e6:.0f} MP; the limit is {MAX_PIXELS / 1e6:.0f} MP")
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise ValueError("image array contains NaN or infinite values")
        if array.max(initial=0) > 1.0 or array.min(initial=0) < 0.0:
            array = np.clip(array / 255.0, 0, 1)  # floats outside [0, 1] are read as 0-255 values
        array = array.astype(np.float32)
    else:
        top = {1: 255.0, 2: 65535.0}.get(array.dtype.itemsize, float(np.iinfo(array.dtype).max))
        signed = array.dtype.kind == "i"
        array = array.astype(np.float32) * np.float32(1 / top)
        if signed:  # unsigned values are in [0, top] already
            array = np.clip(array, 0, 1, out=array)
    channels = array.shape[2]
    if channels in (2, 4):
        return array[:, :, :channels - 1], array[:, :, channels - 1]
    return array, None


# ---- MNIST-style digit normalization -------------------------------------------------------------------------


def ink_map(image) -> np.ndarray:
    """Ink in [0, 1] (h, w), whichever the polarity: strokes on a transparent layer, dark on light, light on dark."""
    color, alpha = to_float_array(image)
    if alpha is not None and alpha.min() < 0.99:  # strokes on a transparent layer: alpha is the drawing
        return alpha
    gray = color.mean(axis=2)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    ink = gray - background if background < 0.5 else background - gray  # light-on-dark or dark-on-light
    span = max(1.0 - background if background < 0.5 else background, 1e-6)
    return np.clip(ink / span, 0, 1)


def digit_to_mnist(image) -> np.ndarray | None:
    """The drawing as MNIST made its digits: uint8 (28, 28), white ink on black, the ink's bounding box scaled to
    fit 20x20 (aspect kept) and its centre of mass at the centre. None when nothing is drawn."""
    ink = ink_map(image)
    drawn = ink > INK_THRESHOLD
    rows, cols = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))  # the ink's bounding box
    if len(rows) == 0:
        return None
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    crop = torch.from_numpy(np.ascontiguousarray(ink[top:bottom, left:right]))[None, None]
    h, w = crop.shape[-2:]
    scale = 20.0 / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    digit = F.interpolate(crop, size=size, mode="bilinear", antialias=True, align_corners=False)[0, 0]
    digit = (digit / digit.max().clamp(min=1e-6)).clamp(0, 1).numpy()  # thin strokes stay full-strength
    total = digit.sum()
    ys, xs = np.indices(digit.shape)
    cy, cx = (ys * digit).sum() / total, (xs * digit).sum() / total
    field_ = np.zeros((28, 28), np.float32)
    oy, ox = int(round(14 - cy)), int(round(14 - cx))  # MNIST: centre of mass at pixel index 14
    oy, ox = min(max(oy, 0), 28 - digit.shape[0]), min(max(ox, 0), 28 - digit.shape[1])
    field_[oy:oy + digit.shape[0], ox:ox + digit.shape[1]] = digit
    return (field_ * 255).round().astype(np.uint8)


def photo_to_cifar(image, size: int = 32) -> np.ndarray:
    """An RGB photo as CIFAR-10 stores one: uint8 (size, size, 3), the centre square scaled to `size`.
    Transparent pixels are composited over white."""
    color, alpha = to_float_array(image)
    if color.shape[2] == 1:
        color = np.repeat(color, 3, axis=2)
    if alpha is not None:
        color = color * alpha[:, :, None] + (1 - alpha[:, :, None])
    h, w = color.shape[:2]
    side = min(h, w)  # crop first: a 1 x 10,000 strip must not be upscaled to 32 x 320,000
    top, left = (h - side) // 2, (w - side) // 2
    x = torch.from_numpy(np.ascontiguousarray(color[top:top + side, left:left + side])).permute(2, 0, 1)[None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=side > size, align_corners=False)[0]
    return (x.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


# ---- the classifier ------------------------------------------------------------------------------------------


class Classifier:
    """A loaded checkpoint kept warm on the CPU: `predict`, `feature_maps` and `run` (both in one forward)."""

    def __init__(self, model: torch.nn.Module, meta: dict, source: str = ""):
        self.model = model.eval().to(memory_format=torch.channels_last)
        self.meta = meta
        self.preset = meta["preset"]
        self.input_size = int(meta["input_size"])
        self.classes = tuple(meta["classes"])
        self.source = source
        self.taps = {tap: conv for conv, tap in feature_taps(model).items()}

    def preprocess(self, image) -> np.ndarray | None:
        """What the network sees, at the dataset's native size (uint8); None for an empty canvas."""
        return digit_to_mnist(image) if self.preset == "mnist" else photo_to_cifar(image)

    @torch.inference_mode()
    def run(self, image, maps: bool = True) -> Result:
        seen = self.preprocess(image)
        if seen is None:
            return Result({}, None, {})
        x = torch.from_numpy(seen)
        x = x[None, None] if x.dim() == 2 else x.permute(2, 0, 1)[None]
        x = prepare_batch(x, self.preset, self.input_size, channels_last=True)
        feature_maps = {}
        for name, layer in self.model.features.named_children():  # step through `features`, tapping conv1..5
            x = layer(x)
            if maps and name in self.taps:
                feature_maps[self.taps[name]] = F.relu(x)[0].contiguous()
        logits = self.model.classifier(torch.flatten(x, 1))[0]
        p = logits.float().softmax(0)
        order = p.argsort(descending=True).tolist()
        return Result({self.classes[i]: float(p[i]) for i in order}, seen, feature_maps)

    def predict(self, image) -> dict[str, float]:
        """Class -> probability, highest first. An empty canvas gives an empty dict ("nothing drawn")."""
        return self.run(image, maps=False).probabilities

    def feature_maps(self, image) -> dict[str, torch.Tensor]:
        """conv1..conv5 -> (C, H, W) activations after ReLU; an empty dict when nothing is drawn."""
        return self.run(image).feature_maps


_LOAD_LOCK = threading.Lock()


@lru_cache(maxsize=4)
def _load_cached(path: str, mtime: float) -> Classifier:
    model, meta = load_checkpoint(path)
    return Classifier(model, meta, source=path)


def load_classifier(name_or_path: str | os.PathLike = "mnist") -> Classifier:
    """A warm classifier for a shipped preset ("mnist", "cifar10": local checkpoints/, else the Hub) or a file.
    Loaded once per file and kept in memory."""
    path = resolve_checkpoint(name_or_path)
    resolved = str(Path(path).resolve())
    mtime = os.path.getmtime(resolved) if os.path.exists(resolved) else 0.0
    with _LOAD_LOCK:  # the app's warm-up thread and a first request must not load the same file twice
        return _load_cached(resolved, mtime)

