"""What a `bench run` invocation has settled before its first run starts: the recipe as it runs here, the
machine and process group, the data, the FLOP count and where records go. Frozen once built: runs read it,
nothing changes it."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from bench.recipe import Recipe
from bench.run.bundle import BundleWriter
from bench.system.dist import DistContext
from bench.system.machine import Machine


@dataclass(frozen=True)
class RunContext:
    recipe: Recipe  # settled for this machine (machine.settle): precision is never "auto" here
    recipe_hash: str  # of the recipe as asked for, before settling: the same on every machine
    data_source: str
    data_dir: Optional[Path]
    results_path: Path
    device: torch.device
    mach: Machine
    dctx: DistContext
    threads: int
    env: dict  # system.envinfo.capture(), with the command line that started the run set
    bundle: Optional[BundleWriter] = None  # rank 0 only
    flops: dict = field(default_factory=dict)  # per image: forward, train_step (rank 0; {"error": ...} if uncountable)
    first_run: int = 0  # runs before this set (a resumed sweep): seeds continue after them
    say: Callable[[str], None] = print
    save_model: Optional[Path] = None  # bench run --save-model: the last run's weights go here (rank 0)
    tags: dict = field(default_factory=dict)  # extra row fields naming what the run belongs to (a tune's trial)
    deadline_s: Optional[float] = None  # bench tune --prune: past this time since run_start the run cannot win

    @property
    def is_main(self) -> bool:
        return self.dctx.is_main
