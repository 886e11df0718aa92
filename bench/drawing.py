"""Digits as people draw them: MNIST test digits re-drawn with a constant-width round brush, read through the app's path.

`python bench/drawing.py` (or `python bench/bench.py drawing`). Each MNIST digit is skeletonized (scikit-image) and
traced with a round brush of one width on a 480x480 canvas, scaled so that the drawn ink is H px tall, in three styles:
RGBA strokes on a transparent layer (the Sketchpad: hard-edged), dark-on-white RGB and light-on-dark RGB (uploads:
anti-aliased). Accuracy per (height, brush width) cell through `Classifier.preprocess` then the model. Then "not a
digit": letters, scribbles and filled blobs drawn the same way, and how often each gets a low top probability.
"""
from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alexnet_demo.data import load_dataset  # noqa: E402
from alexnet_demo.confidence import BLOB, SURE  # noqa: E402
from alexnet_demo.inference import load_classifier  # noqa: E402
from alexnet_demo.preprocessing import ink_box, ink_map, stroke_fraction  # noqa: E402
from alexnet_demo.sketch import CANVAS, skeleton_of, styled, trace  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from bench import own_parser  # noqa: E402
HEIGHTS = (60, 100, 160, 250, 400)  # drawn ink height, canvas px
WIDTHS = (6, 12, 18, 24, 36)  # brush width = 2 x gradio's Brush radius (the app's default_size=18 is width 36)
STYLES = ("sketchpad_rgba", "dark_on_white", "light_on_dark")
TARGET = 0.30  # target cells: brush width <= 30% of the digit's height
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)  # "not sure" below this top probability
# Letters that are not drawn like any digit (O/o/D/Q ~ 0, I/l/i/j/J ~ 1, S/s ~ 5, Z/z ~ 2, B ~ 8, b/G ~ 6, g/q ~ 9).
LETTERS = "ACEFHKLMNPRTUVWXYacdefhkmnprtuvwxy"
FONTS = ("DejaVuSans.ttf", "DejaVuSerif.ttf")


# ---- drawing -------------------------------------------------------------------------------------------------


def canvases(points: np.ndarray, height: int, width: int, seed: int) -> dict[str, np.ndarray]:
    """One drawing in every style: hard-edged on the Sketchpad, anti-aliased (2x supersampled) for the RGB uploads."""
    hard = trace(points, height, width, np.random.default_rng(seed))
    soft = trace(points, height, width, np.random.default_rng(seed), supersample=2)
    return {style: styled(hard if style == "sketchpad_rgba" else soft, style) for style in STYLES}


# ---- reading -------------------------------------------------------------------------------------------------


class Reader:
    """The app's path (preprocess, then the model), batched; identical 28x28 inputs are read once."""

    def __init__(self, classifier, preprocess=None):
        self.classifier, self.preprocess = classifier, preprocess or classifier.preprocess
        self.cache: dict[bytes, np.ndarray] = {}
        self.seconds = []  # preprocessing time per canvas
        self.strokes = []  # each canvas's stroke width over its ink's longer side (confidence.BLOB)
        self.seen = []  # the last call's 28x28 inputs (None where nothing was drawn)

    @torch.inference_mode()
    def probabilities(self, images: list) -> np.ndarray:
        """(n, 10) softmax for n visitor images (rows of NaN where nothing was drawn)."""
        seen = []
        for image in images:
            t = time.perf_counter()
            seen.append(self.preprocess(image))
            self.seconds.append(time.perf_counter() - t)
            crop = ink_box(ink_map(image))
            self.strokes.append(stroke_fraction(crop) if crop is not None else 0.0)
        todo = list({s.tobytes(): s for s in seen if s is not None and s.tobytes() not in self.cache}.items())
        for i in range(0, len(todo), 100):
            chunk = todo[i:i + 100]
            x = torch.cat([self.classifier.to_batch(s) for _, s in chunk])
            p = self.classifier.model(x).float().softmax(1).numpy()
            self.cache.update({key: row for (key, _), row in zip(chunk, p)})
        self.seen = seen
        return np.stack([self.cache[s.tobytes()] if s is not None else np.full(10, np.nan) for s in seen])


