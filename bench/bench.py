"""Benchmarks, each side by side with its baseline in one run:
`python bench/bench.py {throughput,accuracy,latency,plots}`, and the ones in their own files:
`python bench/bench.py {classes,drawing,explain,formats,openset,photos,timelapse,visitor} [their flags]`
(bench/<name>.py).

Each prints a table and writes JSON under bench/results/ with the hardware, versions, precision and what is on the
clock. `--tiny` shrinks every size so that tests can run the same code paths on a CPU in seconds.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alexnet_demo import TrainConfig, build_model, recipe_config  # noqa: E402
from alexnet_demo.training import (DoneEvent, EpochEvent, StartEvent, StepEvent, device_name, pick_device,  # noqa: E402
                                   train)

RESULTS = ROOT / "bench" / "results"


def environment(device: torch.device) -> dict:
    return {"hardware": device_name(device), "machine": platform.machine(), "torch": torch.__version__,
            "cuda": torch.version.cuda if device.type == "cuda" else None, "threads": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}


def report(name: str, rows: list[dict], meta: dict, out_dir: Path = RESULTS) -> Path:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    print(" | ".join(keys))
    for row in rows:
        print(" | ".join(f"{row.get(k):.4g}" if isinstance(row.get(k), float) else str(row.get(k)) for k in keys))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, **meta, "rows": rows}, indent=2))
    print(f"-> {path}")
    return path


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


# ---- 1. training throughput: ours against the sources' pipeline ---------------------------------------------


def sources_pipeline_images_per_s(preset: str, size: int, batch_size: int, steps: int, warmup: int, data_root,
                                  device: torch.device, workers: int) -> float:
    """The write-ups' way: torchvision Resize + ToTensor per sample (PIL) inside a DataLoader, fp32, Adam 1e-3."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from alexnet_demo.data import resolve_data_root
    from alexnet_demo.models import PRESETS

    p = PRESETS[preset]
    transform = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor(),
                                    transforms.Normalize(p.mean, p.std)])
    root = resolve_data_root(data_root)
    if preset == "mnist":
        dataset = datasets.MNIST(str(root), train=True, transform=transform)
    else:
        dataset = datasets.ImageFolder(str(root / "cifar10-jpg" / "train"), transform=transform)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True,
                        pin_memory=device.type == "cuda")
    model = build_model(preset, size).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    start, seen = None, 0
    for i, (x, y) in enumerate(loader):
        if i == warmup:
            _sync(device)
            start, seen = time.perf_counter(), 0
        if i == warmup + steps:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(y)
    _sync(device)
    return seen / (time.perf_counter() - start)


