"""The loop's stop-at-target logic, driven by a scripted accuracy sequence and a fake clock."""
import math

import pytest
import torch
from torch import nn

from bench.core.clock import Clock
from bench.train.optim import Scheduled
from bench.recipe import Optim, Schedule
from bench.train.loop import TargetTracker, data_wait_fraction, fit


class FakeTime:
    """Every clock read advances `tick` seconds (1 s), so elapsed times are exact and test-controlled."""

    def __init__(self, tick=1.0):
        self.t, self.tick = 100.0, tick

    def __call__(self):
        self.t += self.tick
        return self.t


class Batches:
    def __init__(self, n_batches=3, bs=4):
        g = torch.Generator().manual_seed(0)
        self.data = [(torch.randn(bs, 8, generator=g), torch.randint(0, 2, (bs,), generator=g)) for _ in range(n_batches)]

    def __len__(self):
        return len(self.data)

    def epoch(self, e):
        return iter(self.data)


def run_scripted(accs, *, epochs=10, eval_every=1, target=0.9, counts=True, lr=0.1, mode="max", batches=None,
                 evaluate_fn=None, **fit_args):
    model = nn.Linear(8, 2)
    batches = batches or Batches()
    opt = Scheduled(model, Optim(lr=lr, epochs=epochs, schedule=Schedule(kind="constant")), len(batches) * epochs)
    script = iter(accs)
    events = []
    clock = Clock(now=FakeTime(), since_process_start=0.0)
    clock.ready()
    result = fit(model, opt, batches, evaluate_fn or (lambda: next(script)), epochs=epochs, eval_every=eval_every,
                 target=target, clock=clock, device_type="cpu", precision="fp32", target_counts=counts,
                 target_mode=mode, on_event=lambda k, m: events.append((k, m)), **fit_args)
    return result, events


def test_stops_at_first_evaluation_reaching_target():
    result, events = run_scripted([0.5, 0.85, 0.91, 0.95, 0.99])
    assert result.status == "reached" and result.epochs == 3
    assert result.best_acc == 0.91 and result.final_acc == 0.91
    assert result.time_to_target_s == result.records[-1].elapsed_s
    assert [r.test_acc for r in result.records] == [0.5, 0.85, 0.91]
    evals = [m for k, m in events if k == "eval_accuracy"]
    assert [m["epoch_num"] for m in evals] == [1, 2, 3]
    assert [m["elapsed_s"] for m in evals] == [r.elapsed_s for r in result.records]


def test_exactly_target_counts_as_reached():
    result, _ = run_scripted([0.89, 0.9])
    assert result.status == "reached" and result.epochs == 2


def test_missed_run_keeps_best_accuracy():
    result, events = run_scripted([0.3, 0.7, 0.6], epochs=3)
    assert result.status == "missed" and result.time_to_target_s is None
    assert result.best_acc == 0.7 and result.final_acc == 0.6 and result.epochs == 3
    assert [k for k, _ in events].count("epoch_start") == 3


def test_eval_interval_and_last_epoch_always_evaluated():
    result, _ = run_scripted([0.5, 0.6, 0.7], epochs=5, eval_every=2)
    assert [r.test_acc for r in result.records] == [None, 0.5, None, 0.6, 0.7]
    assert result.status == "missed"


def test_target_between_evaluations_is_timed_at_the_evaluation():
    result, _ = run_scripted([0.5, 0.95], epochs=6, eval_every=3)
    assert result.status == "reached" and result.epochs == 6
    assert result.time_to_target_s == result.records[5].elapsed_s


def test_synthetic_data_never_counts():
    result, _ = run_scripted([0.99, 0.99], epochs=2, counts=False)
    assert result.status == "missed" and result.time_to_target_s is None
    assert "synthetic" in result.reason and result.best_acc == 0.99


def test_diverged_loss_is_failed():
    result, _ = run_scripted([0.1] * 5, epochs=5, lr=1e38)
    assert result.status == "failed" and "diverged" in result.reason
    assert not math.isfinite(result.records[-1].train_loss)


def test_records_carry_timing_fields():
    result, _ = run_scripted([0.95])
    r = result.records[0]
    assert r.epoch == 1 and r.epoch_s > 0 and r.images_per_s > 0 and r.data_wait_s >= 0
    assert 0 <= data_wait_fraction(result.records) <= 1


def test_tracker_best_and_first_reach():
    t = TargetTracker(0.9)
    assert not t.observe(0.8, 1.0)
    assert t.observe(0.92, 2.0)
    assert not t.observe(0.95, 3.0)  # only the first reach is timed
    assert t.reached_at == 2.0 and t.best == 0.95


