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


def test_linear_warmup_and_final_lr():
    """The records' and cpu_quick's schedule: a warm-up ramp from 0 (momentum constant throughout), then a
    straight line to final_lr x lr; a one-step schedule without warm-up ends on final_lr at once."""
    lin = Optim(lr=0.4, momentum=0.9, schedule=Schedule(kind="linear", warmup=0.25, final_lr=0.1))
    warming = schedule_point(10, 100, lin)
    assert warming.lr == pytest.approx(0.4 * 10 / 25) and warming.momentum == 0.9
    assert schedule_point(25, 100, lin).lr == pytest.approx(0.4)
    assert schedule_point(62, 100, lin).lr == pytest.approx(0.4 * (1 - 37 / 75 * 0.9))
    assert schedule_point(100, 100, lin).lr == pytest.approx(0.04)
    flat = Optim(lr=1.0, momentum=0.85, schedule=Schedule(kind="linear", warmup=0.0, final_lr=0.25))
    assert schedule_point(0, 1, flat).lr == 1.0 and schedule_point(1, 1, flat).lr == pytest.approx(0.25)


def test_fused_reaches_torch():
    model = nn.Linear(2, 2)
    assert Scheduled(model, Optim(fused=True), 10).optimizer.defaults["fused"] is True
    assert not Scheduled(model, Optim(), 10).optimizer.defaults["fused"]


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


# ------------------------------------------------------------------ the optimiser as the loop drives it

def wired_fit(opt_cfg, epochs=2, precision="fp32", seen=None):
    """fit on a conv + BatchNorm + linear net (decay and no-decay groups), recording each group's settings
    at every optimizer.step; returns (model before, model after, batches, records)."""
    import copy

    from bench.core.clock import Clock
    from bench.train.loop import fit

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    start = copy.deepcopy(net)
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(6, 3, 6, 6, generator=g), torch.randint(0, 3, (6,), generator=g)) for _ in range(3)]

    class Batches:
        def __len__(self):
            return len(data)

        def epoch(self, e):
            return iter(data)

    opt = Scheduled(net, opt_cfg, total_steps=len(data) * epochs)
    real_step = opt.optimizer.step
    settings = [] if seen is None else seen

    def step(*a, **k):
        settings.append([{key: grp[key] for key in ("lr", "momentum", "weight_decay", "nesterov")}
                         for grp in opt.optimizer.param_groups])
        return real_step(*a, **k)

    opt.optimizer.step = step
    result = fit(net, opt, Batches(), lambda: 0.0, epochs=epochs, eval_every=1, target=1.0,
                 clock=Clock(since_process_start=0.0), device_type="cpu", precision=precision,
                 label_smoothing=opt_cfg.label_smoothing)
    return start, net, data, result, settings


ONE_CYCLE = Optim(lr=0.4, momentum=0.9, nesterov=True, weight_decay=5e-3, label_smoothing=0.2, epochs=2,
                  schedule=Schedule(kind="one_cycle", div=10, pct=20, max_mom=0.95, min_mom=0.85))


def test_every_group_gets_the_scheduled_lr_and_momentum_at_every_step():
    _, _, data, _, settings = wired_fit(ONE_CYCLE)
    total = 2 * len(data)
    assert len(settings) == total
    for k, groups in enumerate(settings):
        want = schedule_point(k, total, ONE_CYCLE)
        assert len(groups) == 2
        for grp in groups:
            assert (grp["lr"], grp["momentum"]) == (want.lr, want.momentum), (k, grp)
            assert grp["nesterov"] is True
        assert [grp["weight_decay"] for grp in groups] == [5e-3, 0.0]  # decay group, then BN and biases


