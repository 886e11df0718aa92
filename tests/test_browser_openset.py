"""A real browser: the Photo tab says "none of the ten" for a photo of something else and for a person's photo
(issue 20), and says why for a file that is not a photo; saves screenshots."""
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("gradio")
playwright = pytest.importorskip("playwright.sync_api")

from alexnet_demo import openset  # noqa: E402
from alexnet_demo.checkpoints import CHECKPOINT_DIR  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.browser]
from browser import ARGS, CHROMIUM, SHOTS  # noqa: E402  (the browser every test drives)


def test_a_photo_of_something_else_is_called_none_of_the_ten(live_app, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    if openset.load(CHECKPOINT_DIR / "cifar10.safetensors") is None:
        pytest.skip("no open-set file for the shipped cifar10 checkpoint")
    import random

    from alexnet_demo import photos
    other = tmp_path / "sign.jpg"
    photos.text_photo(random.Random(7), photos._fonts()).save(other)  # one the rule calls none
    SHOTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(live_app[0], wait_until="domcontentloaded")
        page.get_by_role("tab", name="Classify a photo").click()
        page.locator("#photo input[type=file]").set_input_files(str(other))
        page.wait_for_function("() => document.body.innerText.includes(\"doesn't look like any of the ten\")",
                               timeout=60_000)
        page.wait_for_selector("#photo-top-channels img", timeout=60_000)
        page.screenshot(path=str(SHOTS / "photo-none-of-the-ten.png"), full_page=True)
        assert "closest:" in page.inner_text("body")
        person = tmp_path / "astronaut.png"  # a person, whose layers' activity lies within the ranges: her face
        Image.fromarray(pytest.importorskip("skimage.data").astronaut()).save(person)
        page.locator("#photo input[type=file]").set_input_files(str(person))
        page.wait_for_function("() => document.body.innerText.includes(\"This looks like a person's face\")",
                               timeout=60_000)
        page.screenshot(path=str(SHOTS / "photo-face-none-of-the-ten.png"), full_page=True)
        # a file that is not a photo: the note says why, and nothing of the astronaut's answer stays under it, with
        # no error badge on the pictures (their event is not run for a photo that failed)
        bad = tmp_path / "notes.png"
        bad.write_text("this is a text file")
        page.locator("#photo input[type=file]").set_input_files(str(bad))
        page.wait_for_function("() => document.body.innerText.includes(\"This file can't be read as a photo\")",
                               timeout=60_000)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(SHOTS / "photo-unreadable-file.png"))
        assert "person's face" not in page.inner_text("body")
        assert page.locator("#photo-top-channels img").count() == 0 and page.locator("#photo-seen .error").count() == 0
        browser.close()
