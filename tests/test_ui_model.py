"""The Model tab: the layer tables show the real parameter totals."""
import pytest

gr = pytest.importorskip("gradio")

from alexnet_demo.models import model_table  # noqa: E402


def test_model_tables_show_the_real_totals():
    assert "**46,764,746**" in model_table("mnist") and "**21,622,506**" in model_table("cifar10")
