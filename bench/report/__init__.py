"""Report bundles: derive summary, exports, plots and report.md from a bundle's raw files, and hash it all.

Public API: `finalize(bundle_dir)` (bench.run.bundle calls it before publishing a bundle); the commands
`bench report`, `verify`, `compare` and `submit` live in bench.report.commands; `bench.report.compare`
exposes `compare_table` and `pareto_plot` for other code.
"""
from __future__ import annotations

from pathlib import Path


def finalize(bundle_dir) -> dict:
    """Write every derived file from the raw files alone, then the MANIFEST; returns the summary."""
    from bench.core.results import atomic_write
    from bench.report import manifest, summary
    from bench.report.kinds import for_summary

    bundle = Path(bundle_dir)
    raw = summary.load(bundle)
    s = summary.compute(raw)
    summary.write(bundle, s)
    kind = for_summary(s)  # one object per kind of run: its derived files, plots and report
    for rel, derived in kind.derived(s, {r["run_id"]: r for r in raw.rows if r.get("run_id")}).items():
        atomic_write(bundle / rel, lambda f, text=derived: f.write(text))
    kind.plots(bundle, s, raw.logs)
    text = render_markdown(s)
    atomic_write(bundle / "report.md", lambda f: f.write(text))
    manifest.write(bundle)
    return s


def render_markdown(s: dict) -> str:
    """report.md's text, as the summary's kind renders it (bench.report.kinds)."""
    from bench.report.kinds import for_summary

    return for_summary(s).render(s)


__all__ = ["finalize", "render_markdown"]
