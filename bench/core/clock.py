"""Timing boundaries (README, "Timing rules").

    init            process start -> ready (model built, data staged, warm-up done); reported, not timed
    time_to_target  run_start (before the first training batch is drawn) -> end of the first evaluation
                    that reaches the target; training, loading, augmentation and every evaluation count
    wall            process start -> end of the run; the basis of GPU-hours and cost

Every read synchronises the device first: CUDA work is asynchronous, and a clock read while kernels are
still queued would credit the run with time it has not yet spent. Both the time source and the sync are
injectable so tests can drive the clock deterministically.
"""
from __future__ import annotations

import os
import time
from typing import Callable, Optional

import psutil


def process_start_offset() -> float:
    """Seconds since this process was created.

    On Linux both ends come from clocks that count from boot: the process's start time in /proc/self/stat
    (10 ms ticks) and CLOCK_BOOTTIME. psutil's create_time() adds the boot time that /proc/stat rounds
    down to whole seconds, which makes a process up to a second older than it is (0.96 s on the 2-core
    AMD EPYC VM), and every init and wall time with it; it remains the fallback elsewhere."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):  # not Linux
        return max(0.0, time.time() - psutil.Process().create_time())


def device_sync(device) -> Callable[[], None]:
    # Mutation testing cannot see this function on a machine without CUDA (both branches end in a no-op
    # there); the GPU check script times a CUDA run through it.
    import torch

    if getattr(device, "type", device) == "cuda" and torch.cuda.is_available():
        return torch.cuda.synchronize
    return lambda: None


class Clock:
    def __init__(self, now: Callable[[], float] = time.perf_counter,
                 sync: Callable[[], None] = lambda: None, since_process_start: Optional[float] = None):
        self._now, self.sync = now, sync
        # perf_counter has no meaningful zero, so anchor it to the process start once.
        offset = process_start_offset() if since_process_start is None else since_process_start
        self.process_start = now() - offset
        self.ready_at: Optional[float] = None
        self.run_start_at: Optional[float] = None

    def read(self) -> float:
        self.sync()
        return self._now()

    def ready(self) -> float:
        """Mark the end of init; returns init seconds."""
        self.ready_at = self.read()
        return self.ready_at - self.process_start

    def start_run(self) -> None:
        self.run_start_at = self.read()

    def since_run_start(self) -> float:
        assert self.run_start_at is not None, "start_run() first"
        return self.read() - self.run_start_at

    def wall(self) -> float:
        return self.read() - self.process_start

    @property
    def init_s(self) -> Optional[float]:
        return None if self.ready_at is None else self.ready_at - self.process_start
