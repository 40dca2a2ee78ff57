"""`bench site`: the results as a static website that works from file:// or any static host.

    out/index.html                  leaderboards (one per data set, target and hardware) + bundles + studies
    out/reports/<bundle>/           a copy of the bundle, with index.html: report.md rendered, plots, env,
                                    the resolved recipe, event logs and DAWNBench files to download
    out/studies/<name>.html         a study's text, time-to-target table and Pareto plot
    out/studies/<name>/             a copy of the study's folder (its plots and tables)
    out/static/                     site.css and site.js (sorting and filtering; no network)
    out/reported.html, out/recipes/, out/boards/   the reported board, a page per recipe (its history by commit),
                                    GAN boards' race plots: bench.site.extras
    out/tuned/<tuned bundle>/       a tuned result (bench tune) and a copy of its trials' bundles: bench.site.tuned

Bundles and studies are copied beside their pages so that the relative links inside report.md and a study's
text resolve unchanged. The site is built in a sibling folder and moved into place, so a failed build never
leaves half a site; an existing `out` is replaced only if an earlier `bench site` made it (MARKER).
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.core.errors import BenchError
from bench.site import boards as B
from bench.site import extras as X  # the reported board, recipe pages (history), GAN race plots and samples
from bench.site import convergence, inputs, render
from bench.site import tuned as T  # results of bench tune: boards of their own

MARKER = ".bench-site"
DEFAULT_RESULTS = Path("results/results.csv")
DEFAULT_REPORTS = Path("results/reports")
DEFAULT_STUDIES = Path("results/studies")


@dataclass
class Built:
    """What a build wrote, for the command's summary line and for tests."""
    out: Path
    boards: list[B.Board]
    bundles: list[B.Bundle]
    studies: list[str]
    pages: int
    extras: X.Extras | None = None   # the reported board, recipe pages and race plots (bench.site.extras)
    tuned: list[dict] | None = None  # the tuned boards (bench.site.tuned)


# ------------------------------------------------------------------------------------------ report bundles

def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _json(path: Path) -> dict | None:
    import json

    text = _read(path)
    try:
        data = json.loads(text) if text is not None else None
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def bundle_info(bundle: B.Bundle, table_runs: set[str]) -> dict:
    """The facts the index lists for a bundle, from its summary.json (absent fields stay None)."""
    s = _json(bundle.path / "summary.json") or {}
    stats = s.get("stats") or {}
    return {"bundle": bundle, "recipe": (s.get("recipe") or {}).get("name"), "target": s.get("target"),
            "runs": len(bundle.run_ids), "reached": stats.get("n_reached"),
            "time_mean": (stats.get("time") or {}).get("mean"), "metric": s.get("target_metric") or "test_acc",
            "in_tables": any(r in table_runs for r in bundle.run_ids)}


def _files(folder: Path, base: Path) -> list[dict]:
    return [{"name": p.name, "href": p.relative_to(base).as_posix(), "size": p.stat().st_size}
            for p in sorted(folder.iterdir()) if p.is_file()]


def write_bundle_page(bundle: B.Bundle, dest: Path) -> None:
    """Copy the bundle to `dest` and write dest/index.html."""
    shutil.copytree(bundle.path, dest)
    report = _read(dest / "report.md")
    shown = set(re.findall(r"\]\((plots/[^)\s]+)\)", report or ""))
    plots = sorted(p.relative_to(dest).as_posix() for p in (dest / "plots").glob("*.png")) \
        if (dest / "plots").is_dir() else []
    env = _json(dest / "env.json")
    runs = [{"id": rid, "files": _files(dest / "runs" / rid, dest)} for rid in bundle.run_ids]
    render.page("bundle.html", dest / "index.html", root="../../", title=bundle.name, bundle=bundle,
                body_html=render.markdown(report) if report is not None else None,
                extra_plots=[p for p in plots if p not in shown], env=render.flatten(env) if env else None,
                recipe_text=_read(dest / "recipe.yaml"), top_files=_files(dest, dest), runs=runs,
                samples=X.gan_samples(dest))


# ------------------------------------------------------------------------------------------ studies

def find_studies(dirs: list[Path]) -> list[Path]:
    """Every `<name>.md` in the study folders (README.md aside); its files live in `<name>/` beside it."""
    out = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise BenchError(f"--studies {d}: no such directory (pass the folder that holds the studies, "
                             f"e.g. results/studies)")
        out += sorted(p for p in d.glob("*.md") if p.name.lower() != "readme.md")
    return out


