"""The training loop: mixed precision, evaluation at the recipe's interval, stop at the first evaluation
that reaches the target. It takes built parts (model, optimiser, loaders, clock) and returns plain
records; it writes no files, so the same loop serves runs, tests and the speed profiler."""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import torch
from torch import nn

from bench.core.clock import Clock
from bench.core.targets import best, reaches
from bench.train.optim import Scheduled
from bench.train.tta import predict

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


@dataclass
class EpochRecord:
    epoch: int  # 1-based: epoch 1 is the first pass over the data
    elapsed_s: float  # since run_start, device synchronised
    train_loss: float
    test_acc: Optional[float]  # None on epochs without evaluation
    lr: float
    images_per_s: float
    data_wait_s: float
    epoch_s: float
    eval_s: float = 0.0
    metric_value: Optional[float] = None  # the target metric at this evaluation (test_acc, fd_judge, ...)


@dataclass
class FitResult:
    status: str  # reached | missed | failed
    time_to_target_s: Optional[float]
    best_acc: Optional[float]
    final_acc: Optional[float]
    epochs: int
    records: list[EpochRecord] = field(default_factory=list)
    reason: str = ""


def data_wait_fraction(records: list[EpochRecord]) -> Optional[float]:
    """Share of training time spent waiting for the next batch: a slow loader shows up here."""
    total = sum(r.epoch_s for r in records)
    return sum(r.data_wait_s for r in records) / total if total else None


class TargetTracker:
    """Decides when a run has reached its target; only evaluations count, never training accuracy.
    `mode` says which way is better (max: accuracy, is_judge; min: fd_judge)."""

    def __init__(self, target: float, counts: bool = True, mode: str = "max"):
        self.target, self.counts, self.mode = target, counts, mode
        self.best: Optional[float] = None
        self.reached_at: Optional[float] = None

    def observe(self, acc: float, elapsed: float) -> bool:
        self.best = best([self.best, acc], self.mode)
        if self.counts and self.reached_at is None and reaches(acc, self.target, self.mode):
            self.reached_at = elapsed
            return True
        return False


