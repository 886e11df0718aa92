"""The Model tab: the layer tables show the real parameter totals."""
import pytest

gr = pytest.importorskip("gradio")

from alexnet_demo.models import model_table  # noqa: E402


def test_model_tables_show_the_real_totals():
    assert "**46,764,746**" in model_table("mnist") and "**21,622,506**" in model_table("cifar10")


def test_the_model_tab_says_which_number_format_runs_and_why():
    from alexnet_demo.checkpoints import CheckpointError
    from alexnet_demo.inference import load_classifier
    from alexnet_demo.ui.model import formats
    try:
        choice = load_classifier("mnist").use_best_format()
    except CheckpointError as e:
        pytest.skip(f"no shipped mnist checkpoint: {e}")
    assert f"**mnist**: {choice.reason}" in formats() and choice.name in ("fp32", "bf16")
