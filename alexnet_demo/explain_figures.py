"""Pictures of the explanations: heat maps over what the network sees, probe curves, ablation bars, channel panels."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from .ablation import NEGLIGIBLE, largest as ablation_largest
from .inspection import CMAP, GAP, PALETTE, enlarge, palette_image

# ---- heat maps over images -----------------------------------------------------------------------------------


def overlay(seen: np.ndarray, heat: np.ndarray, size: int = 224, vmax: float | None = None,
            strength: float = 0.85) -> np.ndarray:
    """`heat` (h, w, >= 0, same size as `seen`) in the magma palette over `seen` shown in gray, enlarged to about
    `size` px: uint8 (H, W, 3). Black in the heat is transparent; `vmax` (default: the heat's max) is full colour."""
    image = enlarge(seen, size).astype(np.float32) / 255
    gray = image if image.ndim == 2 else image.mean(axis=2)
    level = np.clip(heat / max(vmax if vmax is not None else float(heat.max()), 1e-8), 0, 1)
    level = enlarge((level * 254).round().astype(np.uint8), size)  # nearest: each native pixel stays a square
    colour = PALETTE[level].astype(np.float32) / 255
    weight = strength * (level.astype(np.float32) / 254)[..., None]  # where the heat is 0 the image shows through
    out = (1 - weight) * (0.6 * gray[..., None]) + weight * colour  # the image dimmed: the heat stands out
    return (out * 255).round().astype(np.uint8)


def _show_seen(ax, seen: np.ndarray, extent):
    ax.imshow(seen, cmap="gray" if seen.ndim == 2 else None, vmin=0, vmax=255, extent=extent,
              interpolation="nearest")


def attribution_figure(*attributions) -> Figure:
    """Each attribution (Grad-CAM, occlusion, ...) over the enlarged seen image, with its own labelled colour bar."""
    fig = Figure(figsize=(4.6 * len(attributions), 4.4), layout="constrained")
    axes = fig.subplots(1, len(attributions), squeeze=False)[0]
    for ax, a in zip(axes, attributions):
        h, w = a.heat.shape
        extent = (-0.5, w - 0.5, h - 0.5, -0.5)  # both images in native pixel coordinates
        _show_seen(ax, a.seen, extent)
        image = ax.imshow(a.heat, cmap=CMAP, vmin=0, vmax=max(float(a.heat.max()), 1e-8), alpha=0.6,
                          extent=extent, interpolation="bilinear")
        ax.set_title(f"{a.method}: why “{a.target_name}”?\nP({a.target_name}) = {a.probability:.1%}, "
                     f"top class {a.predicted}", fontsize=10)
        ax.axis("off")
        fig.colorbar(image, ax=ax, shrink=0.8, label=a.label)
    return fig


# ---- probe -----------------------------------------------------------------------------------------------------


def probe_figure(probe) -> Figure:
    """Every class's probability against the swept value, the untransformed input and the flips marked, and a
    five-frame filmstrip of what the network saw along the sweep."""
    fig = Figure(figsize=(9, 6.2), layout="constrained")
    top, strip = fig.subfigures(2, 1, height_ratios=[2.6, 1])
    ax = top.subplots()
    colours = colormaps["tab10"]
    order = np.argsort(-probe.probabilities.max(axis=0))
    for rank, c in enumerate(order):
        ax.plot(probe.values, probe.probabilities[:, c], color=colours(c % 10), lw=2.2 if rank < 3 else 1,
                alpha=1 if rank < 3 else 0.5, label=probe.classes[c])
    # the untransformed input: a point on its answer's curve, labelled beside it, not text over the curves' feet
    x, y = probe.values[probe.identity], float(probe.probabilities[probe.identity].max())
    ax.axvline(x, color="black", ls="--", lw=0.8, alpha=0.5)
    ax.plot([x], [y], "o", color="black", markersize=7, zorder=5)
    ax.annotate("your input", (x, y), xytext=(8, -16 if y > 0.5 else 10), textcoords="offset points", fontsize=8,
                zorder=5, bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="none", alpha=0.8))
    for value, new in probe.flips:
        ax.axvline(value, color="red", ls=":", lw=1.5)
        ax.annotate(f"→ {new}", (value, 0.5), color="red", fontsize=9, rotation=90, va="center", ha="right")
    if probe.transform in ("scale", "brightness"):
        ax.set_xscale("log")
    ax.set_xlabel(f"{probe.transform.replace('_', ' ')} ({probe.unit})")
    ax.set_ylabel("probability")
    ax.set_ylim(-0.02, 1.08)  # room above 1 for the input's marker, clear of the title
    ax.legend(fontsize=8, ncol=2, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(probe.summary, fontsize=10)
    frames = strip.subplots(1, len(probe.filmstrip))
    for fax, (value, image) in zip(frames, probe.filmstrip):
        fax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        fax.set_title(f"{value:.3g}", fontsize=9)
        fax.axis("off")
    strip.suptitle("what the network sees along the sweep", fontsize=9)
    return fig


# ---- ablation ---------------------------------------------------------------------------------------------------


def ablation_figure(ablation) -> Figure:
    """Left: every class's probability before and after the ablation. Right: how much P(top class) changes when
    each of the most influential channels alone is switched off."""
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1.1, 1])
    n = np.arange(len(ablation.classes))
    left.bar(n - 0.2, ablation.original, 0.4, label="original", color="#555555")
    left.bar(n + 0.2, ablation.ablated, 0.4, label="channels off", color="#d6604d")
    left.set_xticks(n, ablation.classes, rotation=45 if len(ablation.classes[0]) > 2 else 0, ha="right")
    left.set_ylabel("probability")
    left.set_ylim(0, 1.05)
    left.legend(fontsize=8)
    off = ", ".join(map(str, ablation.switched_off[:12])) + (" …" if len(ablation.switched_off) > 12 else "")
    left.set_title(f"{ablation.layer}: {len(ablation.switched_off)} channel(s) off ({off or 'none'})", fontsize=10)
    name = ablation.classes[ablation.top]
    if ablation.effects:
        channels, change = zip(*ablation.effects)
        points = 100 * np.asarray(change)  # percentage points of P(top)
        y = np.arange(len(channels))
        right.barh(y, points, color=["#d6604d" if c < 0 else "#4393c3" for c in points])
        right.set_yticks(y, [f"ch {c}" for c in channels], fontsize=8)
        right.invert_yaxis()
        right.axvline(0, color="black", lw=0.8)
        # a fixed scale, widened only for larger effects: an axis fitted to the bars made 0.002 points look large
        limit = next(v for v in (5, 10, 25, 50, 100) if v >= float(np.abs(points).max()))
        right.set_xlim(-limit, limit)
        largest = ablation_largest(ablation)
        if largest < NEGLIGIBLE:
            right.text(0.5, 0.5, f"No single channel matters here\n(largest change {100 * largest:.3g} "
                       "percentage points)", transform=right.transAxes, ha="center", va="center", fontsize=11,
                       bbox=dict(boxstyle="round", facecolor="white", edgecolor="#999999"))
    right.set_xlabel(f"change in P({name}), percentage points, with only that channel off")
    right.set_title(f"{ablation.layer}: the {len(ablation.effects)} channels that matter most to “{name}”",
                    fontsize=10)
    return fig


