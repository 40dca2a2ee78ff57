"""Options several subcommands share, declared once so they read and default the same everywhere."""
from __future__ import annotations

import os
from pathlib import Path


def default_results() -> Path:
    return Path(os.environ.get("BENCH_RESULTS", "results/results.csv"))


def add_set(p, what: str = "override a recipe field, e.g. --set optim.epochs=5 (repeatable)") -> None:
    p.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE", help=what)


def add_results(p) -> None:
    p.add_argument("--results", type=Path, default=default_results(),
                   help="results table (default: $BENCH_RESULTS or results/results.csv)")


def add_reports(p) -> None:
    p.add_argument("--reports", type=Path, default=Path("results/reports"),
                   help="where report bundle directories go (default: results/reports)")


def add_data(p, what: str = "this run") -> None:
    p.add_argument("--data", help=f"dataset source for {what}: 'cifar10', or a folder / archive path")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="dataset download and decode cache (default: $BENCH_DATA or ~/.cache/bench/data)")
