"""Looking inside: feature-map grids, most active channels, conv1 filters, confusion matrices, as images/Figures."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # no display; Figures are built directly, never through pyplot's global state
import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from PIL import Image

from .data import import_torchvision

CMAP = "magma"  # one colour map everywhere: black = 0 (silent), bright = the layer's strongest response
GAP = 255  # palette index of the white gaps between tiles; 0..254 are the colour map
PALETTE = np.vstack([(colormaps[CMAP](np.linspace(0, 1, 255))[:, :3] * 255).astype(np.uint8),
                     [[255, 255, 255]]]).astype(np.uint8)  # (256, 3): index, don't evaluate


def grid_indices(fmap: torch.Tensor, max_channels: int | None = None, upscale: int | None = None) -> np.ndarray:
    """A (C, H, W) activation as one tile grid of PALETTE indices (uint8): 0 .. 254 for 0 .. the layer's max,
    GAP for the 1 px gaps between tiles."""
    fmap = fmap.detach().float().cpu()
    if max_channels:
        fmap = fmap[:max_channels]
    c, h, _ = fmap.shape
    if upscale is None:
        upscale = max(1, 24 // h)  # tiny 3x3 maps get blown up so that a person can see them
    if upscale > 1:
        fmap = fmap.repeat_interleave(upscale, 1).repeat_interleave(upscale, 2)
    vmax = max(float(fmap.max()), 1e-8)
    make_grid = import_torchvision().utils.make_grid  # on first use: see import_torchvision
    grid = make_grid(fmap[:, None], nrow=math.ceil(math.sqrt(c)), padding=1, pad_value=float("nan"))[0]
    indices = (torch.nan_to_num(grid, nan=0.0) / vmax).clamp(0, 1).mul(254).round().to(torch.uint8).numpy()
    indices[torch.isnan(grid).numpy()] = GAP
    return indices


def channel_grid(fmap: torch.Tensor, max_channels: int | None = None, upscale: int | None = None) -> np.ndarray:
    """A (C, H, W) activation as one uint8 RGB tile grid, scaled 0 .. the layer's max, white 1 px gaps."""
    return PALETTE[grid_indices(fmap, max_channels, upscale)]


def palette_image(indices: np.ndarray) -> Image.Image:
    """Indices as a palette ("P") image: PNG encodes one byte a pixel, about 4x faster than RGB and half the size."""
    image = Image.frombytes("P", (indices.shape[1], indices.shape[0]), np.ascontiguousarray(indices).tobytes())
    image.putpalette(PALETTE.tobytes())
    return image


def layer_caption(name: str, fmap: torch.Tensor) -> str:
    c, h, w = fmap.shape
    return f"{name}: {c} channels of {h}×{w}, scale 0–{float(fmap.max()):.2f}"


def feature_gallery(maps: dict[str, torch.Tensor]) -> list[tuple[Image.Image, str]]:
    """(grid as a palette image, caption) per conv layer, for a gr.Gallery."""
    return [(palette_image(grid_indices(fmap)), layer_caption(name, fmap)) for name, fmap in maps.items()]


def feature_maps_figure(maps: dict[str, torch.Tensor]) -> Figure:
    """Every conv layer's channels as a grid, side by side, with the colour map and each layer's scale stated."""
    fig = Figure(figsize=(3.2 * len(maps), 3.9))
    axes = fig.subplots(1, len(maps), squeeze=False)[0]
    fig.subplots_adjust(left=0.01, right=0.99, top=0.78, bottom=0.08, wspace=0.06)  # fixed: constrained layout
    # cost a third of the render time on this panel, which is redrawn for every new input
    for ax, (name, fmap) in zip(axes, maps.items()):
        ax.imshow(channel_grid(fmap))
        c, h, w = fmap.shape
        ax.set_title(f"{name}\n{c} × {h}×{w}\n0 … {float(fmap.max()):.2f}", fontsize=10)
        ax.axis("off")
    fig.supxlabel(f"Activations after ReLU, colour map '{CMAP}': black = 0, brightest = the layer's max "
                  "(stated under each layer's name)", fontsize=10)
    return fig