# ---- the legible "most active channels" panel (drawn on every stroke) ------------------------------------------


@lru_cache(maxsize=4096)
def _text_mask(text: str) -> np.ndarray:
    """`text` rendered once as a boolean (h, w) ink mask: the panel is redrawn on every stroke, its labels repeat."""
    font = ImageFont.load_default(size=13)
    image = Image.new("L", (120, 40), 0)
    ImageDraw.Draw(image).multiline_text((0, 0), text, fill=255, font=font, spacing=2)
    mask = np.asarray(image) > 96
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return mask[:rows[-1] + 1, :cols[-1] + 1] if len(rows) else mask[:1, :1]


def _write(out: np.ndarray, xy: tuple[int, int], text: str, index: int = 0) -> None:
    """Stamp `text` into the index image `out` at (x, y) in palette `index` (0: magma's black)."""
    mask = _text_mask(text)
    x, y = xy
    h, w = min(mask.shape[0], out.shape[0] - y), min(mask.shape[1], out.shape[1] - x)
    out[y:y + h, x:x + w][mask[:h, :w]] = index


def top_channels_panel(maps: dict[str, torch.Tensor], k: int = 6, tile: int = 72) -> Image.Image:
    """For each conv layer a row of its `k` most active channels (mean activation), each `tile` px and labelled
    with its channel number, in the magma palette from 0 (black) to that row's max (stated at the row's start):
    one palette ("P") image, like `inspection.palette_image`, so it PNG-encodes at one byte a pixel."""
    label_w, caption_h, gap = 84, 16, 6
    out = np.full((len(maps) * (tile + caption_h + gap) + gap, label_w + k * (tile + gap)), GAP, np.uint8)
    for r, (name, fmap) in enumerate(maps.items()):
        fmap = fmap.detach().float().cpu().numpy()  # (C, H, W); numpy: no thread-pool start-up for tiny reductions
        top = np.argsort(-fmap.mean(axis=(1, 2)), kind="stable")[:k]
        tiles = fmap[top]  # (k, H, W)
        vmax = max(float(tiles.max()), 1e-8)
        index = np.arange(tile) * tiles.shape[-1] // tile  # nearest upscale to exactly `tile` px
        tiles = np.clip(tiles[:, index][:, :, index] * (254 / vmax), 0, 254).round().astype(np.uint8)
        y = gap + r * (tile + caption_h + gap) + caption_h
        for i, channel in enumerate(top.tolist()):
            x = label_w + i * (tile + gap)
            out[y:y + tile, x:x + tile] = tiles[i]
            _write(out, (x, y - caption_h + 2), f"#{channel}")
        _write(out, (4, y + tile // 2 - 14), f"{name}\n0 - {vmax:.2f}")
    return palette_image(out)