def _split_title(text: str, fallback: str) -> tuple[str, str]:
    """The first `# ` heading, and the text without it (the page shows the title above the table)."""
    lines = text.splitlines()
    i = next((i for i, line in enumerate(lines) if line.startswith("# ")), None)
    if i is None:
        return fallback, text
    return lines[i][2:].strip(), "\n".join(lines[:i] + lines[i + 1:])


def write_study_page(md: Path, studies_out: Path) -> str:
    """Copy the study's folder, draw its Pareto plot if it has none, write studies/<name>.html; returns its
    title."""
    from bench.core.results import read_table

    name, text = md.stem, _read(md) or ""
    folder = studies_out / name
    if (md.parent / name).is_dir():
        shutil.copytree(md.parent / name, folder)
    groups, pareto = [], None
    table = folder / "results.csv"
    if table.is_file():
        groups = B.groups(read_table(table), [])
        if not (folder / "pareto.png").is_file() and groups:
            compare_pareto(groups, folder / "pareto.png")
    if (folder / "pareto.png").is_file():
        pareto = f"{name}/pareto.png"
    title, body = _split_title(text, name)
    render.page("study.html", studies_out / f"{name}.html", root="../", title=title, name=name,
                body_html=render.markdown(body), groups=groups, pareto=pareto,
                table=f"{name}/results.csv" if table.is_file() else None)
    return title


def compare_pareto(groups: list[B.Group], path: Path) -> None:
    from bench.report.compare import pareto_plot

    pareto_plot([g.row for g in groups], path)


# ------------------------------------------------------------------------------------------ the site

def check_out(out: Path) -> None:
    """Refuse, before any work, an `out` the site could not be written to (bench.core.paths.check_output) or
    that it must not replace: one that bench site did not make."""
    from bench.core.paths import check_output

    check_output("--out", out, folder=True, replaced=True, what="site folder")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file())):
        raise BenchError(f"--out {out}: exists and was not made by `bench site` (no {MARKER} in it); pass a new "
                         f"or empty directory, the site replaces what is there")


def _prepare(out: Path) -> Path:
    """A fresh sibling folder to build in."""
    check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def _publish(tmp: Path, out: Path) -> None:
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def build(out: Path, results: list[Path] | None = None, reports: list[Path] | None = None,
          studies: list[Path] | None = None, reported: list[Path] | None = None,
          links: Path | None = X.R.LINKS, tuned: list[Path] | None = None) -> Built:
    """Build the site into `out`. None means the default (every table and bundle folder under results/, see
    bench.site.inputs); the default reports and studies folders may be absent, a folder named explicitly may not.
    `reported`: the reported tables (default results/reported/*.csv; [] for none); `links`: the recipe ->
    reported row links (bench.report.reported); `tuned`: folders of bench tune results (default results/tuning)."""
    out = Path(out)
    check_out(out)
    results = results or inputs.default_tables() or [DEFAULT_RESULTS]
    reports = reports if reports is not None else inputs.default_reports()
    reported = reported if reported is not None else inputs.default_reported()
    studies = studies if studies is not None else [d for d in [DEFAULT_STUDIES] if d.is_dir()]
    df = B.read_tables(results)
    bundles = B.find_bundles(reports)
    convergence.mark(bundles)  # each bundle against its recipe's reference convergence points (results/rcp)
    study_files = find_studies(studies)
    boards = B.boards(df, bundles)
    tmp = _prepare(out)
    try:
        shutil.copytree(render.STATIC, tmp / "static")
        for b in bundles:
            write_bundle_page(b, tmp / "reports" / b.name)
        titles = [(md.stem, write_study_page(md, tmp / "studies")) for md in study_files]
        table_runs = set(df["run_id"].dropna())
        ex = X.write(tmp, df, boards, reported, links)
        tuned_boards = T.write(tmp, tuned if tuned is not None else T.default_dirs())
        render.page("index.html", tmp / "index.html", root="", title="Leaderboard", boards=boards,
                    bundles=[bundle_info(b, table_runs) for b in bundles], studies=titles,
                    sources=[str(p) for p in results], rows=len(df), recipes=ex.recipes,
                    counterparts=ex.counterparts, races=ex.races, reported_rows=len(ex.reported),
                    reported_sources=ex.sources, gan_boards=[b.anchor for b in boards if b.metric != "test_acc"],
                    tuned_boards=tuned_boards, tuned_profile=(tmp / "tuned" / "profile.png").is_file())
        (tmp / MARKER).write_text("made by `bench site`; the next build replaces this folder\n")
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tuned_pages = sum(len(b["rows"]) for b in tuned_boards)
    return Built(out, boards, bundles, [name for name, _ in titles],
                 1 + len(bundles) + len(titles) + ex.pages + tuned_pages, ex, tuned_boards)
