"""`bench loaders`: how fast each loader feeds training batches, next to the synthetic upper bound."""
from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import numpy as np
import psutil
import torch

from bench.data.augment import Augment
from bench.data.loaders import LOADERS, make_loader
from bench.data.types import Split
from bench.core.errors import BenchError

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}
KEYS = ("loader", "device", "batch_size", "images_per_s", "ms_per_batch", "cpu_util", "vs_synthetic")
CPU_NOTE = ("cpu_util: CPU time of this process and its worker processes / wall time / logical cores "
            "(100 = every core of the machine busy); '-' where the window was too short for the OS's "
            "CPU-time clock")
MIN_CPU_WINDOW_S = 0.25  # process CPU times tick in 10 ms steps


def random_split(n: int, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    return Split(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.int64))


def _cpu_seconds(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:  # a worker that exited between listing and reading
            pass
    return total


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(kind: str, split: Split, *, device: torch.device, batch_size: int, batches: int,
            dtype: torch.dtype, workers: int = 2, warmup: int = 2) -> dict:
    """One row: train-mode loader (standard augmentation), epochs chained as in training."""
    loader = make_loader(kind, split, train=True, batch_size=batch_size, device=device, dtype=dtype,
                         channels_last=True, augment=Augment(), seed=0, workers=workers)
    stream = itertools.chain.from_iterable(loader.epoch(e) for e in itertools.count())
    for _ in range(warmup):  # torch worker start-up, DALI pipeline build, first allocations
        next(stream)
    proc = psutil.Process()
    _sync(device)
    t0, c0, images = time.perf_counter(), _cpu_seconds(proc), 0
    for x, _ in itertools.islice(stream, batches):
        images += x.shape[0]
    _sync(device)
    wall, cpu = time.perf_counter() - t0, _cpu_seconds(proc) - c0
    return {"loader": kind, "device": str(device), "batch_size": batch_size,
            "images_per_s": images / wall, "ms_per_batch": 1000 * wall / batches,
            "cpu_util": 100 * cpu / wall / psutil.cpu_count() if wall >= MIN_CPU_WINDOW_S else None,
            "vs_synthetic": None}


def run_loaders(args) -> int:
    kinds = [k.strip() for k in args.loaders.split(",") if k.strip()]
    bad = [k for k in kinds if k not in LOADERS]
    if bad or not kinds:
        raise BenchError(f"--loaders {args.loaders!r}: choose from {', '.join(LOADERS)}")
    if args.batches < 1 or args.batch_size < 1:
        raise BenchError("--batches and --batch-size must be >= 1")
    from bench.system.machine import pick_device

    device = pick_device(args.device or "auto")
    if args.data:
        from bench.data.sources import load_dataset  # written alongside; imported only when asked for

        split, data_name = load_dataset(args.data).train, args.data
    else:
        split, data_name = random_split(args.images), f"{args.images} random 32x32 images"

    rows, errors = [], {}
    for kind in kinds:
        try:
            rows.append(measure(kind, split, device=device, batch_size=args.batch_size, batches=args.batches,
                                dtype=DTYPES[args.dtype], workers=args.workers))
        except Exception as e:  # one loader failing (e.g. DALI missing) must not hide the others
            errors[kind] = f"{type(e).__name__}: {e}".splitlines()[0]
            rows.append({k: None for k in KEYS} | {"loader": kind, "device": str(device),
                                                    "batch_size": args.batch_size})
    ref = next((r["images_per_s"] for r in rows if r["loader"] == "synthetic" and r["images_per_s"]), None)
    for r in rows:
        if ref and r["images_per_s"]:
            r["vs_synthetic"] = r["images_per_s"] / ref

    title = f"loaders: {data_name}, {args.dtype}, channels_last, {args.batches} timed batches"
    _print_table(rows, errors, title)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def _cells(row: dict, errors: dict) -> list[str]:
    if row["loader"] in errors:
        return [row["loader"], row["device"], str(row["batch_size"]), "cannot run", "-", "-", "-"]
    vs = "-" if row["vs_synthetic"] is None else f"{row['vs_synthetic']:.3g}"
    return [row["loader"], row["device"], str(row["batch_size"]), f"{row['images_per_s']:,.0f}",
            f"{row['ms_per_batch']:.2f}", "-" if row["cpu_util"] is None else f"{row['cpu_util']:.0f}%", vs]


def _print_table(rows: list[dict], errors: dict, title: str) -> None:
    from bench.core.tables import print_table

    header = ["loader", "device", "batch", "images/s", "ms/batch", "cpu_util", "vs synthetic"]
    print_table(title, header, [_cells(r, errors) for r in rows], CPU_NOTE, left=2)
    for kind, why in errors.items():
        print(f"{kind} cannot run: {why}")
