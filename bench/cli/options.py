"""Options several subcommands share, declared once so they read and default the same everywhere."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench.core.errors import BenchError


def default_results() -> Path:
    return Path(os.environ.get("BENCH_RESULTS", "results/results.csv"))


def add_set(p, what: str = "override a recipe field, e.g. --set optim.epochs=5 (repeatable)") -> None:
    p.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE", help=what)


def reports_beside(table: Path) -> Path:
    """Where a table's report bundles go unless --reports says: a `reports` folder beside it, so the default
    table's are in results/reports and `--results ../mine.csv` keeps its bundles in ../reports."""
    return Path(table).parent / "reports"


class _Beside(type(Path())):
    """--reports' default: marks a folder that --results chose, so a later --results moves it again and an
    explicit --reports (a plain Path) is never moved."""


class _Results(argparse.Action):
    """--results, which also moves --reports' default beside the table it names."""

    def __call__(self, parser, namespace, value, option_string=None):
        setattr(namespace, self.dest, value)
        if isinstance(getattr(namespace, "reports", None), _Beside):
            namespace.reports = _Beside(reports_beside(value))


def add_results(p) -> None:
    p.add_argument("--results", type=Path, default=default_results(), action=_Results,
                   help="results table (default: $BENCH_RESULTS or results/results.csv)")


def add_reports(p) -> None:
    p.add_argument("--reports", type=Path, default=_Beside(reports_beside(default_results())),
                   help="where report bundle directories go (default: a reports folder beside the --results "
                        "table: results/reports for the default table)")


def add_data(p, what: str = "this run") -> None:
    p.add_argument("--data", help=f"dataset source for {what}: 'cifar10', or a folder / archive path")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="dataset download and decode cache (default: $BENCH_DATA or ~/.cache/bench/data)")


# ------------------------------------------------------------------------------------------ checks
# What a command calls first, before any data loading, training or timing: each bad path or count ends in
# one `bench: error:` line naming the option (bench.core.paths.check_output / check_input do the paths).

def check_count(option: str, value, least: int = 1) -> None:
    if value is not None and value < least:
        raise BenchError(f"{option} {value}: allowed: >= {least}")


def check_recipe_arg(value, option: str = "RECIPE") -> None:
    """A recipe named by path must be a readable file; a name (cpu_quick) or a missing path is left to the
    recipe loader, which lists the known names."""
    from bench.core.paths import check_input

    if value is None:
        return
    path = Path(value).expanduser()
    if path.is_dir():
        raise BenchError(f"{option} {value}: is a folder, not a recipe file; name a recipe .yaml file or a recipe "
                         f"name (a folder of recipes is a family: bench sweep / bench speed take those)")
    if path.exists():
        check_input(option, path, what="recipe file")


def check_source(option: str, source) -> None:
    """A data source: 'cifar10', or a path (tried as bench.data.sources resolves it) that must be readable."""
    from bench.core.paths import check_input, data_base_dir
    from bench.data.sources import resolve_path

    if source is None or source == "cifar10":
        return
    try:
        path = resolve_path(source, data_base_dir())
    except BenchError as exc:
        raise BenchError(f"{option} {source}: {exc}") from None  # "not found (looked at ...)" and the fix
    check_input(option, path, folder=path.is_dir(), what="image folder or archive")


def check_data_dir(option: str, path) -> None:
    """The download and decode cache: an existing folder need only be readable (a shared read-only copy);
    a missing one must be creatable."""
    from bench.core.paths import check_input, check_output

    if path is None:
        return
    if Path(path).is_dir():
        check_input(option, path, folder=True, what="data folder")
    else:
        check_output(option, path, folder=True, what="data folder")


def check_data(args) -> None:
    """--data and --data-dir of add_data."""
    check_source("--data", args.data)
    check_data_dir("--data-dir", args.data_dir)


def check_reports(path) -> None:
    from bench.core.paths import check_output

    check_output("--reports", path, folder=True, what="folder for report bundles")


def check_out_file(option: str, path, what: str = "file") -> None:
    """An optional output file (--json, --plot, --out); None (not asked for) passes."""
    from bench.core.paths import check_output

    if path is not None:
        check_output(option, path, what=what)
