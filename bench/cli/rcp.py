"""`bench rcp make|show|verify|check`: reference convergence points, as MLPerf reviews submissions against them.

    bench rcp make RECIPE --runs N               train N runs (a bundle, rows), then make the recipe's points
    bench rcp make --from-bundles DIR [DIR...]   the points from bundles that verify (committed ones, say)
    bench rcp show FILE                          the points, the pruned set and what a set of N runs must reach
    bench rcp verify FILE                        re-derive every point from its bundles
    bench rcp check BUNDLE [--rcp PATH]          the convergence check alone (bench verify prints it too)

Reference files go to results/rcp/<recipe>.json unless --out says (bench.report.convergence, bench.core.rcp).
"""
from __future__ import annotations

from pathlib import Path

from bench.cli import options
from bench.core.errors import BenchError, VerifyError

RCP_HELP = ("a reference file, or a folder of them (default results/rcp: the file for the bundle's recipe, data "
            "set and target)")


def check_rcp_arg(path) -> None:
    """--rcp: an existing reference file or folder (the default folder may be absent: no references yet)."""
    from bench.core.paths import check_input

    if path is None:
        return
    if not Path(path).exists():
        raise BenchError(f"--rcp {path}: does not exist; name a reference file (results/rcp/<recipe>.json) or a "
                         f"folder of them, or make one with `bench rcp make`")
    check_input("--rcp", path, folder=Path(path).is_dir(), what="reference file or folder")


def _bundle(path) -> Path:
    """A report bundle argument: an existing, readable folder (as bench.cli.reports.check_bundle, which imports
    this module)."""
    from bench.core.paths import check_input

    what = "report bundle directory (e.g. results/reports/<recipe>-<time>-<id>)"
    if not Path(path).exists():
        raise BenchError(f"{path}: no such bundle directory; name an existing {what}")
    check_input("bundle", path, folder=True, what=what)
    return Path(path)


def cmd_make(args) -> int:
    from bench.core import rcp
    from bench.core.paths import check_output
    from bench.core.results import atomic_write, check_table
    from bench.report import convergence

    if bool(args.recipe) == bool(args.from_bundles):
        raise BenchError("bench rcp make: name a recipe to train (RECIPE --runs N) or the bundles to read "
                         "(--from-bundles DIR...), one of the two")
    if args.from_bundles and (args.runs is not None or args.set):
        raise BenchError("--runs and --set train new runs; with --from-bundles the bundles' runs are the references")
    for b in args.from_bundles or []:
        _bundle(b)
    if args.recipe:
        from bench import recipe as recipes

        options.check_count("--runs", args.runs, least=rcp.MIN_RUNS)
        options.check_recipe_arg(args.recipe)
        check_table(args.results)
        options.check_reports(args.reports)
        options.check_data(args)
        r = recipes.load(args.recipe, args.set)
        if (args.runs or r.runs) < rcp.MIN_RUNS:
            raise BenchError(f"--runs {args.runs or r.runs}: a reference point needs at least {rcp.MIN_RUNS} runs "
                             f"(MLPerf asks for twice a submission's runs); pass --runs {2 * rcp.MIN_RUNS} or more")
        if r.world_size > 1:
            raise BenchError(f"{r.name}: {r.world_size} processes: run it with `bench run` (through torchrun), then "
                             f"`bench rcp make --from-bundles` on its bundle")
        name = r.name
    else:
        from bench.report.summary import read_recipe

        name = read_recipe(Path(args.from_bundles[0]))[0].get("name") or "recipe"
    out = Path(args.out) if args.out is not None else convergence.DEFAULT_DIR / f"{name}.json"
    check_output("--out", out, what="reference file (JSON)", example="recipe.json")
    existing = rcp.read(out) if out.is_file() else None  # a broken file is refused before anything trains
    if args.recipe:
        from bench.run.runner import run_recipe

        _, bundle = run_recipe(r, data=args.data, data_dir=args.data_dir, results_path=args.results,
                               runs=args.runs, reports_dir=args.reports)
        if bundle is None:
            raise BenchError(f"{r.name}: the runs wrote no bundle; nothing to make references from")
        bundles = [bundle]
        command = f"bench rcp make {args.recipe} --runs {args.runs or r.runs}" + "".join(
            f" --set {s}" for s in args.set)
    else:
        bundles = [Path(b) for b in args.from_bundles]
        command = "bench rcp make --from-bundles " + " ".join(convergence.shown_path(b) for b in bundles)
    doc = convergence.make(bundles, existing, args.replace, command)
    text = rcp.dumps(doc)
    atomic_write(out, lambda f: f.write(text))
    for p in doc["points"]:
        print(f"batch size {p['batch_size']}: {p['n_runs']} runs ({p['n_converged']} converged), olympic mean "
              f"{p['olympic_mean']:g} epochs, spread {p['stdev']:.4g}; {p['note']}")
    print(out)
    return 0


