"""`bench site`: the leaderboard website. Heavy imports (pandas, Jinja2) happen inside the handler."""
from __future__ import annotations

import tempfile
from pathlib import Path

from bench.core.errors import BenchError


def cmd_site(args) -> int:
    from bench.site.build import build

    if args.out is None and not args.serve:
        raise BenchError("bench site: --out DIR is required (where the site is written), unless --serve is "
                         "given (then a temporary folder is used)")
    if not 0 <= args.port <= 65535:
        raise BenchError(f"--port {args.port}: allowed: 0-65535 (0 picks a free port)")
    with tempfile.TemporaryDirectory(prefix="bench-site-") as tmp:
        out = args.out or Path(tmp) / "site"
        built = build(out, args.results, args.reports, args.studies)
        groups = sum(len(b.groups) for b in built.boards)
        print(f"site: {len(built.boards)} leaderboard(s), {groups} result group(s), {len(built.bundles)} report "
              f"bundle(s) ({sum(not b.verified for b in built.bundles)} failing bench verify), "
              f"{len(built.studies)} stud{'y' if len(built.studies) == 1 else 'ies'}: {built.pages} pages")
        print(Path(out) / "index.html", flush=True)
        if args.serve:
            from bench.site.serve import serve

            serve(Path(out), args.port)
    return 0


def register(sub) -> None:
    p = sub.add_parser("site", help="build the leaderboard website (static files) from the results and bundles")
    p.add_argument("--results", type=Path, action="append", default=None, metavar="CSV",
                   help="results table (repeatable; default: results/results.csv)")
    p.add_argument("--reports", type=Path, action="append", default=None, metavar="DIR",
                   help="folder of report bundles (repeatable; default: results/reports)")
    p.add_argument("--studies", type=Path, action="append", default=None, metavar="DIR",
                   help="folder of studies, <name>.md + <name>/ (repeatable; default: results/studies)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="where to write the site (replaced if an earlier `bench site` made it)")
    p.add_argument("--serve", action="store_true", help="then serve it on 127.0.0.1 until Ctrl-C")
    p.add_argument("--port", type=int, default=8000, help="port for --serve (default 8000; 0: any free port)")
    p.set_defaults(func=cmd_site)
