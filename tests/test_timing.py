"""The timing boundaries, pinned to exact numbers with a scripted clock (README, "Timing rules").

Time moves only when a test's fake part says so: drawing a training batch costs DRAW s, a training step
STEP s, an evaluation EVAL s, warm-up WARM s, loading the data LOAD s. Every expected figure below is
therefore a sum written out by hand, never a value read back from the code under test, so moving a
boundary (evaluation outside time-to-target, run_start after the first batch is drawn, init inside it,
epoch time holding the evaluation) changes a number here.
"""
from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from bench.core import mllog
from bench.core.clock import Clock
from bench.recipe import Optim, Schedule
from bench.report.summary import run_facts
from bench.train import loop
from bench.train.loop import fit
from bench.train.optim import Scheduled

DRAW, STEP, EVAL, WARM, LOAD, PROCESS = 2.0, 5.0, 100.0, 1000.0, 50.0, 3.0
IMPORTED = time.monotonic()  # this process is at least this old when a test runs


class ScriptedTime:
    """A time source that stands still until told to move."""

    def __init__(self, start: float = 10_000.0):
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class CostlyBatches:
    """`steps` batches per epoch; drawing each costs DRAW seconds of scripted time."""

    def __init__(self, t: ScriptedTime, steps: int = 3, bs: int = 4):
        self.t = t
        g = torch.Generator().manual_seed(0)
        self.data = [(torch.randn(bs, 8, generator=g), torch.randint(0, 2, (bs,), generator=g))
                     for _ in range(steps)]

    def __len__(self):
        return len(self.data)

    def epoch(self, e):
        for x, y in self.data:
            self.t.advance(DRAW)
            yield x, y


def costly_steps(t: ScriptedTime, monkeypatch) -> None:
    """Every training step (bench.train.loop.train_step, as fit calls it) costs STEP seconds."""
    real = loop.train_step

    def step(*args, **kwargs):
        t.advance(STEP)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", step)


def scripted_fit(tmp_path, monkeypatch, accs, *, epochs=5, eval_every=1, target=0.5):
    t = ScriptedTime()
    costly_steps(t, monkeypatch)
    clock = Clock(now=t, since_process_start=PROCESS)
    t.advance(WARM)  # init: model built, warmed up
    assert clock.ready() == PROCESS + WARM
    model = nn.Linear(8, 2)
    batches = CostlyBatches(t)
    opt = Scheduled(model, Optim(lr=0.1, epochs=epochs, schedule=Schedule(kind="constant")), len(batches) * epochs)
    script = iter(accs)

    def evaluate():
        t.advance(EVAL)
        return next(script)

    log = mllog.MLLogger(tmp_path / "mllog.txt", namespace="t", clock=t)  # time_ms from the same script
    log.start(mllog.RUN_START)
    result = fit(model, opt, batches, evaluate, epochs=epochs, eval_every=eval_every, target=target, clock=clock,
                 device_type="cpu", precision="fp32", on_event=lambda k, m: log.relay(k, m))
    log.close()
    return result, mllog.parse_mllog(tmp_path / "mllog.txt"), t


EPOCH_TRAIN = 3 * (DRAW + STEP)  # one epoch's training: three draws and three steps


def test_time_to_target_counts_training_loading_and_every_evaluation(tmp_path, monkeypatch):
    result, events, _ = scripted_fit(tmp_path, monkeypatch, [0.2, 0.4, 0.6, 0.9])
    assert result.status == "reached" and result.epochs == 3
    # three epochs of drawing + stepping, and all three evaluations (the two that missed included)
    assert result.time_to_target_s == 3 * (EPOCH_TRAIN + EVAL) == 363.0
    assert [r.elapsed_s for r in result.records] == [121.0, 242.0, 363.0]
    # epoch time is training alone; evaluation is timed on its own
    assert [(r.epoch_s, r.eval_s) for r in result.records] == [(EPOCH_TRAIN, EVAL)] * 3
    assert result.records[0].images_per_s == 12 / EPOCH_TRAIN


def test_evaluations_skipped_by_the_interval_cost_nothing_and_the_target_is_timed_at_its_evaluation(
        tmp_path, monkeypatch):
    result, _, _ = scripted_fit(tmp_path, monkeypatch, [0.1, 0.9], epochs=4, eval_every=2)
    assert result.status == "reached" and result.epochs == 4
    assert result.time_to_target_s == 4 * EPOCH_TRAIN + 2 * EVAL == 284.0
    assert [r.eval_s for r in result.records] == [0.0, EVAL, 0.0, EVAL]


