"""A real browser: headless Chromium (Debian's) driven by Playwright draws, uploads and trains; saves screenshots."""
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio")
playwright = pytest.importorskip("playwright.sync_api")

from alexnet_demo.ui import photo  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.browser]
from browser import CHROMIUM, DESKTOP, SHOTS, chromium, pad_blank, paper, stroke  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    SHOTS.mkdir(exist_ok=True)
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def page(browser, live_app):
    """A desktop visitor's page, shared by the tests in order (the Why? tab explains the 7 drawn first)."""
    page = browser.new_page(viewport=DESKTOP)
    page.goto(live_app[0], wait_until="domcontentloaded")
    page.wait_for_selector("#sketch canvas", timeout=60_000)
    yield page
    page.close()


def seen_src(page) -> str:
    return page.evaluate("document.querySelector('#digit-seen img')?.src || ''")


def wait_for_new_panel(page, before: str):
    """The pictures follow the probabilities in the same event: wait until what the network sees is replaced."""
    page.wait_for_function("(s) => (document.querySelector('#digit-seen img')?.src || '') !== s", arg=before,
                           timeout=60_000)


def label_text(page, index=0):
    return page.locator(".output-class").nth(index).inner_text()


# The Draw tab's outputs that still show the old digit `top`: visible, and its answer or pictures in them
OLD_ANSWER_SHOWN = """(top) => {
  const shown = (id) => { const e = document.querySelector(id); return e && getComputedStyle(e).visibility !== 'hidden' ? e : null; };
  const old = [];
  const note = shown('#digit-note'), label = shown('#digit-label');
  if (note && /reads|perhaps/.test(note.textContent)) old.push('note: ' + note.textContent.trim());
  if (label && label.textContent.includes(top) && !label.textContent.includes('Draw a digit')) old.push('probabilities');
  for (const id of ['#digit-seen', '#digit-top-channels']) {
    const img = shown(id)?.querySelector('img');
    if (img && getComputedStyle(img).visibility !== 'hidden') old.push(id);
  }
  return old;
}"""


def draw_and_read(page, points, digit: str, shot: str):
    """One stroke through `points`; waits until it is read as `digit` and its pictures replaced; a screenshot."""
    before = seen_src(page)
    stroke(page, "#sketch", points)
    try:
        page.wait_for_function("(d) => document.querySelector('.output-class')?.innerText.trim() === d", arg=digit,
                               timeout=60_000)
        wait_for_new_panel(page, before)
    finally:
        page.screenshot(path=str(SHOTS / shot), full_page=True)


def test_drawing_a_one_is_read_as_one(page):
    posted = []  # what the page POSTs for a stroke, which bench/load.py's PageVisitor sends as its visitors do
    page.on("request", lambda r: posted.append(r.url.split("/gradio_api/")[-1].split("?")[0])
            if r.method == "POST" else None)
    draw_and_read(page, [(0.5, 0.2), (0.5, 0.8)], "1", "1-draw-one.png")  # fractions of the paper
    wait_for_new_panel(page, "")
    page.wait_for_timeout(1000)
    # the pad's stroke is one request, its PNG inside, answered in its reply: no editor blobs, no uploads (a
    # Sketchpad: 3 and 9), no queue join and event stream (drawing.tab: off the queue)
    assert posted == ["run/predict"], posted
    page.screenshot(path=str(SHOTS / "1-draw.png"), full_page=True)
    # a second stroke turns the 1 into something else; Undo brings the 1 back, read as before
    stroke(page, "#sketch", [(0.3, 0.35), (0.7, 0.35)])
    page.wait_for_function("() => document.querySelector('.output-class')?.innerText.trim() !== '1'", timeout=60_000)
    page.locator("#sketch .undo").click()
    page.wait_for_function("() => document.querySelector('.output-class')?.innerText.trim() === '1'", timeout=60_000)
    page.locator("#sketch .clear").click()
    assert pad_blank(page, "#sketch", True), "Clear left the drawing"
    # at once, before the server's answer: no old pictures (hidden while the pad is blank); then no old answer
    assert [shown for shown in page.evaluate(OLD_ANSWER_SHOWN, "1") if shown.startswith("#")] == []
    page.wait_for_function("() => document.querySelector('#digit-label')?.textContent.includes('Draw a digit')",
                           timeout=60_000)
    assert page.evaluate(OLD_ANSWER_SHOWN, "1") == []
    draw_and_read(page, [(0.3, 0.25), (0.7, 0.25), (0.45, 0.8)], "7", "1-draw-seven.png")


