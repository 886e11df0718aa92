"""Training photos made to look like a visitor's (framing, colour, blur, JPEG, noise), and outlier images the model
learns to give no class (outlier exposure), both made per batch from the uint8 training images.

The outliers come from two generator families that the open-set benchmark (photos.py) never uses, so that its
figures stay honest: CIFAR-10 training images cut into 8x8 px tiles and shuffled (a jigsaw: photo statistics, no
object), and smooth random colour fields (a few random colours bicubically blended, with random rectangles)."""
from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .models import PRESETS

OUTLIER_WEIGHT = 0.5  # the outlier term's weight beside the class loss (Hendrycks et al. 2019 use 0.5)
ZOOM = (0.6, 1.6)  # how much of the training image the frame spans: < 1 a crop, > 1 the image on a larger background
ROTATE = 15  # degrees, either way
JPEG_SHARE, JPEG_QUALITY = 0.3, (15, 90)
BLUR_SHARE, BLUR_SIDE = 0.4, (14, 32)  # px: the side a blurred image is shrunk to before it is scaled back up
TILE = 8  # px: the jigsaw outliers' tile side (CIFAR-10's 32 px: 4x4 tiles)


def _uniform(lo: float, hi: float, n: int, generator, device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator, device=device)


def jpeg(images: torch.Tensor, share: float, generator) -> torch.Tensor:
    """uint8 (N, 3, h, w) with `share` of them JPEG-compressed at a random quality (PIL, ~0.1 ms a 32 px image)."""
    n = len(images)
    chosen = (torch.rand(n, generator=generator, device=images.device) < share).nonzero().flatten().tolist()
    if not chosen:
        return images
    quality = torch.randint(*JPEG_QUALITY, (len(chosen),), generator=generator, device=images.device).tolist()
    out = images.clone()
    for i, q in zip(chosen, quality):
        buffer = io.BytesIO()
        Image.fromarray(images[i].permute(1, 2, 0).cpu().numpy()).save(buffer, "JPEG", quality=q)
        decoded = np.array(Image.open(buffer).convert("RGB"))
        out[i] = torch.from_numpy(decoded).permute(2, 0, 1).to(images.device)
    return out