def test_clock_reads_sync_first():
    calls = []
    clock = Clock(now=FakeTime(), sync=lambda: calls.append("sync"), since_process_start=5.0)
    init = clock.ready()
    assert calls == ["sync"] and init == pytest.approx(6.0)  # 5 s before + 1 s tick
    clock.start_run()
    assert clock.since_run_start() == pytest.approx(1.0)
    assert len(calls) == 3


def test_warm_up_leaves_weights_buffers_and_optimizer_untouched():
    from bench.train.loop import warm_up

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(16, 8), torch.randint(0, 2, (16,))
    warm_up(model, model, opt, steps=3, train_batches=[(x, y), (x[:5], y[:5])],
            eval_batches=[torch.randn(4, 8)], device_type="cpu", precision="fp32")
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running stats included
    assert opt.state_dict()["state"] == {} and all(p.grad is None for p in model.parameters())
    assert model.training


def test_a_missed_run_gives_no_reason():
    result, _ = run_scripted([0.3], epochs=1)
    assert result.status == "missed" and result.reason == ""


def test_lower_is_better_targets():
    """GAN metrics (fd_judge): the best is the lowest, and a run reaches its target by going at or below it."""
    t = TargetTracker(250.0, mode="min")
    assert not t.observe(300.0, 1.0) and t.best == 300.0
    assert t.observe(250.0, 2.0) and t.reached_at == 2.0
    assert not t.observe(200.0, 3.0) and t.best == 200.0
    result, _ = run_scripted([400.0, 260.0, 249.5, 100.0], target=250.0, mode="min")
    assert result.status == "reached" and result.epochs == 3 and result.best_acc == 249.5
    result, _ = run_scripted([0.95, 0.99], epochs=2, target=0.5, mode="min")  # never low enough
    assert result.status == "missed" and result.best_acc == 0.95


class Recording(Batches):
    """Records the epoch index each pass asks the loader for; a fake perf_counter advances 0.25 s per batch."""

    def __init__(self, fake_time=None):
        super().__init__()
        self.asked, self.fake_time = [], fake_time

    def epoch(self, e):
        self.asked.append(e)
        for batch in self.data:
            if self.fake_time is not None:
                self.fake_time[0] += 0.25
            yield batch


def test_the_loader_is_asked_for_epochs_from_0():
    """The loader's epoch index seeds the shuffle and the augmentation plan (alternating flips by its parity)."""
    batches = Recording()
    run_scripted([0.1, 0.2, 0.3], epochs=3, batches=batches)
    assert batches.asked == [0, 1, 2]