def cmd_show(args) -> int:
    from bench.core import rcp
    from bench.core.paths import check_input

    check_input("FILE", args.file, what="reference file (results/rcp/<recipe>.json)")
    doc = rcp.read(args.file)
    tg = doc["target"]
    print(f"{doc['recipe']}: data {doc['dataset'].get('name')} ({str(doc['dataset'].get('fingerprint'))[:12]}), "
          f"target {tg['metric']} {'>=' if tg['mode'] == 'max' else '<='} {tg['value']:g}")
    kept = {p.batch_size for p in rcp.prune(rcp.points_of(doc))}
    for p, pt in zip(doc["points"], rcp.points_of(doc)):
        runs = args.runs or max(rcp.MIN_RUNS, p["n_runs"] // 2)
        low = rcp.lowest_acceptable_mean(pt.mean, pt.stdev, pt.n_ref(runs), runs - 2 * rcp.DROPPED)
        epochs = ", ".join("did not converge" if r["epochs"] is None else f"{r['epochs']:g}" for r in p["runs"])
        print(f"batch size {p['batch_size']}{'' if p['batch_size'] in kept else ' (pruned: slower than its neighbours)'}: "
              f"epochs {epochs}; olympic mean {p['olympic_mean']:g}, spread {p['stdev']:.4g}, recipe "
              f"{p.get('recipe_hash')}; a set of {runs} runs needs an olympic mean of at least {low:.4f}")
        print(f"  {p['note']}")
    return 0


def cmd_verify(args) -> int:
    from bench.core import rcp
    from bench.core.paths import check_input
    from bench.report import convergence

    check_input("FILE", args.file, what="reference file (results/rcp/<recipe>.json)")
    doc = rcp.read(args.file)
    problems = convergence.rederive(doc, str(args.file))
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise VerifyError(f"{args.file}: does not follow from its bundles ({len(problems)} problem"
                          f"{'s' * (len(problems) != 1)}):\n{lines}")
    n = sum(len(p["bundles"]) for p in doc["points"])
    print(f"verified: {len(doc['points'])} point(s) re-derived from {n} bundle(s)")
    return 0


def run_check(bundle: Path, where, say=print):
    """The convergence check of a verified bundle, printed; returns the Check (bench verify and submit use it)."""
    from bench.report import convergence

    c = convergence.check(bundle, where)
    for line in convergence.lines(c):
        say(line)
    return c


def cmd_check(args) -> int:
    bundle = _bundle(args.dir)
    check_rcp_arg(args.rcp)
    c = run_check(bundle, args.rcp)
    if c.failed:
        raise VerifyError(f"{bundle}: convergence: {c.verdict.state}: not accepted without review (the numbers above)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("rcp", help="reference convergence points: make them from runs, check bundles against them "
                                   "(MLPerf's RCP check)")
    s = p.add_subparsers(dest="rcp_command", required=True, metavar="ACTION")

    m = s.add_parser("make", help="make a recipe's reference points: train RECIPE --runs N, or read --from-bundles")
    m.add_argument("recipe", nargs="?", help="recipe name or YAML path to train (with --runs)")
    m.add_argument("--runs", type=int, default=None, help="runs to train (default: the recipe's; at least 3)")
    m.add_argument("--from-bundles", nargs="+", metavar="DIR", help="report bundles whose runs are the references "
                                                                    "(each must verify)")
    m.add_argument("--out", type=Path, default=None,
                   help="reference file (default results/rcp/<recipe>.json); an existing one gets the new batch "
                        "size's point")
    m.add_argument("--replace", action="store_true", help="replace the point at a batch size the file already has")
    options.add_set(m)
    options.add_data(m, "the reference runs")
    options.add_results(m)
    options.add_reports(m)
    m.set_defaults(func=cmd_make)

    sh = s.add_parser("show", help="a reference file's points, the pruned set and the mean a set must reach")
    sh.add_argument("file", type=Path)
    sh.add_argument("--runs", type=int, default=None,
                    help="runs in the set to be checked (default: the most each point suits, at least 3)")
    sh.set_defaults(func=cmd_show)

    v = s.add_parser("verify", help="re-derive every point of a reference file from its bundles")
    v.add_argument("file", type=Path)
    v.set_defaults(func=cmd_verify)

    c = s.add_parser("check", help="check a bundle's convergence against its recipe's reference points")
    c.add_argument("dir", type=Path, help="report bundle directory")
    c.add_argument("--rcp", type=Path, default=None, help=RCP_HELP)
    c.set_defaults(func=cmd_check)

