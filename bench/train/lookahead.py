"""Lookahead as airbench94 uses it: every `every` steps the slow weights move towards the model's
(slow = lerp(slow, fast, 1 - d)) and the model takes them (fast = slow), with d = decay**every x
(step/total)**power: early updates keep almost nothing of the past, late ones average over many steps. At the
last step of training the model takes the slow weights. Floating-point buffers (BatchNorm statistics) are
averaged with the weights, as in airbench94.

It wraps the optimiser, so the loop, GradScaler and warm-up see one optimiser whose state includes the slow
weights: warm-up's restore puts them back too.
"""
from __future__ import annotations

import torch


class Lookahead:
    def __init__(self, optimizer, module: torch.nn.Module, *, every: int, decay: float, power: float,
                 total_steps: int):
        self.optimizer, self.every, self.decay, self.power = optimizer, every, decay, power
        self.total = max(total_steps, 1)
        self.fast = [t for t in module.state_dict().values() if t.is_floating_point()]
        self.slow: list[torch.Tensor] | None = None  # taken at the first step: init (whitening) is done by then
        self.count = 0

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    @torch.no_grad()
    def step(self, closure=None):
        if self.slow is None:
            self.slow = [t.detach().clone() for t in self.fast]
        self.optimizer.step()
        self.count += 1
        if self.count % self.every == 0:
            d = self.decay ** self.every * (self.count / self.total) ** self.power
            torch._foreach_lerp_(self.slow, self.fast, 1 - d)
            torch._foreach_copy_(self.fast, self.slow)
        elif self.count >= self.total:
            torch._foreach_copy_(self.fast, self.slow)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "count": self.count,
                "slow": None if self.slow is None else [t.clone() for t in self.slow]}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.count = state["count"]
        self.slow = None if state["slow"] is None else [t.clone() for t in state["slow"]]
