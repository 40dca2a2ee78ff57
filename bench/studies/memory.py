"""Memory for `bench speed`: peak memory of a training step on the GPU or the CPU, and the largest batch
that fits (double until out of memory, then bisect back)."""
from __future__ import annotations

import ctypes
import gc
from typing import Callable, Optional

from bench.core.errors import BenchError

MEMORY_HOW = {"cuda": "torch.cuda.max_memory_allocated",
              "cpu": "peak resident set size (VmHWM, reset through /proc/self/clear_refs) minus the RSS "
                     "before the model was built"}
CPU_RAM_HEADROOM = 0.8  # share of free RAM a --find-max-batch try may be predicted to use on the CPU


# ---------------------------------------------------------------- peak memory


def _proc_status_kb(key: str) -> Optional[int]:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_rss_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")  # Linux >= 4.0: VmHWM := VmRSS
        return True
    except OSError:
        return False


def _release_freed_heap() -> None:
    # Freed tensors can stay in glibc's heap; without a trim the next config reuses that memory and its
    # RSS growth (our measure) comes out too small.
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak memory in MB between start() and stop(): allocator peak on CUDA, resident-set peak on the CPU."""

    def __init__(self, device):
        self.device = device
        self.base = 0.0
        self.how = MEMORY_HOW[device.type]

    def start(self) -> None:
        import torch

        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device) / 2**20
            return
        _release_freed_heap()
        if not _reset_rss_peak():
            self.how = "not measured: /proc/self/clear_refs is not writable"
            self.base = None
            return
        self.base = (_proc_status_kb("VmRSS") or 0) / 1024

    def stop(self) -> Optional[float]:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) / 2**20 - self.base
        peak = _proc_status_kb("VmHWM")
        return None if self.base is None or peak is None else max(0.0, peak / 1024 - self.base)


# ---------------------------------------------------------------- the largest batch that fits


def is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _between(good: int, bad: int) -> Optional[int]:
    """The next batch to try between a fit and a failure, or None when the gap is too small to matter:
    under ~6% of the batch (or 8 images) a finer answer costs more tries than it is worth."""
    if bad - good <= max(8, good // 16):
        return None
    mid = (good + bad) // 2
    rounded = mid - mid % 8  # multiples of 8 suit tensor cores
    return rounded if rounded > good else mid


def find_max_batch(measure_at: Callable[[int], dict], start: int, max_batch: int = 65536,
                   on_try: Callable[[int, Optional[dict]], None] = lambda b, res: None
                   ) -> tuple[int, dict, list[tuple[int, bool]]]:
    """Double from `start` until a batch does not fit (or `max_batch`), then bisect back between the
    largest fit and the smallest failure. `measure_at(batch)` returns a result or raises; out-of-memory
    errors (see is_oom) mean "does not fit", anything else propagates. Returns (batch, its result, tries)."""
    if start < 1 or max_batch < 1:
        raise BenchError(f"--find-max-batch: start {start} and --max-batch {max_batch} must be >= 1")
    tries: list[tuple[int, bool]] = []

    def attempt(b: int) -> Optional[dict]:
        try:
            res = measure_at(b)
        except Exception as exc:
            if not is_oom(exc):
                raise
            res = None
        tries.append((b, res is not None))
        on_try(b, res)
        return res

    good, best, bad = 0, None, None
    b = min(start, max_batch)
    while True:
        res = attempt(b)
        if res is None:
            bad = b
            break
        good, best = b, res
        if b >= max_batch:
            break
        b = min(2 * b, max_batch)
    while best is None:  # not even the start fits: halve until something does
        b = bad // 2
        if b < 1:
            raise BenchError("--find-max-batch: not even batch size 1 fits in memory")
        res = attempt(b)
        if res is None:
            bad = b
        else:
            good, best = b, res
    while bad is not None:
        mid = _between(good, bad)
        if mid is None:
            break
        res = attempt(mid)
        if res is None:
            bad = mid
        else:
            good, best = mid, res
    return good, best, tries


def guard_cpu_ram(measure_at: Callable[[int], dict]) -> Callable[[int], dict]:
    """On the CPU, memory past what is free gets the process killed (or swapping) rather than an error:
    refuse, as out of memory, a batch whose memory scaled from the last measurement would not fit."""
    import psutil

    last: list[tuple[int, float]] = []

    def guarded(b: int) -> dict:
        if last:
            b0, mb0 = last[-1]
            need = mb0 * b / b0
            free = psutil.virtual_memory().available / 2**20
            if need > CPU_RAM_HEADROOM * free:
                raise MemoryError(f"batch {b}: about {need:.0f} MB predicted, {free:.0f} MB free")
        res = measure_at(b)
        if res.get("peak_memory_mb"):
            last.append((b, res["peak_memory_mb"]))
        return res

    return guarded
