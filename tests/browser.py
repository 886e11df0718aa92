"""What every browser check shares (the browser tests, docs/screenshots.py, bench/mouse_up.py): Debian's Chromium,
headless and software-rendered, and a visitor's hand on a drawing pad, placed on its paper."""
from __future__ import annotations

import shutil
from contextlib import contextmanager
from math import cos, pi, sin
from pathlib import Path

import numpy as np

# Debian's chromium, never `playwright install`; no background traffic (this machine's network is closed); WebGL
# (gradio's image editor, the Photo tab's) only through SwiftShader, as there is no GPU.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
        "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"]
SHOTS = Path(__file__).resolve().parent / "screenshots"  # the tests' screenshots (git-ignored)
DESKTOP = {"width": 1400, "height": 1000}


@contextmanager
def chromium():
    """A launched browser; closed at the end."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def wait_until(page, predicate: str, arg=None, timeout: float = 60_000) -> None:
    """Wait until the JS function `predicate` returns true, checked every 100 ms: Playwright's default checks on
    animation frames, and in headless SwiftShader these stopped coming while the editor was busy, so a condition
    already true on the page was never seen (the 'stuck' Add drawing of issue 21)."""
    page.wait_for_function(predicate, arg=arg, timeout=timeout, polling=100)


def paper(page, selector: str) -> dict:
    """The pad's paper on the page, in view (as a visitor sees it before drawing): its canvas's box."""
    canvas = page.locator(f"{selector} canvas")
    canvas.scroll_into_view_if_needed()
    return canvas.bounding_box()


def stroke(page, selector: str, points, steps: int = 12) -> None:
    """One mouse stroke through `points`, given as fractions of the paper (0..1 from its top-left corner)."""
    box = paper(page, selector)
    at = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for x, y in at[1:]:
        page.mouse.move(x, y, steps=steps)
    page.mouse.up()


def shape(name: str, rng) -> list[list[tuple[float, float]]]:
    """Strokes of a circle, triangle or square (`name`) in paper fractions, at a random size and place, each point
    wobbling as a hand does."""
    r, (cx, cy) = rng.uniform(0.2, 0.3), rng.uniform(0.38, 0.62, 2)
    if name == "circle":
        points = [(cos(t), sin(t)) for t in np.linspace(0, 2 * pi, 16)]
    elif name == "triangle":
        points = [(cos(-pi / 2 + 2 * pi * i / 3), sin(-pi / 2 + 2 * pi * i / 3)) for i in range(4)]
    else:
        points = [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8), (-0.8, -0.8)]
    return [[(cx + r * x + rng.normal(0, 0.008), cy + r * y + rng.normal(0, 0.008)) for x, y in points]]


def pad_blank(page, selector: str, blank: bool, timeout: float = 60_000) -> bool:
    """Wait until the pad is blank (nothing drawn, or emptied) or has a drawing: its own state, rather than a pause,
    before adding a drawing or drawing the next. False if it never was."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    pad = f"document.querySelector('{selector} .pad')"
    try:
        wait_until(page, f"() => {pad} && {pad}.classList.contains('blank') === {str(blank).lower()}", timeout=timeout)
        return True
    except PlaywrightTimeout:
        return False