def test_uploading_a_cifar_example(page):
    page.get_by_role("tab", name="Classify a photo").click()
    page.locator("#photo input[type=file]").set_input_files(str(photo.EXAMPLES_DIR / "cifar10" / "ship.png"))
    page.wait_for_selector("text=/Looks like|Low confidence/", timeout=60_000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(SHOTS / "2-photo.png"), full_page=True)


def test_feature_maps_tab(page):
    page.get_by_role("tab", name="Feature maps").click()
    page.wait_for_selector("text=Input read as", timeout=60_000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(SHOTS / "3-feature-maps.png"), full_page=True)


def test_why_tab_explains_probes_ablates_and_shows_a_channels_favourites(page):
    """On the 7 drawn above: each view answers with a figure and a sentence."""
    page.get_by_role("tab", name="Why?").click()
    page.get_by_role("button", name="Explain", exact=True).click()
    page.wait_for_selector("text=/It answers 7/", timeout=60_000)
    page.get_by_role("button", name="Sweep", exact=True).click()
    page.wait_for_selector("text=/It (stops being|stays)/", timeout=60_000)
    page.get_by_role("button", name="Switch off", exact=True).click()
    page.wait_for_selector("text=/channels off: P\\(7\\)/", timeout=60_000)
    page.get_by_role("button", name="Show", exact=True).click()
    page.wait_for_selector("text=/the 9 test images that excite it most/", timeout=60_000)
    page.wait_for_timeout(1500)
    for plot in ("#why-explain", "#why-probe", "#why-ablate", "#why-channel"):
        assert page.locator(plot).locator("img").count() >= 1, plot  # each figure is drawn
    page.screenshot(path=str(SHOTS / "6-why.png"), full_page=True)