def top_channels_figure(maps: dict[str, torch.Tensor], layer: str, k: int = 8) -> Figure:
    """The `k` channels of `layer` with the highest mean activation, large, on one shared scale."""
    fmap = maps[layer].detach().float().cpu()
    k = min(k, fmap.shape[0])
    strength = fmap.mean(dim=(1, 2))
    top = strength.argsort(descending=True)[:k]
    vmax = max(float(fmap[top].max()), 1e-8)
    cols = min(k, 4)
    fig = Figure(figsize=(2.6 * cols, 2.8 * math.ceil(k / cols)), layout="constrained")
    axes = fig.subplots(math.ceil(k / cols), cols, squeeze=False).flatten()
    for ax in axes:
        ax.axis("off")
    image = None
    for ax, channel in zip(axes, top.tolist()):
        image = ax.imshow(fmap[channel].numpy(), cmap=CMAP, vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_title(f"channel {channel}  (mean {strength[channel]:.2f})", fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.8, label="activation")
    fig.suptitle(f"{layer}: the {k} most active of {fmap.shape[0]} channels", fontsize=11)
    return fig


def filters_figure(model: torch.nn.Module) -> Figure:
    """conv1's learned filters as tiles (RGB for colour inputs, gray for digits), each scaled to its own range."""
    weight = model.features.conv1.weight.detach().float().cpu()  # (96, C, 11, 11)
    low = weight.amin(dim=(1, 2, 3), keepdim=True)
    high = weight.amax(dim=(1, 2, 3), keepdim=True)
    tiles = (weight - low) / (high - low).clamp(min=1e-8)
    tiles = tiles.repeat_interleave(4, 2).repeat_interleave(4, 3)
    make_grid = import_torchvision().utils.make_grid
    grid = make_grid(tiles, nrow=12, padding=2, pad_value=1.0)
    fig = Figure(figsize=(7.5, 7.5 * grid.shape[1] / grid.shape[2] + 0.5), layout="constrained")
    ax = fig.subplots()
    ax.imshow(grid.permute(1, 2, 0).numpy() if weight.shape[1] == 3 else grid[0].numpy(), cmap="gray")
    ax.set_title(f"conv1: {weight.shape[0]} filters of {weight.shape[1]}×{weight.shape[2]}×{weight.shape[3]}, "
                 "each scaled from its min (dark) to its max (light)", fontsize=10)
    ax.axis("off")
    return fig


def filter_grid(weights: torch.Tensor, columns: int = 12, upscale: int = 3) -> Image.Image:
    """conv1 weights (N, C, k, k) as one small image, without a model or a Figure (a training snapshot's filters):
    RGB tiles for colour inputs, gray for digits, each scaled from its own min (dark) to its max (light), white
    1 px gaps."""
    weight = weights.detach().float().cpu()
    low = weight.amin(dim=(1, 2, 3), keepdim=True)
    high = weight.amax(dim=(1, 2, 3), keepdim=True)
    tiles = ((weight - low) / (high - low).clamp(min=1e-8)).repeat_interleave(upscale, 2).repeat_interleave(upscale, 3)
    make_grid = import_torchvision().utils.make_grid
    grid = make_grid(tiles, nrow=columns, padding=1, pad_value=1.0)  # always 3 channels: gray is repeated
    array = grid.permute(1, 2, 0).mul(255).round().to(torch.uint8).numpy()
    return Image.fromarray(array if weight.shape[1] == 3 else np.ascontiguousarray(array[..., 0]))


def confusion_figure(confusion: list[list[int]], classes) -> Figure:
    """Test-set confusion matrix: rows the true class, columns the prediction, counts in each cell."""
    cm = np.array(confusion)
    fig = Figure(figsize=(6, 5.2), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, label="test images")
    accuracy = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(f"Confusion matrix, test accuracy {accuracy:.2%}")
    return fig


def enlarge(image: np.ndarray, size: int = 224) -> np.ndarray:
    """Nearest-neighbour upscale of a small uint8 image, so each input pixel stays visible."""
    factor = max(1, size // image.shape[0])
    return np.kron(image, np.ones((factor, factor) + (1,) * (image.ndim - 2), dtype=np.uint8))


def mistakes_gallery(mistakes) -> list[tuple[np.ndarray, str]]:
    """(image, "true → predicted") pairs for a gr.Gallery (short captions: the gallery's tiles are small)."""
    out = []
    for image, true, predicted in mistakes:
        array = image.numpy() if torch.is_tensor(image) else np.asarray(image)
        array = array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
        out.append((enlarge(array, 112), f"{true} → {predicted}"))
    return out
