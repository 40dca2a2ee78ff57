"""`bench speed`, `bench sweep` and `bench overhead`: work built from many steps or many runs."""
from __future__ import annotations

from pathlib import Path

from bench.cli import options


def cmd_speed(args) -> int:
    from bench.core.results import check_table
    from bench.studies.speed import run_speed

    options.check_out_file("--json", args.json, what="JSON file")
    if args.csv:
        check_table(args.csv, option="--csv", example="speed.csv")  # appended to, as the results table
    return run_speed(args)


def cmd_sweep(args) -> int:
    from bench.core.paths import check_output
    from bench.core.results import check_table

    options.check_count("--runs", args.runs)
    check_table(args.results)  # also where --slurm keeps its state (beside the table)
    options.check_reports(args.reports)
    options.check_data(args)
    check_output("--plot-dir", args.plot_dir or Path("results/sweeps"), folder=True,  # default: results/sweeps/<family>
                 what="plot folder")
    if args.slurm or args.status:  # one SLURM job per recipe instead of running here
        from bench.studies.cluster_sweep import run_cluster_sweep

        return run_cluster_sweep(args)
    from bench.studies.sweep import run_sweep

    return run_sweep(args)


def cmd_overhead(args) -> int:
    from bench.studies.overhead import run_overhead

    options.check_recipe_arg(args.recipe)
    options.check_data(args)
    options.check_out_file("--json", args.json, what="JSON file")
    return run_overhead(args)


def register(sub) -> None:
    p = sub.add_parser(
        "speed", help="time training steps of recipes' models on synthetic data (no accuracy)",
        description="Median training-step time, images/s, forward/backward split, peak memory, FLOPs and "
                    "MFU of each recipe's model on synthetic inputs. Flags override the recipe, so a GPU "
                    "(fp16) recipe can be profiled on a CPU with --device cpu --precision bf16.")
    p.add_argument("recipes", nargs="+", metavar="RECIPE",
                   help="recipe names or files; a family name, folder or glob stands for its members")
    p.add_argument("--batch-sizes", help="comma-separated, e.g. 64,128,256 (default: the recipe's per-device batch)")
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: the recipe's hardware.device")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], help="default: the recipe's")
    p.add_argument("--memory-format", choices=["channels_last", "contiguous"], help="default: the recipe's")
    p.add_argument("--steps", type=int, default=20, help="timed steps; the median is reported (default 20)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    options.add_set(p)
    p.add_argument("--json", metavar="PATH", help="write the rows as a JSON list")
    p.add_argument("--csv", metavar="PATH", help="append the rows, with environment fields, to a CSV "
                                                 "(e.g. results/speed.csv)")
    p.add_argument("--find-max-batch", action="store_true",
                   help="the largest batch that fits: double from the (first) batch size until out of "
                        "memory, then back off; reports that batch")
    p.add_argument("--max-batch", type=int, default=65536, help="--find-max-batch stops here (default 65536)")
    p.set_defaults(func=cmd_speed)

    p = sub.add_parser(
        "sweep", help="run every recipe of a family (resumable), then compare them",
        description="Runs each recipe of a family (recipes/<family>/*.yaml without _* bases, a folder, or a "
                    "glob). A recipe is skipped when the results table already has --runs non-aborted rows "
                    "with the same recipe hash, git commit, dataset fingerprint and device, unless --force.")
    p.add_argument("family", metavar="FAMILY_OR_GLOB", help="e.g. bottleneck, recipes/wrn/, 'recipes/wrn/d22_*.yaml'")
    p.add_argument("--runs", type=int, help="runs per recipe (default: each recipe's `runs`)")
    options.add_set(p, "override a field in every recipe (part of the hash), repeatable")
    options.add_results(p)
    options.add_reports(p)
    options.add_data(p, "every recipe")
    p.add_argument("--force", action="store_true", help="run every recipe even when the table has its runs")
    p.add_argument("--plot-dir", type=Path, help="plots go here (default: results/sweeps/<family>)")
    g = p.add_argument_group("on a SLURM cluster (one job per recipe; see launch/README.md)")
    g.add_argument("--slurm", action="store_true", help="submit one SLURM job per recipe instead of running here")
    g.add_argument("--status", action="store_true", help="show the sweep's SLURM jobs: queued, running, done, failed")
    g.add_argument("--partition", help="SLURM partition for the jobs (default: the cluster's default)")
    g.add_argument("--gpus-per-job", type=int, metavar="N",
                   help="GPUs per job, one process each (default: the recipe's processes, 0 for device: cpu)")
    g.add_argument("--time", dest="time_limit", metavar="T", help="SLURM time limit per job, e.g. 02:00:00")
    g.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                   help="extra sbatch option for every job, e.g. --sbatch=--account=proj (repeatable)")
    g.add_argument("--wait", action="store_true", help="after submitting, wait for the jobs, merge, compare")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "overhead", help="training speed of a bare loop vs the harness's fit loop, same model and batches",
        description="Runs the recipe's model, loader and optimiser step in a bare loop (forward, backward, "
                    "step; no events, telemetry or progress) and through bench.train.loop.fit as `bench run` "
                    "drives it, in one process on the same batches, alternating rounds; prints images/s of each "
                    "(median round) and harness / bare.")
    p.add_argument("recipe", metavar="RECIPE", help="a recipe name or file")
    options.add_data(p, "the measurement")
    p.add_argument("--steps", type=int, default=20, help="training steps per round (default 20)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds of each loop, alternating (default 3)")
    options.add_set(p)
    p.add_argument("--json", metavar="FILE", help="write the result (recipe, device, bare_images_per_s, "
                                                 "harness_images_per_s, ratio, and how it was measured)")
    p.set_defaults(func=cmd_overhead)
