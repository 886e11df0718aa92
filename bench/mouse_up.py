"""What a visitor waits for on the Draw tab: mouse-up to the probabilities changing on the page, in headless Chromium
with software rendering (SwiftShader), against `python app.py` started here. Not the server's part alone (that is
`python bench/bench.py latency`): this adds the browser's canvas encoding, the upload, gradio's queue and rendering.

    python bench/mouse_up.py --strokes 10   (on a quiet machine: nothing else running)
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from browser import DESKTOP, chromium, paper  # noqa: E402  (the browser the tests drive)

LABEL = "() => document.querySelector('#digit-label').textContent"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strokes", type=int, default=10)
    args = parser.parse_args()
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_SERVER_PORT": str(port)}
    server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        with chromium() as browser:
            page = browser.new_page(viewport=DESKTOP)
            for _ in range(120):  # the server starts in a few seconds
                try:
                    page.goto(f"http://127.0.0.1:{port}", wait_until="domcontentloaded")
                    break
                except Exception:
                    time.sleep(0.5)
            page.wait_for_selector("#sketch canvas", timeout=60_000)
            page.wait_for_timeout(3000)  # the models' warm-up
            box = paper(page, "#sketch")
            waits = []
            for i in range(args.strokes):
                before = page.evaluate(LABEL)
                x = box["x"] + (0.2 + 0.6 * i / max(args.strokes - 1, 1)) * box["width"]
                page.mouse.move(x, box["y"] + 0.2 * box["height"])
                page.mouse.down()
                page.mouse.move(x, box["y"] + 0.8 * box["height"], steps=12)
                start = time.perf_counter()
                page.mouse.up()
                page.wait_for_function(f"(b) => ({LABEL})() !== b", arg=before, timeout=60_000, polling=10)
                waits.append(time.perf_counter() - start)
                page.wait_for_timeout(1500)  # the pictures that follow, and a visitor's pause
    finally:
        server.terminate()
        server.wait()
    print(f"mouse-up -> probabilities shown, {len(waits)} strokes: median {statistics.median(waits):.2f} s, "
          f"min {min(waits):.2f} s, max {max(waits):.2f} s ({', '.join(f'{w:.2f}' for w in waits)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
