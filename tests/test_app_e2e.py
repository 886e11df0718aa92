"""End to end: the app on a free local port, driven by the real gradio_client."""
import time

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402

from alexnet_demo.preprocessing import data_url  # noqa: E402
from alexnet_demo.ui import photo  # noqa: E402
from alexnet_demo.ui import training as train_tab  # noqa: E402

pytestmark = pytest.mark.slow
TINY_RUN = dict(dataset="mnist", epochs=2, batch_size=32, lr=3e-4, optimizer="adam", schedule="none", subset=640,
                input_size=65, augment=False, amp=False)


@pytest.fixture(scope="module")
def server(live_app, tmp_path_factory):
    return live_app[0], tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="module")
def client(server):
    return Client(server[0], verbose=False)


def digit_file(folder, data_root):
    from alexnet_demo.data import load_dataset
    digit = load_dataset("mnist", "test", data_root, download=False).images[0, 0].numpy()  # a 7
    canvas = np.full((400, 400), 255, np.uint8)
    canvas[50:330, 80:360] = 255 - np.kron(digit, np.ones((10, 10), np.uint8))
    path = folder / "seven.png"
    Image.fromarray(canvas).save(path)
    return str(path)


def test_named_endpoints_are_listed(client):
    names = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/classify_digit", "/classify_image", "/image_panel", "/feature_maps", "/train", "/explain",
            "/probe", "/ablate", "/channel_examples"} <= set(names)


def test_classify_a_digit_image(client, server, data_root):
    value = data_url(digit_file(server[1], data_root))  # the drawing as the page's pad sends it
    label, note, seen, top, maps = client.predict(value, False, api_name="/classify_digit")
    assert label["label"] == "7" and "7" in note and maps == []
    # the two pictures come inside the answer (ui/common.InlineImage), not as files to fetch
    assert all(p["path"] is None and p["url"].startswith("data:image/png;base64,") for p in (seen, top))
    # every channel's grids too when asked for, as when that part of the page is open
    label, note, seen, top, maps = client.predict(value, True, api_name="/classify_digit")
    assert label["label"] == "7" and len(maps) == 5 and seen and top


def test_classify_a_cifar_example(client):
    example = str(photo.EXAMPLES_DIR / "cifar10" / "ship.png")
    label, note = client.predict(handle_file(example), api_name="/classify_image")
    seen, top, maps = client.predict(handle_file(example), True, api_name="/image_panel")
    assert len(label["confidences"]) == 5 and len(maps) == 5 and seen["url"].startswith("data:image/png;base64,")


def test_fetch_feature_maps(client):
    example = str(photo.EXAMPLES_DIR / "cifar10" / "horse.png")
    everything, top, filters, caption = client.predict("Photo", "conv3", None, handle_file(example),
                                                       api_name="/feature_maps")
    assert everything is not None and top is not None and "read as" in caption


def test_training_streams_updates_and_can_be_cancelled(client, data_root):
    job = client.submit(**TINY_RUN, api_name="/train")
    deadline = time.monotonic() + 240
    while len([o for o in job.outputs() if o[2] and o[2].startswith("Step")]) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    steps = [o[2] for o in job.outputs() if o[2] and o[2].startswith("Step")]
    assert len(steps) >= 2, job.outputs()
    job.cancel()
    # the lock is released: a new run starts instead of being told the machine is busy
    deadline = time.monotonic() + 60
    while train_tab.TRAIN_LOCK.locked() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not train_tab.TRAIN_LOCK.locked()


def test_server_refuses_a_server_path_it_was_not_sent(server):
    """A raw API call naming a file on the server is refused: only uploaded files are read."""
    import httpx
    url = server[0].rstrip("/")
    event = httpx.post(f"{url}/gradio_api/call/classify_image",
                       json={"data": [{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}]}).json()
    reply = httpx.get(f"{url}/gradio_api/call/classify_image/{event['event_id']}", timeout=60).text
    assert "event: error" in reply and "not uploaded by a user" in reply


def test_a_drawing_must_be_a_data_url_never_a_server_path(client):
    """The pad's value is a string: a path to a file on the server is refused, never read."""
    with pytest.raises(Exception, match="not a base64 data URL"):
        client.predict("/etc/passwd", False, api_name="/classify_digit")
    with pytest.raises(Exception, match="not a readable image"):
        client.predict("data:image/png;base64,aGVsbG8=", False, api_name="/classify_digit")


def test_a_corrupt_upload_gets_a_clear_message(client, server):
    bad = server[1] / "notes.png"
    bad.write_text("not an image at all")
    with pytest.raises(Exception, match="not a readable image"):
        client.predict(handle_file(str(bad)), api_name="/classify_image")


def test_the_why_views_answer_through_the_api(client, server, data_root):
    """/explain, /probe, /ablate and /channel_examples take the same image inputs as /classify_digit and
    /classify_image and answer with a figure and a sentence."""
    drawn = data_url(digit_file(server[1], data_root))
    figure, caption = client.predict("Drawing", drawn, None, "the predicted class", "conv5", api_name="/explain")
    assert figure and "It answers 7" in caption.replace("**", "")
    figure, summary = client.predict("Drawing", drawn, None, "rotation", api_name="/probe")
    assert figure and summary.startswith("It ")
    figure, caption = client.predict("Drawing", drawn, None, "conv3", 4, "1, 2", api_name="/ablate")
    assert figure and "6 of conv3's channels off" in caption
    figure, caption = client.predict("Drawing", drawn, None, "conv5", None, api_name="/channel_examples")
    assert figure and "(the most active for your input)" in caption and "of 10,000 searched" in caption
    example = handle_file(str(photo.EXAMPLES_DIR / "cifar10" / "cat.png"))
    figure, caption = client.predict("Photo", None, example, "dog", "conv4", api_name="/explain")
    assert figure and "explain **dog**" in caption
    with pytest.raises(Exception, match="conv9 is not in the list of choices"):  # gradio checks the dropdown
        client.predict("Drawing", drawn, None, "conv9", 0, "", api_name="/ablate")
