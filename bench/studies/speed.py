"""`bench speed`: how fast a recipe's model trains, with data and accuracy taken out of the picture.

Synthetic inputs already on the device, the recipe's model, precision, memory format and optimiser, and the
training loop's own step (bench.train.loop.train_step). It answers the question the seed asks of every
architecture paper that only counts FLOPs: how long does a batch actually take, and does it fit?
"""
from __future__ import annotations

import gc
import json
import socket
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

from bench.core.errors import BenchError
from bench.studies.memory import MEMORY_HOW, PeakMemory, find_max_batch, guard_cpu_ram

# The JSON rows carry exactly these keys, in this order (scripts and the study read them).
JSON_KEYS = ("recipe", "device", "precision", "memory_format", "batch_size", "images_per_s", "step_ms",
             "forward_ms", "backward_ms", "peak_memory_mb", "params", "flops_per_image", "mfu")
# The CSV adds what makes a timing comparable with another one; CPU timings depend on threads.
ENV_KEYS = ("threads", "torch", "device_name", "host", "git_commit", "timestamp")



# ---------------------------------------------------------------- one measurement


def measure(recipe, device, batch_size: int, steps: int, warmup: int) -> dict:
    """Median step time and its forward/backward split at one batch size; raises the allocator's error
    when it does not fit (the caller decides whether that is an answer or a failure).

    The timed step is the training loop's own (bench.train.loop.train_step, with the schedule applied as
    fit() applies it). The forward/backward split needs a device sync between the two halves, which would
    slow the timed steps, so it is a second pass over the same work split by hand."""
    import torch
    from torch import nn

    from bench.core.clock import device_sync
    from bench.models import build_model
    from bench.train.loop import AMP_DTYPES, autocast, train_step
    from bench.train.optim import Scheduled

    sync = device_sync(device)
    memory = PeakMemory(device)
    memory.start()
    model = opt = x = y = loss = None
    try:
        model = build_model(recipe.model.arch, recipe.model.params, source=recipe.model.source).to(device)
        channels_last = recipe.memory_format == "channels_last"
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        model.train()
        opt = Scheduled(model, recipe.optim, total_steps=2 * (warmup + steps) + 1)
        criterion = nn.CrossEntropyLoss(label_smoothing=recipe.optim.label_smoothing)
        scaler = torch.amp.GradScaler(device.type) if recipe.precision == "fp16" else None
        # Inputs arrive the way the harness's loaders hand them over: compute dtype, chosen layout.
        x = torch.randn(batch_size, 3, 32, 32, device=device, dtype=AMP_DTYPES[recipe.precision] or torch.float32)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (batch_size,), device=device)

        def step():
            opt.apply()
            train_step(model, opt.optimizer, criterion, scaler, x, y, device.type, recipe.precision)
            opt.advance()

        for _ in range(warmup):
            step()
        sync()
        step_s = []
        for _ in range(steps):
            t0 = time.perf_counter()
            step()
            sync()
            step_s.append(time.perf_counter() - t0)
        fwd_s, bwd_s = [], []
        for _ in range(steps):
            opt.apply()
            t0 = time.perf_counter()
            with autocast(device.type, recipe.precision):
                loss = criterion(model(x), y)
            sync()
            t1 = time.perf_counter()
            opt.optimizer.zero_grad(set_to_none=True)
            (scaler.scale(loss) if scaler is not None else loss).backward()
            sync()
            t2 = time.perf_counter()
            if scaler is not None:
                scaler.step(opt.optimizer)
                scaler.update()
            else:
                opt.optimizer.step()
            opt.advance()
            fwd_s.append(t1 - t0)
            bwd_s.append(t2 - t1)
        sync()
        peak = memory.stop()
    finally:
        del model, opt, x, y, loss
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    step = statistics.median(step_s)
    return {"batch_size": batch_size, "images_per_s": batch_size / step, "step_ms": step * 1e3,
            "forward_ms": statistics.median(fwd_s) * 1e3, "backward_ms": statistics.median(bwd_s) * 1e3,
            "peak_memory_mb": peak}


def model_cost(recipe, device) -> tuple[int, Optional[float]]:
    """(parameters, counted training FLOPs per image); FLOPs do not depend on batch size or precision."""
    from bench.system.flops import flops_per_image
    from bench.models import build_model, count_parameters

    model = build_model(recipe.model.arch, recipe.model.params, source=recipe.model.source).to(device)
    try:
        flops = flops_per_image(model, device=device)["train_step"]
    except Exception as exc:  # a model the counter cannot trace still gets its timings
        print(f"warning: {recipe.name}: FLOPs not counted ({type(exc).__name__}: {exc})", file=sys.stderr)
        flops = None
    return count_parameters(model), flops


# ---------------------------------------------------------------- output


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _cells(row: dict) -> list[str]:
    flops = row["flops_per_image"]
    return [row["recipe"], row["device"], row["precision"], row["memory_format"], str(row["batch_size"]),
            _fmt(row["images_per_s"], ",.0f"), _fmt(row["step_ms"], ".1f"), _fmt(row["forward_ms"], ".1f"),
            _fmt(row["backward_ms"], ".1f"), _fmt(row["peak_memory_mb"], ",.0f"), f"{row['params'] / 1e6:.2f}",
            _fmt(flops / 1e9 if flops else None, ".3f"), _fmt(row["mfu"] * 100 if row["mfu"] else None, ".1f")]


