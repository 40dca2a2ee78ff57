"""`bench sweep FAMILY --slurm`: the family as SLURM jobs, one job per recipe; `bench sweep FAMILY --status`.

One sbatch **job array** per job shape (nodes x tasks x GPUs; a family usually has one), one array task
per recipe, each running `bench run` for that recipe in-process (bench.studies.slurm_job). Why an array
and not submitit: every task is an ordinary `bench run` under srun, the way launch/slurm_srun.sbatch
runs one, so nothing new sits between SLURM and the benchmark (no pickled closures, no second
environment to keep in step on the nodes, no new dependency); the generated script and its manifest
are plain files a user can read and resubmit; a 20-recipe family is one entry in `squeue`, and
SLURM's own accounting (sacct) knows every task. What submitit adds (Python-side futures, pickled
results) this harness does not need: results travel as table rows.

Resumable on the keys `bench sweep` uses (recipe hash with --set, git commit, dataset fingerprint,
device): a recipe is submitted only while the table lacks its runs and no job of this sweep for it is
queued or running. The device is the cluster's, learnt from the rows this sweep's jobs wrote, so rows
measured on another machine never count, and a re-run after everything landed submits nothing.

Rows and bundles on a shared file system where file locks may not hold: each job writes only its own
table, `<results>.parts/<sweep>/<array>_<task>.csv` (its rank 0 is the only writer), and its report
bundle into the reports folder under a name of its own. The sweep (submit, --status, --wait) merges
the parts into the results table, keyed by run_id, so merging again adds nothing; jobs never write
the main table. The same folder holds the sweep's ledger (sweep.json: what was submitted when), the
generated scripts and manifests, and the jobs' logs (logs/<array>_<task>.out).
"""
from __future__ import annotations

import csv
import json
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

from bench.core.errors import BenchError

# Seconds between squeue polls under --wait; SLURM admins frown on tighter loops. Tests lower it.
POLL_S = 30.0
_TIME = re.compile(r"\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d{1,2}|\d+-\d{1,2}:\d{1,2}|\d+-\d{1,2}:\d{1,2}:\d{1,2}")
_COLUMNS = ("recipe", "state", "runs", "job", "note")


# ---------------------------------------------------------------- where a sweep keeps its state


def state_dir(results: Path, family: str, partition: Optional[str]) -> Path:
    """<results>.parts/<family>[@<partition>]: a sweep on another partition (other GPUs) is another sweep."""
    from bench.studies.sweep import _slug

    return Path(str(results) + ".parts") / (_slug(family) + (f"@{_slug(partition)}" if partition else ""))


def load_ledger(folder: Path) -> dict:
    path = folder / "sweep.json"
    if not path.exists():
        return {"submissions": []}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path}: not valid JSON ({exc}); it records this sweep's SLURM jobs: restore it, or "
                         f"delete it to forget them (rows already merged stay in the table)") from None


def save_json(path: Path, obj) -> None:
    from bench.core.results import atomic_write

    atomic_write(path, lambda f: json.dump(obj, f, indent=2, sort_keys=True))


def latest_tasks(ledger: dict) -> dict[str, dict]:
    """{recipe hash: the newest task submitted for it, with its job id "<array>_<task>"}."""
    out: dict[str, dict] = {}
    for sub in ledger["submissions"]:
        for t in sub["tasks"]:
            out[t["hash"]] = {**t, "job": f"{sub['array']}_{t['task']}"}
    return out


# ---------------------------------------------------------------- rows: merge the parts


def merge_parts(results: Path, folder: Path) -> int:
    """Every job table of this sweep into the results table, keyed by run_id; returns the rows added.
    A part is only ever replaced whole (atomic rename), so a part read here is never half-written."""
    from bench.core.results import COLUMNS, append_rows

    rows = []
    for part in sorted(folder.glob("*.csv")):
        with open(part, newline="", encoding="utf-8") as f:
            rows += [r for r in csv.DictReader(f) if r.get("run_id")]
    return append_rows(results, rows, leading=COLUMNS, key="run_id") if rows else 0


def part_devices(folder: Path) -> set[str]:
    """The devices this sweep's jobs ran on (from their own tables): the device key of the skip rule."""
    devices = set()
    for part in folder.glob("*.csv"):
        with open(part, newline="", encoding="utf-8") as f:
            devices |= {r["device_name"] for r in csv.DictReader(f) if r.get("device_name")}
    return devices


