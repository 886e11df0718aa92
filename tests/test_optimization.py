"""The optimizer and schedule a TrainConfig names: one-cycle's shape and its momentum cycle, plateau's ÷10."""
import pytest
import torch

from alexnet_demo.config import TrainConfig
from alexnet_demo.optimization import Schedule, make_optimizer


def stepped(config: TrainConfig, total: int) -> tuple[list, list]:
    model = torch.nn.Linear(2, 2)
    optimizer = make_optimizer(config, model, torch.device("cpu"))
    schedule = Schedule(config, optimizer, total)
    lrs, momenta = [], []
    for _ in range(total):
        group = optimizer.param_groups[0]
        lrs.append(group["lr"])
        momenta.append(group["momentum"] if "momentum" in group else group["betas"][0])
        optimizer.step()
        schedule.after_step()
    return lrs, momenta


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_onecycle_warms_up_over_a_quarter_and_cycles_momentum_whatever_the_config_says(optimizer):
    lrs, momenta = stepped(TrainConfig(optimizer=optimizer, lr=0.1, momentum=0.5, schedule="onecycle"), 100)
    peak = max(range(100), key=lrs.__getitem__)
    assert 24 <= peak <= 26 and lrs[peak] == pytest.approx(0.1, rel=0.02) and lrs[0] == pytest.approx(0.1 / 25)
    assert lrs[-1] < 0.01 and momenta[0] == pytest.approx(0.95) and momenta[peak] == pytest.approx(0.85, abs=0.002)


def test_without_onecycle_sgd_keeps_the_configured_momentum_and_plateau_divides_by_ten():
    config = TrainConfig(optimizer="sgd", lr=0.1, momentum=0.5, schedule="plateau")
    lrs, momenta = stepped(config, 5)
    assert lrs == [0.1] * 5 and momenta == [0.5] * 5
    optimizer = make_optimizer(config, torch.nn.Linear(2, 2), torch.device("cpu"))
    schedule = Schedule(config, optimizer, 10)
    for loss in (1.0, 1.0, 1.0, 1.0):  # no lower loss for 3 epochs after the first: patience 2 runs out
        schedule.after_epoch(loss)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)


@pytest.mark.parametrize("total", range(1, 13))
def test_a_short_onecycle_run_warms_up_then_anneals_at_any_length(total):
    """A run of 3 steps used to divide by zero (a 25% warm-up of 4 schedule steps ends at step 0)."""
    lrs, _ = stepped(TrainConfig(lr=0.1, schedule="onecycle"), total)
    assert len(lrs) == total and all(0 < lr <= 0.1 + 1e-9 for lr in lrs)
    assert total < 3 or lrs[1] > lrs[0]  # it warms up
