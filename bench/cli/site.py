"""`bench site`: the leaderboard website. Heavy imports (pandas, Jinja2) happen inside the handler."""
from __future__ import annotations

import tempfile
from pathlib import Path

from bench.core.errors import BenchError


def check_inputs(args) -> None:
    """Each folder and table named explicitly must be there and readable (--out: bench.site.build.check_out)."""
    from bench.core.paths import check_input

    for path in args.results or []:
        check_input("--results", path, what="results table",
                    fix="run `bench run` first, or pass the results table with --results PATH")
    for path in args.reports or []:
        check_input("--reports", path, folder=True, what="folder of report bundles, e.g. results/reports")
    for path in args.studies or []:
        check_input("--studies", path, folder=True, what="folder of studies, e.g. results/studies")
    for path in args.reported or []:
        check_input("--reported", path, what="reported table, e.g. results/reported/cifar10_reported.csv",
                    fix="`bench import dawnbench --out PATH` writes one")
    if args.links is not None:
        check_input("--links", args.links, what="YAML file of recipe -> reported row links")
    for path in args.tuned or []:
        check_input("--tuned", path, folder=True, what="folder of tuned results, e.g. results/tuning",
                    fix="`bench tune RECIPE|FAMILY` writes results/tuning/<name>/")


def cmd_site(args) -> int:
    from bench.site.build import build

    if args.out is None and not args.serve:
        raise BenchError("bench site: --out DIR is required (where the site is written), unless --serve is "
                         "given (then a temporary folder is used)")
    if not 0 <= args.port <= 65535:
        raise BenchError(f"--port {args.port}: allowed: 0-65535 (0 picks a free port)")
    check_inputs(args)
    with tempfile.TemporaryDirectory(prefix="bench-site-") as tmp:
        out = args.out or Path(tmp) / "site"
        extra = {} if args.links is None else {"links": args.links}
        extra.update({} if args.tuned is None else {"tuned": args.tuned})
        built = build(out, args.results, args.reports, args.studies, args.reported, **extra)
        groups = sum(len(b.groups) for b in built.boards)
        print(f"site: {len(built.boards)} leaderboard(s), {groups} result group(s), {len(built.bundles)} report "
              f"bundle(s) ({sum(not b.verified for b in built.bundles)} failing bench verify), "
              f"{len(built.studies)} stud{'y' if len(built.studies) == 1 else 'ies'}, "
              f"{len(built.extras.reported) if built.extras else 0} reported result(s) on their own board, "
              f"{sum(len(b['rows']) for b in built.tuned or [])} tuned result(s): "
              f"{built.pages} pages")
        print(Path(out) / "index.html", flush=True)
        if args.serve:
            from bench.site.serve import serve

            serve(Path(out), args.port)
    return 0


def register(sub) -> None:
    p = sub.add_parser("site", help="build the leaderboard website (static files) from the results and bundles")
    p.add_argument("--results", type=Path, action="append", default=None, metavar="CSV",
                   help="results table (repeatable; default: results/results.csv and every results/*/results.csv)")
    p.add_argument("--reports", type=Path, action="append", default=None, metavar="DIR",
                   help="folder of report bundles (repeatable; default: results/reports and every results/*/reports)")
    p.add_argument("--studies", type=Path, action="append", default=None, metavar="DIR",
                   help="folder of studies, <name>.md + <name>/ (repeatable; default: results/studies)")
    p.add_argument("--reported", type=Path, action="append", default=None, metavar="CSV",
                   help="table of results others reported, shown on its own board, never ranked with measured "
                        "rows (repeatable; default: results/reported/*.csv)")
    p.add_argument("--links", type=Path, default=None, metavar="YAML",
                   help="which reported row each measured recipe links to (default: "
                        "bench/report/reported_links.yaml)")
    p.add_argument("--tuned", type=Path, action="append", default=None, metavar="DIR",
                   help="folder of bench tune results, shown on boards of their own (repeatable; default: "
                        "results/tuning)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="where to write the site (replaced if an earlier `bench site` made it)")
    p.add_argument("--serve", action="store_true", help="then serve it on 127.0.0.1 until Ctrl-C")
    p.add_argument("--port", type=int, default=8000, help="port for --serve (default 8000; 0: any free port)")
    p.set_defaults(func=cmd_site)