def test_fit_trains_exactly_like_a_hand_written_sgd_loop():
    """Weights after fit equal plain torch SGD with the groups, nesterov, weight decay, label smoothing and
    per-step schedule set by hand: a dropped setting or a schedule applied one step late shows up here."""
    start, trained, data, result, _ = wired_fit(ONE_CYCLE)
    ref = start
    decay = [p for p in ref.parameters() if p.ndim > 1]
    no_decay = [p for p in ref.parameters() if p.ndim <= 1]
    assert len(no_decay) == 4  # conv bias, BN weight and bias, linear bias
    sgd = torch.optim.SGD([{"params": decay, "weight_decay": 5e-3}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=1.0, momentum=0.9, nesterov=True)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.2)
    total, k, losses = 2 * len(data), 0, []
    for _ in range(2):
        epoch_losses = []
        for x, y in data:
            point = schedule_point(k, total, ONE_CYCLE)
            for grp in sgd.param_groups:
                grp["lr"], grp["momentum"] = point.lr, point.momentum
            loss = criterion(ref(x), y)
            sgd.zero_grad()
            loss.backward()
            sgd.step()
            epoch_losses.append(loss.item())
            k += 1
        losses.append(sum(epoch_losses) / len(epoch_losses))  # equal batch sizes: the mean is the mean
    for name, p in trained.state_dict().items():
        assert torch.allclose(p, ref.state_dict()[name], rtol=0, atol=1e-6), name
    assert [r.train_loss for r in result.records] == pytest.approx(losses, rel=1e-6)
    assert [r.lr for r in result.records] == [schedule_point(2, total, ONE_CYCLE).lr,
                                              schedule_point(5, total, ONE_CYCLE).lr]


def test_label_smoothing_reaches_the_loss():
    smooth = wired_fit(ONE_CYCLE, epochs=1)[3].records[0].train_loss
    plain = wired_fit(Optim(**{**ONE_CYCLE.__dict__, "label_smoothing": 0.0}), epochs=1)[3].records[0].train_loss
    assert smooth != pytest.approx(plain, rel=1e-3)


def test_without_no_decay_every_parameter_decays():
    cfg = Optim(**{**ONE_CYCLE.__dict__, "no_decay_bn_bias": False})
    _, _, _, _, settings = wired_fit(cfg, epochs=1)
    assert all([grp["weight_decay"] for grp in groups] == [5e-3] for groups in settings)


@pytest.mark.parametrize("precision,scaled", [("fp16", True), ("bf16", False), ("fp32", False)])
def test_fit_hands_a_grad_scaler_to_fp16_steps_only(monkeypatch, precision, scaled):
    from bench.train import loop

    scalers, real = [], loop.train_step

    def spy(model, optimizer, criterion, scaler, *rest):
        scalers.append(scaler)
        return real(model, optimizer, criterion, scaler, *rest)

    monkeypatch.setattr(loop, "train_step", spy)
    wired_fit(ONE_CYCLE, epochs=1, precision=precision)
    assert len(scalers) == 3
    # a scaler made for another device than the batches' (GradScaler's default is cuda) scales nothing here
    assert all(isinstance(s, torch.amp.GradScaler) and s.is_enabled() and s._device == "cpu" if scaled
               else s is None for s in scalers)


def test_fp16_step_with_overflowing_gradients_is_skipped_and_the_scale_halved():
    """What the GradScaler is for: on this CPU too, a scaled fp16 gradient that overflows skips the step
    (weights untouched) and halves the scale; the next, finite step updates the weights."""
    from bench.train.loop import train_step

    torch.manual_seed(0)
    net = nn.Linear(4, 3)
    sgd = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler("cpu")
    before = [p.detach().clone() for p in net.parameters()]
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    huge = torch.randn(8, 4, generator=torch.Generator().manual_seed(0)) * 100  # x 65536 overflows fp16
    train_step(net, sgd, nn.CrossEntropyLoss(), scaler, huge, y, "cpu", "fp16")
    assert scaler.get_scale() == 2.0 ** 15
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    train_step(net, sgd, nn.CrossEntropyLoss(), scaler, huge / 100, y, "cpu", "fp16")
    assert scaler.get_scale() == 2.0 ** 15
    assert not any(torch.equal(a, b) for a, b in zip(before, net.parameters()))
