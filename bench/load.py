"""Load test on loopback: N gradio_client visitors draw digits for S seconds while a training run streams.

    ALEXNET_DEMO_DATA=../shared/data python bench/load.py --clients 20 --seconds 30   (the full form; tests run a short one)

Each visitor does what the page does after a stroke: /classify_digit (the probabilities), then /digit_panel (what
the network sees and the top channels). Reports failed requests, p50/p95 time to the probabilities and to the full
panel, and the training run's images/s against the same run alone. Bounded in count and time; 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

TRAIN_FORM = dict(dataset="mnist", epochs=3, batch_size=32, lr=3e-4, optimizer="adam", schedule="none", subset=3200,
                  input_size=65, augment=False, amp=False)


def connect(url: str):
    """A gradio_client visitor. ssl_verify=False: this is plain http on loopback, and otherwise gradio_client builds
    a certificate-verifying TLS context (~40 ms of CPU) for every file it uploads or downloads, seven per answer,
    which measured the client more than the app (one visitor: 590 ms a request with it, 267 ms without)."""
    from gradio_client import Client
    return Client(url, verbose=False, ssl_verify=False)


def digit_png(folder: Path, visitor: int = 0) -> str:
    """A "1" of a different stroke width for each visitor, so that no two visitors' digits are alike once cropped
    and centred. (Identical requests give byte-identical outputs, which gradio 6.31 writes to one cache path; see
    the app's note on that.)"""
    from PIL import Image
    canvas = np.full((280, 280), 255, np.uint8)
    canvas[40:220, 100:114 + visitor % 60] = 0
    path = folder / f"load-digit-{visitor}.png"
    Image.fromarray(canvas).save(path)
    return str(path)


def _images_per_s(outputs) -> list[float]:
    return [float(o[2].split(" images/s")[0].split("· ")[-1]) for o in outputs
            if o[2] and o[2].startswith("Step") and "images/s" in o[2]]


def training_alone(url: str, seconds: float) -> list[float]:
    job = connect(url).submit(**TRAIN_FORM, api_name="/train")
    time.sleep(seconds)
    rates = _images_per_s(job.outputs())
    job.cancel()
    return rates


def percentiles(seconds: list[float]) -> dict:
    ms = sorted(x * 1e3 for x in seconds)
    return {"p50_ms": statistics.median(ms) if ms else None, "p95_ms": ms[int(0.95 * (len(ms) - 1))] if ms else None}


def run_load(url: str, clients: int, seconds: float, folder: Path, with_training: bool = True) -> dict:
    """Visitors draw until the deadline, each answer as the page gets it (probabilities, then the panel); returns
    counts, both latencies and training rates."""
    from gradio_client import handle_file

    latencies, panels, failures, lock = [], [], [], threading.Lock()
    deadline = time.monotonic() + seconds
    job = connect(url).submit(**TRAIN_FORM, api_name="/train") if with_training else None

    def visitor(index: int):
        path = digit_png(folder, index)
        value = {"background": handle_file(path), "layers": [], "composite": handle_file(path)}
        client = connect(url)
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            try:
                label = client.predict(value, api_name="/classify_digit")[0]
                t1 = time.perf_counter()
                seen, top, _ = client.predict(value, api_name="/digit_panel")
                ok = isinstance(label, dict) and label.get("label") is not None and bool(seen) and bool(top)
            except Exception as e:  # a failed request is what this test counts
                ok, label = False, repr(e)
            with lock:
                if ok:
                    latencies.append(t1 - t0)
                    panels.append(time.perf_counter() - t0)
                else:
                    failures.append(label)

    threads = [threading.Thread(target=visitor, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 120)
    rates = _images_per_s(job.outputs()) if job else []
    if job:
        job.cancel()
    to_probabilities, to_panel = percentiles(latencies), percentiles(panels)
    return {"clients": clients, "seconds": seconds, "answers": len(latencies) + len(failures),
            "failed": len(failures), "failures": failures[:5],
            "p50_ms": to_probabilities["p50_ms"], "p95_ms": to_probabilities["p95_ms"],  # to the probabilities
            "panel_p50_ms": to_panel["p50_ms"], "panel_p95_ms": to_panel["p95_ms"],  # to the full panel
            "train_images_per_s_under_load": statistics.median(rates) if rates else None}


def serve_app(timeout: float = 180):
    """`python app.py` in its own process on a free loopback port (as deployed: the visitors' client threads here
    don't share its GIL); (server, url, client) once it accepts a client."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return server, url, connect(url)
        except Exception:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"the app did not come up on {url} within {timeout:.0f} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--no-training", action="store_true", help="visitors only, no training run beside them")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    server, url, _ = serve_app()
    try:
        alone = [] if args.no_training else training_alone(url, min(args.seconds, 20))
        time.sleep(2)
        result = run_load(url, args.clients, args.seconds, args.out, with_training=not args.no_training)
    finally:
        server.terminate()
        server.wait(timeout=30)
    result["train_images_per_s_alone"] = statistics.median(alone) if alone else None
    result["server"] = "python app.py in its own process; clients are threads of this one"
    print(json.dumps(result, indent=2))
    (args.out / "load.json").write_text(json.dumps(result, indent=2))
    return 0 if result["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
