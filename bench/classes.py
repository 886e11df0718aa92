"""Your classes: 10 classes x 20 drawn examples trained from the shipped MNIST model, Start -> held-out accuracy,
fp32 against bf16 autocast in one run: `python bench/bench.py classes [--per-class 20] [--tune classifier]`.

The examples are drawn the way a visitor draws them on the sketchpad: each symbol's strokes traced with a round
black brush on a transparent 480x480 RGBA layer (what gr.Sketchpad sends), at a random size, place, slant and brush
width, every point jittered by a hand's wobble; then added through the workspace, which reads them as the Draw tab
does. Real input made by a program, not a dataset."""
from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CANVAS = 480  # px, the Draw tab's sketchpad


def _polygon(k: int, start: float = -math.pi / 2) -> list:
    return [[(math.cos(start + 2 * math.pi * i / k), math.sin(start + 2 * math.pi * i / k)) for i in range(k + 1)]]


# Each symbol: strokes of points in [-1, 1]^2 (y down), as a hand draws it
SYMBOLS = {
    "circle": [[(math.cos(t), math.sin(t)) for t in np.linspace(0, 2 * math.pi, 40)]],
    "triangle": _polygon(3),
    "square": [[(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8), (-0.8, -0.8)]],
    "cross": [[(-0.8, -0.8), (0.8, 0.8)], [(0.8, -0.8), (-0.8, 0.8)]],
    "tick": [[(-0.8, 0.0), (-0.25, 0.7), (0.85, -0.8)]],
    "arrow": [[(-0.9, 0.0), (0.9, 0.0)], [(0.35, -0.5), (0.9, 0.0), (0.35, 0.5)]],
    "plus": [[(0.0, -0.9), (0.0, 0.9)], [(-0.9, 0.0), (0.9, 0.0)]],
    "star": [[(math.cos(-math.pi / 2 + 4 * math.pi * i / 5), math.sin(-math.pi / 2 + 4 * math.pi * i / 5))
              for i in range(6)]],
    "A": [[(-0.7, 0.9), (0.0, -0.9), (0.7, 0.9)], [(-0.38, 0.15), (0.38, 0.15)]],
    "Z": [[(-0.7, -0.8), (0.7, -0.8), (-0.7, 0.8), (0.7, 0.8)]],
}


def draw_symbol(name: str, rng: np.random.Generator) -> np.ndarray:
    """`name` drawn as a visitor would on the sketchpad: uint8 (480, 480, 4), black strokes on transparent."""
    layer = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
    pen = ImageDraw.Draw(layer)
    size = rng.uniform(90, 190)  # half the symbol's extent, px
    centre = rng.uniform(size + 20, CANVAS - size - 20, 2)
    angle = rng.uniform(-0.25, 0.25)  # rad of slant
    squash = rng.uniform(0.8, 1.2)
    width = int(rng.integers(14, 30))  # the brush's diameter, px
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    for stroke in SYMBOLS[name]:
        points = np.array(stroke, float) * [squash, 1 / squash] + rng.normal(0, 0.04, (len(stroke), 2))
        points = points @ rotation.T * size + centre
        xy = [tuple(p) for p in points]
        pen.line(xy, fill=(0, 0, 0, 255), width=width, joint="curve")
        for x, y in (xy[0], xy[-1]):  # a round brush's ends
            pen.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=(0, 0, 0, 255))
    return np.asarray(layer)


def sketch(name: str, rng: np.random.Generator) -> dict:
    """A drawn symbol as the sketchpad hands it to a callback: {"background", "layers", "composite"}."""
    layer = draw_symbol(name, rng)
    return {"background": np.zeros_like(layer), "layers": [layer], "composite": layer}


def fill_workspace(workspace, names, per_class: int, seed: int = 0) -> None:
    """`per_class` drawings of each of `names` added to `workspace` (alexnet_demo.classes.Workspace)."""
    rng = np.random.default_rng(seed)
    for name in names:
        workspace.add_class(name)
        for _ in range(per_class):
            workspace.add_drawing(name, sketch(name, rng))


def main(argv=None) -> int:
    from alexnet_demo.classes import Workspace
    from alexnet_demo.training import DoneEvent, EpochEvent, device_name, pick_device, train
    import bench

    parser = bench.own_parser(__doc__, "3 classes x 4 examples, 1 epoch (tests)")
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--classes", type=int, default=10, help="how many of the 10 symbols")
    parser.add_argument("--tune", default="classifier", choices=("head", "classifier", "conv5", "all"))
    parser.add_argument("--epochs", type=int, default=None, help="None: the workspace's default")
    args = parser.parse_args(argv)
    names, per_class = list(SYMBOLS)[:args.classes], args.per_class
    if args.tiny:
        names, per_class, args.epochs = names[:3], 4, 1
    rows = []
    with tempfile.TemporaryDirectory(prefix="alexnet_demo-classes-") as folder:
        workspace = Workspace("drawings", Path(folder))
        made = time.perf_counter()
        fill_workspace(workspace, names, per_class)
        adding_s = time.perf_counter() - made
        for amp in (False, True):
            config = workspace.config(tune=args.tune, amp=amp, **({"epochs": args.epochs} if args.epochs else {}))
            started, curve = time.perf_counter(), []
            for event in train(config):
                if isinstance(event, EpochEvent):
                    curve.append(round(event.eval_accuracy, 4))
                if isinstance(event, DoneEvent):
                    done = event
            rows.append({"format": "bf16 autocast" if amp else "fp32", "classes": len(names),
                         "examples_per_class": per_class, "train_examples": config_train_count(workspace, config),
                         "held_out": sum(map(sum, done.confusion)), "tune": args.tune, "epochs": config.epochs,
                         "held_out_accuracy": done.test_accuracy, "start_to_done_s": time.perf_counter() - started,
                         "train_s": done.train_time_s, "held_out_accuracy_per_epoch": curve})
    meta = {**bench.environment(pick_device("cpu")), "hardware": device_name(pick_device("cpu")),
            "adding_examples_s": adding_s, "on_the_clock": "train(config): loading the examples, building the model "
            "from checkpoints/mnist.safetensors, every epoch with its held-out evaluation, the final test",
            "target": "<= 15 s Start -> held-out accuracy on this machine's CPU"}
    bench.report("classes", rows, meta, args.out)
    return 0


def config_train_count(workspace, config) -> int:
    from alexnet_demo.data import held_out_split, load_examples
    labels = load_examples(config.examples, config.dataset).labels
    return len(held_out_split(labels, config.val_fraction, config.seed)[0])


if __name__ == "__main__":
    raise SystemExit(main())