HEADER = ["recipe", "device", "precision", "format", "batch", "images/s", "step ms", "fwd ms", "bwd ms",
          "peak MB", "params M", "GFLOP/img", "MFU %"]


def _environment(device, threads: int) -> dict:
    import torch

    from bench.system import cpu
    from bench.system.envinfo import git_state

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu.model()
    return {"threads": threads, "torch": torch.__version__, "device_name": name, "host": socket.gethostname(),
            "git_commit": git_state().get("commit"),
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds")}


# ---------------------------------------------------------------- command


def _recipe_files(specs: list[str]) -> list[Path]:
    """Recipe names or paths; a family name, folder or glob stands for its members."""
    from bench.recipe import family_files, resolve_path

    files: list[Path] = []
    for spec in specs:
        try:
            files.append(resolve_path(spec))
        except BenchError as not_a_recipe:
            try:
                files += family_files(spec)
            except BenchError as not_a_family:
                raise BenchError(f"{not_a_recipe}\n{not_a_family}") from None
    return files


def _batch_sizes(text: Optional[str]) -> Optional[list[int]]:
    if text is None:
        return None
    try:
        sizes = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise BenchError(f"--batch-sizes {text!r}: expected positive integers separated by commas, e.g. 64,128")
    return sizes


def run_speed(args, measure_fn: Callable = measure) -> int:
    import torch

    from bench.system import machine

    from bench import recipe as recipes
    from bench.system.flops import mfu, peak_flops

    if args.steps < 1 or args.warmup < 0:
        raise BenchError(f"--steps {args.steps} / --warmup {args.warmup}: allowed: steps >= 1, warmup >= 0")
    sizes = _batch_sizes(args.batch_sizes)
    if args.find_max_batch and sizes and len(sizes) > 1:
        raise BenchError("--find-max-batch starts from one batch size; give one --batch-sizes value")
    overrides = list(args.set)
    for flag, key in ((args.device, "hardware.device"), (args.precision, "precision"),
                      (args.memory_format, "memory_format")):
        if flag:
            overrides.append(f"{key}={flag}")
    loaded = [recipes.load(f, overrides) for f in _recipe_files(args.recipes)]  # all checked before any timing
    rows: list[dict] = []
    csv_rows: list[dict] = []
    env: dict = {}
    mach = machine.detect_machine()
    for r in loaded:
        device = machine.pick_device(machine.check(r, mach))
        r = machine.settle(r, device.type, say=lambda line: None)
        threads = machine.set_threads(r, 1) if device.type == "cpu" else torch.get_num_threads()
        if device.type == "cuda":
            torch.cuda.set_device(device)
            torch.backends.cudnn.benchmark = True  # as in real runs: pick the fastest kernels per shape
        env = _environment(device, threads)
        params, flops = model_cost(r, device)
        peak, _ = peak_flops(env["device_name"], r.precision) if device.type == "cuda" else (None, "")

        def at(b: int, r=r, device=device) -> dict:
            return measure_fn(r, device, b, args.steps, args.warmup)

        results = []
        if args.find_max_batch:
            start = (sizes or [r.data.batch_size])[0]
            guarded = guard_cpu_ram(at) if device.type == "cpu" else at
            say = (lambda b, res, name=r.name: print(f"{name}: batch {b}: " + (
                "fits" if res else "out of memory"), flush=True))
            _, best, _ = find_max_batch(guarded, start, args.max_batch, on_try=say)
            results.append(best)
        else:
            for b in sizes or [r.data.batch_size]:
                results.append(at(b))
        for res in results:
            row = {"recipe": r.name, "device": device.type, "precision": r.precision,
                   "memory_format": r.memory_format, **res, "params": params, "flops_per_image": flops,
                   "mfu": mfu(flops, res["images_per_s"], peak) if flops and peak else None}
            rows.append({k: row[k] for k in JSON_KEYS})
            csv_rows.append({**rows[-1], **env})
    note = f"peak memory: {MEMORY_HOW[rows[0]['device']]}" if rows else ""
    title = f"training step speed ({args.steps} steps after {args.warmup} warm-up, synthetic data)"
    if env:
        title += f" on {env['device_name']}, {env['threads']} threads" if rows[0]["device"] == "cpu" else \
            f" on {env['device_name']}"
    from bench.core.tables import print_table

    print_table(title, HEADER, [_cells(row) for row in rows], note, left=4)
    from bench.core.results import append_rows, atomic_write

    if args.json:
        text = json.dumps(rows, indent=2) + "\n"
        atomic_write(args.json, lambda f: f.write(text))
        print(f"wrote {args.json}")
    if args.csv:
        append_rows(Path(args.csv), csv_rows)
        print(f"appended {len(rows)} row{'s' * (len(rows) != 1)} to {args.csv}")
    return 0
