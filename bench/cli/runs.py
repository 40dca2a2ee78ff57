"""`bench run`, `bench validate`, `bench show`: a recipe, checked, shown, or trained to its target."""
from __future__ import annotations

import sys
from pathlib import Path

from bench.cli import options
from bench.core.errors import BenchError

DEFAULT_GPU_RECIPE = "wrn22"
DEFAULT_CPU_RECIPE = "cpu_quick"


class Ended(BenchError):
    """Code the run called ended the process (SystemExit) mid-run: exit 1, as a crash, never the exit code 0 that
    SystemExit(0) would give; the run's records have landed it as aborted."""

    exit_code = 1


def default_recipe(cuda_available: bool | None = None, say=print) -> str:
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    if cuda_available:
        return DEFAULT_GPU_RECIPE
    say(f"no CUDA GPU on this machine: falling back to the CPU recipe {DEFAULT_CPU_RECIPE!r} "
        f"(the GPU default is {DEFAULT_GPU_RECIPE!r}; name one with `make bench RECIPE=...`)")
    return DEFAULT_CPU_RECIPE


def check_save_model(path) -> None:
    """--save-model PATH: the weights go to PATH and their metadata to PATH with the suffix .json."""
    from bench.core.paths import check_output

    if path is None:
        return
    path = Path(path)
    check_output("--save-model", path, what="model file", example="model.pt")
    meta = path.with_suffix(".json")
    if meta == path:
        raise BenchError(f"--save-model {path}: the metadata is written to {meta}, which would overwrite the weights; "
                         f"name the weights file with another suffix, e.g. --save-model {path.with_suffix('.pt')}")
    if meta.is_dir():
        raise BenchError(f"--save-model {path}: its metadata file {meta} is a directory; move it away or name "
                         f"another model file")


def check_run_args(args) -> None:
    """Every path and count of `bench run`, checked before any work."""
    from bench.core.results import check_table

    options.check_count("--runs", args.runs)
    options.check_recipe_arg(args.recipe)
    check_table(args.results)
    options.check_reports(args.reports)
    check_save_model(args.save_model)
    options.check_data(args)


def cmd_run(args) -> int:
    from bench import recipe as recipes

    check_run_args(args)  # before anything is loaded, spawned or trained
    r = recipes.load(args.recipe or default_recipe(), args.set)
    from bench.system import dist, launch

    if r.world_size > 1 and dist.detect().launcher == "none":
        if r.hardware.nodes > 1:
            raise BenchError(f"hardware.nodes: {r.hardware.nodes} nodes need a cluster launcher: "
                             f"see launch/README.md (launch/torchrun.sh or launch/slurm.sbatch)")
        from bench.system import machine

        machine.check(r, machine.detect_machine())  # refuse before spawning anything
        print(f"{r.name}: {r.world_size} processes requested: re-launching through torchrun", flush=True)
        return launch.relaunch_with_torchrun(sys.argv[1:] if args.argv is None else args.argv,
                                             r.hardware.procs_per_node)
    from bench.models import user
    from bench.run.runner import run_recipe

    try:
        run_recipe(r, data=args.data, data_dir=args.data_dir, results_path=args.results, runs=args.runs,
                   reports_dir=args.reports, save_model=args.save_model)
    except SystemExit as exc:  # code the run called (a model of the user's own) ended the process
        raise Ended(f"{r.name}: {'the model ' + user.label(r.model.arch) if user.is_user(r.model.arch) else 'code'} "
                    f"ended the process during the run (SystemExit({exc.code!r})); a run that started is recorded "
                    f"as aborted in {args.results}; a network must return its output, never call sys.exit() or "
                    f"raise SystemExit") from None
    return 0


def cmd_validate(args) -> int:
    from bench import recipe as recipes

    failed = 0
    for f in args.files:
        try:
            options.check_recipe_arg(f)
            if Path(f).name in recipes.SPACE_FILES:  # a family's search space (bench tune), checked per member
                print(f"ok    {f}  {_family_space(Path(f))}")
                continue
            r = recipes.load(f)
            print(f"ok    {f}  ({r.name}, {r.model.arch}, hash {r.hash}){_space(f)}")
        except BenchError as exc:
            failed += 1
            print(f"FAIL  {exc}", file=sys.stderr)
    if failed:
        print(f"{failed} of {len(args.files)} recipes invalid", file=sys.stderr)
    return 2 if failed else 0


def _space(f) -> str:
    from bench.recipe.space import load_space

    space = load_space(f)
    n = len(space.dims) if space else 0
    return f"  tune: {n} field{'s' * (n != 1)}, space {space.hash}" if space else ""


def _family_space(path: Path) -> str:
    """A tune.yaml is valid when every recipe beside it makes a valid space with it."""
    from bench import recipe as recipes
    from bench.recipe.space import load_space

    members = recipes.family_files(str(path.parent))
    hashes = {load_space(m).hash for m in members}
    return f"(search space for {len(members)} recipe{'s' * (len(members) != 1)}: {', '.join(sorted(hashes))})"


def cmd_show(args) -> int:
    import yaml

    from bench import recipe as recipes

    options.check_recipe_arg(args.recipe)
    r = recipes.load(args.recipe, args.set)
    print(f"# {r.name}  hash {r.hash}")
    print(yaml.safe_dump(r.to_dict(), sort_keys=False), end="")
    return 0


def register(sub) -> None:
    run = sub.add_parser("run", help="train a recipe to its target accuracy, timed; append the result row")
    run.add_argument("recipe", nargs="?", help="recipe name or YAML path (default: GPU or CPU default recipe)")
    run.add_argument("--runs", type=int, help="number of runs (default: the recipe's `runs`)")
    options.add_set(run)
    options.add_data(run)
    options.add_results(run)
    options.add_reports(run)
    run.add_argument("--save-model", type=Path, metavar="PATH",
                     help="keep the (last) run's trained weights in PATH, with PATH.json naming its data, "
                          "accuracy, recipe hash and the command (how the GAN judge is made)")
    run.set_defaults(func=cmd_run, argv=None)

    val = sub.add_parser("validate", help="check recipe files without running them; a model of your own (model.arch: file.py:function or package.module:function) is imported to check model.params against its signature")
    val.add_argument("files", nargs="+")
    val.set_defaults(func=cmd_validate)

    show = sub.add_parser("show", help="print a recipe fully resolved (extends and --set applied)")
    show.add_argument("recipe")
    options.add_set(show)
    show.set_defaults(func=cmd_show)
