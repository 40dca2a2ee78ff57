"""The site's pages beyond the measured boards, as plain values and the files they need:

    out/reported.html             what the field reported (bench.report.reported): its own board, no ranks,
                                  labelled "reported by their authors, not reproduced here"
    out/recipes/<recipe>.html     a page per measured recipe: its history per board (bench.report.history),
                                  time to target against the date of each run and each commit's mean, and the
                                  reported counterpart it links to, if one is declared
    out/recipes/<recipe>/*.png    the history plots
    out/boards/<slug>.png         a GAN board's `bench race` plot (the board's metric against time, its target
                                  drawn), drawn from the summaries of the board's bundles

and, for a GAN bundle's page, the sample grid at the target beside the untrained generator's and real images'.
Only reads results; draws its plots into the site being built.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import history, reported as R
from bench.site import boards as B
from bench.site import render


@dataclass
class Extras:
    """What the index needs from the extra pages."""
    reported: list[dict] = field(default_factory=list)        # every reported row
    sources: list[str] = field(default_factory=list)          # the reported tables read
    counterparts: dict = field(default_factory=dict)          # recipe -> the reported rows it links to
    link_problems: list[str] = field(default_factory=list)    # links that name no reported row
    recipes: dict = field(default_factory=dict)               # recipe -> its page, relative to the site's top
    races: dict = field(default_factory=dict)                 # board anchor -> its race plot, relative
    pages: int = 0


def recipe_page(name: str) -> str:
    """recipes/<name>.html, the name made safe for a file and a URL."""
    return f"recipes/{re.sub(r'[^A-Za-z0-9_.-]', '_', name or 'unnamed')}.html"


def _summary(bundle: B.Bundle) -> dict | None:
    try:
        data = json.loads((bundle.path / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# ------------------------------------------------------------------------------------------ reported

def reported_groups(rows: list[dict]) -> list[dict]:
    """The reported rows by kind (DAWNBench entries, then records), each kind in the order of the reported
    time: a reading order, not a rank (no rank is shown, and measured rows never share this board)."""
    kinds = list(R.KINDS) + sorted({r.get("kind") or "other" for r in rows} - set(R.KINDS))
    out = []
    for kind in kinds:
        members = [r for r in rows if (r.get("kind") or "other") == kind]
        if members:
            members.sort(key=lambda r: (r.get("time_to_94_s") is None, r.get("time_to_94_s") or 0.0, r["id"]))
            out.append({"kind": kind, "title": R.KINDS.get(kind, kind),
                        "rows": [{**r, "source_short": short_source(r["source"])} for r in members]})
    return out


def short_source(source: str) -> str:
    """'stanford-futuredata/dawn-bench-entries@fb27b82:CIFAR10/train/fastai_pytorch.json' ->
    'dawn-bench-entries@fb27b82: fastai_pytorch.json' (the page shows the whole source on hover)."""
    repo, sep, path = source.partition(":")
    if not sep:
        return source
    return f"{repo.rsplit('/', 1)[-1]}: {path.rsplit('/', 1)[-1] if ' ' not in path else path}"


def measured_here(counterparts: dict, recipes: dict) -> dict[str, list[dict]]:
    """reported row id -> the measured recipes that link to it and have a page."""
    out: dict[str, list[dict]] = {}
    for recipe, rows in counterparts.items():
        for r in rows:
            if recipe in recipes:
                out.setdefault(r["id"], []).append({"recipe": recipe, "href": recipes[recipe]})
    return out


# ------------------------------------------------------------------------------------------ GAN

def race_plots(out: Path, boards: list[B.Board]) -> dict[str, str]:
    """A `bench race` plot per score board (GAN runs) that has bundles: the metric the board ranks by against
    time, with the board's target drawn."""
    from bench.report import gan_plots, plots

    races = {}
    for board in boards:
        if board.metric == "test_acc":
            continue
        sums = [s for b in sorted({b.name: b for g in board.groups for b in g.bundles}.values(), key=lambda b: b.name)
                for s in [_summary(b)] if s and s.get("kind") == "gan" and s.get("runs")]
        if not sums:
            continue
        rel = f"boards/race-{hashlib.sha256(board.anchor.encode()).hexdigest()[:10]}.png"
        with plots.default_style():
            gan_plots.race(sums, out / rel, metric=board.metric, target=board.target)
        races[board.anchor] = rel
    return races