def line_pixels(page, selector) -> dict[int, int]:
    """Strongly coloured pixels of a rendered plot, counted by coarse hue (one bucket per 30 degrees): the
    lines; axes, grid and text are grey."""
    import io

    from PIL import Image
    hsv = np.asarray(Image.open(io.BytesIO(page.locator(selector).screenshot())).convert("HSV"))
    lines = hsv[(hsv[..., 1] > 100) & (hsv[..., 2] > 80)]
    hues, counts = np.unique(lines[:, 0] // 22, return_counts=True)
    return dict(zip(hues.tolist(), counts.tolist()))


# A LinePlot's legend labels and its line paths of two points or more (vega's SVG)
LEGEND_AND_LINES = """(selector) => {
  const root = document.querySelector(selector);
  const labels = [...root.querySelectorAll('.role-legend-label text')].map((t) => t.textContent);
  const lines = [...root.querySelectorAll('.mark-line path')].map((p) => p.getAttribute('d') || '')
    .filter((d) => d.includes('L'));
  return [labels, lines];
}"""


def test_training_plot_grows(page, data_root):
    page.get_by_role("tab", name="Train").click()
    page.get_by_label("Training images (subset)").fill("640")
    page.get_by_role("button", name="Start training").click()
    # the progress line ("Step 3 · epoch …"), not the time-lapse's caption ("Step 4 of 5 (epoch …)")
    progress = page.locator("p", has_text=re.compile(r"^Step \d+ · ")).first
    progress.wait_for(timeout=120_000)
    first = progress.inner_text()
    page.wait_for_function("(t) => { const e = [...document.querySelectorAll('p')].find(p => "
                           "p.innerText.startsWith('Step')); return e && e.innerText !== t; }", arg=first,
                           timeout=120_000)
    early = line_pixels(page, "#accuracy-plot")
    page.screenshot(path=str(SHOTS / "4-train-running.png"), full_page=True)
    page.wait_for_selector("text=/Test accuracy/", timeout=300_000)  # the tiny run finishes: confusion, mistakes
    page.wait_for_timeout(2000)
    for plot in ("#loss-plot", "#accuracy-plot"):  # every legend entry has its line (one epoch: training only)
        labels, lines = page.evaluate(LEGEND_AND_LINES, plot)
        assert labels and len(lines) >= len(labels), f"{plot}: legend {labels}, lines drawn {lines}"
        drawn = {hue: n for hue, n in line_pixels(page, plot).items() if n >= 40}
        assert len(drawn) >= len(labels), f"{plot}: coloured pixels by hue {drawn}"
    final = {hue: n for hue, n in line_pixels(page, "#accuracy-plot").items() if n >= 40}
    assert sum(final.values()) > sum(early.get(hue, 0) for hue in final)  # the lines grew
    # the runs table's result is in sight, not scrolled off to the right of its box
    table = page.locator("#runs-table").bounding_box()
    header = page.locator("#runs-table th", has_text="test accuracy").first.bounding_box()
    assert header and header["x"] + header["width"] <= table["x"] + table["width"], (header, table)
    page.screenshot(path=str(SHOTS / "4-train.png"), full_page=True)


def test_time_lapse_replays_the_run_and_the_runs_table_grows(page, data_root):
    """After the run above: the replay slider moves the time-lapse back in time, the GIF is offered, the run is in
    the session's table; a second, one-epoch run adds a row and overlays both runs' curves."""
    page.get_by_role("tab", name="Train").click()
    note = page.locator("text=/it reads the probe as/")
    latest = note.inner_text()
    slider = page.locator("#timelapse-slider input[type=range]")
    assert slider.is_enabled()
    slider.fill("0")
    page.wait_for_function("(t) => [...document.querySelectorAll('p')].some(p => p.innerText.includes("
                           "'reads the probe') && p.innerText !== t)", arg=latest, timeout=30_000)
    assert "Step 0" in note.inner_text() or "Step 1 " in note.inner_text(), note.inner_text()
    assert page.locator("text=/\\.gif/").count() >= 1  # the GIF offered (its long name is shortened)
    table = page.locator("#runs-table")
    assert "run 1" in table.inner_text() and "run 2" not in table.inner_text()
    page.screenshot(path=str(SHOTS / "4-train-replay.png"), full_page=True)
    page.get_by_label("number input for Epochs").fill("1")
    page.get_by_label("number input for Epochs").press("Enter")
    page.get_by_role("button", name="Start training").click()
    page.wait_for_function("() => document.querySelector('#runs-table')?.innerText.includes('run 2')",
                           timeout=400_000)
    page.wait_for_timeout(2000)
    assert page.locator("#compare-plot img, #compare-plot svg, #compare-plot canvas").count() >= 1
    page.screenshot(path=str(SHOTS / "4-train-two-runs.png"), full_page=True)


def test_model_tab(page):
    page.get_by_role("tab", name="Model").click()
    page.wait_for_selector("text=46,764,746")
    page.screenshot(path=str(SHOTS / "5-model.png"), full_page=True)


def touch_stroke(cdp, points):
    """A finger drawing through `points` (page px): touchStart, moves, touchEnd, as a phone sends them."""
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": points[0][0], "y": points[0][1]}]})
    for x, y in points[1:]:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


# Within one block: the pictures and labels that a toolbar button or a floating label covers (their boxes meet)
COVERED = """(selector) => {
  const shown = (query) => [...document.querySelector(selector).querySelectorAll(query)].filter((e) => {
    const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; });
  const meet = (a, b) => { const r = a.getBoundingClientRect(), s = b.getBoundingClientRect();
    return r.left < s.right && s.left < r.right && r.top < s.bottom && s.top < r.bottom; };
  const covers = shown('.icon-button, label[data-testid="block-label"]');
  return shown('img, label[data-testid="block-label"]').filter((e) => covers.some((c) => c !== e && meet(e, c)))
    .map((e) => e.tagName + ' ' + e.innerText);
}"""


def test_a_phone_draws_with_a_finger_and_gets_its_digit_read(browser, live_app):
    """390x844 with touch: a finger's stroke is read, the page does not scroll while drawing, nothing is wider
    than the screen, and no toolbar or floating label covers a label or a picture."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True,
                                  device_scale_factor=2)
    phone = context.new_page()
    try:
        phone.goto(live_app[0], wait_until="domcontentloaded")
        phone.wait_for_selector("#sketch canvas", timeout=60_000)
        phone.locator("#sketch canvas").scroll_into_view_if_needed()
        box = paper(phone, "#sketch")
        before = phone.evaluate("window.scrollY")
        cdp = context.new_cdp_session(phone)
        x = box["x"] + box["width"] * 0.5
        touch_stroke(cdp, [(x, box["y"] + box["height"] * (0.25 + 0.035 * i)) for i in range(15)])  # on the paper
        assert phone.evaluate("window.scrollY") == before  # the finger drew; the page did not move
        try:
            phone.wait_for_function("() => document.querySelector('.output-class')?.innerText.trim() === '1'",
                                    timeout=60_000)
            phone.wait_for_selector("#digit-seen img", timeout=60_000)  # the pictures follow the probabilities
            phone.wait_for_timeout(1000)
        finally:
            phone.screenshot(path=str(SHOTS / "7-phone-draw.png"), full_page=True)
        widths = phone.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"sideways scrolling: page {widths[0]} px on a {widths[1]} px screen"
        phone.wait_for_selector("#digit-top-channels img", timeout=60_000)
        for block in ("#sketch", "#digit-seen", "#digit-top-channels"):
            assert phone.evaluate(COVERED, block) == [], f"{block}: covered on a phone"
        # every tab is in sight (in rows), none folded into a "More tabs" menu
        tabs = phone.evaluate("[...document.querySelectorAll('[role=tab]')].filter((t) => {"
                              " const r = t.getBoundingClientRect(); return r.width > 0 && r.right <= innerWidth;"
                              " }).map((t) => t.textContent.trim())")
        every_tab = phone.evaluate("document.querySelectorAll('[role=tab]').length")
        assert len(tabs) == every_tab >= 6 and phone.locator('button[aria-label="More tabs"]').count() == 0, tabs
        # the pad's Undo and Clear sit on the paper's top right corner, clear of its label on the top left
        tools, label = (phone.locator(f"#sketch {e}").bounding_box() for e in (".tools", '[data-testid="block-label"]'))
        assert tools["x"] + tools["width"] <= box["x"] + box["width"] and tools["y"] >= box["y"], (tools, box)
        assert label["y"] + label["height"] <= box["y"] or label["x"] + label["width"] <= tools["x"], (label, tools)
        phone.get_by_role("tab", name="Classify a photo").click()
        phone.locator("#photo input[type=file]").set_input_files(str(photo.EXAMPLES_DIR / "cifar10" / "ship.png"))
        phone.wait_for_selector("#photo-top-channels img", timeout=60_000)
        phone.wait_for_timeout(1000)
        phone.screenshot(path=str(SHOTS / "7-phone-photo.png"), full_page=True)
        for block in ("#photo-seen", "#photo-top-channels"):
            assert phone.evaluate(COVERED, block) == [], f"{block}: covered on a phone"
        # the input's own clear / fullscreen buttons sit on its photo's corner, as on every gradio image input
        assert [e for e in phone.evaluate(COVERED, "#photo") if not e.startswith("IMG")] == []
    finally:
        context.close()
