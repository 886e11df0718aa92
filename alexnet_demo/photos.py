"""The open-set evaluation photos, made without downloading: CIFAR-10 images re-photographed as a visitor's photo
(in class), and photos of other things (out of class): pictures shipped inside installed packages (scikit-image's
data module, matplotlib's sample data) and synthetic scenes (text, patterns, noise, MNIST digits pasted as photos,
house numbers drawn with PIL fonts). Every photo is a PIL RGB image of 96 to 320 px, made from a seed.

None of these families is among the outliers the shipped model was trained on (photo_augment.outlier_images:
jigsaws of CIFAR-10 training photos, smooth colour fields), so their figures are not fitted to them."""
from __future__ import annotations

import io
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

# Package pictures of things outside the ten classes. Left out: scikit-image's chelsea (a cat) and horse (a horse's
# silhouette), which are in class. lfw_subset: 200 faces of 25x25 px (people).
SKIMAGE_FILES = ("astronaut.png", "brick.png", "camera.png", "cell.png", "chessboard_RGB.png", "clock_motion.png",
                 "coffee.png", "coins.png", "color.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png",
                 "logo.png", "microaneurysms.png", "moon.png", "motorcycle_left.png", "page.png", "phantom.png",
                 "retina.jpg", "rocket.jpg", "text.png")
MATPLOTLIB_FILES = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png")
FONT_DIRS = ("/usr/share/fonts/truetype", "/usr/share/fonts")
WORDS = ("hello", "SALE 50%", "Welcome", "EXIT", "menu", "Chapter 3", "open", "coffee", "STOP", "the quick brown fox",
         "Monday", "Gradio", "AlexNet", "lorem ipsum", "Thank you!", "12:45", "No parking", "café", "HOTEL", "push")
OUT_FAMILIES = ("package photos", "faces", "text", "patterns", "noise", "mnist digits", "house numbers")


@dataclass
class Photo:
    image: Image.Image  # RGB
    family: str  # "cifar10" for the in-class side, else one of OUT_FAMILIES
    label: int | None  # the CIFAR-10 class index in class; None out of class


# ---- in class: CIFAR-10 images re-photographed ---------------------------------------------------------------


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def rephotograph(image: Image.Image, rng: random.Random) -> Image.Image:
    """A 32x32 CIFAR-10 image as a visitor's photo of the same thing might be: upscaled to 96-320 px, then some of:
    framed off-centre (cropped or on a larger background), rotated, recoloured, blurred; always JPEG-compressed."""
    side = rng.randint(96, 320)
    x = image.convert("RGB").resize((side, side), Image.BICUBIC)
    if rng.random() < 0.4:  # recoloured: a warm or cool cast, brighter or darker, more or less saturated
        a = np.asarray(x, np.float32) / 255
        cast = np.array([rng.uniform(0.8, 1.2) for _ in range(3)], np.float32)
        gray = a.mean(axis=2, keepdims=True)
        a = gray + (a - gray) * rng.uniform(0.5, 1.5)
        a = np.clip(a * cast * rng.uniform(0.7, 1.3), 0, 1)
        x = Image.fromarray((a * 255).astype(np.uint8))
    if rng.random() < 0.4:
        x = x.rotate(rng.uniform(-25, 25), Image.BICUBIC, expand=False, fillcolor=_colour(rng))
    frame = rng.random()
    if frame < 0.35:  # on a larger background (a table, a wall): the object 45-80% of the photo's side
        big = int(side / rng.uniform(0.45, 0.8))
        background = Image.new("RGB", (big, big), _colour(rng)).filter(ImageFilter.GaussianBlur(2))
        background = Image.fromarray(np.clip(np.asarray(background, np.float32) + np.random.default_rng(
            rng.randrange(1 << 30)).normal(0, 8, (big, big, 3)), 0, 255).astype(np.uint8))
        background.paste(x, (rng.randint(0, big - side), rng.randint(0, big - side)))
        x = background
    elif frame < 0.7:  # cropped off-centre, and not square: 70-90% of the side, shifted
        w, h = int(side * rng.uniform(0.7, 0.95)), int(side * rng.uniform(0.7, 0.95))
        left, top = rng.randint(0, side - w), rng.randint(0, side - h)
        x = x.crop((left, top, left + w, top + h))
    if rng.random() < 0.3:
        x = x.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
    return jpeg(x, rng.randint(30, 90))


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return tuple(rng.randint(0, 255) for _ in range(3))


