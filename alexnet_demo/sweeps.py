"""The transformations a probe sweeps, applied to what the network sees (native size, float in [0, 1]) as a batch."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .data import augment_settings


def native_float(seen: np.ndarray) -> torch.Tensor:
    """uint8 (h, w) or (h, w, 3) -> float (1, C, h, w) in [0, 1]."""
    x = torch.from_numpy(seen).float().div(255)
    return x[None, None] if x.dim() == 2 else x.permute(2, 0, 1)[None]


SWEEPS = {  # name: (first, last, identity, unit, spacing); px are native pixels of what the network sees
    "shift_x": (-8.0, 8.0, 0.0, "px right", "linear"),
    "shift_y": (-8.0, 8.0, 0.0, "px down", "linear"),
    "rotation": (-60.0, 60.0, 0.0, "° anticlockwise", "linear"),
    "scale": (0.5, 2.0, 1.0, "× size", "geometric"),
    "thickness": (-2.0, 2.0, 0.0, "px bolder", "linear"),  # drawings only
    "brightness": (0.25, 4.0, 1.0, "× brightness", "geometric"),  # photos only
    "blur": (0.0, 3.0, 0.0, "px Gaussian σ", "linear"),  # photos only
}
GEOMETRIC = ("shift_x", "shift_y", "rotation", "scale")


def transforms_for(preset: str) -> tuple[str, ...]:
    return GEOMETRIC + (("thickness",) if preset == "mnist" else ("brightness", "blur"))


def sweep_values(transform: str, points: int) -> np.ndarray:
    first, last, identity, _, spacing = SWEEPS[transform]
    values = np.geomspace(first, last, points) if spacing == "geometric" else np.linspace(first, last, points)
    values[np.abs(values - identity).argmin()] = identity  # the untransformed input is always one of the points
    return values


def affine(native: torch.Tensor, transform: str, values: np.ndarray, padding_mode: str) -> torch.Tensor:
    """One image (1, C, S, S) -> (V, C, S, S), each shifted/rotated/scaled about the centre by one grid_sample."""
    v, (_, c, s, _) = torch.tensor(values, dtype=torch.float32), native.shape
    theta = torch.zeros(len(v), 2, 3)  # maps output coordinates (-1..1) to where they sample the input
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    if transform == "shift_x":
        theta[:, 0, 2] = -2 * v / s
    elif transform == "shift_y":
        theta[:, 1, 2] = -2 * v / s
    elif transform == "rotation":  # y points down in images: this turns the picture anticlockwise as seen
        a = torch.deg2rad(v)
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = a.cos(), -a.sin(), a.sin(), a.cos()
    elif transform == "scale":
        theta[:, 0, 0] = theta[:, 1, 1] = 1 / v
    grid = F.affine_grid(theta, [len(v), c, s, s], align_corners=False)
    return F.grid_sample(native.expand(len(v), -1, -1, -1), grid, mode="bilinear", padding_mode=padding_mode,
                         align_corners=False)


def thickness(native: torch.Tensor, values: np.ndarray, upsample: int = 8) -> torch.Tensor:
    """Ink made bolder (dilation) or thinner (erosion) by `values` native px, worked at 8x resolution (1/8 px
    steps) and averaged back down: (1, 1, S, S) -> (V, 1, S, S)."""
    fine = F.interpolate(native, scale_factor=upsample, mode="nearest")  # (1, 1, 8S, 8S); 0 px gives back `native`
    steps = np.rint(np.asarray(values) * upsample).astype(int)  # 3x3 max-pools to apply, signed
    grown, shrunk, out = {0: fine}, {0: fine}, []
    for i in range(1, int(np.abs(steps).max(initial=0)) + 1):  # each 3x3 pass grows/shrinks the ink by 1 fine px
        grown[i] = F.max_pool2d(grown[i - 1], 3, stride=1, padding=1)
        shrunk[i] = -F.max_pool2d(-shrunk[i - 1], 3, stride=1, padding=1)
    for step in steps:
        out.append(grown[step] if step >= 0 else shrunk[-step])
    return F.avg_pool2d(torch.cat(out), upsample)  # (V, 1, S, S): area average back to native px


def blur(native: torch.Tensor, values: np.ndarray) -> torch.Tensor:
    """Gaussian blur with sigma = each value (native px), separable, reflect-padded: (1, C, S, S) -> (V, C, S, S)."""
    out, c = [], native.shape[1]
    for sigma in values:
        if sigma <= 0:
            out.append(native)
            continue
        r = max(1, math.ceil(3 * sigma))
        k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / sigma) ** 2)
        k = (k / k.sum()).view(1, 1, 1, -1).expand(c, 1, 1, -1)
        x = F.conv2d(F.pad(native, (r, r, 0, 0), mode="reflect"), k, groups=c)
        out.append(F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.transpose(2, 3), groups=c))
    return torch.cat(out)


def transformed(classifier, seen: np.ndarray, transform: str, values: np.ndarray) -> torch.Tensor:
    """What the network sees under each value of `transform`: float (V, C, S, S) in [0, 1]."""
    native = native_float(seen)
    if transform in GEOMETRIC:
        return affine(native, transform, values, augment_settings(classifier.preset)["padding_mode"])
    if transform == "thickness":
        return thickness(native, values)
    if transform == "brightness":
        return (native * torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1)).clamp(0, 1)
    return blur(native, values)


