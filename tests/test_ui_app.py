"""The assembled app: named API endpoints, the launch warm-up."""
import pytest

gr = pytest.importorskip("gradio")

from alexnet_demo.ui import app  # noqa: E402


def test_demo_builds_with_named_api_endpoints():
    demo = app.build_demo()
    names = {d.get("api_name") for d in demo.config["dependencies"]}
    assert {"classify_digit", "classify_image", "feature_maps", "train"} <= names


def test_warm_up_loads_each_shipped_checkpoint_it_finds():
    from alexnet_demo.checkpoints import CHECKPOINT_DIR
    from alexnet_demo.inference import _load_cached, load_classifier

    shipped = [p for p in ("mnist", "cifar10") if (CHECKPOINT_DIR / f"{p}.safetensors").is_file()]
    if not shipped:
        pytest.skip("no shipped checkpoint in checkpoints/")
    app.warm_up()  # missing files are skipped silently: the callbacks report them
    before = _load_cached.cache_info().misses
    for preset in shipped:
        assert load_classifier(preset).preset == preset
    assert _load_cached.cache_info().misses == before  # already loaded by the warm-up