def test_data_wait_sums_every_batch_wait(monkeypatch):
    from types import SimpleNamespace

    from bench.train import loop

    now = [0.0]
    monkeypatch.setattr(loop, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    steps = []
    result, _ = run_scripted([0.1, 0.2], epochs=2, batches=Recording(now), on_step=lambda i, n: steps.append((i, n)))
    assert [r.data_wait_s for r in result.records] == [0.75, 0.75]  # 3 batches x 0.25 s, each epoch
    assert steps == [(1, 3), (2, 3), (3, 3)] * 2


def test_data_wait_fraction():
    from types import SimpleNamespace as R

    assert data_wait_fraction([R(epoch_s=2.0, data_wait_s=0.5), R(epoch_s=3.0, data_wait_s=1.0)]) == 0.3
    assert data_wait_fraction([]) is None and data_wait_fraction([R(epoch_s=0.0, data_wait_s=0.0)]) is None


def still_epoch(batches, tick=1.0):
    """One fit epoch of a fresh Linear(8, 2) at a vanishing lr, so its weights stay put; returns the epoch's
    record and the images-weighted mean cross-entropy of the batches at those weights."""
    torch.manual_seed(0)
    model = nn.Linear(8, 2)
    with torch.no_grad():
        want = sum(nn.functional.cross_entropy(model(x), y).item() * len(y) for x, y in batches.data)
    want /= sum(len(y) for _, y in batches.data)
    opt = Scheduled(model, Optim(lr=1e-30, epochs=1, schedule=Schedule(kind="constant")), len(batches))
    clock = Clock(now=FakeTime(tick), since_process_start=0.0)
    clock.ready()
    result = fit(model, opt, batches, lambda: 0.0, epochs=1, eval_every=1, target=0.9, clock=clock,
                 device_type="cpu", precision="fp32")
    return result.records[0], want


def test_train_loss_is_the_plain_cross_entropy_by_default():
    """Each epoch's train_loss is the images-weighted mean cross-entropy (no label smoothing unless the recipe
    asks)."""
    batches = Batches(n_batches=3, bs=4)
    batches.data[-1] = tuple(t[:2] for t in batches.data[-1])  # a short last batch: weights 4, 4, 2
    record, want = still_epoch(batches)
    assert record.train_loss == pytest.approx(want, rel=1e-6)


class Lookup(nn.Module):
    """Logits 3*onehot(x[..., 0]) + 2*onehot(x[..., 1]) over 4 classes, for (B, 1, 1, 3) inputs: it predicts
    the first value, and under flip TTA (views [a, b, c] and [c, b, a]) the middle one."""

    def forward(self, x):
        onehot = nn.functional.one_hot(x[:, 0, 0, :2].long(), 4).float()
        return 3 * onehot[:, 0] + 2 * onehot[:, 1]


def lookup_batches():
    g = torch.Generator().manual_seed(5)
    batches = []
    for size in (5, 3, 4):
        x = torch.randint(0, 4, (size, 1, 1, 3), generator=g).float()
        x[:, 0, 0, 1] = (x[:, 0, 0, 0] + 1) % 4  # first and middle values differ, so the two modes differ
        batches.append((x, torch.randint(0, 4, (size,), generator=g)))
    return batches


def test_evaluate_counts_correct_images_over_every_batch():
    from bench.train.loop import evaluate

    batches = lookup_batches()
    plain = sum(int((x[:, 0, 0, 0].long() == y).sum()) for x, y in batches)
    flipped = sum(int((x[:, 0, 0, 1].long() == y).sum()) for x, y in batches)
    assert plain != flipped and 0 < plain < 12
    model = Lookup().train()
    assert evaluate(model, batches, "cpu", "fp32") == plain / 12
    assert model.training  # put back as it was
    assert evaluate(model.eval(), batches, "cpu", "fp32", tta="flip") == flipped / 12 and not model.training
    # Several processes: the reduction pools (correct, total) over ranks before dividing.
    pooled = evaluate(model, batches, "cpu", "fp32", reduce=lambda v: [v[0] + 3.0, v[1] + 8.0])
    assert pooled == (plain + 3) / 20
    assert evaluate(model, [], "cpu", "fp32") == 0.0


def test_warm_up_puts_back_optimizer_state_that_already_exists():
    from bench.train.loop import warm_up

    torch.manual_seed(0)
    model = nn.Linear(8, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    x, y = torch.randn(16, 8), torch.randint(0, 2, (16,))
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()  # momentum buffers now exist and warm-up's steps would change them in place
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    buffers = [opt.state[p]["momentum_buffer"].clone() for p in model.parameters()]
    warm_up(model, model, opt, steps=2, train_batches=[(x, y)], eval_batches=[x], device_type="cpu",
            precision="fp32")
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(b, opt.state[p]["momentum_buffer"]) for b, p in zip(buffers, model.parameters()))


def test_an_evaluation_can_fail_the_run_and_its_extras_ride_in_the_event():
    """A GAN's evaluate_fn returns (value, extras); extras["failure"] (mode collapse) ends the run as failed."""
    script = iter([(300.0, {"kid_judge": 0.5}), (280.0, {"failure": "mode collapse: 1 of 10 classes"}), (1.0, {})])
    result, events = run_scripted([], epochs=3, target=250.0, mode="min", eval_key="eval_score",
                                  evaluate_fn=lambda: next(script))
    assert result.status == "failed" and result.epochs == 2
    assert result.reason == "epoch 2: mode collapse: 1 of 10 classes"
    assert result.final_acc == 280.0 and result.best_acc == 300.0  # a failed evaluation is no one's best
    scores = [m for k, m in events if k == "eval_score"]
    assert [m["value"] for m in scores] == [300.0, 280.0] and scores[0]["kid_judge"] == 0.5
    # Not an accuracy: the record keeps it as the metric, and test_acc stays empty.
    assert [(r.test_acc, r.metric_value) for r in result.records] == [(None, 300.0), (None, 280.0)]
    classifier, _ = run_scripted([0.5], epochs=1)
    assert (classifier.records[0].test_acc, classifier.records[0].metric_value) == (0.5, 0.5)


def test_synthetic_reason_in_full():
    result, _ = run_scripted([0.99], epochs=1, counts=False)
    assert result.reason == "synthetic data: accuracy never counts towards a target"


def test_images_per_second_is_images_over_epoch_time():
    # one image: the epoch's mean loss is that image's loss
    r, want = still_epoch(Batches(n_batches=1, bs=1), tick=0.25)
    assert r.epoch_s == 0.25 and r.images_per_s == 4.0
    assert r.train_loss == pytest.approx(want, rel=1e-6)


def test_autocast_is_off_for_fp32_and_on_for_bf16():
    from bench.train.loop import autocast

    with autocast("cpu", "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    with autocast("cpu", "bf16"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