def misses_picture(images: np.ndarray, labels: np.ndarray, found: list, path: Path, scale: int = 4) -> Path:
    """Each missed digit as a pair: the MNIST digit, and what the network saw once it was drawn and preprocessed."""
    from PIL import ImageOps
    side, columns = 28 * scale, 6
    tile_w, tile_h = 2 * side + 3 * 8, side + 22
    rows = max(1, math.ceil(len(found) / columns))
    sheet = Image.new("RGB", (columns * tile_w, rows * tile_h), (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    for k, (i, read, seen) in enumerate(found):
        x, y = (k % columns) * tile_w, (k // columns) * tile_h
        pair = [Image.fromarray(images[i]), Image.fromarray(seen)]
        for j, picture in enumerate(pair):
            sheet.paste(ImageOps.scale(picture, scale, Image.NEAREST).convert("RGB"), (x + 8 + j * (side + 8), y + 20))
        draw.text((x + 8, y + 4), f"{labels[i]} read as {read}", fill=(235, 235, 235))
    sheet.save(path)
    return path


def sample(labels: torch.Tensor, per_class: int, seed: int = 0) -> np.ndarray:
    """A fixed, seeded, class-balanced sample of indices."""
    rng = np.random.default_rng(seed)
    labels = labels.numpy()
    return np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)])


def digit_cells(readers: dict[str, Reader], images, labels, heights, widths) -> tuple[list[dict], dict, dict]:
    """Accuracy per (checkpoint, height, width, style), each cell drawn once and read by every checkpoint; per
    checkpoint the target-cell digits' (top probability, stroke fraction); and per (checkpoint, height, width) the
    Sketchpad-style misses as (digit index, read as, 28x28 seen), for misses_picture."""
    skeletons = [skeleton_of(d) for d in images]
    rows, target_top, target_stroke = [], {n: [] for n in readers}, {n: [] for n in readers}
    misses = {}
    for h in heights:
        for w in widths:
            drawn = [canvases(sk, h, w, seed=i) for i, sk in enumerate(skeletons)]
            for name, reader in readers.items():
                for style in STYLES:
                    p = reader.probabilities([d[style] for d in drawn])
                    correct = int((p.argmax(1) == labels).sum())
                    if style == "sketchpad_rgba":  # what was missed, for misses_picture
                        misses[(name, h, w)] = [(i, int(p[i].argmax()), reader.seen[i])
                                                for i in np.flatnonzero(p.argmax(1) != labels)]
                    rows.append({"checkpoint": name, "height": h, "width": w, "style": style,
                                 "target": w <= TARGET * h, "n": len(labels), "correct": correct,
                                 "accuracy": correct / len(labels)})
                    if w <= TARGET * h:
                        target_top[name].append(p.max(1))
                        target_stroke[name].append(reader.strokes[-len(labels):])
                print(f"  {name}: height {h:3d} width {w:2d}: " + "  ".join(
                    f"{r['style']} {r['accuracy']:.1%}" for r in rows[-len(STYLES):]), flush=True)
    return rows, {n: (np.concatenate(target_top[n]), np.concatenate(target_stroke[n])) for n in readers}, misses


# ---- not a digit ---------------------------------------------------------------------------------------------


def letter_skeletons() -> list[tuple[str, np.ndarray]]:
    out = []
    for font_name in FONTS:
        try:
            font = ImageFont.truetype(font_name, 80)
        except OSError:  # no DejaVu: Pillow's own scalable font
            font = ImageFont.load_default(size=80)
        for ch in LETTERS:
            image = Image.new("L", (120, 120), 0)
            ImageDraw.Draw(image).text((60, 60), ch, fill=255, font=font, anchor="mm")
            small = image.resize((30, 30), Image.BILINEAR)  # about MNIST's scale, so the skeleton is alike
            out.append((f"{ch} {font_name}", skeleton_of(np.asarray(small))))
    return out


def scribble(rng: np.random.Generator) -> np.ndarray:
    """A random smooth pen path (a turning walk of 40-120 steps) as skeleton-like points on a 112 grid."""
    n, heading, turn = rng.integers(40, 120), rng.uniform(0, 2 * math.pi), 0.0
    y, x, pts = 56.0, 56.0, []
    for _ in range(n):
        turn = 0.8 * turn + rng.normal(0, 0.25)
        heading += turn
        y, x = np.clip(y + 2 * math.sin(heading), 0, 111), np.clip(x + 2 * math.cos(heading), 0, 111)
        pts.append((y, x))
    grid = np.zeros((112, 112), bool)
    for (y0, x0), (y1, x1) in zip(pts, pts[1:]):  # dense steps, so 8-neighbours join up
        for t in np.linspace(0, 1, 4):
            grid[round(y0 + (y1 - y0) * t), round(x0 + (x1 - x0) * t)] = True
    return np.argwhere(grid)


