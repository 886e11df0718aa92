"""Preprocessing: any image (path, bytes, PIL, numpy, a Sketchpad value) -> what the network sees, uint8 at the
dataset's native size: an MNIST-style 28x28 digit or a CIFAR-style 32x32 photo."""
from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

MAX_PIXELS = 40_000_000  # larger images are refused before decoding (a 10,000 x 10,000 photo is 100 MP)
MAX_DATA_URL = 20_000_000  # characters of base64 (15 MB); the app's 480 px drawings are ~15 kB
INK_THRESHOLD = 0.15  # ink level (0-1, after background removal) that counts as drawn
# MNIST's stroke width as a fraction of the ink's longer side, by stroke_width() on the 60,000 training digits
# (python bench/drawing.py --calibrate): 1st percentile 0.079, median 0.122, 95th 0.182. A drawing inside this band
# is left as it is (MNIST's own digits come back as they were); outside, its strokes are brought to the nearer edge.
# Thin strokes read well as they are (so only the thinnest 1% of MNIST is thickened); from about 0.2 up, bold ones
# read badly (so the boldest 5% is thinned).
STROKE_BAND = (0.079, 0.182)
STROKE_SIDE = 80  # px: the ink's longer side while its strokes are measured and changed (4x MNIST's 20 px box)


def check_pixels(w: int, h: int) -> None:
    """The one image-size rule: not empty, at most MAX_PIXELS."""
    if w < 1 or h < 1:
        raise ValueError(f"image is {w}x{h}: empty")
    if w * h > MAX_PIXELS:
        raise ValueError(f"image is {w}x{h} = {w * h / 1e6:.0f} MP; the limit is {MAX_PIXELS / 1e6:.0f} MP")


# ---- reading any image into a float array ----------------------------------------------------------------


def open_image(source) -> Image.Image:
    """A PIL image from a path, bytes or an open file, with clear errors for what is not an image."""
    try:
        if isinstance(source, (str, os.PathLike)):
            if os.path.getsize(source) == 0:
                raise ValueError(f"{os.path.basename(source)} is an empty file (0 bytes), not an image")
        image = Image.open(source)
        try:
            check_pixels(*image.size)  # before decoding: the header alone gives the size
            image.seek(0)  # an animated GIF/PNG/WebP: its first frame
            image.load()
        except BaseException:
            image.close()  # a refused file is not left open (ResourceWarning)
            raise
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


def data_url(png) -> str:
    """A PNG (a path or its bytes) as a data URL: how the app's drawing pad sends a drawing, and how an API caller
    gives /classify_digit one."""
    data = png if isinstance(png, bytes) else Path(png).read_bytes()  # closed at once, not left to the collector
    return "data:image/png;base64," + base64.b64encode(data).decode()


def data_url_bytes(url: str) -> bytes:
    """The bytes of a base64 `data:` URL (what a canvas's toDataURL gives), with a clear error for anything else."""
    head, _, body = url.partition(",") if isinstance(url, str) else ("", "", "")
    if not (head.startswith("data:") and head.endswith(";base64")) or not body:
        raise ValueError("the drawing is not a base64 data URL (data:image/png;base64,…)")
    if len(body) > MAX_DATA_URL:
        raise ValueError(f"the drawing's data URL is {len(body) / 1e6:.0f} MB; "
                         f"the limit is {MAX_DATA_URL / 1e6:.0f} MB")
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error:
        raise ValueError("the drawing's data URL is not valid base64") from None


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
    check_pixels(*image.size)
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
    check_pixels(array.shape[1], array.shape[0])
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


def ink_box(ink: np.ndarray) -> torch.Tensor | None:
    """The ink's bounding box as a (1, 1, h, w) tensor; None when nothing is drawn."""
    drawn = ink > INK_THRESHOLD
    rows, cols = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))  # cheaper than nonzero()
    if len(rows) == 0:
        return None
    return torch.from_numpy(np.ascontiguousarray(ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]))[None, None]


def digit_to_mnist(image) -> np.ndarray | None:
    """The drawing as MNIST made its digits: uint8 (28, 28), white ink on black, strokes of an MNIST width, the ink's
    bounding box scaled to fit 20x20 (aspect kept) and its centre of mass at the centre. None when nothing is drawn."""
    crop = ink_box(ink_map(image))
    if crop is None:
        return None
    crop = fit_stroke_width(crop)
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


