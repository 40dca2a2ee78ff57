"""The one-cycle schedule at its corners (fast.ai use_clr_beta semantics) and the other schedules."""
import pytest
import torch
from torch import nn

from bench.train.optim import Scheduled, param_groups, schedule_point
from bench.recipe import Optim, Schedule


def oc(div=20.0, pct=20.0, lr=1.0, max_mom=0.95, min_mom=0.85):
    return Optim(lr=lr, schedule=Schedule(kind="one_cycle", div=div, pct=pct, max_mom=max_mom, min_mom=min_mom))


def test_one_cycle_corners():
    opt, total = oc(div=20, pct=20, lr=1.3), 1000
    # 80% of the steps form the triangle: up for 400 steps, down for 400; the last 200 anneal.
    start, peak, bottom, end = (schedule_point(s, total, opt) for s in (0, 400, 800, 1000))
    assert start.lr == pytest.approx(1.3 / 20) and start.momentum == pytest.approx(0.95)
    assert peak.lr == pytest.approx(1.3) and peak.momentum == pytest.approx(0.85)
    assert bottom.lr == pytest.approx(1.3 / 20) and bottom.momentum == pytest.approx(0.95)
    assert end.lr == pytest.approx(1.3 / (100 * 20)) and end.momentum == pytest.approx(0.95)


def test_one_cycle_midpoints_are_linear():
    opt, total = oc(div=10, pct=10, lr=1.0), 200
    # triangle half = 90 steps; at 45 the lr is halfway between 0.1 and 1.0
    mid_up = schedule_point(45, total, opt)
    assert mid_up.lr == pytest.approx(0.55) and mid_up.momentum == pytest.approx(0.90)
    mid_down = schedule_point(135, total, opt)
    assert mid_down.lr == pytest.approx(0.55) and mid_down.momentum == pytest.approx(0.90)
    # halfway through the 20-step tail: lr/div * (1 - 0.5 * 0.99)
    assert schedule_point(190, total, opt).lr == pytest.approx(0.1 * (1 - 0.495))


def test_dawnbench_8gpu_schedule():
    """wrn22_8gpu: use_clr 50,12.5 -> the triangle covers 87.5% of the steps."""
    opt, total = oc(div=50, pct=12.5, lr=2.0), 800
    assert schedule_point(350, total, opt).lr == pytest.approx(2.0)  # 800 * 0.875 / 2
    assert schedule_point(700, total, opt).lr == pytest.approx(2.0 / 50)
    assert schedule_point(800, total, opt).lr == pytest.approx(2.0 / 5000)


def test_linear_and_constant():
    lin = Optim(lr=0.4, momentum=0.9, schedule=Schedule(kind="linear", warmup=0.25, final_lr=0.0))
    assert schedule_point(0, 100, lin).lr == 0.0
    assert schedule_point(25, 100, lin).lr == pytest.approx(0.4)
    assert schedule_point(100, 100, lin).lr == pytest.approx(0.0)
    assert schedule_point(62, 100, lin).lr == pytest.approx(0.4 * (1 - 37 / 75))
    assert schedule_point(50, 100, lin).momentum == 0.9
    const = Optim(lr=0.1, momentum=0.8, schedule=Schedule(kind="constant"))
    assert schedule_point(7, 100, const).lr == 0.1 and schedule_point(7, 100, const).momentum == 0.8


def test_no_decay_on_bn_and_bias():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    decay, no_decay = param_groups(model, 5e-4, True)
    assert {p.ndim for p in decay["params"]} == {4, 2}
    assert all(p.ndim == 1 for p in no_decay["params"]) and no_decay["weight_decay"] == 0.0
    assert len(param_groups(model, 5e-4, False)) == 1


def test_scheduled_sets_lr_and_momentum_per_step():
    model = nn.Linear(2, 1)
    s = Scheduled(model, oc(div=20, pct=20, lr=1.0), total_steps=10)
    seen = []
    for _ in range(10):
        p = s.apply()
        seen.append((s.optimizer.param_groups[0]["lr"], s.optimizer.param_groups[0]["momentum"]))
        assert seen[-1] == (p.lr, p.momentum)
        model(torch.ones(1, 2)).sum().backward()
        s.optimizer.step()
        s.advance()
    assert seen[0][0] == pytest.approx(0.05) and max(lr for lr, _ in seen) == pytest.approx(1.0)


