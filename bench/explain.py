"""Latency of the "Why?" explanations with the shipped models on this machine: `python bench/explain.py`.

Grad-CAM + occlusion, the probe sweep, an ablation, a channel's favourite images from the index and the Draw tab's
top-channels panel, each timed over `calls` calls after warm-up (p50/p95), on a drawn digit (480x480 RGBA canvas,
strokes in alpha) and a CIFAR-10 example photo. Writes bench/results/explain.json like bench.py's benchmarks.
"""
from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/: bench.py's report and environment
from bench import RESULTS, ROOT, environment, own_parser, report  # noqa: E402

TARGETS_MS = {"Grad-CAM + occlusion": 1000, "probe": 1500, "ablation": 300, "channel examples": 200}


def digit_canvas() -> np.ndarray:
    """The app's Sketchpad value: a '7' drawn in the alpha of a 480x480 RGBA canvas."""
    canvas = np.zeros((480, 480, 4), np.uint8)
    canvas[60:88, 150:330, 3] = 255
    for y in range(60, 420):
        x = int(330 - (y - 60) * 180 * 0.6 / 360)
        canvas[y, x - 28:x, 3] = 255
    return canvas


def timed(fn, calls: int, warmup: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(wall ms, this process's CPU ms) per call. On a CPU shared with other work the wall time swings with their
    load; the CPU time is what the call itself costs (all threads), close to the wall time on an idle machine
    with one thread."""
    for _ in range(warmup):  # oneDNN primitive caches, the allocator, Captum's first hooks
        fn()
    wall, cpu = [], []
    for _ in range(calls):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return np.array(wall), np.array(cpu)


def run(args) -> Path:
    from alexnet_demo import ablation as A
    from alexnet_demo import explain as E
    from alexnet_demo.channels import channel_examples, index_path_for, load_index
    from alexnet_demo.explain_figures import attribution_figure, top_channels_panel
    from alexnet_demo.inference import load_classifier

    calls = 2 if getattr(args, "tiny", False) else getattr(args, "calls", 20)
    inputs = {"mnist": digit_canvas(), "cifar10": str(ROOT / "alexnet_demo" / "examples" / "cifar10" / "cat.png")}
    rows = []

    def row(preset, what, measured, target=None):
        times, cpu = measured if isinstance(measured, tuple) else (measured, measured)
        rows.append({"preset": preset, "what": what, "p50_ms": float(np.percentile(times, 50)),
                     "p95_ms": float(np.percentile(times, 95)), "cpu_p50_ms": float(np.percentile(cpu, 50)),
                     "target_ms": target, "met": None if target is None else bool(np.percentile(times, 95) <= target)})

    for preset, image in inputs.items():
        classifier = load_classifier(preset)
        probe_extra = "thickness" if preset == "mnist" else "blur"
        row(preset, "Grad-CAM conv5", timed(lambda: E.grad_cam(classifier, image), calls))
        row(preset, "occlusion", timed(lambda: E.occlusion(classifier, image), calls))
        row(preset, "Grad-CAM + occlusion", timed(lambda: (E.grad_cam(classifier, image),
                                                           E.occlusion(classifier, image)), calls),
            TARGETS_MS["Grad-CAM + occlusion"])
        for transform in ("rotation", probe_extra):
            row(preset, f"probe {transform} (31 points)", timed(lambda: E.probe(classifier, image, transform),
                                                                 calls), TARGETS_MS["probe"])
        for layer in ("conv5", "conv3", "conv1"):
            row(preset, f"ablation {layer}, k=3 (+{A.ablation_candidates(preset)} single-channel candidates)",
                timed(lambda: A.ablate(classifier, image, layer, k=3), calls), TARGETS_MS["ablation"])
        path = index_path_for(classifier.source)
        if path.is_file():
            t0 = time.perf_counter()
            load_index(path)
            row(preset, "channel index, first read from disk", np.array([(time.perf_counter() - t0) * 1e3]))
            channel = iter(range(10_000))
            row(preset, "channel examples (9 images + overlays), each call a new channel",
                timed(lambda: channel_examples(load_index(path), "conv3", next(channel) % 384), calls),
                TARGETS_MS["channel examples"])
        else:
            print(f"(no {path.name}: channel examples not timed)")
        result = classifier.run(image)
        row(preset, "top-channels panel (5 layers x 6, palette image)",
            timed(lambda: top_channels_panel(result.feature_maps), calls))
        row(preset, "top-channels panel + PNG encode", timed(
            lambda: top_channels_panel(result.feature_maps).save(io.BytesIO(), format="png"), calls))
        attributions = (E.grad_cam(classifier, image), E.occlusion(classifier, image))
        row(preset, "Grad-CAM + occlusion figure, PNG (drawing only)", timed(
            lambda: attribution_figure(*attributions).savefig(io.BytesIO(), format="png"), max(3, calls // 4)))
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    return report("explain", rows, {**environment(torch.device("cpu")), "calls": calls, "warmup_calls": 2,
                                    "load_average_1_5_15_min_at_end": load,
                                    "inputs": {"mnist": "480x480 RGBA canvas, a '7' in alpha",
                                               "cifar10": "alexnet_demo/examples/cifar10/cat.png"},
                                    "on_the_clock": "preprocessing + the explanation's computation; figures "
                                                    "separately"}, getattr(args, "out", RESULTS))


def main(argv=None) -> int:
    parser = own_parser(__doc__, tiny="2 calls each: exercise the code paths only")
    parser.add_argument("--calls", type=int, default=20)
    run(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