def gan_samples(bundle_dir: Path) -> dict | None:
    """For a GAN bundle's page: per run, the sample grid at the evaluation that reached the target (the last one
    when the run missed), and the untrained generator's and real images' grids with their scores. None for a
    bundle of another kind or one without a readable summary."""
    try:
        s = json.loads((Path(bundle_dir) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(s, dict) or s.get("kind") != "gan":
        return None
    metric, mode = s.get("target_metric"), s.get("target_mode")
    runs = []
    for run in s.get("runs") or []:
        evals = run.get("evals") or []
        hit = next((e for e in evals if run.get("time_to_target_s") is not None
                    and e.get("elapsed_s") == run["time_to_target_s"]), None)
        shown = hit or (evals[-1] if evals else None)
        base = f"runs/{run['run_id']}/"
        grids = []
        if shown and shown.get("samples"):
            grids.append({"src": base + shown["samples"], "what": (
                f"at the target: epoch {shown.get('epoch')}, {shown.get('elapsed_s', 0):.1f} s" if hit
                else f"last evaluation (the run {run.get('status')}): epoch {shown.get('epoch')}"),
                "score": shown.get(metric)})
        baselines = run.get("baselines") or {}
        for name, what in (("untrained", "untrained generator"), ("real", "real training images")):
            if (Path(bundle_dir) / base / "samples" / f"{name}.png").is_file():
                grids.append({"src": f"{base}samples/{name}.png", "what": what,
                              "score": (baselines.get(name) or {}).get(metric)})
        runs.append({"run_id": run["run_id"], "seed": run.get("seed"), "status": run.get("status"), "grids": grids})
    return {"metric": metric, "mode": mode, "target": s.get("target"), "runs": runs}


# ------------------------------------------------------------------------------------------ recipe pages

def write_recipe_pages(out: Path, df, boards: list[B.Board], counterparts: dict) -> dict[str, str]:
    """A page per recipe with rows: its history on each board it ran on. Returns recipe -> page."""
    from bench.report.compare import records

    rows = records(df)
    names = sorted({r["recipe"] for r in rows if r.get("recipe")})
    pages = {}
    bundles_by_run = {rid: b for board in boards for g in board.groups for b in g.bundles for rid in b.run_ids}
    for name in names:
        rel = recipe_page(name)
        folder = out / rel[:-len(".html")]
        shown = []
        for s in history.series(rows, name):
            plot = folder / f"{s.slug}.png"
            history.plot(s, plot)
            runs = [r for c in s.commits for r in c.runs]
            bundles = sorted({bundles_by_run[r["run_id"]].name: bundles_by_run[r["run_id"]]
                              for r in runs if r.get("run_id") in bundles_by_run}.values(), key=lambda b: b.name)
            shown.append({"series": s, "plot": f"{folder.name}/{plot.name}", "bundles": bundles,
                          "board": next((b.anchor for b in boards
                                         if (b.dataset, b.fingerprint, b.metric, b.target, b.hardware) == s.key),
                                        None)})
        pages[name] = rel
        render.page("recipe.html", out / rel, root="../", title=name, name=name, shown=shown,
                    counterparts=counterparts.get(name, []), alpha=history.ALPHA)
    return pages


# ------------------------------------------------------------------------------------------ all of it

def write(out: Path, df, boards: list[B.Board], reported_tables: list[Path], links: Path | None) -> Extras:
    """Write the reported board, the recipe pages and the race plots into `out` (the site being built)."""
    ex = Extras(sources=[str(p) for p in reported_tables])
    ex.reported = R.read_tables(reported_tables)
    link_list = R.read_links(links) if links is not None and Path(links).is_file() else []
    if ex.reported:
        ex.link_problems = R.link_problems(link_list, ex.reported)
        ex.counterparts = R.counterparts(link_list, ex.reported)
    ex.recipes = write_recipe_pages(out, df, boards, ex.counterparts)
    ex.races = race_plots(out, boards)
    render.page("reported.html", out / "reported.html", root="", title="Reported by their authors",
                groups=reported_groups(ex.reported), sources=ex.sources,
                measured=measured_here(ex.counterparts, ex.recipes), problems=ex.link_problems)
    ex.pages = 1 + len(ex.recipes)
    return ex
