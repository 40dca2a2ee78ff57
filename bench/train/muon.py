"""Muon for the conv filters: momentum, then the update replaced by the nearest (semi-)orthogonal matrix.

torch.optim.Muon (torch >= 2.9) is used where the device computes bf16 natively: it always orthogonalises in
bf16, which is what the records do on GPUs. On a CPU without native bf16 that iteration is emulated and slow
(torch.optim.Muon's step over airnet's filters took 7.3 s there, the same iteration in fp32 0.5 s, on a
2-core AMD EPYC VM), so `Muon` below computes torch.optim.Muon's update in fp32, step for step:

    buf  = lerp(buf, g, 1 - momentum)                     momentum as an average of gradients
    u    = lerp(g, buf, momentum) if nesterov else buf
    o    = NewtonSchulz(u)                                ~ U V^T of u = U S V^T, singular values near 1
    p   *= 1 - lr * weight_decay                          decoupled decay
    p   -= lr * sqrt(max(1, rows / cols)) * o

airbench94_muon accumulates buf = momentum * buf + g instead; that is (1 - momentum) times larger than the
average above at every step, and Newton-Schulz divides by the norm first, so the update is the same.
"""
from __future__ import annotations

import math

import torch

# The quintic Newton-Schulz coefficients of Keller Jordan's Muon (also torch.optim.Muon's defaults): they
# maximise the slope at zero, so a few steps push every singular value into roughly [0.7, 1.2].
COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(g: torch.Tensor, steps: int, dtype: torch.dtype = torch.float32, eps: float = 1e-7) -> torch.Tensor:
    """Newton-Schulz iteration on a 2-D matrix, in `dtype`; returns it in `dtype`."""
    a, b, c = COEFFICIENTS
    x = g.to(dtype)
    tall = x.size(0) > x.size(1)
    if tall:  # iterate on the wide side: the Gram matrix is then the small one
        x = x.T
    x = x / x.norm().clamp(min=eps)  # Frobenius norm >= spectral norm: every singular value <= 1
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


class Muon(torch.optim.Optimizer):
    """torch.optim.Muon's update computed in fp32, for parameters of two or more dimensions (viewed as
    (rows, rest)). Group keys: lr, momentum, nesterov, weight_decay, ns_steps."""

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, nesterov: bool = True,
                 weight_decay: float = 0.0, ns_steps: int = 5):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                                      ns_steps=ns_steps))
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim < 2:
                    raise ValueError(f"Muon updates matrices; got a parameter of shape {tuple(p.shape)}")

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, m = group["lr"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.reshape(p.shape[0], -1)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(g)
                buf = state["momentum_buffer"]
                buf.lerp_(g, 1 - m)
                u = g.lerp(buf, m) if group["nesterov"] else buf
                o = orthogonalize(u, group["ns_steps"]).to(p.dtype)
                p.mul_(1 - lr * group["weight_decay"])
                p.add_(o.view_as(p), alpha=-lr * math.sqrt(max(1.0, g.shape[0] / g.shape[1])))
        return None


def make_muon(groups: list[dict], bf16: bool) -> tuple[torch.optim.Optimizer, str]:
    """(optimiser, which implementation) for these param groups: torch.optim.Muon when `bf16` (the device
    computes it natively) and every parameter is 2-D, as it requires; this module's fp32 Muon otherwise."""
    native = getattr(torch.optim, "Muon", None)
    if bf16 and native is not None and all(p.ndim == 2 for g in groups for p in g["params"]):
        return native(groups), "torch.optim.Muon (bf16 Newton-Schulz)"
    return Muon(groups), "bench Muon (fp32 Newton-Schulz)"
