"""The WGAN step, as both reference loops do it (the lesson's train() and the WGAN paper's main.py), for
bench.train.loop.fit to drive.

One *step* of fit is one generator iteration: `critic_iters` critic updates, each on a fresh real batch
and as many fresh fakes, then one generator update on `gen_batch` noise samples (a full batch even when
the last real batch was a pass's short tail). With weight clipping (the WGAN paper, the seed) the critic's
weights are clamped to [-clip, clip] before each critic update and both networks use RMSprop; with the
gradient penalty (Gulrajani et al. 2017) the critic loss gains lambda * (|grad D(x_hat)| - 1)^2 on random
interpolates and Adam is the usual choice. Signs are both references': the critic minimises
D(real) - D(fake), the generator minimises D(G(z)), so the critic's Wasserstein estimate is D(fake) - D(real).
An optional second phase (the lesson's second train(1, False) at lr 1e-5) rebuilds both optimisers at
`phase2_lr` from generator iteration `phase2_at`, and the critic schedule counts from 0 again there.

`GanBatches` is the `train_batches` fit iterates: each item is the list of real batches one generator
iteration consumes, so fit's data-wait clock covers the critic's reads. An epoch is a fixed number of
generator iterations (gan.gen_iters_per_epoch); the real data cycles through shuffled passes.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from bench.train.loop import autocast


def critic_iters(gen_iterations: int, *, n_critic: int = 5, warm_critic: int = 100, warm_gen_iters: int = 25,
                 every: int = 500) -> int:
    """The paper's `Diters = 100 if gen_iterations < 25 or gen_iterations % 500 == 0 else 5`; the lesson's
    train(1, False) is warm_gen_iters=0: 100 only where gen_iterations % 500 == 0 (its first round included)."""
    if gen_iterations < warm_gen_iters or (every and gen_iterations % every == 0):
        return warm_critic
    return n_critic


def clip_(module: nn.Module, bound: float) -> None:
    """The WGAN's Lipschitz constraint: every critic weight into [-bound, bound]."""
    with torch.no_grad():
        for p in module.parameters():
            p.clamp_(-bound, bound)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     eps: torch.Tensor | None = None) -> torch.Tensor:
    """mean over images of (|d critic(x_hat) / d x_hat|_2 - 1)^2, x_hat = eps real + (1 - eps) fake, eps ~ U[0,1]
    per image. create_graph: the penalty is itself differentiated in the critic's update."""
    if eps is None:
        eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    score = critic(x_hat)
    grad, = torch.autograd.grad(score.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


@dataclass(frozen=True)
class GanSettings:
    """The plain values of a recipe's `gan:` section that the step needs."""
    loss: str = "clip"
    clip: float = 0.01
    gp_lambda: float = 10.0
    n_critic: int = 5
    warm_critic: int = 100
    warm_gen_iters: int = 25
    every: int = 500
    optimizer: str = "rmsprop"
    lr: float = 1e-4
    betas: tuple = (0.0, 0.9)
    gen_batch: int = 64  # noise samples per generator update (a recipe's null means its data.batch_size)
    phase2_lr: float | None = None
    phase2_at: int = 0  # generator iteration where phase 2 starts; 0: never

    @classmethod
    def of(cls, gan, batch_size: int) -> "GanSettings":
        return cls(gan.loss, gan.clip, gan.gp_lambda, gan.n_critic, gan.warm_critic, gan.warm_gen_iters, gan.every,
                   gan.optimizer, gan.lr, tuple(gan.betas), gan.gen_batch or batch_size, gan.phase2_lr, gan.phase2_at)

    def in_phase(self, gen_iterations: int) -> int:
        """Generator iterations since the current phase began (the lesson's train() starts its count at 0)."""
        if self.phase2_at and gen_iterations >= self.phase2_at:
            return gen_iterations - self.phase2_at
        return gen_iterations

    def critic_iters(self, gen_iterations: int) -> int:
        return critic_iters(self.in_phase(gen_iterations), n_critic=self.n_critic, warm_critic=self.warm_critic,
                            warm_gen_iters=self.warm_gen_iters, every=self.every)


def make_optimizer(params, s: GanSettings, lr: float | None = None) -> torch.optim.Optimizer:
    """torch's RMSprop with its defaults (alpha 0.99, eps 1e-8, no momentum), as both references build it."""
    lr = s.lr if lr is None else lr
    if s.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=s.betas)
    return torch.optim.RMSprop(params, lr=lr)


