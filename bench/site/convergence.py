"""The convergence check on the site: each bundle checked against its recipe's reference convergence points
(bench.report.convergence, results/rcp by default), so a board can mark a result whose runs converge faster than
the references (MLPerf: not accepted without review) and a bundle's page can show the numbers.

Only reads. A bundle that does not verify is not checked (its figures cannot be trusted); a reference file that
must be refused (broken, or two for one recipe) is shown as the reason the bundle was not checked.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from bench.core.errors import BenchError


def result(bundle_path: Path, verified: bool, rcp: Optional[Path] = None) -> dict:
    """{"state", "failed", "headline", "lines"} for one bundle (state: bench.core.rcp's verdict states)."""
    from bench.report import convergence

    if not verified:
        return {"state": "not_checked", "failed": False, "headline": "not checked: the bundle does not verify",
                "lines": []}
    try:
        c = convergence.check(bundle_path, rcp)
    except BenchError as e:
        return {"state": "not_checked", "failed": False, "headline": f"not checked: {e}", "lines": []}
    return {"state": c.verdict.state, "failed": c.failed, "headline": convergence.headline(c),
            "lines": convergence.lines(c)[1:]}


def mark(bundles: list, rcp: Optional[Path] = None) -> None:
    """Set each site Bundle's `convergence` (bench.site.boards.Bundle)."""
    for b in bundles:
        b.convergence = result(b.path, b.verified, rcp)
