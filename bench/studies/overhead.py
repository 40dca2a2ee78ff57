"""`bench overhead`: how much of a recipe's training speed the harness keeps.

One process, one model, one optimiser, the same loader batches, two ways of driving them:

- bare: what a hand-written record script does per step - forward and loss under autocast, zero_grad,
  backward, the optimiser's step (GradScaler around it for fp16) - and nothing else;
- harness: bench.train.loop.fit itself, with everything `bench run` attaches to a run: the schedule, the
  MLPerf event log (written to a scratch file), the telemetry sampler, the step bar.

Both are timed the way `bench run` times an epoch (device synchronised, loading included). Rounds alternate
(bare, harness, bare, harness, ...) after one untimed round each, so a machine whose load changes treats the
two alike; each side's median round is reported, and the ratio harness / bare.
"""
from __future__ import annotations

import itertools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from bench.core.errors import BenchError

KEYS = ("recipe", "device", "bare_images_per_s", "harness_images_per_s", "ratio")


class Steps:
    """The first `n` batches a loader serves from epoch 0 on (continuing into later epochs when one epoch
    is shorter), with the loader's interface: the same batches however often it is read."""

    def __init__(self, loader, n: int):
        self.loader, self.n = loader, n
        self.samples_per_epoch = loader.samples_per_epoch

    def __len__(self) -> int:
        return self.n

    def epoch(self, epoch: int):
        return itertools.islice(itertools.chain.from_iterable(self.loader.epoch(e) for e in itertools.count()),
                                self.n)


def bare_round(model, optimizer, criterion, batches, *, device_type: str, precision: str, sync) -> float:
    """Images per second of the bare loop over `batches` (an iterable of (x, y)). The step is written out
    here, not taken from bench.train.loop.train_step, on purpose: anything the harness's own step added
    would otherwise be on both sides and never show in the ratio."""
    import torch

    from bench.train.loop import autocast

    scaler = torch.amp.GradScaler(device_type) if precision == "fp16" else None
    images = 0
    sync()
    t0 = time.perf_counter()
    for x, y in batches:
        with autocast(device_type, precision):
            loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        images += y.shape[0]
    sync()
    return images / (time.perf_counter() - t0)


def harness_round(model, opt, batches: Steps, *, recipe, device, log_path: Path) -> float:
    """Images per second of bench.train.loop.fit over `batches`, as `bench run` drives it."""
    from bench.core import mllog
    from bench.core.clock import Clock, device_sync
    from bench.core.progress import StepBar
    from bench.system.telemetry import Sampler
    from bench.train.loop import fit

    log = mllog.MLLogger(log_path, namespace=recipe.name)
    sampler = Sampler(interval_s=1.0, device_indices=[device.index or 0] if device.type == "cuda" else None)
    bar = StepBar()
    sampler.start()
    try:
        result = fit(model, opt, batches, lambda: 0.0, epochs=1, eval_every=1, target=1.0,
                     clock=Clock(sync=device_sync(device), since_process_start=0.0), device_type=device.type,
                     precision=recipe.precision, label_smoothing=recipe.optim.label_smoothing,
                     on_event=lambda key, meta: log.relay(key, meta, stacklevel=2), on_step=bar.step)
    finally:
        bar.close()
        sampler.stop()
        log.close()
    return result.records[0].images_per_s