def test_event_log_brackets_each_phase_at_the_scripted_times(tmp_path, monkeypatch):
    """run_start is logged before the first batch is drawn; each eval_accuracy's elapsed_s and time_ms
    include its evaluation; the summary read back from the log gives the same time-to-target."""
    result, events, _ = scripted_fit(tmp_path, monkeypatch, [0.2, 0.9])
    t0 = next(e["time_ms"] for e in events if e["key"] == mllog.RUN_START)
    at = [(e["key"], e["metadata"].get("epoch_num"), (e["time_ms"] - t0) / 1000) for e in events]
    assert at == [
        ("run_start", None, 0.0),
        ("epoch_start", 1, 0.0), ("epoch_stop", 1, 21.0), ("eval_start", 1, 21.0), ("eval_stop", 1, 121.0),
        ("eval_accuracy", 1, 121.0),
        ("epoch_start", 2, 121.0), ("epoch_stop", 2, 142.0), ("eval_start", 2, 142.0), ("eval_stop", 2, 242.0),
        ("eval_accuracy", 2, 242.0),
    ]
    assert [e["metadata"]["elapsed_s"] for e in events if e["key"] == mllog.EVAL_ACCURACY] == [121.0, 242.0]
    facts = run_facts("r", events, target=0.5, target_counts=True, mode="max")
    assert facts["evals"][-1]["elapsed_s"] == result.time_to_target_s == 242.0


def test_clock_anchors_init_at_process_start_and_wall_covers_everything():
    t = ScriptedTime()
    clock = Clock(now=t, since_process_start=PROCESS)
    t.advance(WARM)
    assert clock.init_s is None and clock.ready() == PROCESS + WARM and clock.init_s == PROCESS + WARM
    t.advance(7.0)  # between ready and run_start (e.g. printing the run line): neither init nor the run
    clock.start_run()
    t.advance(30.0)
    assert clock.since_run_start() == 30.0
    assert clock.wall() == PROCESS + WARM + 7.0 + 30.0
    assert clock.init_s == PROCESS + WARM  # reading later does not move init


def test_run_time_before_start_run_is_an_error():
    with pytest.raises(AssertionError, match="start_run"):
        Clock(now=ScriptedTime(), since_process_start=0.0).since_run_start()


def test_process_start_offset_is_this_process_age():
    """A fresh interpreter that sleeps 0.5 s before asking must be at least that old, and no older than
    the time its parent saw it run (plus the OS's 10 ms tick in the start time). This process's own age
    lies between the time since the test module was imported and psutil's figure, which can only be too
    high (it rounds the boot time down to a whole second)."""
    import os
    import subprocess
    import sys
    import time

    import psutil

    from bench.core.clock import process_start_offset

    code = "import time; time.sleep(0.5); from bench.core.clock import process_start_offset as o; print(o())"
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    lived = time.time() - t0
    assert 0.5 <= float(out.stdout) <= lived + 0.02
    here = process_start_offset()
    assert time.monotonic() - IMPORTED <= here <= time.time() - psutil.Process().create_time() + 0.02


def test_process_start_offset_falls_back_to_psutil_without_proc(monkeypatch):
    import builtins
    import time

    import psutil

    from bench.core import clock as clock_module

    real_open = builtins.open

    def no_proc(path, *a, **k):  # as on a system without Linux's /proc (psutil has its own ways)
        if str(path) == "/proc/self/stat":
            raise FileNotFoundError(path)
        return real_open(path, *a, **k)

    monkeypatch.setattr(builtins, "open", no_proc)
    want = time.time() - psutil.Process().create_time()
    assert want - 0.01 <= clock_module.process_start_offset() <= want + 1.0


def test_device_sync_waits_for_cuda_only_on_a_cuda_device(monkeypatch):
    """Every clock read waits for queued GPU work (README, timing rules); the check runs without a GPU."""
    from bench.core.clock import device_sync

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device_sync(torch.device("cuda", 0)) is torch.cuda.synchronize
    assert device_sync("cuda") is torch.cuda.synchronize
    assert device_sync(torch.device("cpu")) is not torch.cuda.synchronize
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_sync(torch.device("cuda", 0)) is not torch.cuda.synchronize


def test_default_clock_counts_init_from_process_start(monkeypatch):
    from bench.core import clock as clock_module

    monkeypatch.setattr(clock_module, "process_start_offset", lambda: 42.0)
    t = ScriptedTime()
    c = Clock(now=t)
    t.advance(WARM)
    assert c.ready() == 42.0 + WARM and c.wall() == 42.0 + WARM


# ------------------------------------------------------------------ the same boundaries through bench run

class CostlyLoader:
    """Wraps the run's real training loader: each batch drawn costs DRAW seconds."""

    def __init__(self, inner, t: ScriptedTime):
        self.inner, self.t = inner, t

    def __len__(self):
        return len(self.inner)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def epoch(self, e):
        for batch in self.inner.epoch(e):
            self.t.advance(DRAW)
            yield batch


