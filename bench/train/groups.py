"""The records' optimiser (`optim.optimizer: muon_sgd`): parameter groups, each Muon or Nesterov SGD with its
own lr, momentum and weight decay, stepped as one optimiser; and `build_optimizer`, which the run and the
studies call for any recipe.

Every trainable parameter falls in one category (in this order: the whitening layer's, BatchNorm's, the
last linear layer's, convolution filters, the rest); the recipe's group of that name takes it, or `rest`
when that group is not set. Each group's lr follows the shape of optim.schedule: lr x schedule lr / optim.lr
(record recipes set optim.lr: 1.0, so the epoch lines show the schedule's factor), or falls linearly to 0
over its own `stop_epochs` and stays there. Weight decay is the records' scaling: torch is given
weight_decay / lr, so a step decays weights by weight_decay x the schedule's factor whatever the lr.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from bench.core.errors import BenchError
from bench.models.airnet import FilterConv, Whitening
from bench.recipe import Optim
from bench.recipe.schema import Group
from bench.train.lookahead import Lookahead
from bench.train.muon import make_muon
from bench.train.optim import Point, Scheduled, schedule_point

CATEGORIES = ("whiten", "norm", "head", "filters", "rest")


def category(module: nn.Module, name: str, head: Optional[nn.Module]) -> str:
    """The category of parameter `name` (its name within `module`, e.g. 'weight')."""
    if isinstance(module, Whitening):
        return "whiten"
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return "norm"
    if module is head:
        return "head"
    if isinstance(module, (nn.Conv2d, FilterConv)) and name == "weight":
        return "filters"
    return "rest"


def split_parameters(model: nn.Module, groups) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Trainable parameters by the recipe group that takes them (only groups that take something)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    head = linears[-1] if linears else None
    out: dict[str, list] = {}
    homeless = []
    for module_name, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            cat = category(module, name, head)
            taker = cat if getattr(groups, cat) is not None else "rest" if groups.rest is not None else None
            full = f"{module_name}.{name}" if module_name else name
            if taker is None:
                homeless.append(f"{full} ({cat})")
            else:
                out.setdefault(taker, []).append((full, p))
    if homeless:
        raise BenchError(f"optim.groups: no group takes {', '.join(homeless[:6])}"
                         f"{' ...' if len(homeless) > 6 else ''}; add the group named in brackets, or optim.groups.rest")
    return out


class Chain:
    """Several torch optimisers stepped as one: what the loop, GradScaler and warm-up see. Muon groups marked
    `renormalize` have each weight matrix rescaled to Frobenius norm sqrt(rows) before the step."""

    def __init__(self, optimizers: list):
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict]:
        return [g for o in self.optimizers for g in o.param_groups]

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            if group.get("renormalize"):
                for p in group["params"]:
                    p.mul_(math.sqrt(p.shape[0]) / p.norm())
        for o in self.optimizers:
            o.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> list[dict]:
        return [o.state_dict() for o in self.optimizers]

    def load_state_dict(self, states: list[dict]) -> None:
        for o, s in zip(self.optimizers, states):
            o.load_state_dict(s)


@dataclass(frozen=True)
class _Setting:
    cfg: Group
    stop_steps: Optional[float]  # None: the schedule's shape


class GroupScheduled:
    """Scheduled's interface (optimizer, current, apply, advance) for the grouped optimiser."""

    def __init__(self, model: nn.Module, opt: Optim, total_steps: int, steps_per_epoch: int, bf16: bool):
        self.cfg, self.total, self.step_count = opt, total_steps, 0
        sgd, muon = [], []
        self.settings: dict[str, _Setting] = {}
        for name, named in split_parameters(model, opt.groups).items():
            g: Group = getattr(opt.groups, name)
            group = {"params": [p for _, p in named], "lr": g.lr, "weight_decay": g.weight_decay / g.lr,
                     "momentum": opt.momentum if g.momentum is None else g.momentum, "nesterov": g.nesterov,
                     "name": name}
            if g.optimizer == "muon":
                group.update(ns_steps=g.ns_steps, renormalize=g.renormalize)
            (muon if g.optimizer == "muon" else sgd).append(group)
            stop = None if g.stop_epochs is None else g.stop_epochs * steps_per_epoch
            self.settings[name] = _Setting(g, stop)
        optimizers, self.muon_impl = [], None
        if sgd:
            optimizers.append(torch.optim.SGD(sgd, lr=sgd[0]["lr"], fused=opt.fused or None))
        if muon:
            muon_opt, self.muon_impl = make_muon(muon, bf16)
            optimizers.append(muon_opt)
        self.optimizer = Chain(optimizers)

    def current(self) -> Point:
        return schedule_point(self.step_count, self.total, self.cfg)

    def apply(self) -> Point:
        point = self.current()
        factor = point.lr / self.cfg.lr
        # Groups are looked up by name every time: load_state_dict (warm-up's restore) replaces the dicts.
        for group in self.optimizer.param_groups:
            s = self.settings[group["name"]]
            if s.stop_steps is None:
                group["lr"] = s.cfg.lr * factor
            else:
                group["lr"] = s.cfg.lr * max(0.0, 1 - self.step_count / s.stop_steps)
            group["momentum"] = point.momentum if s.cfg.momentum is None else s.cfg.momentum
        return point

    def advance(self) -> None:
        self.step_count += 1


def build_optimizer(model: nn.Module, opt: Optim, *, total_steps: int, steps_per_epoch: int, bf16: bool = False):
    """The recipe's optimiser with its schedule: Scheduled (plain SGD) or GroupScheduled (muon_sgd), wrapped
    in Lookahead when optim.lookahead.every > 0. `model` is the bare module (not DDP, not compiled): groups
    are found by module type. `bf16`: the device computes bf16 natively (Muon's implementation follows)."""
    if opt.optimizer == "muon_sgd":
        sched = GroupScheduled(model, opt, total_steps, steps_per_epoch, bf16)
    else:
        sched = Scheduled(model, opt, total_steps)
    la = opt.lookahead
    if la.every > 0:
        sched.optimizer = Lookahead(sched.optimizer, model, every=la.every, decay=la.decay, power=la.power,
                                    total_steps=total_steps)
    return sched
