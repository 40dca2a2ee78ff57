"""SGD with per-step learning-rate and momentum schedules.

one_cycle follows fast.ai's `use_clr_beta=(div, pct, max_mom, min_mom)`, the schedule behind the seed's
DAWNBench run: over the first (100 - pct)% of steps the lr climbs linearly from lr/div to lr and falls
back to lr/div (a symmetric triangle); the last pct% anneal linearly from lr/div to lr/(100*div).
Momentum mirrors the triangle (max_mom -> min_mom -> max_mom) and stays at max_mom while annealing:
a high lr wants little momentum, a low lr can afford a lot.

The edges are the limits of that shape: pct 0 is the triangle alone (it ends at lr/div); pct 100 has no
triangle, so the whole run anneals from lr/div, starting there like every other pct does.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.recipe import Optim, Schedule


@dataclass(frozen=True)
class Point:
    lr: float
    momentum: float


def one_cycle(step: int, total: int, lr: float, s: Schedule) -> Point:
    half = total * (1 - s.pct / 100) / 2  # steps up, and again steps down
    low = lr / s.div
    if step <= half:
        # half == 0 (pct 100) leaves only step 0 here: the start of the anneal, lr/div, never the peak
        frac = step / half if half else 0.0
        return Point(low + frac * (lr - low), s.max_mom - frac * (s.max_mom - s.min_mom))
    if step <= 2 * half:
        frac = (step - half) / half
        return Point(lr - frac * (lr - low), s.min_mom + frac * (s.max_mom - s.min_mom))
    tail = total - 2 * half
    # min() and the tail == 0 case only guard steps past `total`, which fit never takes
    frac = min(1.0, (step - 2 * half) / tail) if tail else 1.0
    return Point(low * (1 - frac * 0.99), s.max_mom)


def linear(step: int, total: int, lr: float, s: Schedule, momentum: float) -> Point:
    up = s.warmup * total
    if step < up:  # at step == up both lines give lr
        return Point(lr * step / up, momentum)
    frac = (step - up) / max(total - up, 1)
    return Point(lr * (1 - frac * (1 - s.final_lr)), momentum)


def schedule_point(step: int, total: int, opt: Optim) -> Point:
    s = opt.schedule
    if s.kind == "one_cycle":
        return one_cycle(step, total, opt.lr, s)
    if s.kind == "linear":
        return linear(step, total, opt.lr, s, opt.momentum)
    return Point(opt.lr, opt.momentum)


def param_groups(model: nn.Module, weight_decay: float, no_decay_bn_bias: bool) -> list[dict]:
    """BatchNorm weights and biases are 1-D; decaying them only fights the normalisation."""
    if not no_decay_bn_bias:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": weight_decay}]
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class Scheduled:
    """SGD whose lr and momentum are set from the schedule before every step."""

    def __init__(self, model: nn.Module, opt: Optim, total_steps: int):
        self.cfg, self.total = opt, total_steps
        # only a starting value: apply() sets every group's lr and momentum before each step
        start = schedule_point(0, total_steps, opt)
        self.optimizer = torch.optim.SGD(
            param_groups(model, opt.weight_decay, opt.no_decay_bn_bias),
            lr=start.lr, momentum=start.momentum, nesterov=opt.nesterov, fused=opt.fused or None,
        )
        self.step_count = 0

    def current(self) -> Point:
        return schedule_point(self.step_count, self.total, self.cfg)

    def apply(self) -> Point:
        point = self.current()
        for group in self.optimizer.param_groups:
            group["lr"] = point.lr
            group["momentum"] = point.momentum
        return point

    def advance(self) -> None:
        self.step_count += 1