def blob(rng: np.random.Generator, height: int) -> np.ndarray:
    """A filled blob (a random star-shaped polygon) `height` px tall on the canvas: uint8 ink."""
    angles = np.sort(rng.uniform(0, 2 * math.pi, 9))
    radius = rng.uniform(0.5, 1.0, 9) * height / 2
    c = rng.uniform(height / 2, CANVAS - height / 2, 2)
    image = Image.new("L", (CANVAS, CANVAS), 0)
    ImageDraw.Draw(image).polygon([(c[1] + r * math.cos(a), c[0] + r * math.sin(a)) for a, r in zip(angles, radius)],
                                  fill=255)
    return np.asarray(image)


def not_digits(reader: Reader, digits: tuple, tiny: bool) -> list[dict]:
    """Fraction of letters, scribbles and blobs called "not sure" at each threshold, and by confidence.doubt (top
    below SURE, or strokes bolder than BLOB), beside the re-drawn digits' own."""
    rng = np.random.default_rng(1)
    letters = letter_skeletons()[:6 if tiny else None]
    cells = ((100, 12), (250, 24)) if tiny else ((100, 12), (160, 18), (250, 36), (400, 24))
    kinds = {"letter": [], "scribble": [], "blob": []}
    for i, (h, w) in enumerate(cells):
        kinds["letter"] += [styled(trace(sk, h, w, rng), "sketchpad_rgba") for _, sk in letters]
        kinds["scribble"] += [styled(trace(scribble(rng), h, w, rng), "sketchpad_rgba") for _ in range(3 if tiny else 50)]
        kinds["blob"] += [styled(blob(rng, h), "sketchpad_rgba") for _ in range(2 if tiny else 25)]
    seen = {kind: (reader.probabilities(images).max(1), np.array(reader.strokes[-len(images):]))
            for kind, images in kinds.items()}
    seen["digit (target cells)"] = digits
    return [{"kind": kind, "n": len(top), **{f"below_{t}": float((top < t).mean()) for t in THRESHOLDS},
             "bolder_than_blob": float((stroke > BLOB).mean()), "doubt": float(((top < SURE) | (stroke > BLOB)).mean())}
            for kind, (top, stroke) in seen.items()]


# ---- report --------------------------------------------------------------------------------------------------


def table(rows: list[dict], style: str | None, heights, widths, checkpoint: str) -> str:
    """Rows: height; columns: brush width; '*' marks target cells. style None: the worst of the styles."""
    lines = [f"{'height':>6} | " + " | ".join(f"w={w:<5}" for w in widths)]
    for h in heights:
        cell = []
        for w in widths:
            acc = min(r["accuracy"] for r in rows if r["height"] == h and r["width"] == w
                      and r["checkpoint"] == checkpoint and (style is None or r["style"] == style))
            cell.append(f"{acc:6.1%}{'*' if w <= TARGET * h else ' '}")
        lines.append(f"{h:>6} | " + " | ".join(cell))
    return "\n".join(lines)


def calibrate(data_root) -> dict:
    """MNIST's stroke widths (fraction of the ink's longer side) by the app's own estimator, on the training digits:
    where preprocessing.STROKE_BAND comes from."""
    from alexnet_demo.preprocessing import ink_box, ink_map, stroke_fraction
    images = load_dataset("mnist", "train", data_root, download=False).images[:, 0].numpy()
    widths = [stroke_fraction(ink_box(ink_map(digit))) for digit in images]
    percentiles = {p: float(np.percentile(widths, p)) for p in (1, 5, 10, 25, 50, 75, 90, 95, 99)}
    print("MNIST training digits' stroke width / longer side, percentiles:",
          "  ".join(f"{p}%: {v:.3f}" for p, v in percentiles.items()))
    return percentiles