# ------------------------------------------------------------------ the edges, pct 0 and 100

def lrs(opt, total):
    return [schedule_point(s, total, opt).lr for s in range(total + 1)]


@pytest.mark.parametrize("total", [1, 7, 100])
def test_one_cycle_pct_100_is_a_plain_anneal_from_lr_over_div(total):
    """No triangle: step 0 is lr/div (not the peak, which would be a div-fold spike before step 1)."""
    opt = oc(div=20, pct=100, lr=2.0)
    seq = lrs(opt, total)
    assert seq[0] == pytest.approx(2.0 / 20) and seq[-1] == pytest.approx(2.0 / 2000)
    assert all(b <= a for a, b in zip(seq, seq[1:]))  # never rises
    assert all(schedule_point(s, total, opt).momentum == 0.95 for s in range(total + 1))


def test_one_cycle_pct_0_is_the_triangle_alone():
    opt, total = oc(div=10, pct=0, lr=1.0), 100
    seq = lrs(opt, total)
    assert seq[0] == pytest.approx(0.1) and seq[50] == pytest.approx(1.0) and seq[-1] == pytest.approx(0.1)
    assert max(seq) == seq[50]
    assert schedule_point(50, total, opt).momentum == pytest.approx(0.85)
    assert schedule_point(total, total, opt).momentum == pytest.approx(0.95)


@pytest.mark.parametrize("pct", [0, 12.5, 50, 99, 99.9, 100])
@pytest.mark.parametrize("total", [3, 10, 97])
def test_one_cycle_never_jumps_more_than_one_step_of_its_slopes(pct, total):
    """Any pct the schema accepts: each step moves lr by at most the steeper of the two linear slopes."""
    opt = oc(div=20, pct=pct, lr=1.0)
    half = total * (1 - pct / 100) / 2
    tail = total - 2 * half
    bound = max((1.0 - 0.05) / half if half else 0.0, 0.05 * 0.99 / tail if tail else 0.0) + 1e-12
    seq = lrs(opt, total)
    assert seq[0] == pytest.approx(0.05)
    assert max(abs(b - a) for a, b in zip(seq, seq[1:])) <= bound


# ------------------------------------------------------------------ against torch's OneCycleLR

@pytest.mark.parametrize("total,div,pct", [(1000, 20, 20), (200, 10, 10), (800, 50, 12.5), (37, 20, 20),
                                           (10, 3, 0), (101, 7, 33.3)])
def test_one_cycle_matches_torch_one_cycle_lr_step_by_step(total, div, pct):
    """torch's three-phase linear OneCycleLR is the same shape, counted differently: it ends phase one at
    step pct_start * total_steps - 1 and the run at total_steps - 1, where fast.ai ends the climb at step
    `half` and the run at step `total`. With total_steps = total + 1 and pct_start = (half + 1) / (total + 1)
    the two agree at every step, lr and momentum."""
    import warnings

    lr, max_mom, min_mom = 1.3, 0.95, 0.85
    opt = oc(div=div, pct=pct, lr=lr, max_mom=max_mom, min_mom=min_mom)
    half = total * (1 - pct / 100) / 2
    p = torch.nn.Parameter(torch.zeros(1))
    sgd = torch.optim.SGD([p], lr=lr, momentum=0.9)
    ref = torch.optim.lr_scheduler.OneCycleLR(
        sgd, max_lr=lr, total_steps=total + 1, pct_start=(half + 1) / (total + 1), anneal_strategy="linear",
        div_factor=div, final_div_factor=100, three_phase=True, max_momentum=max_mom, base_momentum=min_mom)
    for step in range(total + 1):
        ours = schedule_point(step, total, opt)
        group = sgd.param_groups[0]
        assert ours.lr == pytest.approx(group["lr"], rel=1e-12, abs=1e-15), step
        assert ours.momentum == pytest.approx(group["momentum"], rel=1e-12, abs=1e-15), step
        if step < total:
            sgd.step()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "detected call of lr_scheduler.step() before optimizer.step()"
                ref.step()
