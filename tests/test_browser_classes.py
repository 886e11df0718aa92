"""A real browser teaches the app three drawn classes: names circle, triangle and square in the "Your classes" tab,
draws examples of each on its drawing pad, trains, then draws a new one of each in the Draw tab (read as its class)
and has the Why? tab explain the last; screenshots under tests/screenshots/."""
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio")
playwright = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.slow, pytest.mark.browser]
from browser import CHROMIUM, DESKTOP, SHOTS, chromium, pad_blank, shape, stroke, wait_until  # noqa: E402
NAMES = ("circle", "triangle", "square")
PER_CLASS = 6


def draw(page, selector: str, strokes) -> None:
    for points in strokes:
        stroke(page, selector, points, steps=2)  # SwiftShader takes ~240 ms a mouse move: few steps, a hand's corners


def counts(page) -> str:
    return page.locator("#classes-counts").inner_text()


@pytest.fixture(scope="module")
def page(live_app):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    SHOTS.mkdir(exist_ok=True)
    with chromium() as browser:
        page = browser.new_page(viewport=DESKTOP)
        page.goto(live_app[0], wait_until="domcontentloaded")
        page.wait_for_selector("#sketch canvas", timeout=60_000)
        yield page


def test_name_three_classes_draw_examples_and_train(page):
    rng = np.random.default_rng(0)
    page.get_by_role("tab", name="Your classes").click()
    page.wait_for_selector("#classes-sketch canvas", state="visible", timeout=60_000)
    for name in NAMES:
        page.locator("#class-name textarea, #class-name input").first.fill(name)
        for i in range(PER_CLASS):
            draw(page, "#classes-sketch", shape(name, rng))
            assert pad_blank(page, "#classes-sketch", False), f"the pad never took {name} {i + 1}"
            page.locator("#add-drawing").click()
            try:  # visible state, not sleeps: the count went up
                wait_until(page, f"() => document.querySelector('#classes-counts')?.innerText"
                                 f".includes('{name}: {i + 1}')", timeout=60_000)
            except playwright.TimeoutError:
                page.screenshot(path=str(SHOTS / "classes-0-stuck.png"), full_page=True)
                raise
            # the added drawing leaves the pad, ready for the next example
            assert pad_blank(page, "#classes-sketch", True), "the pad kept the added drawing"
    assert counts(page) == " · ".join(f"{n}: {PER_CLASS}" for n in sorted(NAMES))
    page.screenshot(path=str(SHOTS / "classes-1-examples.png"), full_page=True)
    page.locator("#train-classes").click()
    wait_until(page, "() => document.querySelector('#classes-result')?.innerText.includes('Held-out accuracy')",
               timeout=300_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(SHOTS / "classes-2-trained.png"), full_page=True)
    assert "Held-out accuracy" in page.locator("#classes-result").inner_text()


def answer(page) -> str:
    return page.evaluate("document.querySelector('#digit-label .output-class')?.innerText.trim() || ''")


def test_the_draw_tab_reads_a_new_drawing_of_each_class(page):
    rng = np.random.default_rng(123)
    page.get_by_role("tab", name="Draw a digit").click()
    page.wait_for_selector("#sketch canvas", state="visible", timeout=60_000)
    for name in NAMES:
        draw(page, "#sketch", shape(name, rng))
        try:
            wait_until(page, "(n) => document.querySelector('#digit-label .output-class')?.innerText.trim() === n",
                       arg=name)
        finally:
            page.screenshot(path=str(SHOTS / f"classes-3-draw-{name}.png"), full_page=True)
        if name != NAMES[-1]:  # clear, and wait until the answer is gone before the next shape
            page.locator("#sketch .clear").click()
            wait_until(page, "() => document.querySelector('#digit-label .output-class')?.innerText"
                             ".startsWith('Draw a ')")
    assert answer(page) == NAMES[-1]
    # the pictures follow from the visitor's model too: what it sees, and its most active channels
    wait_until(page, "() => document.querySelector('#digit-seen img')"
                     " && document.querySelector('#digit-top-channels img')")
    page.wait_for_timeout(1000)
    page.screenshot(path=str(SHOTS / "classes-3-draw-pictures.png"), full_page=True)


def test_the_why_tab_explains_the_visitors_model(page):
    page.get_by_role("tab", name="Why?").click()
    page.get_by_role("button", name="Explain", exact=True).click()
    page.wait_for_selector(f"text=/It answers {NAMES[-1]}/", timeout=120_000)
    page.wait_for_timeout(1500)
    assert page.locator("#why-explain").locator("img").count() >= 1
    page.screenshot(path=str(SHOTS / "classes-4-why.png"), full_page=True)