def engine_images_per_s(preset: str, size: int, batch_size: int, steps: int, warmup: int, data_root,
                        amp: bool) -> float:
    """The package's engine; images/s of the windows after warm-up (each window ends with a host sync)."""
    log_every = max(1, steps // 4)
    config = TrainConfig(dataset=preset, input_size=size, batch_size=batch_size, epochs=1, data_root=data_root,
                         max_batches=warmup + steps, log_every=log_every, eval_limit=batch_size, amp=amp)
    rates = []
    for event in train(config):
        if isinstance(event, StepEvent) and event.step > warmup:
            rates.append(event.images_per_s)
    return statistics.median(rates)


def throughput(args) -> Path:
    device = pick_device()
    workers = args.workers if args.workers is not None else (4 if device.type == "cuda" else 0)
    sizes = {"mnist": 65 if args.tiny else 224, "cifar10": 50}
    presets = [(preset, sizes[preset]) for preset in args.datasets]
    rows = []
    for preset, size in presets:
        base = sources_pipeline_images_per_s(preset, size, args.batch_size, args.steps, args.warmup, args.data_root,
                                             device, workers)
        ours = engine_images_per_s(preset, size, args.batch_size, args.steps, args.warmup, args.data_root,
                                   amp=device.type == "cuda")
        rows.append({"preset": preset, "input_px": size, "batch": args.batch_size,
                     "sources_images_per_s": base, "ours_images_per_s": ours, "ratio": ours / base})
    return report("throughput", rows, {
        **environment(device), "steps_timed": args.steps, "warmup_steps": args.warmup,
        "precision": {"sources": "fp32", "ours": "bf16 autocast" if device.type == "cuda" else "fp32"},
        "on_the_clock": "data loading/preprocessing + forward + backward + optimizer step, after warm-up",
        "sources_pipeline": f"torchvision Resize+ToTensor+Normalize per sample in a DataLoader "
                            f"(num_workers={workers}), Adam 1e-3"}, args.out)


# ---- 2. time to accuracy ----------------------------------------------------------------------------------


TARGETS = {"mnist": 0.992, "cifar10": 0.80}


def time_to_accuracy(args) -> Path:
    device = pick_device()
    rows = []
    for preset in args.datasets:
        for seed in range(args.seeds):
            # the shipped checkpoint's own recipe from fresh weights (alexnet_demo.config.RECIPES: MNIST's first
            # run, as its second starts from the first's file); --tiny: a sliver of the data
            overrides = dict(seed=seed, data_root=args.data_root, amp=device.type == "cuda")
            if args.tiny:
                overrides.update(epochs=1, subset=256, batch_size=64, input_size=65 if preset == "mnist" else None,
                                 eval_limit=200)
            staged = reached = None
            t0 = time.perf_counter()
            for event in train(recipe_config("mnist_base" if preset == "mnist" else preset, **overrides)):
                if isinstance(event, StartEvent):
                    staged = time.perf_counter() - t0  # data decode/cache read + copy to the device
                elif isinstance(event, EpochEvent) and reached is None and event.eval_accuracy >= TARGETS[preset]:
                    reached = event.elapsed_s - staged
                elif isinstance(event, DoneEvent):
                    rows.append({"preset": preset, "seed": seed, "target": TARGETS[preset],
                                 "test_accuracy": event.test_accuracy, "staging_s": staged,
                                 "train_time_s": event.train_time_s, "seconds_to_target": reached})
    return report("time_to_accuracy", rows, {
        **environment(device), "compile_s": 0.0, "note": "no torch.compile in the engine, so compile time is 0; "
        "seconds_to_target counts training and per-epoch evaluation after staging"}, args.out)


# ---- 3. interactive latency on CPU ------------------------------------------------------------------------


def latency(args) -> Path:
    from alexnet_demo.checkpoints import CheckpointError
    from alexnet_demo.inference import Classifier, load_classifier
    from alexnet_demo.preprocessing import digit_to_mnist
    from alexnet_demo.data import prepare_batch
    from alexnet_demo.inspection import feature_gallery, feature_maps_figure
    from alexnet_demo.models import MNIST_CLASSES

    try:
        classifier, weights = load_classifier("mnist"), "shipped checkpoint"
    except CheckpointError:
        classifier, weights = Classifier(build_model("mnist"), {"preset": "mnist", "input_size": 224,
                                                                 "classes": MNIST_CLASSES}), "untrained (no checkpoint)"
    canvas = np.zeros((480, 480, 4), np.uint8)  # the app's Sketchpad size, RGBA with a transparent background
    canvas[80:400, 200:240, 3] = 255
    canvas[80:120, 140:300, 3] = 255
    calls = 20 if args.tiny else 200
    pre, fwd = [], []
    for _ in range(calls + 5):
        t0 = time.perf_counter()
        seen = digit_to_mnist(canvas)
        x = prepare_batch(torch.from_numpy(seen)[None, None], "mnist", classifier.input_size, channels_last=True)
        t1 = time.perf_counter()
        with torch.inference_mode():
            classifier.model(x).softmax(1)
        t2 = time.perf_counter()
        pre.append((t1 - t0) * 1e3)
        fwd.append((t2 - t1) * 1e3)
    pre, fwd = np.array(pre[5:]), np.array(fwd[5:])  # the first calls warm up the allocator and oneDNN
    total = pre + fwd
    panel = []
    for _ in range(5 if args.tiny else 20):
        t0 = time.perf_counter()
        for grid, _ in feature_gallery(classifier.run(canvas).feature_maps):
            grid.save(io.BytesIO(), format="png")  # as gradio caches each picture it sends
        panel.append((time.perf_counter() - t0) * 1e3)
    figure = []
    for _ in range(3 if args.tiny else 10):  # the first call also pays matplotlib's one-time font set-up
        t0 = time.perf_counter()
        feature_maps_figure(classifier.run(canvas).feature_maps).savefig(io.BytesIO(), format="png")
        figure.append((time.perf_counter() - t0) * 1e3)
    rows = [{"what": "drawing -> probabilities, preprocessing", "p50_ms": float(np.percentile(pre, 50)),
             "p95_ms": float(np.percentile(pre, 95))},
            {"what": "drawing -> probabilities, forward", "p50_ms": float(np.percentile(fwd, 50)),
             "p95_ms": float(np.percentile(fwd, 95))},
            {"what": "drawing -> probabilities, total", "p50_ms": float(np.percentile(total, 50)),
             "p95_ms": float(np.percentile(total, 95))},
            {"what": "Draw tab feature-map panel (forward + 5 grids, PNG-encoded)", "p50_ms": float(np.median(panel)),
             "p95_ms": float(np.percentile(panel, 95))},
            {"what": "Feature maps tab figure (forward + matplotlib PNG)", "p50_ms": float(np.median(figure[1:])),
             "p95_ms": float(np.percentile(figure[1:], 95)), "first_call_ms": figure[0]}]
    if not args.tiny:
        starts = [app_ready_ms() for _ in range(5)]  # one start varies by a second or more on a shared host
        rows.append({"what": "app start -> first /classify_digit answered (5 starts; p95 = slowest)",
                     "p50_ms": float(np.median(starts)), "p95_ms": max(starts)})
    return report("latency", rows, {**environment(torch.device("cpu")), "calls": calls, "weights": weights,
                                    "input": "480x480 RGBA canvas"}, args.out)


def app_ready_ms() -> float:
    """Wall time from `python app.py` to the first answered /classify_digit call (gradio_client)."""
    from gradio_client import handle_file
    from PIL import Image

    from load import serve_app  # bench/load.py: starts the app in its own process on a free port

    path = RESULTS / "digit.png"
    RESULTS.mkdir(parents=True, exist_ok=True)
    canvas = np.full((280, 280), 255, np.uint8)
    canvas[40:240, 130:150] = 0
    Image.fromarray(canvas).save(path)
    t0 = time.perf_counter()
    server, _, client = serve_app(timeout=120)
    try:
        client.predict({"background": handle_file(str(path)), "layers": [], "composite": handle_file(str(path))},
                       api_name="/classify_digit")
        return (time.perf_counter() - t0) * 1e3
    finally:
        server.terminate()
        server.wait(timeout=30)


# ---- 4. live-plot overhead ----------------------------------------------------------------------------------


def plot_overhead(args) -> Path:
    """Engine images/s alone against the same run streamed through the Train tab (events -> DataFrames -> yields);
    both read from the engine's StepEvents, never from the text the page shows."""
    import threading

    from alexnet_demo.ui import training as train_tab

    form = dict(dataset="mnist", epochs=1, batch_size=64, lr=3e-4, optimizer="adam", schedule="none",
                subset=640 if args.tiny else 6400, input_size=65, augment=False, amp=False)
    if args.data_root:
        os.environ["ALEXNET_DEMO_DATA"] = str(args.data_root)
    config = train_tab.make_config(**form)
    alone = [e.images_per_s for e in train(config) if isinstance(e, StepEvent)][1:]
    with_app, outputs = [], 0
    for event, out in train_tab.run_events(train_tab.make_config(**form), threading.Event()):
        outputs += out is not None
        if isinstance(event, StepEvent):
            with_app.append(event.images_per_s)
    with_app = with_app[1:]
    a, b = statistics.median(alone), statistics.median(with_app)
    rows = [{"run": "engine alone", "images_per_s": a}, {"run": "engine + app event stream and plot data",
                                                         "images_per_s": b, "overhead": 1 - b / a}]
    return report("plot_overhead", rows, {**environment(pick_device()), "yields_to_gradio": outputs,
                                          "note": "server side: events to DataFrames and yields; the browser's "
                                                  "drawing runs in another process"}, args.out)


OWN_FILES = ("classes", "drawing", "explain", "formats", "openset", "photos", "timelapse",
             "visitor")  # bench/<name>.py, each with its own flags


def own_parser(doc: str, tiny: str) -> argparse.ArgumentParser:
    """A bench/<name>.py file's command line, with the flags they all take: --data-root, --tiny, --out."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=os.environ.get("ALEXNET_DEMO_DATA"))
    parser.add_argument("--tiny", action="store_true", help=tiny)
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in OWN_FILES:
        import importlib
        sys.path.insert(0, str(ROOT / "bench"))
        return importlib.import_module(argv[0]).main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("which", choices=["throughput", "accuracy", "latency", "plots", "all"])
    parser.add_argument("--data-root", default=os.environ.get("ALEXNET_DEMO_DATA"))
    parser.add_argument("--steps", type=int, default=5, help="timed steps (throughput)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (throughput)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers for the sources' pipeline")
    parser.add_argument("--seeds", type=int, default=3, help="seeds for time to accuracy")
    parser.add_argument("--datasets", nargs="+", choices=["mnist", "cifar10"], default=["mnist", "cifar10"],
                        help="which to measure (throughput, accuracy)")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: exercise the code paths only")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    runs = {"throughput": throughput, "accuracy": time_to_accuracy, "latency": latency, "plots": plot_overhead}
    for name, run in runs.items():
        if args.which in (name, "all"):
            run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