def measure(recipe, *, source: str, data_dir: Optional[Path], steps: int, rounds: int,
            say: Callable[[str], None] = print) -> dict:
    import torch
    from torch import nn

    from bench.core.clock import device_sync
    from bench.run import parts
    from bench.system import machine
    from bench.system.dist import DistContext
    from bench.train.groups import build_optimizer
    from bench.train.loop import warm_up

    mach = machine.detect_machine()
    device_type = machine.check(recipe, mach)
    recipe = machine.settle(recipe, device_type, say=say)
    if recipe.world_size != 1:
        raise BenchError(f"{recipe.name}: bench overhead runs one process; the recipe asks for {recipe.world_size} "
                         f"(use --set hardware.procs_per_node=1 --set hardware.nodes=1)")
    device = torch.device("cuda", torch.cuda.current_device()) if device_type == "cuda" else torch.device("cpu")
    if device_type == "cuda":
        torch.backends.cudnn.benchmark = True
    threads = machine.set_threads(recipe, 1)
    dctx = DistContext()
    ds = parts.load_data(recipe, source, data_dir)
    torch.manual_seed(recipe.seed)
    train, test = parts.loaders(recipe, ds, device, recipe.seed, dctx)
    model, bare = parts.model(recipe, device, dctx)
    parts.init_whitening(recipe, bare, ds, device)
    # Every round's steps fit in the schedule, so the lr never runs past its end.
    opt = build_optimizer(bare, recipe.optim, total_steps=2 * (rounds + 1) * steps + 1, steps_per_epoch=len(train),
                          bf16=machine.native_bf16(device_type))
    warm_batches, eval_batches = parts.warmup_batches(recipe, ds, train, test, device)
    warm_up(model, bare, opt.optimizer, steps=recipe.warmup_steps, train_batches=warm_batches,
            eval_batches=eval_batches, device_type=device_type, precision=recipe.precision, tta=recipe.target.tta)
    batches = Steps(train, steps)
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.optim.label_smoothing)
    sync = device_sync(device)
    load_before = os.getloadavg()
    bare_ips, harness_ips = [], []
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as scratch:
        log_path = Path(scratch) / "mllog.txt"
        for i in range(rounds + 1):  # round 0 is untimed: first-touch costs land there on both sides
            b = bare_round(model, opt.optimizer, criterion, batches.epoch(0), device_type=device_type,
                           precision=recipe.precision, sync=sync)
            h = harness_round(model, opt, batches, recipe=recipe, device=device, log_path=log_path)
            if i:
                bare_ips.append(b)
                harness_ips.append(h)
                say(f"  round {i}/{rounds}  bare {b:10,.0f} img/s  harness {h:10,.0f} img/s  ratio {h / b:.3f}")
    bare_med, harness_med = statistics.median(bare_ips), statistics.median(harness_ips)
    name = torch.cuda.get_device_name(device) if device_type == "cuda" else mach.device_name
    return {"recipe": recipe.name, "device": device_type, "bare_images_per_s": bare_med,
            "harness_images_per_s": harness_med, "ratio": harness_med / bare_med,
            "device_name": name, "precision": recipe.precision, "batch_size": recipe.data.batch_size,
            "steps": steps, "rounds": rounds, "threads": threads, "torch": torch.__version__,
            "bare_rounds": bare_ips, "harness_rounds": harness_ips,
            "load_avg_1m": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]}


def run_overhead(args) -> int:
    from bench import recipe as recipes

    if args.steps < 1 or args.rounds < 1:
        raise BenchError(f"--steps {args.steps} / --rounds {args.rounds}: both must be >= 1")
    r = recipes.load(args.recipe, list(args.set))
    row = measure(r, source=args.data or r.data.source, data_dir=args.data_dir, steps=args.steps,
                  rounds=args.rounds)
    print(f"{row['recipe']}  {row['device_name']} ({row['device']}, {row['precision']}, {row['threads']} threads)  "
          f"batch {row['batch_size']} x {row['steps']} steps, median of {row['rounds']} rounds")
    print(f"  bare     {row['bare_images_per_s']:12,.0f} images/s")
    print(f"  harness  {row['harness_images_per_s']:12,.0f} images/s")
    print(f"  ratio    {row['ratio']:12.3f}  (load average {row['load_avg_1m'][0]} -> {row['load_avg_1m'][1]})")
    if args.json:
        Path(args.json).write_text(json.dumps(row, indent=2) + "\n", encoding="utf-8")
    return 0
