"""A per-epoch step bar on a terminal; nothing at all when output goes to a pipe or a file, so CI logs
and saved outputs hold only the per-epoch lines."""
from __future__ import annotations

import sys


class StepBar:
    def __init__(self, enabled: bool | None = None):
        enabled = sys.stdout.isatty() if enabled is None else enabled
        self.progress = self.task = None
        self.epoch = 0
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            # transient: the bar disappears once the epoch's summary line is printed above it
            self.progress = Progress(TextColumn("epoch {task.fields[epoch]:>3}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(), transient=True)
            self.progress.start()

    def step(self, i: int, total: int) -> None:
        if self.progress is None:
            return
        if i == 1:
            self.epoch += 1
            if self.task is not None:
                self.progress.remove_task(self.task)
            self.task = self.progress.add_task("train", total=total, epoch=self.epoch)
        self.progress.update(self.task, completed=i)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
