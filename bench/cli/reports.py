"""`bench report|verify|compare|submit|env`: what runs left behind, checked, compared and packed."""
from __future__ import annotations

from pathlib import Path

from bench.cli import options
from bench.core.errors import BenchError, VerifyError

BUNDLE = "report bundle directory (e.g. results/reports/<recipe>-<time>-<id>)"


def check_bundle(path, writes: bool = False) -> Path:
    """A report bundle argument: an existing, readable folder; `writes`: one the command rewrites files in."""
    from bench.core.paths import check_input, check_output

    if not Path(path).exists():
        raise BenchError(f"{path}: no such bundle directory; name an existing {BUNDLE}")
    check_input("bundle", path, folder=True, what=BUNDLE)
    if writes:
        check_output("bundle", path, folder=True, what=BUNDLE)
    return Path(path)


def cmd_report(args) -> int:
    from bench.report import finalize, manifest
    from bench.report.summary import require_dir

    bundle = require_dir(check_bundle(args.dir, writes=True))
    has_manifest = (bundle / manifest.NAME).is_file()
    if not has_manifest and not args.no_manifest:
        raise VerifyError(f"{bundle}: no MANIFEST, so nothing shows the raw files are as the run left them. If this "
                          f"is a bundle whose run ended before it was finalised, rerun with --no-manifest to "
                          f"build the report and a MANIFEST from the files as they are now.")
    if has_manifest:
        problems = manifest.check(bundle, raw_only=True)
        if problems:
            lines = "\n".join(f"  - {p}" for p in problems)
            raise VerifyError(f"{bundle}: refusing to regenerate the report: the raw files do not match the "
                              f"MANIFEST ({len(problems)} problem{'s' * (len(problems) != 1)}):\n{lines}")
    s = finalize(bundle)
    print(f"regenerated summary.json, report.md, {len(manifest.PLOTS)} plots and {2 * len(s['runs'])} DAWNBench "
          f"files from {len(s['runs'])} run log(s); MANIFEST rewritten")
    print(bundle / "report.md")
    return 0


def cmd_verify(args) -> int:
    check_bundle(args.dir)
    if args.rerun:
        from bench.studies.rerun import rerun

        return rerun(Path(args.dir), runs=args.runs)
    if args.runs != 1:
        raise BenchError("--runs only applies with --rerun")
    from bench.report import tuned

    if tuned.is_tuned(Path(args.dir)):  # a tuned result (bench tune): its score and cost from its trials
        problems = tuned.verify(Path(args.dir))
        if problems:
            from bench.core.errors import VerifyError

            raise VerifyError(f"{args.dir}: does not verify ({len(problems)} problem"
                              f"{'s' * (len(problems) > 1)}):\n" + "\n".join(f"  {p}" for p in problems))
        print(f"verified: tuned result, score and cost recomputed from its trials")
        return 0
    from bench.cli.rcp import check_rcp_arg, run_check
    from bench.report import verify

    check_rcp_arg(args.rcp)
    out = verify.verify(Path(args.dir))
    print(f"verified: {out.runs} runs, {out.figures} figures")
    c = run_check(Path(args.dir), args.rcp)  # against the recipe's reference convergence points (bench rcp)
    if c.failed:
        from bench.core import errors  # (VerifyError: this function binds that name itself, above)

        raise errors.VerifyError(f"{args.dir}: its figures verify, but convergence: {c.verdict.state} than the "
                                 f"references: not accepted without review (the numbers above)")
    return 0


def cmd_compare(args) -> int:
    from bench.core.paths import check_input
    from bench.report import compare

    if args.tuned is not None:  # tuned results (bench tune): boards of their own, never mixed with rows
        from bench.report import tuned_board

        dirs = args.tuned or [Path("results/tuning")]
        for d in dirs:
            check_input("--tuned", d, folder=True, what="folder of tuned results",
                        fix="run `bench tune RECIPE|FAMILY` first (it writes results/tuning/<name>/tuned/)")
        plot = None if args.no_plot else (args.plot or dirs[0] / "profile.png")
        if plot is not None:
            options.check_out_file("--plot", plot, what="PNG file")
        return tuned_board.run(dirs, plot)

    check_input("--results", args.results, what="results table",
                fix="run `bench run` first, or pass the results table with --results PATH")
    if args.plot is None:  # beside the table it is drawn from (results/compare.png for the default table)
        args.plot = Path(args.results).parent / "compare.png"
    if not args.no_plot:
        options.check_out_file("--plot", args.plot, what="PNG file")
    options.check_out_file("--json", args.json, what="JSON file")
    if args.by == "commit" or args.recipe:  # one recipe's history: bench.report.history
        from bench.report import history

        if args.by != "commit":
            raise BenchError(f"bench compare {args.recipe}: a recipe name goes with --by commit (its history); "
                             f"to rank some recipes, pass --recipes {args.recipe}")
        return history.run(args.results, args.recipe)
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()] if args.recipes else None
    return compare.run(args.results, args.target, recipes, None if args.no_plot else args.plot, args.json)


def cmd_race(args) -> int:
    from bench.report import gan_plots, plots, summary

    for d in args.dirs:
        check_bundle(d)
    options.check_out_file("--out", args.out, what="PNG file")
    sums = [summary.compute(summary.load(Path(d))) for d in args.dirs]
    bad = [d for d, s in zip(args.dirs, sums) if s.get("kind") != "gan"]
    if bad:
        raise BenchError(f"{', '.join(map(str, bad))}: not a GAN bundle (kind: gan); race plots is_judge over time")
    with plots.default_style():
        gan_plots.race(sums, args.out)
    print(args.out)
    return 0


