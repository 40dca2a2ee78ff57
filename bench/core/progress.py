"""A per-epoch step bar on a terminal (steps done, images/s, elapsed time and the epoch's ETA); nothing at all
when output goes to a pipe or a file, so CI logs and saved outputs hold only the per-epoch lines."""
from __future__ import annotations

import math
import sys
import time
from datetime import timedelta
from typing import Callable, Optional


def clock_text(seconds: float) -> str:
    """H:MM:SS, rounded up as rich's own time columns are (0.2 s left is 0:00:01, not done)."""
    return str(timedelta(seconds=math.ceil(max(seconds, 0.0))))


class StepBar:
    """`images_per_step` is what one step reads across all processes (batch size x world size); a step whose
    count varies (a GAN's generator iteration) passes `images` to step(). Without either the bar shows
    steps/s. `get_time` is the clock the rates and rich's elapsed time read (a fake one in tests)."""

    def __init__(self, enabled: bool | None = None, images_per_step: int = 0,
                 get_time: Callable[[], float] = time.monotonic):
        enabled = sys.stdout.isatty() if enabled is None else enabled
        self.progress = self.task = None
        self.epoch = 0
        self.images_per_step, self.get_time = images_per_step, get_time
        self.since, self.images = 0.0, 0
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            # transient: the bar disappears once the epoch's summary line is printed above it
            self.progress = Progress(TextColumn("epoch {task.fields[epoch]:>3}"), BarColumn(),
                                     MofNCompleteColumn(), TextColumn("{task.fields[speed]}"), TimeElapsedColumn(),
                                     TextColumn("ETA {task.fields[eta]}"), transient=True, get_time=get_time)
            self.progress.start()

    def step(self, i: int, total: int, images: Optional[int] = None) -> None:
        if self.progress is None:
            return
        now = self.get_time()
        if i == 1:
            self.epoch += 1
            if self.task is not None:
                self.progress.remove_task(self.task)
            self.task = self.progress.add_task("train", total=total, epoch=self.epoch, speed="", eta="-:--:--")
            # Rates count from here, where the bar starts: the first step also holds the epoch's start-up.
            self.since, self.images = now, 0
        else:
            self.images += self.images_per_step if images is None else images
        fields = {}
        if i > 1 and now > self.since:
            took = now - self.since
            fields["speed"] = (f"{self.images / took:,.0f} img/s" if self.images
                               else f"{(i - 1) / took:,.1f} steps/s")
            fields["eta"] = clock_text((total - i) * took / (i - 1))
        self.progress.update(self.task, completed=i, **fields)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
