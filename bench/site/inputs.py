"""What `bench site` reads when it is not told: every results table and every folder of report bundles under
results/, and the reported tables in results/reported/.

    results/results.csv, results/*/results.csv      the tables (the leaderboard's, the record baseline's, the
                                                    GANs', any other kind's table kept apart)
    results/reports/, results/*/reports/            their bundles
    results/reported/*.csv                          what others reported (bench.report.reported)

Tables are kept apart on disk so that one kind of run never lands in another's table; the site reads them all
and its boards keep them apart again (one data set, target metric and value, and hardware per board). A study's
own table (results/studies/<name>/results.csv) sits one level deeper and stays on its study's page.
"""
from __future__ import annotations

from pathlib import Path

RESULTS = Path("results")


def default_tables(root: Path = RESULTS) -> list[Path]:
    root = Path(root)
    first = [root / "results.csv"] if (root / "results.csv").is_file() else []
    return first + sorted(p for p in root.glob("*/results.csv") if p.is_file())


def default_reports(root: Path = RESULTS) -> list[Path]:
    root = Path(root)
    first = [root / "reports"] if (root / "reports").is_dir() else []
    return first + sorted(p for p in root.glob("*/reports") if p.is_dir())


def default_reported(root: Path = RESULTS) -> list[Path]:
    from bench.report.reported import find_tables

    return find_tables(Path(root) / "reported")