def cmd_submit(args) -> int:
    from bench.core.paths import check_output
    from bench.report.exports import submitter
    from bench.report.submit import submit

    check_bundle(args.dir)
    check_output("--out", args.out, folder=True, what="submission folder")
    who = submitter({"author": args.author, "email": args.email, "code_url": args.code_url, "log_url": args.log_url})
    from bench.cli.rcp import check_rcp_arg

    check_rcp_arg(args.rcp)
    submit(Path(args.dir), Path(args.out), args.system, args.force, who, rcp=args.rcp, rcp_bypass=args.rcp_bypass)
    return 0


def cmd_env(args) -> int:
    import json

    from bench.core.results import atomic_write
    from bench.system.envinfo import capture, format_lines

    if args.json_path != "-":
        options.check_out_file("--json", args.json_path, what="JSON file")
    info = capture(args.device)
    if args.json_path is None:
        print("\n".join(format_lines(info)))
    elif args.json_path == "-":
        print(json.dumps(info, indent=2))
    else:
        atomic_write(args.json_path, lambda f: f.write(json.dumps(info, indent=2) + "\n"))
        print(f"wrote {args.json_path}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("report", help="rebuild a bundle's summary, report.md and plots from its raw files")
    p.add_argument("dir", type=Path, help="report bundle directory")
    p.add_argument("--no-manifest", action="store_true",
                   help="the bundle has no MANIFEST yet (its run ended before finalising): build one")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("verify", help="check a bundle's MANIFEST and recompute its figures from the event logs")
    p.add_argument("dir", type=Path, help="report bundle directory")
    p.add_argument("--rerun", action="store_true",
                   help="train the recipe again here and test the new time(s) against the reported ones (a GAN "
                        "bundle: its best scores too, bench/studies/rerun_scores.py)")
    p.add_argument("--runs", type=int, default=1, help="new runs for --rerun (default 1)")
    p.add_argument("--rcp", type=Path, default=None,
                   help="reference convergence points: a reference file, or a folder of them (default results/rcp)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("compare", help="rank recipes by mean time-to-target from the results table")
    options.add_results(p)
    p.add_argument("--target", type=float, default=None, help="only rows with this target, e.g. 0.94")
    p.add_argument("--recipes", default=None, help="comma-separated recipe names to include")
    p.add_argument("--plot", type=Path, default=None,
                   help="Pareto plot path (default: compare.png beside the --results table: results/compare.png)")
    p.add_argument("--no-plot", action="store_true", help="do not write the Pareto plot")
    p.add_argument("--json", type=Path, default=None, help="also write the ranked rows as JSON here")
    p.add_argument("--by", choices=("recipe", "commit"), default="recipe",
                   help="recipe (default): rank recipe groups; commit: RECIPE's time to target per commit, oldest "
                        "first, each with its change from the one before and Welch's t-test")
    p.add_argument("recipe", nargs="?", default=None, help="with --by commit: the recipe whose history to show")
    p.add_argument("--tuned", nargs="*", type=Path, default=None, metavar="DIR",
                   help="rank tuned results (bench tune) instead, a table per board and budget, under these folders "
                        "(default results/tuning); never mixed with single-setting rows")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("race", help="is_judge against wall-clock time for GAN bundles (the WGAN-GP paper's "
                                    "figure 3, in the judge's space)")
    p.add_argument("dirs", nargs="+", help="report bundles of GAN runs")
    p.add_argument("--out", type=Path, default=Path("race.png"), help="the PNG to write (default: race.png)")
    p.set_defaults(func=cmd_race)

    p = sub.add_parser("submit", help="verify a bundle and pack it into an MLPerf-style submission tree")
    p.add_argument("dir", type=Path, help="report bundle directory")
    p.add_argument("--system", default=None, help="system name (default: derived from env.json)")
    p.add_argument("--out", type=Path, default=Path("results/submissions"),
                   help="submission root (default: results/submissions)")
    p.add_argument("--force", action="store_true", help="replace an existing submission of this recipe and system")
    p.add_argument("--author", help="DAWNBench `author` (default: the submitter file, $BENCH_SUBMITTER or "
                                    "~/.config/bench/submitter.yaml)")
    p.add_argument("--email", help="DAWNBench `authorEmail`")
    p.add_argument("--code-url", help="DAWNBench `codeURL`: where the code that ran is published")
    p.add_argument("--log-url", help="base URL where this submission tree will be published: each DAWNBench "
                                     "JSON's `logFilename` points at its event log there")
    p.add_argument("--rcp", type=Path, default=None,
                   help="reference convergence points: a reference file, or a folder of them (default results/rcp)")
    p.add_argument("--rcp-bypass", action="store_true",
                   help="pack a bundle that converges faster than its references anyway, marked for review "
                        "(MLPerf's --rcp_bypass)")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("env", help="show the environment a run would record",
                       description="Print the software, hardware and git state recorded with every run.")
    p.add_argument("--json", metavar="PATH", dest="json_path", help="write it as JSON to PATH instead ('-' for stdout)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="device the run would use (default: auto)")
    p.set_defaults(func=cmd_env)