@pytest.fixture
def scripted_run(tmp_path, monkeypatch, tiny_images):
    """bench.run.runner.run_recipe on real (tiny) data with every clock, the event log's included, on one
    scripted time source; returns the row, the bundle and the time source."""
    from bench import recipe
    from bench.run import parts, runner

    t = ScriptedTime()
    real_clock, real_logger = Clock, mllog.MLLogger
    monkeypatch.setattr(runner, "Clock", lambda since_process_start=None: real_clock(
        now=t, since_process_start=PROCESS if since_process_start is None else since_process_start))
    monkeypatch.setattr(mllog, "MLLogger", functools.partial(real_logger, clock=t))
    costly_steps(t, monkeypatch)

    def advancing(seconds, fn):
        def wrapped(*args, **kwargs):
            t.advance(seconds)
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(parts, "load_data", advancing(LOAD, parts.load_data))
    monkeypatch.setattr(runner, "warm_up", advancing(WARM, runner.warm_up))
    accs, real_evaluate = iter([0.1, 0.7, 0.8]), runner.evaluate

    def evaluate(*args, **kwargs):  # the real evaluation runs; its accuracy is scripted
        real_evaluate(*args, **kwargs)
        t.advance(EVAL)
        return next(accs)

    monkeypatch.setattr(runner, "evaluate", evaluate)
    real_loaders = parts.loaders

    def loaders(*args, **kwargs):
        train, test = real_loaders(*args, **kwargs)
        return CostlyLoader(train, t), test

    monkeypatch.setattr(parts, "loaders", loaders)
    r = recipe.load("cpu_quick", ["precision=fp32", "model.params.widths=[4,4,8,8]", "data.batch_size=16",
                                  "data.eval_batch_size=16", "optim.epochs=3", "target.value=0.5",
                                  "hardware.threads=1", "warmup_steps=1"])
    rows, bundle = runner.run_recipe(r, data=str(tiny_images), data_dir=tmp_path / "cache",
                                     results_path=tmp_path / "results.csv", reports_dir=tmp_path / "reports",
                                     say=lambda s: None)
    return rows[0], bundle, t


def test_bench_run_times_exactly_the_rules(scripted_run):
    row, bundle, _ = scripted_run
    steps = 32 // 16
    # reached at the second evaluation: two epochs of drawing + stepping and both evaluations
    ttt = 2 * (steps * (DRAW + STEP) + EVAL)
    assert row["status"] == "reached" and row["epochs"] == 2
    assert row["time_to_target_s"] == ttt == 228.0
    # init runs from process start through data loading and warm-up (whose one training step costs STEP
    # like any other), and is not part of time-to-target
    assert row["init_s"] == PROCESS + LOAD + WARM + STEP == 1058.0
    assert row["wall_s"] == row["init_s"] + ttt
    assert row["gpu_hours"] == row["wall_s"] / 3600
    summary = json.loads((bundle / "summary.json").read_text())["runs"][0]
    assert (summary["time_to_target_s"], summary["init_s"], summary["wall_s"]) == (ttt, 1058.0, 1286.0)


def test_bench_run_event_log_times(scripted_run):
    """The event log's clock is the run's: run_start at the end of init, before the first batch is drawn;
    init_stop carries init_s; eval_accuracy time_ms and elapsed_s include the evaluation."""
    row, bundle, _ = scripted_run
    events = mllog.parse_mllog(next((bundle / "runs").glob("*/mllog.txt")))
    ms = {}
    for e in events:
        ms.setdefault((e["key"], e["metadata"].get("epoch_num")), e["time_ms"])
    t0 = ms[("run_start", None)]
    assert ms[("init_stop", None)] == t0  # nothing happens between ready and run_start
    # data was loaded before init_start; warm-up and its step lie inside the init interval
    assert ms[("init_stop", None)] - ms[("init_start", None)] == (WARM + STEP) * 1000
    assert ms[("epoch_start", 1)] == t0
    assert ms[("eval_accuracy", 2)] - t0 == 228_000 == ms[("run_stop", None)] - t0
    assert ms[("eval_stop", 1)] - ms[("eval_start", 1)] == EVAL * 1000
    init_stop = next(e for e in events if e["key"] == mllog.INIT_STOP)
    assert init_stop["metadata"]["init_s"] == 1058.0
    stop = next(e for e in events if e["key"] == mllog.RUN_STOP)
    assert (stop["metadata"]["time_to_target_s"], stop["metadata"]["wall_s"]) == (228.0, 1286.0)
