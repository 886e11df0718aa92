"""The README's screenshots, from the app as a visitor first meets it: `python docs/screenshots.py [--data-root DIR]`.

Draws a 7, uploads the ship example, opens every tab, trains one run with the Train tab's defaults untouched (the
form's CPU or GPU recipe, tested on all 10,000 test images) and writes docs/screenshots/*.png. Headless Chromium
(Debian's, as the browser tests use it). The browser tests write their own screenshots under tests/screenshots/ and
never here: their tiny runs are not what a visitor sees.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
        "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"]


def stroke(page, points):
    """A mouse stroke through `points` (fractions of the visible canvas)."""
    canvas = [c for c in page.locator("#sketch canvas").all() if c.is_visible()][0]
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + points[0][0] * box["width"], box["y"] + points[0][1] * box["height"])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=12)
    page.mouse.up()


def brush_ready(page):
    page.wait_for_function("() => { const s = document.querySelector('#sketch');"
                           " return s?.querySelector('button[aria-label=\"Brush\"]')"
                           " && !s.innerText.includes('select the draw tool'); }", timeout=60_000)
    page.wait_for_timeout(500)


def draw_seven(page):
    brush_ready(page)
    stroke(page, [(0.3, 0.25), (0.7, 0.25), (0.45, 0.8)])
    page.wait_for_function("() => document.querySelector('#digit-label')?.textContent.includes('7')"
                           " && document.querySelector('#digit-top-channels img')", timeout=60_000)
    page.wait_for_timeout(1500)


def shoot(page, name):
    # scroll through once so that lazily loaded pictures (the mistakes gallery) are drawn in the full-page shot
    height = page.evaluate("document.documentElement.scrollHeight")
    for y in range(0, height, 600):
        page.evaluate(f"window.scrollTo(0, {y})")
        page.wait_for_timeout(150)
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(1000)
    page.screenshot(path=str(OUT / name), full_page=True)
    print("wrote", OUT / name, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"),
                        help="MNIST for the Train tab's run (default: ../shared/data)")
    args = parser.parse_args()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ["ALEXNET_DEMO_DATA"] = args.data_root
    sys.path.insert(0, str(ROOT))
    from playwright.sync_api import sync_playwright

    from alexnet_demo.ui import app, photo

    OUT.mkdir(parents=True, exist_ok=True)
    demo = app.build_demo()
    _, url, _ = app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, wait_until="domcontentloaded")
            page.wait_for_selector("#sketch canvas", timeout=60_000)
            draw_seven(page)
            shoot(page, "1-draw.png")
            page.get_by_role("tab", name="Classify a photo").click()
            page.locator("#photo input[type=file]").set_input_files(str(photo.EXAMPLES_DIR / "cifar10" / "ship.png"))
            page.wait_for_selector("#photo-top-channels img", timeout=60_000)
            page.wait_for_timeout(1500)
            shoot(page, "2-photo.png")
            page.get_by_role("tab", name="Feature maps").click()
            page.wait_for_selector("text=Input read as", timeout=60_000)
            page.wait_for_timeout(1500)
            shoot(page, "3-feature-maps.png")
            page.get_by_role("tab", name="Why?").click()
            for button, answer in (("Explain", "#why-explain img"), ("Sweep", "#why-probe img"),
                                   ("Switch off", "#why-ablate img"), ("Show", "#why-channel img")):
                page.get_by_role("button", name=button, exact=True).click()
                page.wait_for_selector(answer, timeout=120_000)
            page.wait_for_timeout(1500)
            shoot(page, "6-why.png")
            page.get_by_role("tab", name="Train").click()
            page.wait_for_timeout(3000)  # the tab measures its number format when opened
            started = time.monotonic()
            page.get_by_role("button", name="Start training").click()  # the form's defaults, untouched
            page.wait_for_selector("text=/Test accuracy/", timeout=1800_000)
            page.wait_for_timeout(3000)
            print(f"the default run: Start -> Test accuracy in {time.monotonic() - started:.0f} s", flush=True)
            print(page.locator("text=/Test accuracy/").inner_text(), flush=True)
            shoot(page, "4-train.png")
            page.get_by_role("tab", name="Model").click()
            page.wait_for_selector("text=46,764,746")
            shoot(page, "5-model.png")
            context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True,
                                          device_scale_factor=2)
            phone = context.new_page()
            phone.goto(url, wait_until="domcontentloaded")
            phone.wait_for_selector("#sketch canvas", timeout=60_000)
            draw_seven(phone)
            shoot(phone, "7-phone-draw.png")
            phone.get_by_role("tab", name="Classify a photo").click()
            phone.locator("#photo input[type=file]").set_input_files(str(photo.EXAMPLES_DIR / "cifar10" / "ship.png"))
            phone.wait_for_selector("#photo-top-channels img", timeout=60_000)
            phone.wait_for_timeout(1500)
            shoot(phone, "7-phone-photo.png")
            browser.close()
    finally:
        demo.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