def counted(df, recipe_hash: str, fingerprint: str, commit: Optional[str], devices: set[str]):
    """Boolean mask of the table rows that count as runs of this recipe in this sweep (bench sweep's
    rule, on any device this sweep's jobs ran on)."""
    import pandas as pd

    from bench.studies.sweep import Identity, matching_rows

    mask = pd.Series(False, index=df.index)
    for device in sorted(devices):
        mask |= matching_rows(df, recipe_hash, fingerprint, Identity(commit, device))
    return mask


# ---------------------------------------------------------------- jobs: shape, script, submission


@dataclass(frozen=True)
class Shape:
    nodes: int
    tasks_per_node: int
    gpus_per_node: int
    cpus_per_task: Optional[int]


def job_shape(recipe, path: Path, gpus_per_job: Optional[int]) -> Shape:
    """One process per task, one task per GPU: the recipe's processes decide the job's size."""
    hw, world = recipe.hardware, recipe.world_size
    gpus = gpus_per_job if gpus_per_job is not None else (0 if hw.device == "cpu" else world)
    if gpus and gpus != world:
        raise BenchError(f"{path}: recipe {recipe.name} runs {world} process(es) (hardware.nodes x procs_per_node) "
                         f"but --gpus-per-job is {gpus}; bench runs one process per GPU: use --gpus-per-job {world}, "
                         f"or --set hardware.procs_per_node={gpus} to run the recipe on {gpus} GPUs")
    if gpus and hw.device == "cpu":
        raise BenchError(f"{path}: recipe {recipe.name} has hardware.device: cpu but --gpus-per-job is {gpus}; "
                         f"use --gpus-per-job 0, or --set hardware.device=auto")
    return Shape(hw.nodes, hw.procs_per_node, gpus // hw.nodes, hw.threads)


def sbatch_script(family: str, shape: Shape, tasks: int, folder: Path, manifest: Path, cwd: Path,
                  partition: Optional[str], time_limit: Optional[str], extra: list[str]) -> str:
    options = [f"--job-name=bench-sweep-{folder.name}", f"--array=0-{tasks - 1}", f"--nodes={shape.nodes}",
               f"--ntasks-per-node={shape.tasks_per_node}", f"--output={folder / 'logs' / '%A_%a.out'}"]
    options += [f"--gpus-per-node={shape.gpus_per_node}"] if shape.gpus_per_node else []
    options += [f"--cpus-per-task={shape.cpus_per_task}"] if shape.cpus_per_task else []
    options += [f"--partition={partition}"] if partition else []
    options += [f"--time={time_limit}"] if time_limit else []
    options += extra
    return "\n".join([
        "#!/bin/bash",
        f"# bench sweep {family} --slurm: array task i runs recipe i of {manifest.name}",
        "# (bench.studies.slurm_job), one srun task per process. Written by bench.studies.cluster_sweep;",
        "# `sbatch` this file again to rerun it as it was submitted.",
        *[f"#SBATCH {o}" for o in options],
        "set -euo pipefail",
        f"cd {_quote(cwd)}",
        "# Rank 0 runs on the first host and listens on a port fixed per job (as launch/slurm_srun.sbatch).",
        'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)',
        "MASTER_PORT=${MASTER_PORT:-$((15000 + SLURM_JOB_ID % 5000))}",
        "export MASTER_ADDR MASTER_PORT",
        "# --kill-on-bad-exit: one dead rank ends the step instead of leaving the rest blocked in a collective.",
        f"srun --kill-on-bad-exit=1 {_quote(sys.executable)} -m bench.studies.slurm_job {_quote(manifest)}",
        "",
    ])


def _quote(value) -> str:
    import shlex

    return shlex.quote(str(value))


def check_options(args) -> None:
    if args.gpus_per_job is not None and args.gpus_per_job < 0:
        raise BenchError(f"--gpus-per-job {args.gpus_per_job}: allowed: 0 (CPU jobs) or more")
    if args.time_limit is not None and not _TIME.fullmatch(args.time_limit):
        raise BenchError(f"--time {args.time_limit!r}: not a SLURM time limit; use minutes, HH:MM:SS or "
                         f"D-HH:MM:SS, e.g. --time 02:00:00")
    if args.status and args.slurm:
        raise BenchError("--status and --slurm: pick one (--status only reports, --slurm submits)")


# ---------------------------------------------------------------- one sweep


@dataclass
class Item:
    """One recipe of the sweep and where it stands."""
    path: Path
    recipe: object  # bench.recipe.Recipe
    want: int
    done: int = 0
    fingerprint: Optional[str] = None
    task: Optional[dict] = None  # the newest ledger task for this recipe (with "job")
    state: str = "not submitted"  # not submitted | queued | running | done | failed
    note: str = ""


def classify(items: list[Item], live: dict[str, str], ended: dict, folder: Path) -> None:
    """Each item's state from the table (done), squeue (queued/running) and sacct/scontrol (how it ended)."""
    for it in items:
        job = it.task["job"] if it.task else None
        if job in live:  # even with its rows in: a job still publishing its bundle is not done
            it.state = "queued" if live[job] == "PENDING" else "running"
            it.note = "" if live[job] in ("PENDING", "RUNNING") else live[job].lower()  # e.g. completing
        elif it.done >= it.want:
            it.state = "done"
        elif job is None:
            it.state = "not submitted"
        else:
            it.state = "failed"
            end = ended.get(job)
            log = folder / "logs" / f"{job}.out"
            how = f"{end.state} {end.exit_code}" if end else "ended"
            why = (" but its rows do not count here (another commit, device or data?)"
                   if end and end.state == "COMPLETED" else "")
            it.note = f"{how}{why}; log {log}"


def load_items(args, folder: Path, ledger: dict, with_fingerprints: bool) -> list[Item]:
    from bench import recipe as recipes

    from bench.recipe.external import with_code  # kind: external: the script's sha256 is part of the hash

    files = recipes.family_files(args.family)
    loaded = [with_code(recipes.load(f, args.set)) for f in files]
    names = [r.name for r in loaded]
    twins = sorted({n for n in names if names.count(n) > 1})
    if twins:
        raise BenchError(f"recipes {', '.join(twins)} appear twice in the sweep (same name in several files); "
                         f"give each file its own name: so the comparison can tell them apart")
    tasks = latest_tasks(ledger)
    prints: dict[str, str] = {}
    if with_fingerprints:  # loading tells a data set's fingerprint; decoded sets are cached for the jobs
        from bench.studies.sweep import _fingerprints

        prints = _fingerprints(loaded, args.data, args.data_dir)
    items = []
    for f, r in zip(files, loaded):
        task = tasks.get(r.hash)
        fp = prints.get(args.data or r.data.source) or (task or {}).get("fingerprint")
        items.append(Item(f, r, args.runs if args.runs is not None else r.runs, fingerprint=fp, task=task))
    return items


def survey(args, folder: Path, ledger: dict, with_fingerprints: bool) -> list[Item]:
    """Merge the parts, then say where every recipe stands."""
    from bench.core.results import read_table
    from bench.system import slurm
    from bench.system.envinfo import git_state

    merge_parts(args.results, folder)
    items = load_items(args, folder, ledger, with_fingerprints)
    df = read_table(args.results) if Path(args.results).exists() else None
    commit, devices = git_state().get("commit"), part_devices(folder)
    for it in items:
        if (it.fingerprint or it.recipe.kind == "external") and df is not None:  # external rows: no fingerprint
            it.done = int(counted(df, it.recipe.hash, it.fingerprint, commit, devices).sum())
    jobs = [it.task["job"] for it in items if it.task]
    live = slurm.live_jobs() if jobs else {}
    ended = slurm.ended_jobs(j for j in jobs if j not in live)
    classify(items, live, ended, folder)
    return items


def submit(args, folder: Path, ledger: dict, items: list[Item], say: Callable[[str], None]) -> list[str]:
    """One array per job shape for the recipes that need runs; returns the array ids."""
    from bench.system import slurm

    todo = [it for it in items if args.force or (it.done < it.want and it.state not in ("queued", "running"))]
    groups: dict[Shape, list[Item]] = {}
    for it in todo:
        groups.setdefault(job_shape(it.recipe, it.path, args.gpus_per_job), []).append(it)
    arrays = []
    for shape, members in groups.items():
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        manifest, script = folder / f"array-{stamp}.json", folder / f"array-{stamp}.sbatch"
        tasks = [{"task": i, "recipe": it.recipe.name, "file": str(Path(it.path).resolve()), "set": list(args.set),
                  "hash": it.recipe.hash, "fingerprint": it.fingerprint,
                  "runs": it.want if args.force else it.want - it.done, "first_run": it.done}
                 for i, it in enumerate(members)]
        (folder / "logs").mkdir(parents=True, exist_ok=True)
        save_json(manifest, {"family": args.family, "parts": str(folder.resolve()), "tasks": tasks,
                             "data": args.data, "data_dir": str(args.data_dir) if args.data_dir else None,
                             "reports": str(Path(args.reports).resolve()) if args.reports else None})
        script.write_text(sbatch_script(args.family, shape, len(tasks), folder.resolve(), manifest.resolve(),
                                        Path.cwd(), args.partition, args.time_limit, args.sbatch))
        array = slurm.submit(script, cwd=Path.cwd())
        # The ledger is written only here, by the one process that submits: no lock needed.
        ledger["submissions"].append({"array": array, "submitted": stamp, "script": script.name,
                                      "manifest": manifest.name, "tasks": tasks})
        save_json(folder / "sweep.json", ledger)
        for t in tasks:
            say(f"  {t['recipe']}: job {array}_{t['task']}, {t['runs']} run{'s' * (t['runs'] != 1)}")
        arrays.append(array)
    return arrays


def print_status(items: list[Item], say: Callable[[str], None]) -> dict[str, int]:
    from bench.core.tables import print_table

    rows = [[it.recipe.name, it.state, f"{min(it.done, it.want)}/{it.want}", it.task["job"] if it.task else "-",
             it.note] for it in items]
    print_table("sweep on SLURM", list(_COLUMNS), rows, left=len(_COLUMNS))
    counts = {s: sum(it.state == s for it in items) for s in ("queued", "running", "done", "failed", "not submitted")}
    say(", ".join(f"{s} {n}" for s, n in counts.items()))
    return counts


def run_cluster_sweep(args) -> int:
    """`bench sweep FAMILY --slurm [--wait]` or `--status`."""
    check_options(args)
    if args.runs is not None and args.runs < 1:
        raise BenchError(f"--runs {args.runs}: allowed: >= 1")
    say = lambda line: print(line, flush=True)  # noqa: E731
    folder = state_dir(args.results, args.family, args.partition)
    ledger = load_ledger(folder)
    if args.status:
        if not ledger["submissions"]:
            say(f"sweep {args.family}: nothing submitted to SLURM yet (no {folder / 'sweep.json'}); "
                f"submit with `bench sweep {args.family} --slurm`")
        items = survey(args, folder, ledger, with_fingerprints=False)
        counts = print_status(items, say)
        return 1 if counts["failed"] else 0
    folder.mkdir(parents=True, exist_ok=True)
    items = survey(args, folder, ledger, with_fingerprints=True)
    say(f"sweep {args.family} on SLURM{f' (partition {args.partition})' if args.partition else ''}: "
        f"{len(items)} recipes; state, job tables and logs in {folder}")
    arrays = submit(args, folder, ledger, items, say)
    if not arrays:
        say("nothing new to submit: every recipe has its runs or a job queued or running")
    else:
        say(f"submitted {len(arrays)} job array(s): {', '.join(arrays)}; follow with "
            f"`bench sweep {args.family} --status`")
    if not args.wait:
        return 0
    return wait_and_report(args, folder, say)


def wait_and_report(args, folder: Path, say: Callable[[str], None]) -> int:
    """Poll until no job of the sweep is queued or running, then merge, print the status and compare."""
    from bench.studies import sweep as local

    last = None
    while True:
        items = survey(args, folder, load_ledger(folder), with_fingerprints=False)
        counts = {s: sum(it.state == s for it in items) for s in ("queued", "running", "done", "failed")}
        if counts != last:
            say(f"{time.strftime('%H:%M:%S')}  " + ", ".join(f"{s} {n}" for s, n in counts.items()))
            last = counts
        if not counts["queued"] and not counts["running"]:
            break
        time.sleep(POLL_S)
    counts = print_status(items, say)
    plan = [local.Planned(it.path, it.recipe, it.fingerprint, it.done, 0) for it in items if it.fingerprint]
    rows = _sweep_rows(args.results, items, folder)
    if len(rows):
        local.report(plan, rows, args.plot_dir or Path("results/sweeps") / folder.name, say)
    return 1 if counts["failed"] or counts["not submitted"] else 0


def _sweep_rows(results: Path, items: list[Item], folder: Path):
    """The table rows the sweep stands on: exactly those its skip rule counts."""
    from bench.core.results import read_table
    from bench.system.envinfo import git_state

    import pandas as pd

    df = read_table(results)
    commit, devices = git_state().get("commit"), part_devices(folder)
    mask = pd.Series(False, index=df.index)
    for it in items:
        if it.fingerprint:
            mask |= counted(df, it.recipe.hash, it.fingerprint, commit, devices)
    return df[mask]
