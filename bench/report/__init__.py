"""Report bundles: derive summary, exports, plots and report.md from a bundle's raw files, and hash it all.

Public API: `finalize(bundle_dir)` (bench.run.bundle calls it before publishing a bundle); the commands
`bench report`, `verify`, `compare` and `submit` live in bench.report.commands; `bench.report.compare`
exposes `compare_table` and `pareto_plot` for other code.
"""
from __future__ import annotations

from pathlib import Path


def finalize(bundle_dir) -> dict:
    """Write every derived file from the raw files alone, then the MANIFEST; returns the summary."""
    from bench.report import exports, manifest, markdown, plots, summary

    bundle = Path(bundle_dir)
    raw = summary.load(bundle)
    s = summary.compute(raw)
    summary.write(bundle, s)
    exports.write(bundle, s, {r["run_id"]: r for r in raw.rows if r.get("run_id")})
    plots.write(bundle, s, raw.logs)
    markdown.write(bundle, s)
    manifest.write(bundle)
    return s


__all__ = ["finalize"]
