"""`bench` / `python -m bench`: one subcommand per job. Heavy imports (torch, DALI) happen inside the
handlers, so `bench validate` and `--help` stay quick and work without a GPU stack."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench.core.errors import BenchError

DEFAULT_GPU_RECIPE = "wrn22"
DEFAULT_CPU_RECIPE = "cpu_quick"


def default_recipe(say=print) -> str:
    import torch

    if torch.cuda.is_available():
        return DEFAULT_GPU_RECIPE
    say(f"no CUDA GPU on this machine: falling back to the CPU recipe {DEFAULT_CPU_RECIPE!r} "
        f"(the GPU default is {DEFAULT_GPU_RECIPE!r}; name one with `make bench RECIPE=...`)")
    return DEFAULT_CPU_RECIPE


def cmd_run(args) -> int:
    from bench import recipe as recipes

    name = args.recipe or default_recipe()
    r = recipes.load(name, args.set)
    if args.runs is not None and args.runs < 1:
        raise BenchError(f"--runs {args.runs}: allowed: >= 1")
    from bench.system import dist

    dctx = dist.detect()
    if r.world_size > 1 and dctx.launcher == "none":
        if r.hardware.nodes > 1:
            raise BenchError(f"hardware.nodes: {r.hardware.nodes} nodes need a cluster launcher: "
                             f"see launch/README.md (launch/torchrun.sh or launch/slurm.sbatch)")
        from bench.system import machine

        machine.check(r, machine.detect_machine())  # refuse before spawning anything
        print(f"{r.name}: {r.world_size} processes requested: re-launching through torchrun", flush=True)
        return dist.relaunch_with_torchrun(sys.argv[1:] if args.argv is None else args.argv,
                                           r.hardware.procs_per_node)
    from bench.run.runner import run_recipe

    run_recipe(r, data=args.data, data_dir=args.data_dir, results_path=args.results, runs=args.runs,
               reports_dir=args.reports)
    return 0


def cmd_validate(args) -> int:
    from bench import recipe as recipes

    failed = 0
    for f in args.files:
        try:
            r = recipes.load(f)
            print(f"ok    {f}  ({r.name}, {r.model.arch}, hash {r.hash})")
        except BenchError as exc:
            failed += 1
            print(f"FAIL  {exc}", file=sys.stderr)
    if failed:
        print(f"{failed} of {len(args.files)} recipes invalid", file=sys.stderr)
    return 2 if failed else 0


def cmd_show(args) -> int:
    import yaml

    from bench import recipe as recipes

    r = recipes.load(args.recipe, args.set)
    print(f"# {r.name}  hash {r.hash}")
    print(yaml.safe_dump(r.to_dict(), sort_keys=False), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench", description="Time-to-accuracy benchmarks for deep-learning training.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="train a recipe to its target accuracy, timed; append the result row")
    run.add_argument("recipe", nargs="?", help="recipe name or YAML path (default: GPU or CPU default recipe)")
    run.add_argument("--runs", type=int, help="number of runs (default: the recipe's `runs`)")
    run.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                     help="override a recipe field, e.g. --set optim.epochs=5 (repeatable)")
    run.add_argument("--data", help="dataset source for this run: 'cifar10', or a folder / archive path")
    run.add_argument("--data-dir", type=Path, default=None,
                     help="dataset cache directory (default: $BENCH_DATA or ~/.cache/bench/data)")
    run.add_argument("--results", type=Path, default=Path(os.environ.get("BENCH_RESULTS", "results/results.csv")),
                     help="results table to append to (default: results/results.csv)")
    run.add_argument("--reports", type=Path, default=Path("results/reports"),
                     help="where the report bundle directory goes (default: results/reports)")
    run.set_defaults(func=cmd_run, argv=None)

    val = sub.add_parser("validate", help="check recipe files without running them")
    val.add_argument("files", nargs="+")
    val.set_defaults(func=cmd_validate)

    show = sub.add_parser("show", help="print a recipe fully resolved (extends and --set applied)")
    show.add_argument("recipe")
    show.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE")
    show.set_defaults(func=cmd_show)

    for module in ("bench.data.commands", "bench.data.loader_bench", "bench.system.envinfo", "bench.report.commands",
                   "bench.studies.speed", "bench.studies.sweep", "bench.site.commands"):
        __import__(module, fromlist=["register"]).register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
