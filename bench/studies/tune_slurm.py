"""`bench tune RECIPE|FAMILY --slurm`: the studies of a tune as one SLURM job array, a task per recipe and study.

Task i runs study i % S of recipe i // S as `bench tune FILE --study K` with the same budget and storage, so
the tasks share one Optuna storage (the journal file on the cluster's shared file system, or --storage's
database) and each runs its study's trials one after another (--prune needs a study's best so far). A task
writes its trials' rows to a table of its own, `<dir>/parts/<array>_<task>.csv` (bench sweep --slurm's rule:
file locks may not hold on a shared file system); `bench tune` without --slurm, or --wait, merges the parts
into `<dir>/results.csv` and writes each recipe's tuned bundle. A task killed mid-trial leaves its trial
aborted; submitting again runs it once more with the same values.
"""
from __future__ import annotations

import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from bench.core.errors import BenchError

POLL_S = 30.0  # between squeue polls under --wait; tests lower it


def _q(value) -> str:
    return shlex.quote(str(value))


def task_command(args, target, k: int, folder: Path, storage: str) -> list[str]:
    cmd = [sys.executable, "-m", "bench", "tune", str(Path(target.path).resolve()), "--study", str(k),
           "--trials", str(args.trials), "--studies", str(args.studies), "--sampler", args.sampler,
           "--seed", str(args.seed), "--dir", str(folder.resolve()), "--storage", storage,
           "--reports", str(Path(args.reports or folder / "trials").resolve())]
    cmd += ["--prune"] if args.prune else []
    for s in args.set:
        cmd += ["--set", s]
    cmd += ["--data", args.data] if args.data else []
    cmd += ["--data-dir", str(Path(args.data_dir).resolve())] if args.data_dir else []
    return cmd


def script(args, tasks: list[list[str]], folder: Path, threads: int) -> str:
    parts, logs = folder.resolve() / "parts", folder.resolve() / "logs"
    options = [f"--job-name=bench-tune-{folder.name}", f"--array=0-{len(tasks) - 1}", "--ntasks=1",
               f"--cpus-per-task={threads}", f"--output={logs}/%A_%a.out"]
    options += [f"--partition={args.partition}"] if args.partition else []
    options += [f"--time={args.time_limit}"] if args.time_limit else []
    options += list(args.sbatch)
    cases = [f"  {i}) exec {' '.join(map(_q, cmd))} --results {_q(parts)}/${{SLURM_ARRAY_JOB_ID}}_{i}.csv ;;"
             for i, cmd in enumerate(tasks)]
    return "\n".join([
        "#!/bin/bash",
        f"# bench tune {args.target} --slurm: array task i runs study i % {args.studies} of recipe i // "
        f"{args.studies}. Written by bench.studies.tune_slurm; `sbatch` it again to rerun what is missing.",
        *[f"#SBATCH {o}" for o in options],
        "set -euo pipefail",
        f"cd {_q(Path.cwd())}",
        'case "$SLURM_ARRAY_TASK_ID" in', *cases, "esac", ""])


def submit_tune(args, say: Callable[[str], None] = lambda line: print(line, flush=True)) -> int:
    from bench.studies import tune, tune_storage
    from bench.system import slurm

    budget = tune.Budget(args.trials, args.studies, args.sampler, args.seed, args.prune)
    tune.check_budget(budget)
    if args.study is not None:
        raise BenchError("--study with --slurm: the array runs every study; drop --study")
    folder = tune.folder_of(args)
    storage = args.storage or str((folder / "journal.log").resolve())
    targets = tune.targets(args.target, list(args.set), budget, args.data)
    wide = [t.recipe.name for t in targets if t.recipe.world_size > 1 or t.recipe.hardware.device != "cpu"]
    if wide:
        raise BenchError(f"--slurm: {', '.join(wide)} run on GPUs or several processes; bench tune --slurm runs "
                         f"one CPU process per task for now: tune them with one `bench tune ... --study K` per "
                         f"node, sharing a --storage database")
    tune_storage.open_storage(storage)  # a bad storage is refused here, not in every task
    for d in ("parts", "logs"):
        (folder / d).mkdir(parents=True, exist_ok=True)
    tasks = [task_command(args, t, k, folder, storage) for t in targets for k in range(args.studies)]
    threads = max((t.recipe.hardware.threads or 1) for t in targets)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"array-{stamp}.sbatch"
    path.write_text(script(args, tasks, folder, threads))
    array = slurm.submit(path, cwd=Path.cwd())
    say(f"tune {args.target}: submitted job array {array} ({len(tasks)} tasks: {len(targets)} recipe(s) x "
        f"{args.studies} studies), logs in {folder / 'logs'}; storage {tune_storage.describe(storage)}")
    if not args.wait:
        say(f"when it is done: `bench tune {args.target}` (same options, without --slurm) writes the tuned results")
        return 0
    while any(j.startswith(f"{array}_") or j == array for j in slurm.live_jobs()):
        time.sleep(POLL_S)
    say(f"job array {array} finished")
    args.storage = storage
    return tune.finish_tune(args, say)
