"""`bench tune`: recipes compared at an equal, declared tuning budget, with the tuning's cost counted."""
from __future__ import annotations

from pathlib import Path

from bench.cli import options


def cmd_tune(args) -> int:
    from bench.core.paths import check_output
    from bench.core.results import check_table

    for flag, value in (("--trials", args.trials), ("--studies", args.studies)):
        options.check_count(flag, value)
    if args.study is not None and not 0 <= args.study < args.studies:
        from bench.core.errors import BenchError

        raise BenchError(f"--study {args.study}: allowed: 0 to {args.studies - 1} (one of the --studies)")
    if args.dir:
        check_output("--dir", args.dir, folder=True, what="tuning folder")
    if args.results:
        check_table(args.results)
    if args.reports:
        options.check_reports(args.reports)
    options.check_data(args)
    if args.slurm:
        from bench.studies.tune_slurm import submit_tune

        return submit_tune(args)
    from bench.studies.tune import run_tune

    return run_tune(args)


def register(sub) -> None:
    p = sub.add_parser(
        "tune", help="tune recipes on an equal, declared budget (AlgoPerf's rule) and count what tuning cost",
        description="For each recipe (or each of a family): --studies independent studies of --trials trials, "
                    "drawn from the recipe's search space (its `tune:` section or the family's tune.yaml) by "
                    "Optuna. A trial is an ordinary timed run with the drawn values as --set overrides. A recipe's "
                    "result is the median over studies of each study's fastest trial at the target (a study with "
                    "none is infinite); its cost is the device-hours of every trial. Resumable: run the same "
                    "command again to finish a tune that was cut short.")
    p.add_argument("target", metavar="RECIPE|FAMILY", help="a recipe name or file, or a family (folder, glob)")
    p.add_argument("--trials", type=int, default=5, help="trials per study (default 5, as AlgoPerf)")
    p.add_argument("--studies", type=int, default=3, help="studies per recipe (default 3, as AlgoPerf)")
    p.add_argument("--sampler", choices=["qmc", "tpe", "random"], default="qmc",
                   help="qmc: scrambled Sobol quasi-random search (AlgoPerf's; default); tpe; random")
    p.add_argument("--seed", type=int, default=0, help="the samplers' seed (study k uses seed*1000+k; default 0)")
    p.add_argument("--prune", action="store_true",
                   help="stop a trial once it has run longer than its study's best time to target so far: it "
                        "cannot win the study, so no result changes; its time still counts in the cost")
    p.add_argument("--dir", type=Path, metavar="FOLDER",
                   help="where the tune keeps everything (default results/tuning/<recipe or family>)")
    p.add_argument("--storage", metavar="PATH|URL",
                   help="the Optuna storage: a journal file (default <dir>/journal.log) or a database URL, e.g. "
                        "postgresql://user@host/db, for trials on several nodes")
    p.add_argument("--results", type=Path, metavar="CSV", help="the trials' rows (default <dir>/results.csv)")
    p.add_argument("--reports", type=Path, metavar="DIR", help="the trials' report bundles (default <dir>/trials)")
    options.add_set(p, "fix a field in every trial (part of the identity; not a tuned field), repeatable")
    options.add_data(p, "every trial")
    p.add_argument("--study", type=int, metavar="K", help="run only study K (0-based): one worker of several; "
                                                          "the tuned bundle is written by a run without --study")
    g = p.add_argument_group("on a SLURM cluster (one job array: a task per recipe and study)")
    g.add_argument("--slurm", action="store_true", help="submit the studies as one SLURM job array")
    g.add_argument("--partition", help="SLURM partition (default: the cluster's default)")
    g.add_argument("--time", dest="time_limit", metavar="T", help="SLURM time limit per task, e.g. 02:00:00")
    g.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                   help="extra sbatch option for the array, e.g. --sbatch=--account=proj (repeatable)")
    g.add_argument("--wait", action="store_true", help="wait for the array, then write the tuned bundles")
    p.set_defaults(func=cmd_tune)
