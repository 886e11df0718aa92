"""The Feature maps tab's callback: figures for the drawing, a clear error for a layer that does not exist."""
import pytest

gr = pytest.importorskip("gradio")

from alexnet_demo.ui import inside  # noqa: E402
from conftest import sketch_value  # noqa: E402


def test_feature_maps_tab_returns_figures(untrained_mnist):
    everything, top, filters, caption = inside.feature_maps("Drawing", "conv2", sketch_value(), None, untrained_mnist, None)
    assert everything is not None and top is not None and filters is not None and "read as" in caption
    with pytest.raises(gr.Error, match="layer must be one of"):
        inside.feature_maps("Drawing", "fc1", sketch_value(), None, untrained_mnist, None)


def test_cleared_canvas_asks_for_a_drawing(untrained_mnist):
    cleared = {"background": None, "layers": [], "composite": None}
    assert inside.feature_maps("Drawing", "conv1", cleared, None, untrained_mnist, None)[3].startswith("Draw a digit")