def in_class(images, labels, count: int, seed: int = 0) -> list[Photo]:
    """`count` of the CIFAR-10 `images` (uint8 (N, 3, 32, 32)) re-photographed, the same number of each class."""
    rng = random.Random(seed)
    labels = np.asarray(labels)
    per_class = count // 10
    chosen = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)])
    return [Photo(rephotograph(Image.fromarray(np.asarray(images[i]).transpose(1, 2, 0)), rng), "cifar10",
                  int(labels[i])) for i in chosen]


# ---- out of class --------------------------------------------------------------------------------------------


def package_pictures() -> list[tuple[str, Image.Image]]:
    """(name, RGB image) for each package picture found on this machine (scikit-image, matplotlib)."""
    found = []
    try:
        import skimage
        folder = Path(skimage.__file__).parent / "data"
        found += [(f, Image.open(folder / f)) for f in SKIMAGE_FILES if (folder / f).is_file()]
    except ImportError:
        pass
    import matplotlib
    folder = Path(matplotlib.get_data_path()) / "sample_data"
    found += [(f, Image.open(folder / f)) for f in MATPLOTLIB_FILES if (folder / f).is_file()]
    out = []
    for name, image in found:
        image.load()
        if image.mode in ("RGBA", "LA", "P"):
            image = image.convert("RGBA")
            white = Image.new("RGBA", image.size, "white")
            image = Image.alpha_composite(white, image)
        out.append((name, image.convert("RGB")))
    return out


def views_of(image: Image.Image, count: int, rng: random.Random) -> list[Image.Image]:
    """`count` photos of one picture: the whole of it, then crops of 40-90% of its sides, at 96-320 px."""
    out = []
    for i in range(count):
        w, h = image.size
        if i > 0:
            cw, ch = int(w * rng.uniform(0.4, 0.9)), int(h * rng.uniform(0.4, 0.9))
            left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
            view = image.crop((left, top, left + cw, top + ch))
        else:
            view = image
        scale = rng.randint(96, 320) / max(view.size)
        view = view.resize((max(1, round(view.size[0] * scale)), max(1, round(view.size[1] * scale))), Image.BICUBIC)
        out.append(jpeg(view, rng.randint(50, 95)))
    return out


def faces(count: int, rng: random.Random) -> list[Image.Image]:
    """scikit-image's 25x25 LFW faces (gray), upscaled as a phone's selfie thumbnail would be; [] without it."""
    try:
        import skimage
        stack = np.load(Path(skimage.__file__).parent / "data" / "lfw_subset.npy")
    except (ImportError, OSError):
        return []
    out = []
    for face in stack[:count]:
        gray = Image.fromarray((np.clip(face, 0, 1) * 255).astype(np.uint8)).convert("RGB")
        out.append(jpeg(gray.resize((rng.randint(96, 200),) * 2, Image.BICUBIC), rng.randint(50, 95)))
    return out


def _fonts() -> list[str]:
    fonts = []
    for d in FONT_DIRS:
        if os.path.isdir(d):
            fonts += sorted(str(p) for p in Path(d).rglob("*.ttf"))
    return fonts


def _font(fonts, rng: random.Random, size: int):
    return ImageFont.truetype(rng.choice(fonts), size) if fonts else ImageFont.load_default(size)


