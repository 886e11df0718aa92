"""Digits as a visitor draws them: an MNIST digit's skeleton traced with a round brush of one width (hard-edged like
the Sketchpad, or anti-aliased like an upload), for the drawing benchmark and the `sketch` training augmentation."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from .preprocessing import digit_to_mnist

CANVAS = 480  # the app's Sketchpad canvas, px
# The drawings the `sketch` augmentation makes: ink 60-400 px tall (the benchmark's range, log-uniform) and a brush
# of 3% to 40% of that height (the benchmark's target stops at 30%; a bit past it teaches the bold end)
HEIGHTS = (60, 400)
BRUSH_FRACTIONS = (0.03, 0.40)


def skeleton_of(gray: np.ndarray, upsample: int = 4) -> np.ndarray:
    """(k, 2) skeleton pixel coordinates (row, col) of a gray shape, on a grid `upsample` times finer (smoother)."""
    try:
        from skimage.morphology import skeletonize
    except ImportError:  # only the benchmark and the sketch augmentation need it, not the app
        raise ImportError("re-drawing digits needs scikit-image: pip install scikit-image") from None
    x = torch.from_numpy(gray.astype(np.float32) / 255)[None, None]
    x = F.interpolate(x, scale_factor=upsample, mode="bilinear", align_corners=False)[0, 0]
    return np.argwhere(skeletonize(x.numpy() > 0.5))


def trace(points: np.ndarray, height: int, width: int, rng: np.random.Generator, supersample: int = 1,
          canvas: int = CANVAS) -> np.ndarray:
    """The skeleton traced with a round brush `width` px wide so that the ink is `height` px tall, at a seeded spot
    on the canvas: uint8 (canvas, canvas) ink. supersample > 1 draws larger and box-filters down (anti-aliased)."""
    extent = max(np.ptp(points[:, 0]), np.ptp(points[:, 1]) * 0.5, 1)  # a wide shape must still fit the canvas
    s = max(height - width, 1) / extent  # the brush adds width/2 on each side
    yx = (points - points.min(0)) * s
    room = np.maximum(canvas - width - yx.max(0), 0)
    yx = (yx + width / 2 + rng.uniform(0, 1, 2) * room) * supersample
    r, k = width * supersample / 2, supersample
    image = Image.new("L", (canvas * k, canvas * k), 0)
    draw = ImageDraw.Draw(image)
    index = {tuple(p): i for i, p in enumerate(points.tolist())}
    for i, (py, px) in enumerate(points.tolist()):
        y, x = yx[i]
        draw.ellipse((x - r, y - r, x + r, y + r), fill=255)  # round joints and caps: gradio stamps circles
        for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):  # each 8-neighbour pair once
            j = index.get((py + dy, px + dx))
            if j is not None:
                draw.line((x, y, yx[j][1], yx[j][0]), fill=255, width=max(1, round(2 * r)))
    if k > 1:
        image = image.resize((canvas, canvas), Image.BOX)
    return np.asarray(image)


def styled(ink: np.ndarray, style: str) -> np.ndarray:
    """The ink as a visitor's input: Sketchpad RGBA (black strokes in alpha), dark-on-white or light-on-dark RGB."""
    if style == "sketchpad_rgba":
        out = np.zeros(ink.shape + (4,), np.uint8)
        out[:, :, 3] = ink
        return out
    a = ink.astype(np.float32)[:, :, None] / 255
    ink_rgb, paper = ((20, 20, 40), (255, 255, 255)) if style == "dark_on_white" else ((235, 235, 220), (30, 30, 30))
    return (np.array(paper) * (1 - a) + np.array(ink_rgb) * a).round().astype(np.uint8)


def redraw(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 (28, 28) MNIST digit -> uint8 (28, 28): traced at a random height and brush, hard-edged or anti-aliased,
    then through the app's own preprocessing (so training sees what the app feeds the model). A digit with no
    skeleton comes back as it was."""
    points = skeleton_of(digit)
    if len(points) < 2:
        return digit
    height = round(float(np.exp(rng.uniform(*np.log(HEIGHTS)))))
    width = max(2, round(height * rng.uniform(*BRUSH_FRACTIONS)))
    ink = trace(points, height, width, rng, supersample=int(rng.integers(1, 3)), canvas=2 * height + width)
    out = digit_to_mnist(ink)
    return digit if out is None else out


def redraw_chunk(images: torch.Tensor, seed: int = 0, first: int = 0) -> torch.Tensor:
    """uint8 (N, 1, 28, 28), digits `first`.. of a dataset -> the same digits re-drawn (`redraw`), each with its own
    seeded brush: digit i always gets the same drawing, whichever process makes it."""
    out = images.clone()
    for i in range(len(images)):
        out[i, 0] = torch.from_numpy(redraw(images[i, 0].numpy(), np.random.default_rng([seed, first + i])))
    return out
