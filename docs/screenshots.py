"""The README's screenshots, from the app as a visitor first meets it: `python docs/screenshots.py [--data-root DIR]`.

Draws a 7, uploads the ship example, opens every tab, trains one run with the Train tab's defaults untouched (the
form's CPU or GPU recipe, tested on all 10,000 test images), teaches a second visitor's page three drawn classes in
the Your classes tab and writes docs/screenshots/*.png. Headless Chromium
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
sys.path.insert(0, str(ROOT / "tests"))
# the browser and the hand the tests use
from browser import DESKTOP, chromium, pad_blank, shape, stroke, wait_until  # noqa: E402

CLASSES = ("circle", "triangle", "square")  # the Your classes tab's shot: 4 drawn examples of each, trained


def draw_seven(page):
    stroke(page, "#sketch", [(0.3, 0.25), (0.7, 0.25), (0.45, 0.8)])
    wait_until(page, "() => document.querySelector('#digit-label')?.textContent.includes('7')"
                     " && document.querySelector('#digit-top-channels img')")
    page.wait_for_timeout(1500)


def upload_ship(page):
    page.get_by_role("tab", name="Classify a photo").click()
    page.locator("#photo input[type=file]").set_input_files(str(ROOT / "alexnet_demo" / "examples" / "cifar10"
                                                                / "ship.png"))
    page.wait_for_selector("#photo-top-channels img", timeout=60_000)
    page.wait_for_timeout(1500)


def draw_and_upload(page, url: str, draw_shot: str, photo_shot: str):
    """A visitor's first minute: opens the app, draws a 7, uploads the ship; a screenshot after each."""
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector("#sketch canvas", timeout=60_000)
    draw_seven(page)
    shoot(page, draw_shot)
    upload_ship(page)
    shoot(page, photo_shot)


def teach_classes(page, per_class: int = 4):
    """Names CLASSES in the Your classes tab, draws `per_class` examples of each, trains with the tab's defaults."""
    import numpy as np
    rng = np.random.default_rng(0)
    page.get_by_role("tab", name="Your classes").click()
    page.wait_for_selector("#classes-sketch canvas", state="visible", timeout=60_000)
    for name in CLASSES:
        page.locator("#class-name textarea, #class-name input").first.fill(name)
        for i in range(per_class):
            for points in shape(name, rng):
                stroke(page, "#classes-sketch", points, steps=2)
            if not pad_blank(page, "#classes-sketch", False):
                raise RuntimeError(f"the pad never took {name} {i + 1}")
            page.locator("#add-drawing").click()
            wait_until(page, f"() => document.querySelector('#classes-counts')?.innerText.includes('{name}: {i + 1}')")
            if not pad_blank(page, "#classes-sketch", True):  # an added drawing leaves the pad
                raise RuntimeError("the pad kept the added drawing")
    page.locator("#train-classes").click()
    wait_until(page, "() => document.querySelector('#classes-result')?.innerText.includes('Held-out accuracy')",
               timeout=300_000)
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
    from alexnet_demo.ui import app

    OUT.mkdir(parents=True, exist_ok=True)
    demo = app.build_demo()
    _, url, _ = app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    try:
        with chromium() as browser:
            page = browser.new_page(viewport=DESKTOP)
            draw_and_upload(page, url, "1-draw.png", "2-photo.png")
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
            # a second visitor teaches it three classes of their own (a page of its own: the first one's model
            # above stays the Train tab's)
            visitor = browser.new_page(viewport=DESKTOP)
            visitor.goto(url, wait_until="domcontentloaded")
            visitor.wait_for_selector("#sketch canvas", timeout=60_000)
            teach_classes(visitor)
            shoot(visitor, "8-classes.png")
            context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True,
                                          device_scale_factor=2)
            draw_and_upload(context.new_page(), url, "7-phone-draw.png", "7-phone-photo.png")
    finally:
        demo.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