def text_photo(rng: random.Random, fonts) -> Image.Image:
    """A word or two on paper, a sign or a screen."""
    side = rng.randint(128, 320)
    background = _colour(rng)
    image = Image.new("RGB", (side, side), background)
    draw = ImageDraw.Draw(image)
    ink = tuple(255 - c for c in background) if rng.random() < 0.7 else _colour(rng)
    for line in range(rng.randint(1, 4)):
        font = _font(fonts, rng, rng.randint(side // 10, side // 4))
        draw.text((rng.randint(0, side // 3), rng.randint(0, side * 3 // 4)), rng.choice(WORDS), fill=ink, font=font)
    return jpeg(image, rng.randint(50, 95))


def pattern_photo(rng: random.Random) -> Image.Image:
    """A checkerboard, stripes, rings or a gradient, in two random colours."""
    side = rng.randint(96, 320)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    period = rng.uniform(6, side / 3)
    kind = rng.choice(("checks", "stripes", "rings", "gradient"))
    if kind == "checks":
        t = ((x // period + y // period) % 2)
    elif kind == "stripes":
        angle = rng.uniform(0, np.pi)
        t = (np.sin((x * np.cos(angle) + y * np.sin(angle)) * 2 * np.pi / period) > 0).astype(np.float32)
    elif kind == "rings":
        cx, cy = rng.uniform(0, side), rng.uniform(0, side)
        t = (np.sin(np.hypot(x - cx, y - cy) * 2 * np.pi / period) > 0).astype(np.float32)
    else:
        angle = rng.uniform(0, 2 * np.pi)
        t = (x * np.cos(angle) + y * np.sin(angle))
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    a, b = np.array(_colour(rng), np.float32), np.array(_colour(rng), np.float32)
    image = a + t[..., None] * (b - a)
    return jpeg(Image.fromarray(image.astype(np.uint8)), rng.randint(50, 95))


def noise_photo(rng: random.Random) -> Image.Image:
    """Pixel noise: uniform, Gaussian around a colour, or salt and pepper."""
    side = rng.randint(96, 320)
    g = np.random.default_rng(rng.randrange(1 << 30))
    kind = rng.choice(("uniform", "gaussian", "salt"))
    if kind == "uniform":
        a = g.uniform(0, 255, (side, side, 3))
    elif kind == "gaussian":
        a = np.array(_colour(rng)) + g.normal(0, rng.uniform(10, 80), (side, side, 3))
    else:
        a = np.where(g.random((side, side, 1)) < 0.5, 0, 255) * np.ones(3)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def mnist_photo(digit: np.ndarray, rng: random.Random) -> Image.Image:
    """A 28x28 MNIST digit as if written on paper and photographed: dark ink on a tinted page, uneven light, blur."""
    side = rng.randint(96, 256)
    ink = np.asarray(Image.fromarray(digit).resize((side, side), Image.BICUBIC), np.float32)[..., None] / 255
    paper = np.array([rng.uniform(180, 255) for _ in range(3)], np.float32)
    pen = np.array([rng.uniform(0, 90) for _ in range(3)], np.float32)
    y = np.linspace(rng.uniform(0.7, 1.0), rng.uniform(0.9, 1.1), side, dtype=np.float32)[:, None, None]
    image = (paper + ink * (pen - paper)) * y
    image = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.5)))
    return jpeg(image, rng.randint(50, 95))


def house_number_photo(rng: random.Random, fonts) -> Image.Image:
    """SVHN-like: a 1-4 digit house number in a random font on a plate, framed with some wall around it."""
    side = rng.randint(96, 256)
    wall = Image.new("RGB", (side, side), _colour(rng))
    draw = ImageDraw.Draw(wall)
    plate = _colour(rng)
    margin = rng.randint(4, side // 6)
    draw.rectangle((margin, side // 4, side - margin, side * 3 // 4), fill=plate)
    number = str(rng.randint(1, 9999 if rng.random() < 0.5 else 99))
    font = _font(fonts, rng, rng.randint(side // 5, side // 3))
    ink = tuple(255 - c for c in plate)
    draw.text((margin + rng.randint(2, side // 5), side // 4 + rng.randint(0, side // 8)), number, fill=ink, font=font)
    return jpeg(wall.rotate(rng.uniform(-10, 10), Image.BICUBIC, fillcolor=_colour(rng)), rng.randint(50, 95))


def out_of_class(per_family: int, mnist_digits=None, seed: int = 0) -> list[Photo]:
    """About `per_family` photos of each OUT_FAMILIES family (package photos: as many views of each picture as make
    `per_family`); the mnist family needs `mnist_digits` (uint8 (N, 28, 28)) and is left out without them."""
    rng, fonts = random.Random(seed + 1), _fonts()
    photos = []
    pictures = package_pictures()
    for name, picture in pictures:
        count = max(1, per_family // len(pictures))
        photos += [Photo(v, "package photos", None) for v in views_of(picture, count, rng)]
    photos += [Photo(f, "faces", None) for f in faces(per_family, rng)]
    photos += [Photo(text_photo(rng, fonts), "text", None) for _ in range(per_family)]
    photos += [Photo(pattern_photo(rng), "patterns", None) for _ in range(per_family)]
    photos += [Photo(noise_photo(rng), "noise", None) for _ in range(per_family)]
    if mnist_digits is not None:
        photos += [Photo(mnist_photo(np.asarray(d), rng), "mnist digits", None) for d in mnist_digits[:per_family]]
    photos += [Photo(house_number_photo(rng, fonts), "house numbers", None) for _ in range(per_family)]
    return photos