# ---- stroke width --------------------------------------------------------------------------------------------


def stroke_width(ink) -> float:
    """Mean stroke width, in pixels, of ink (..., h, w) in [0, 1]: 2 x area / perimeter, the perimeter as the summed
    gradient magnitude (a stroke of width w and length L has area wL and two edges of length L). In numpy: torch's
    reductions on a busy 2-core machine waited ~20 ms for a second thread on an 80x80 image."""
    x = np.pad(np.asarray(ink, dtype=np.float32).reshape(ink.shape[-2:]), 1)  # the outer edges count too
    dy, dx = x[1:, :-1] - x[:-1, :-1], x[:-1, 1:] - x[:-1, :-1]
    return float(2 * x.sum() / max(float(np.sqrt(dy * dy + dx * dx).sum()), 1e-6))


def at_stroke_side(crop: torch.Tensor) -> torch.Tensor:
    """The ink's bounding box (1, 1, h, w) scaled so its longer side is STROKE_SIDE px, its peak ink 1."""
    h, w = crop.shape[-2:]
    scale = STROKE_SIDE / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    x = F.interpolate(crop, size=size, mode="bilinear", antialias=scale < 1, align_corners=False)
    return x / x.max().clamp(min=1e-6)


def stroke_fraction(crop: torch.Tensor) -> float:
    """The stroke width of the ink's bounding box (1, 1, h, w) as a fraction of its longer side (MNIST: ~0.12)."""
    x = at_stroke_side(crop)
    return stroke_width(x) / max(x.shape[-2:])


def _morph(x: torch.Tensor, steps: int) -> torch.Tensor:
    """Dilate (steps > 0) or erode (steps < 0) ink (1, 1, h, w) by |steps| px, padded so nothing is clipped.
    Steps alternate a 3x3 square and a plus: an octagon, near enough a round brush."""
    n, sign = abs(steps), 1.0 if steps > 0 else -1.0  # erosion: the dilation of the negative
    x = F.pad(x, (n, n, n, n)) * sign
    for i in range(n):
        if i % 2 == 0:
            x = F.max_pool2d(x, 3, 1, 1)
        else:
            x = torch.maximum(F.max_pool2d(x, (3, 1), 1, (1, 0)), F.max_pool2d(x, (1, 3), 1, (0, 1)))
    return x * sign


def fit_stroke_width(crop: torch.Tensor) -> torch.Tensor:
    """The ink's bounding box (1, 1, h, w), as it is when its stroke width is within MNIST's band; otherwise at
    STROKE_SIDE px, its strokes eroded or dilated to the band's nearer edge and cropped again."""
    x = at_stroke_side(crop)
    side = max(x.shape[-2:])
    width = stroke_width(x) / side
    lo, hi = STROKE_BAND
    if lo <= width <= hi:
        return crop
    goal = min(max(width, lo), hi)
    # Eroding by r px takes 2r off both the strokes and the box: (width*side - 2r) / (side - 2r) = goal.
    r = side * (width - goal) / (2 * (1 - goal))
    x = _morph(x, -round(r))
    drawn = x[0, 0] > INK_THRESHOLD
    rows, cols = torch.nonzero(drawn.any(1)).flatten(), torch.nonzero(drawn.any(0)).flatten()
    if len(rows) == 0:  # eroded away (no stroke anywhere near the estimate): keep the drawing as it was
        return crop
    return x[..., rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def on_white(image) -> np.ndarray:
    """The image's colour, float32 in [0, 1] of shape (h, w, 1|3), its transparent pixels composited over white."""
    color, alpha = to_float_array(image)
    return color if alpha is None else color * alpha[:, :, None] + (1 - alpha[:, :, None])


def photo_to_cifar(image, size: int = 32) -> np.ndarray:
    """An RGB photo as CIFAR-10 stores one: uint8 (size, size, 3), the centre square scaled to `size`.
    Transparent pixels are composited over white."""
    color = on_white(image)
    if color.shape[2] == 1:
        color = np.repeat(color, 3, axis=2)
    h, w = color.shape[:2]
    side = min(h, w)  # crop first: a 1 x 10,000 strip must not be upscaled to 32 x 320,000
    top, left = (h - side) // 2, (w - side) // 2
    x = torch.from_numpy(np.ascontiguousarray(color[top:top + side, left:left + side])).permute(2, 0, 1)[None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=side > size, align_corners=False)[0]
    return (x.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