def autocast(device_type: str, precision: str):
    dtype = AMP_DTYPES[precision]
    return torch.autocast(device_type, dtype=dtype or torch.float32, enabled=dtype is not None)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, criterion, scaler, x, y,
               device_type: str, precision: str) -> torch.Tensor:
    with autocast(device_type, precision):
        loss = criterion(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:  # fp16: scale the loss so small gradients do not underflow
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss


def warm_up(model: nn.Module, bare: nn.Module, optimizer: torch.optim.Optimizer, *, steps: int,
            train_batches: list[tuple[torch.Tensor, torch.Tensor]], eval_batches: list[torch.Tensor],
            device_type: str, precision: str, tta: str = "none") -> None:
    """Training steps and evaluation forwards on random data, then every weight, buffer and optimizer
    state is put back. cuDNN autotuning, compilation and allocator growth happen here, in init where the
    timing rules put them, instead of in the first timed epoch; nothing is learned. cuDNN tunes per input
    shape, so the caller passes every batch shape an epoch will see (full and last partial batch)."""
    if steps <= 0:
        return
    saved_model = copy.deepcopy(bare.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    criterion = nn.CrossEntropyLoss()
    scaler = torch.amp.GradScaler(device_type) if precision == "fp16" else None
    for x, y in train_batches:
        for _ in range(steps):
            train_step(model, optimizer, criterion, scaler, x, y, device_type, precision)
    was_training = bare.training
    bare.eval()
    with torch.no_grad(), autocast(device_type, precision):
        for x in eval_batches:
            predict(bare, x, tta)
    bare.train(was_training)
    bare.load_state_dict(saved_model)
    optimizer.load_state_dict(saved_optimizer)
    optimizer.zero_grad(set_to_none=True)


def evaluate(model: nn.Module, batches: Iterable, device_type: str, precision: str,
             reduce: Callable[[list[float]], list[float]] = lambda v: v, tta: str = "none") -> float:
    """Top-1 accuracy over the whole test set; with several processes each evaluates its shard and
    the correct/total counts are summed, so every rank sees the same number."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64)
    total = 0
    with torch.no_grad(), autocast(device_type, precision):
        for x, y in batches:
            correct = correct.to(y.device) + (predict(model, x, tta).argmax(dim=1) == y).sum()
            total += int(y.shape[0])
    model.train(was_training)
    c, t = reduce([float(correct.item()), float(total)])
    return c / t if t else 0.0


def fit(model: nn.Module, opt: Scheduled, train_batches, evaluate_fn: Callable[[], float], *,
        epochs: int, eval_every: int, target: float, clock: Clock, device_type: str, precision: str,
        label_smoothing: float = 0.0, target_counts: bool = True,
        on_epoch: Callable[[EpochRecord], None] = lambda r: None,
        on_event: Callable[[str, dict], None] = lambda key, meta: None,
        on_step: Callable[[int, int], None] = lambda step, steps: None,
        step: Optional[Callable] = None, target_mode: str = "max", eval_key: str = "eval_accuracy") -> FitResult:
    """`train_batches` has `epoch(e)` yielding batches and `len()` batches per epoch.
    on_event gets MLPerf-style keys (epoch_start, eval_start, eval_accuracy, ...) for the event log.

    The classifier's step (train_step on (images, labels)) is the default per-batch work; `step(batch)` can
    replace it and returns (loss tensor, images used) - a GAN's generator iteration (bench.train.gan). Then
    `evaluate_fn` may return (value, extras): extras ride in the evaluation's event, and an extras["failure"]
    (e.g. mode collapse) ends the run as failed, as a diverged loss does. `eval_key` names the event
    (eval_accuracy for classifiers; bench.core.mllog.EVAL_SCORE for other metrics), `target_mode` the
    direction that is better."""
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    scaler = torch.amp.GradScaler(device_type) if precision == "fp16" else None
    if step is None:
        def step(batch):
            x, y = batch
            return train_step(model, opt.optimizer, criterion, scaler, x, y, device_type, precision), int(y.shape[0])
    tracker = TargetTracker(target, counts=target_counts, mode=target_mode)
    records: list[EpochRecord] = []
    status, reason, final_acc = "missed", "", None
    steps = len(train_batches)
    clock.start_run()
    for epoch in range(1, epochs + 1):
        on_event("epoch_start", {"epoch_num": epoch})
        t_epoch = clock.read()
        loss_sum = torch.zeros((), dtype=torch.float32)
        seen, wait, point = 0, 0.0, opt.current()
        batches = iter(train_batches.epoch(epoch - 1))
        for i in range(steps + 1):
            t0 = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                break
            wait += time.perf_counter() - t0
            point = opt.apply()
            loss, n = step(batch)
            opt.advance()
            # Accumulate on the device: a .item() per step would synchronise and slow the GPU down.
            loss_sum = loss_sum.to(loss.device) + loss.detach().float() * n
            seen += n
            on_step(i + 1, steps)
        train_loss = float(loss_sum.item()) / max(seen, 1)
        epoch_s = clock.read() - t_epoch
        on_event("epoch_stop", {"epoch_num": epoch})
        acc, eval_s, extras = None, 0.0, {}
        if epoch % eval_every == 0 or epoch == epochs:
            on_event("eval_start", {"epoch_num": epoch})
            t_eval = clock.read()
            acc = evaluate_fn()
            if isinstance(acc, tuple):
                acc, extras = acc
            eval_s = clock.read() - t_eval
            on_event("eval_stop", {"epoch_num": epoch})
            final_acc = acc
        elapsed = clock.since_run_start()
        if acc is not None:
            # elapsed_s is the exact clock reading the target decision uses; time_ms alone is too coarse.
            on_event(eval_key, {"epoch_num": epoch, "value": acc, "elapsed_s": elapsed, **extras})
        record = EpochRecord(epoch, elapsed, train_loss, acc if eval_key == "eval_accuracy" else None, point.lr,
                             seen / max(epoch_s, 1e-9), wait, epoch_s, eval_s, acc)
        records.append(record)
        on_epoch(record)
        if not math.isfinite(train_loss):
            status, reason = "failed", f"training loss became {train_loss} in epoch {epoch} (diverged)"
            break
        if extras.get("failure"):
            status, reason = "failed", f"epoch {epoch}: {extras['failure']}"
            break
        if acc is not None and tracker.observe(acc, elapsed):
            status = "reached"
            break
    if status == "missed" and not target_counts:
        reason = "synthetic data: accuracy never counts towards a target"
    return FitResult(status, tracker.reached_at, tracker.best, final_acc, len(records), records, reason)
