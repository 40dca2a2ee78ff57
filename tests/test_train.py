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
    """Every clock read advances 1 s, so elapsed times are exact and test-controlled."""

    def __init__(self):
        self.t = 100.0

    def __call__(self):
        self.t += 1.0
        return self.t


class Batches:
    def __init__(self, n_batches=3, bs=4):
        g = torch.Generator().manual_seed(0)
        self.data = [(torch.randn(bs, 8, generator=g), torch.randint(0, 2, (bs,), generator=g)) for _ in range(n_batches)]

    def __len__(self):
        return len(self.data)

    def epoch(self, e):
        return iter(self.data)


def run_scripted(accs, *, epochs=10, eval_every=1, target=0.9, counts=True, lr=0.1):
    model = nn.Linear(8, 2)
    batches = Batches()
    opt = Scheduled(model, Optim(lr=lr, epochs=epochs, schedule=Schedule(kind="constant")), len(batches) * epochs)
    script = iter(accs)
    events = []
    clock = Clock(now=FakeTime(), since_process_start=0.0)
    clock.ready()
    result = fit(model, opt, batches, lambda: next(script), epochs=epochs, eval_every=eval_every, target=target,
                 clock=clock, device_type="cpu", precision="fp32", target_counts=counts,
                 on_event=lambda k, m: events.append((k, m)))
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