def photo_batch(images: torch.Tensor, preset: str, input_size: int, generator=None,
                channels_last: bool = False) -> torch.Tensor:
    """uint8 (N, 3, h, w) -> normalized float (N, 3, input_size, input_size) framed and coloured as a visitor's
    photo might be: zoomed in or out (the image on a random smooth background), 3:4 to 4:3, rotated, shifted,
    mirrored; brightness, contrast and saturation changed (some grey); some JPEG-compressed, blurred, noisy."""
    p, device = PRESETS[preset], images.device
    n, c, h, w = images.shape
    x = jpeg(images, JPEG_SHARE, generator).float().div_(255)

    def u(lo, hi):
        return _uniform(lo, hi, n, generator, device)

    zoom, aspect = torch.exp(u(*map(math.log, ZOOM))), torch.exp(u(math.log(3 / 4), math.log(4 / 3)))
    sx, sy = zoom * aspect.sqrt(), zoom / aspect.sqrt()
    angle = u(-ROTATE, ROTATE) * math.pi / 180
    flip = torch.where(torch.rand(n, generator=generator, device=device) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=device)  # output (u, v) in [-1, 1] -> input: rotation @ scale, then shift
    theta[:, 0, 0], theta[:, 0, 1] = angle.cos() * sx * flip, -angle.sin() * sy
    theta[:, 1, 0], theta[:, 1, 1] = angle.sin() * sx * flip, angle.cos() * sy
    theta[:, 0, 2] = u(-1, 1) * ((sx - 1).abs() + 0.1)  # a crop stays inside the image; a zoomed-out image in the frame
    theta[:, 1, 2] = u(-1, 1) * ((sy - 1).abs() + 0.1)
    grid = F.affine_grid(theta, [n, c, input_size, input_size], align_corners=False)
    inside = F.grid_sample(torch.ones(n, 1, h, w, device=device), grid, align_corners=False)
    background = F.interpolate(torch.rand(n, c, 2, 2, generator=generator, device=device), size=input_size,
                               mode="bilinear", align_corners=True)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    x = x + (1 - inside) * background

    brightness, contrast, saturation = u(0.6, 1.4), u(0.6, 1.4), u(0.4, 1.6)
    saturation = torch.where(torch.rand(n, generator=generator, device=device) < 0.1, 0.0, saturation)
    x = x * brightness.view(n, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast.view(n, 1, 1, 1) + mean
    gray = x.mean(dim=1, keepdim=True)
    x = (gray + (x - gray) * saturation.view(n, 1, 1, 1)).clamp_(0, 1)

    side = int(torch.randint(BLUR_SIDE[0], BLUR_SIDE[1] + 1, (1,), generator=generator, device=device))
    small = F.interpolate(x, size=side, mode="bilinear", antialias=True, align_corners=False)
    blurred = F.interpolate(small, size=input_size, mode="bilinear", align_corners=False)
    blur = torch.rand(n, generator=generator, device=device) < BLUR_SHARE
    x = torch.where(blur.view(n, 1, 1, 1), blurred, x)
    noise = u(0, 0.03).view(n, 1, 1, 1)
    x = (x + noise * torch.randn(x.shape, generator=generator, device=device)).clamp_(0, 1)

    x = (x - torch.tensor(p.mean, device=device).view(1, c, 1, 1)) / torch.tensor(p.std, device=device).view(1, c, 1, 1)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def jigsaw(images: torch.Tensor, generator=None) -> torch.Tensor:
    """uint8 (N, C, h, w) cut into TILE px tiles, each image's tiles in a random order."""
    n, c, h, w = images.shape
    rows, cols = h // TILE, w // TILE
    tiles = images[:, :, :rows * TILE, :cols * TILE].reshape(n, c, rows, TILE, cols, TILE)
    tiles = tiles.permute(0, 2, 4, 1, 3, 5).reshape(n, rows * cols, c, TILE, TILE)
    order = torch.rand(n, rows * cols, generator=generator, device=images.device).argsort(dim=1)
    tiles = tiles[torch.arange(n, device=images.device)[:, None], order]
    tiles = tiles.reshape(n, rows, cols, c, TILE, TILE).permute(0, 3, 1, 4, 2, 5)
    out = images.clone()
    out[:, :, :rows * TILE, :cols * TILE] = tiles.reshape(n, c, rows * TILE, cols * TILE)
    return out


def colour_fields(n: int, c: int, h: int, w: int, generator=None, device="cpu") -> torch.Tensor:
    """uint8 (n, c, h, w): a few random colours blended smoothly (2x2 to 5x5 control points, bicubic), with 0 to 3
    random solid rectangles on top."""
    k = int(torch.randint(2, 6, (1,), generator=generator, device=device))
    x = F.interpolate(torch.rand(n, c, k, k, generator=generator, device=device), size=(h, w), mode="bicubic",
                      align_corners=True).clamp_(0, 1)
    ys, xs = torch.arange(h, device=device).view(1, h, 1), torch.arange(w, device=device).view(1, 1, w)
    for _ in range(3):
        corners = torch.rand(n, 4, generator=generator, device=device)
        top, bottom = (corners[:, :2].min(1).values * h).view(n, 1, 1), (corners[:, :2].max(1).values * h).view(n, 1, 1)
        left, right = (corners[:, 2:].min(1).values * w).view(n, 1, 1), (corners[:, 2:].max(1).values * w).view(n, 1, 1)
        drawn = torch.rand(n, 1, 1, generator=generator, device=device) < 0.5
        box = (ys >= top) & (ys < bottom) & (xs >= left) & (xs < right) & drawn
        colour = torch.rand(n, c, 1, 1, generator=generator, device=device)
        x = torch.where(box[:, None], colour, x)
    return (x * 255).round().to(torch.uint8)


def outlier_images(images: torch.Tensor, n: int, generator=None) -> torch.Tensor:
    """uint8 (n, C, h, w) outliers for a batch: half jigsaws of random training `images`, half colour fields."""
    device = images.device
    jigsaws = n // 2
    picked = torch.randint(0, len(images), (jigsaws,), generator=generator, device=device)
    fields = colour_fields(n - jigsaws, *images.shape[1:], generator=generator, device=device)
    return torch.cat([jigsaw(images[picked], generator), fields])


def outlier_loss(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of outlier logits (N, classes) against the uniform distribution: the mean over classes of
    -log softmax (its least, log(classes), when every class gets the same probability)."""
    return (logits.logsumexp(dim=1) - logits.mean(dim=1)).mean()