def run(args) -> Path:
    readers = {name: Reader(load_classifier(name)) for name in args.checkpoint}
    data = load_dataset("mnist", "test", args.data_root, download=False)
    per_class = max(1, (2 if args.tiny else args.per_cell) // 10)
    index = sample(data.labels, per_class)
    images, labels = data.images[index, 0].numpy(), data.labels[index].numpy()
    heights, widths = ((60, 250), (6, 36)) if args.tiny else (args.heights or HEIGHTS, args.widths or WIDTHS)
    started = time.time()
    rows, digits, misses = digit_cells(readers, images, labels, heights, widths)
    refusal = {name: not_digits(reader, digits[name], args.tiny) for name, reader in readers.items()}
    n = len(labels)
    if args.misses:
        h, w = args.misses
        args.out.mkdir(parents=True, exist_ok=True)
        for name in readers:
            if (name, h, w) in misses:
                stem = Path(name).stem
                print(f"-> {misses_picture(images, labels, misses[(name, h, w)], args.out / f'misses-{stem}-{h}px-{w}px.png')}")
    for name, reader in readers.items():
        print(f"\n== {name} ({reader.classifier.source}) ==\nAccuracy (%), {n} digits per cell ({per_class} per "
              f"class); '*': brush <= {TARGET:.0%} of height. Binomial noise at 97%: "
              f"+-{math.sqrt(0.97 * 0.03 / n):.1%} (1 s.e.)")
        for style in (*STYLES, None):
            print(f"\n{style or 'worst of the three styles'}:\n{table(rows, style, heights, widths, name)}")
        print("\nFraction called 'not sure' (top probability below the threshold):")
        for r in refusal[name]:
            print(f"  {r['kind']:>21} (n={r['n']:4d}): "
                  + "  ".join(f"<{t}: {r[f'below_{t}']:.0%}" for t in THRESHOLDS)
                  + f"  | stroke > {BLOB}: {r['bolder_than_blob']:.1%}  doubt(): {r['doubt']:.1%}")
    ms = np.concatenate([reader.seconds for reader in readers.values()]) * 1000
    print(f"\npreprocessing per {CANVAS}x{CANVAS} canvas: p50 {np.median(ms):.2f} ms, p90 {np.percentile(ms, 90):.2f} ms"
          f"; whole run {time.time() - started:.0f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "drawing.json"
    path.write_text(json.dumps({
        "benchmark": "drawing", "machine": platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "load_average_1min": os.getloadavg()[0],
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "per_cell": n, "canvas": CANVAS,
        "brush_width": "diameter in canvas px = 2 x gradio Brush default_size (a radius); the app uses 18 -> 36",
        "height": "the drawn ink's height in canvas px", "target": f"brush width <= {TARGET} x height",
        "styles": {"sketchpad_rgba": "hard-edged strokes in alpha, transparent background",
                   "dark_on_white": "RGB, anti-aliased (2x supersampled)", "light_on_dark": "RGB, anti-aliased"},
        "checkpoints": {name: {"source": str(reader.classifier.source),
                               "test_accuracy": reader.classifier.meta.get("test_accuracy")}
                        for name, reader in readers.items()},
        "preprocess_ms_p50": float(np.median(ms)), "preprocess_ms_p90": float(np.percentile(ms, 90)),
        "rows": rows, "not_a_digit": refusal}, indent=2))
    print(f"-> {path}")
    return path


def main(argv=None) -> int:
    parser = own_parser(__doc__, tiny="a seconds-long pass over the code paths")
    parser.add_argument("--per-cell", type=int, default=1000,
                        help="test digits per cell, balanced over classes (1000: +-0.5 point at 97%%, 1 s.e.)")
    parser.add_argument("--calibrate", action="store_true", help="only measure MNIST's own stroke widths")
    parser.add_argument("--checkpoint", action="append", default=None,
                        help="a preset name or .safetensors file to read with; repeat to compare side by side on "
                             "the same drawings (default: mnist, the shipped file)")
    parser.add_argument("--heights", type=int, nargs="+", help=f"ink heights, canvas px (default {HEIGHTS})")
    parser.add_argument("--widths", type=int, nargs="+", help=f"brush widths, canvas px (default {WIDTHS})")
    parser.add_argument("--misses", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"),
                        help="also save a picture of each checkpoint's misses in that cell (Sketchpad style)")
    args = parser.parse_args(argv)
    args.checkpoint = args.checkpoint or ["mnist"]
    calibrate(args.data_root) if args.calibrate else run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