class GanBatches:
    """fit's train_batches for a GAN: item k of the run is the real batches of generator iteration k."""

    def __init__(self, loader, settings: GanSettings, gen_iters_per_epoch: int):
        self.loader, self.settings, self.per_epoch = loader, settings, gen_iters_per_epoch
        self.gen_iterations = 0  # items handed out so far: generator iterations started
        self._pass, self._it = 0, None

    def __len__(self) -> int:
        return self.per_epoch

    def _next_real(self) -> torch.Tensor:
        while True:
            if self._it is None:
                self._it = iter(self.loader.epoch(self._pass))
                self._pass += 1
            try:
                return next(self._it)[0]
            except StopIteration:
                self._it = None

    def epoch(self, e: int) -> Iterator[list[torch.Tensor]]:
        for _ in range(self.per_epoch):
            n = self.settings.critic_iters(self.gen_iterations)
            self.gen_iterations += 1
            yield [self._next_real() for _ in range(n)]


class GanStep:
    """One generator iteration on the given real batches; the callable fit runs as its per-step work.
    Returns (mean critic loss over this iteration's critic updates, real images read)."""

    def __init__(self, net: nn.Module, settings: GanSettings, device_type: str, precision: str):
        self.g, self.d, self.s = net.generator, net.critic, settings
        self.device_type, self.precision = device_type, precision
        self._build(settings.lr)
        self.critic_updates = 0
        self.generator_updates = 0
        self.last_images = 0  # real images the latest generator iteration read (the step bar's images/s)

    def _build(self, lr: float) -> None:
        self.opt_g = make_optimizer(self.g.parameters(), self.s, lr)
        self.opt_d = make_optimizer(self.d.parameters(), self.s, lr)

    @property
    def optimizer(self):  # what fit's schedule object hands to it; the GAN's lr is constant within a phase
        return self.opt_g

    @property
    def lr(self) -> float:
        return self.opt_g.param_groups[0]["lr"]

    def _noise(self, n: int, like: torch.Tensor) -> torch.Tensor:
        return self.g.noise(n, device=like.device).to(like.dtype)

    def critic_step(self, real: torch.Tensor) -> torch.Tensor:
        if self.s.loss == "clip":
            clip_(self.d, self.s.clip)  # both references clamp before each critic update
        with torch.no_grad(), autocast(self.device_type, self.precision):
            fake = self.g(self._noise(real.shape[0], real))
        fake = fake.to(real.dtype)
        with autocast(self.device_type, self.precision):
            loss = self.d(real).float().mean() - self.d(fake).float().mean()
        if self.s.loss == "gp":
            loss = loss + self.s.gp_lambda * gradient_penalty(self.d, real, fake)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        self.critic_updates += 1
        return loss.detach()

    def generator_step(self, batch_size: int, like: torch.Tensor) -> torch.Tensor:
        self.d.requires_grad_(False)  # the seed's set_trainable(netD, False): no critic gradients here
        try:
            with autocast(self.device_type, self.precision):
                loss = self.d(self.g(self._noise(batch_size, like))).float().mean()
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_g.step()
        finally:
            self.d.requires_grad_(True)
        self.generator_updates += 1
        return loss.detach()

    def __call__(self, reals: list[torch.Tensor]) -> tuple[torch.Tensor, int]:
        if self.s.phase2_at and self.generator_updates == self.s.phase2_at:
            self._build(self.s.phase2_lr)  # the lesson makes new RMSprop optimisers: their state starts empty
        losses = torch.stack([self.critic_step(real) for real in reals])
        self.generator_step(self.s.gen_batch, reals[-1])  # a full batch of noise, even after a short tail batch
        self.last_images = sum(int(r.shape[0]) for r in reals)
        return losses.mean(), self.last_images

    def state(self) -> dict:
        return copy.deepcopy({"g": self.g.state_dict(), "d": self.d.state_dict(),
                              "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()})

    def restore(self, state: dict) -> None:
        self.g.load_state_dict(state["g"])
        self.d.load_state_dict(state["d"])
        self._build(self.s.lr)  # state() is only taken before training: phase 1
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.critic_updates = self.generator_updates = 0


class ConstantLr:
    """The schedule object fit expects (apply / advance / current / optimizer): the GAN's lr does not move
    within a phase; it reports the step's current lr (gan.lr, then gan.phase2_lr)."""

    @dataclass(frozen=True)
    class Point:
        lr: float
        momentum: float = 0.0

    def __init__(self, step: GanStep):
        self.step = step

    @property
    def optimizer(self):
        return self.step.optimizer

    def current(self):
        return self.Point(self.step.lr)

    def apply(self):
        return self.current()

    def advance(self) -> None:
        pass


def warm_up(step: GanStep, real_shape: tuple, steps: int, device: torch.device, dtype: torch.dtype,
            channels_last: bool) -> None:
    """A few generator iterations on random images, then every weight and optimiser state put back: cuDNN
    autotuning and allocator growth land in init, as for classifiers; nothing is learned."""
    if steps <= 0:
        return
    saved = step.state()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    real = torch.rand(*real_shape, device=device).mul(2).sub(1).to(dtype).contiguous(memory_format=fmt)
    # fork_rng: the noise the warm-up draws must not shift the run's own draws
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for _ in range(steps):
            step([real])
    step.restore(saved)
