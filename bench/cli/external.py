"""`bench external [options] -- CMD ARGS...`: any training command, refereed by the harness's clock.

The options build a recipe of kind: external (bench.recipe.schema.External), so a command run here and the same
command kept as a recipe in recipes/ (`bench run`, `bench sweep`, SLURM) record the same rows and bundles."""
from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

from bench.cli import options
from bench.core.errors import BenchError


def default_name(command: list[str]) -> str:
    """The first argument that looks like a script (train.py -> train), else the program's name."""
    for a in command:
        p = Path(a)
        if p.suffix in (".py", ".sh") and p.stem:
            return re.sub(r"[^A-Za-z0-9_.-]+", "_", p.stem).lstrip(".-") or "external"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(command[0]).name).lstrip(".-") or "external"


def recipe_from_args(args):
    from bench.recipe import from_dict
    from bench.recipe.files import apply_overrides

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise BenchError("bench external: no command; put it after --, e.g. bench external --parse mllog -- "
                         "python train.py")
    ext = {"command": command, "parse": args.parse, "metric": args.metric, "run_start": args.run_start,
           "run_end": args.run_end, "warmup_runs": args.warmup_runs, "code": list(args.code),
           "stop_at_target": args.stop_at_target, "grace_s": args.grace, "gpus": args.gpus,
           "timeout_s": args.timeout}
    if args.cwd is not None:
        ext["cwd"] = str(Path(args.cwd).expanduser().resolve())
    data = {"name": args.name or default_name(command), "kind": "external",
            "provenance": {"source": f"bench external -- {shlex.join(command)}"},
            "target": {"value": args.target}, "runs": args.runs or 1, "data": {"source": args.dataset},
            "external": ext}
    data = apply_overrides(data, list(args.set))
    return from_dict(data, "bench external" + (f" (with --set {' '.join(args.set)})" if args.set else ""))


def cmd_external(args) -> int:
    from bench.core.results import check_table

    options.check_count("--runs", args.runs)
    check_table(args.results)
    options.check_reports(args.reports)
    r = recipe_from_args(args)
    from bench.run.runner import run_recipe

    run_recipe(r, results_path=args.results, reports_dir=args.reports)
    return 0  # as bench run: every run is recorded, whatever its status (the rows say it)


def register(sub) -> None:
    p = sub.add_parser("external", help="run any training command and referee it: time to target by the harness's "
                                        "clock, one row per run, a report bundle bench verify can check",
                       description="Start CMD in its own process group, stamp every line it prints on arrival, "
                                   "recognise its evaluations and record each run as `bench run` does (exit 0 once "
                                   "every run is recorded, whatever its status; 130 / 143 when interrupted).")
    p.add_argument("--target", type=float, default=0.94, help="target accuracy as a fraction (default 0.94)")
    p.add_argument("--parse", default="mllog", metavar="mllog|dawnbench|REGEX",
                   help="what an evaluation looks like: ':::MLLOG' lines, DAWNBench TSV rows "
                        "(epoch<TAB>hours<TAB>top1Accuracy), or a regex with a named group value (fraction) or pct "
                        "(percent), optionally epoch and time (the command's own seconds)")
    p.add_argument("--metric", default="eval_accuracy", metavar="KEY", help="mllog: the key of evaluations")
    p.add_argument("--run-start", metavar="REGEX", help="a line that starts a run (several runs in one command)")
    p.add_argument("--run-end", metavar="REGEX", help="a line that ends the current run")
    p.add_argument("--warmup-runs", type=int, default=0, metavar="N",
                   help="the command's first N runs are warm-up: no rows, their time is init")
    p.add_argument("--code", nargs="+", default=[], metavar="FILE", help="files the result depends on (sha256 "
                   "recorded and hashed into the recipe)")
    p.add_argument("--runs", type=int, help="start the command this many times (default 1)")
    p.add_argument("--name", help="the recipe name rows and bundles carry (default: the script's name)")
    p.add_argument("--dataset", default="cifar10", help="the data set the command trains on, as it names it "
                   "(recorded as declared: the harness cannot check it)")
    p.add_argument("--gpus", type=int, default=0, metavar="N", help="GPUs the command uses: device-hours and "
                   "price count them (default 0: a CPU run)")
    p.add_argument("--timeout", type=float, metavar="S", help="stop the command after S seconds (recorded)")
    p.add_argument("--stop-at-target", action="store_true", help="stop the command once the target is reached")
    p.add_argument("--grace", type=float, default=10.0, metavar="S",
                   help="seconds between SIGTERM and SIGKILL when stopping the command's process group")
    p.add_argument("--cwd", metavar="DIR", help="run the command there (default: here)")
    options.add_set(p, "override a field of the recipe this builds, e.g. --set price.usd_per_gpu_hour=2.5")
    options.add_results(p)
    options.add_reports(p)
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    p.set_defaults(func=cmd_external)
