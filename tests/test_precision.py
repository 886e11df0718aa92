"""The number-format choice: bf16 only where measured faster and answering as fp32 does; fp32 otherwise."""
import pytest
import torch
from torch import nn

from alexnet_demo import precision
from alexnet_demo.models import build_model


class Tied(nn.Module):
    """Two logits 1.0 and 1.001 for the input (1, 0): fp32 picks class 1; bf16 (8 mantissa bits) rounds both
    weights to 1.0 and picks class 0. A model whose answer bf16 changes, built on purpose."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[1.0, 0.0], [1.001, 0.0]]))

    def forward(self, x):
        return self.linear(x.flatten(1)) * 1000  # the tie, scaled so the probabilities differ too


def stand_in(fp32_ms, bf16_ms):
    """A timer that answers by the model's weight dtype: (one input, a batch) ms for each format."""
    def measure(model, x):
        ms = bf16_ms if next(model.parameters()).dtype == torch.bfloat16 else fp32_ms
        return ms[0] if len(x) == 1 else ms[1]
    return measure


@pytest.fixture(scope="module")
def small_model_and_probe():
    torch.manual_seed(0)
    model = build_model("cifar10").eval()
    return model, torch.randn(8, 3, 50, 50)


def test_bf16_is_chosen_when_faster_and_answers_agree(small_model_and_probe):
    model, probe = small_model_and_probe
    choice, fast = precision.choose_format(model, probe, measure=stand_in((20, 100), (12, 40)))
    assert choice.name == "bf16" and choice.same_top and choice.max_change <= precision.TOLERANCE
    assert next(fast.parameters()).dtype == torch.bfloat16 and next(model.parameters()).dtype == torch.float32
    assert "faster" in choice.reason


def test_bf16_is_refused_when_slower(small_model_and_probe):
    model, probe = small_model_and_probe
    choice, fast = precision.choose_format(model, probe, measure=stand_in((10, 40), (15, 60)))  # AMD-like
    assert choice.name == "fp32" and fast is model and "not faster" in choice.reason


def test_bf16_is_refused_when_a_lone_input_gets_slower_even_if_batches_get_faster(small_model_and_probe):
    model, probe = small_model_and_probe
    choice, fast = precision.choose_format(model, probe, measure=stand_in((10, 80), (12, 30)))
    assert choice.name == "fp32" and fast is model


def test_bf16_is_refused_when_it_changes_an_answer_however_fast():
    model = Tied().eval()
    choice, fast = precision.choose_format(model, torch.tensor([[1.0, 0.0]]), measure=stand_in((100, 100), (1, 1)))
    assert choice.name == "fp32" and fast is model and choice.same_top is False
    assert "changes a top class" in choice.reason


def test_bf16_is_refused_when_a_probability_moves_past_the_tolerance(small_model_and_probe):
    model, probe = small_model_and_probe
    choice, _ = precision.choose_format(model, probe, measure=stand_in((20, 100), (1, 1)), tolerance=0.0)
    assert choice.name == "fp32" and "moves a probability" in choice.reason


def test_the_real_timer_measures_milliseconds(small_model_and_probe):
    model, probe = small_model_and_probe
    ms = precision.median_ms(model, probe[:1], repeats=3)
    assert 0 < ms < 10_000


def test_training_in_bf16_is_chosen_only_where_a_step_measured_faster():
    from alexnet_demo.config import recipe_config
    config = recipe_config("mnist_visitor")
    at_224 = precision.choose_training_format(config, measure=lambda c: 400.0 if c.amp else 1000.0)
    assert at_224.name == "bf16" and "2.5x faster" in at_224.reason
    at_65 = precision.choose_training_format(config, measure=lambda c: 1000.0 if c.amp else 980.0)
    assert at_65.name == "fp32" and "no faster" in at_65.reason


def test_the_engines_own_step_is_what_gets_timed():
    from alexnet_demo.config import TrainConfig
    config = TrainConfig(dataset="cifar10", batch_size=4, input_size=47, classifier_width=64, batch_norm=True)
    assert 0 < precision.step_ms(config, steps=1) < 60_000
