"""`bench compare`: rank recipes by mean time-to-target from the results table.

Rows are grouped by everything that changes what a time means: recipe, recipe hash, dataset fingerprint,
device name and count, world size, precision and target. A recipe found in several groups is shown once per
group with the differing field named, never averaged across them. Only `reached` rows give a time; `missed`
rows count against the success rate; `aborted` and `failed` rows are left out and counted as excluded.

Other code (bench sweep) calls `compare_table(df, target, recipes)` and `pareto_plot(rows, path)`.
"""
from __future__ import annotations

import math
from pathlib import Path

from bench.core.errors import BenchError
from bench.core.prices import CPU_SOURCES
from bench.report.scores import better_first

GROUP_KEYS = ("recipe", "recipe_hash", "dataset_fingerprint", "device_name", "device_count", "world_size",
              "precision", "target")
COUNTED = ("reached", "missed")
EXCLUDED = ("aborted", "failed")


def _clean(v):
    """pandas NA/NaN and numpy scalars -> None / plain Python, so rows are JSON-ready and hashable."""
    if v is None:
        return None
    try:
        if v != v:  # NaN
            return None
    except (TypeError, ValueError):  # pd.NA refuses comparison
        return None
    if hasattr(v, "item"):
        return v.item()
    return v


def price_na(runs: list[dict]) -> bool:
    """The one rule for a group's cost/run being "n/a (CPU)" (bench compare and the site both call it): every
    run ran where no accelerator price applies, a CPU without a price of its own. Its cost is unknown: empty
    in rows written since costs became empty-when-unknown, $0 in older rows (price source "n/a (CPU)")."""
    return bool(runs) and all(r.get("price_source") in CPU_SOURCES for r in runs)


PRICE_NA = "n/a (CPU)"  # how a price_na group's cost/run reads, in the terminal and on the site


def _mean(values):
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def records(df) -> list[dict]:
    """The table's rows as plain dicts (NA -> None), the form every function here works on."""
    return [{k: _clean(v) for k, v in rec.items()} for rec in df.to_dict("records")]


def group_key(record: dict) -> tuple:
    """The group a row (or a compare_table row) belongs to: its values of GROUP_KEYS."""
    return tuple(record.get(k) for k in GROUP_KEYS)


def _filter(rows: list[dict], target, recipes) -> list[dict]:
    if recipes:
        wanted = set(recipes)
        rows = [r for r in rows if r.get("recipe") in wanted]
    if target is not None:
        rows = [r for r in rows
                if r.get("target") is not None and math.isclose(r["target"], target, rel_tol=1e-9)]
    return rows


def compare_table(df, target: float | None = None, recipes: list[str] | None = None) -> list[dict]:
    """Ranked groups (see module doc), fastest mean time-to-target first; groups that never reached come last,
    unranked (rank None), by best final accuracy. Every value is plain JSON."""
    from bench.core.stats import describe

    rows = _filter(records(df), target, recipes)
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(group_key(r), []).append(r)
    out = []
    for key, members in groups.items():
        counted = [m for m in members if m.get("status") in COUNTED]
        reached = [m for m in counted if m["status"] == "reached" and m.get("time_to_target_s") is not None]
        t = describe([m["time_to_target_s"] for m in reached])
        finals = [m.get("final_acc") for m in counted if m.get("final_acc") is not None]
        fp = key[GROUP_KEYS.index("dataset_fingerprint")]
        out.append({
            **dict(zip(GROUP_KEYS, key)),
            "dataset": (fp or "")[:12] or None,
            "runs": len(counted),
            "reached": len(reached),
            "success_rate": len(reached) / len(counted) if counted else None,
            "excluded": sum(m.get("status") in EXCLUDED for m in members),
            "time_mean": t["mean"], "time_ci_low": t["ci_low"], "time_ci_high": t["ci_high"],
            "final_acc_best": max(finals) if finals else None,
            "final_acc_mean": _mean(finals),
            "best_acc_mean": _mean([m.get("best_acc") for m in counted]),
            "wall_mean": _mean([m.get("wall_s") for m in counted]),
            "gpu_hours_mean": _mean([m.get("gpu_hours") for m in counted]),
            "cost_mean": None if price_na(counted) else _mean([m.get("cost_usd") for m in counted]),
            "price_na": price_na(counted),
            "mfu_mean": _mean([m.get("mfu") for m in counted]),
            "data_wait_fraction_mean": _mean([m.get("data_wait_fraction") for m in counted]),
            "differs": [],
            **scores_of(counted or members),  # metric, mode, score_best: the target metric's direction
        })
    _name_differences(out)
    timed = sorted((r for r in out if r["time_mean"] is not None), key=lambda r: (r["time_mean"], r["recipe"] or ""))
    untimed = sorted((r for r in out if r["time_mean"] is None),  # the best final score first, either direction
                     key=lambda r: (better_first(r["score_best"], r["mode"]), r["recipe"] or ""))
    for i, r in enumerate(timed, start=1):
        r["rank"] = i
    for r in untimed:
        r["rank"] = None
    return [{"rank": r.pop("rank"), **r} for r in timed + untimed]


def scores_of(runs: list[dict]) -> dict:
    """A group's target metric (bench.report.scores), its direction, and the best final score of its runs in that
    direction and their mean (for test_acc the same as final_acc_best and final_acc_mean)."""
    from bench.report.scores import best_of, metric_of, mode_of

    metric = metric_of(runs[0]) if runs else "test_acc"
    mode = mode_of(metric)
    finals = [r.get("final_acc") if metric == "test_acc" else r.get("final_metric") for r in runs]
    return {"metric": metric, "mode": mode, "score_best": best_of(finals, mode), "score_mean": _mean(finals)}


def _name_differences(rows: list[dict]) -> None:
    by_recipe: dict = {}
    for r in rows:
        by_recipe.setdefault(r["recipe"], []).append(r)
    for same in by_recipe.values():
        if len(same) > 1:
            varying = [k for k in GROUP_KEYS[1:] if len({r[k] for r in same}) > 1]
            for r in same:
                r["differs"] = varying


def table_warnings(df, target: float | None = None, recipes: list[str] | None = None) -> list[str]:
    rows = _filter(records(df), target, recipes)
    out = []
    for key, what in (("dataset_fingerprint", "dataset fingerprints"), ("device_name", "devices"),
                      ("precision", "precisions")):
        values = sorted({str(r.get(key))[:12] if key == "dataset_fingerprint" else str(r.get(key))
                         for r in rows})
        if len(values) > 1:
            out.append(f"warning: the table holds {len(values)} {what} ({', '.join(values)}): rows are grouped "
                       f"by them and never mixed, but times across groups are not like for like")
    return out


# ------------------------------------------------------------------------------------------ printing

SHORT = {"recipe_hash": "hash", "dataset_fingerprint": "dataset", "device_name": "device", "device_count": "devices",
         "world_size": "world size"}
COLUMNS = ["rank", "recipe", "runs", "success", "time to target (95% CI)", "final score best/mean", "GPU-h/run",
           "cost/run", "MFU", "data wait", "dataset", "device", "precision"]


def _fmt(v, spec, suffix="") -> str:
    return "-" if v is None else f"{v:{spec}}{suffix}"


def cells(r: dict) -> list[str]:
    if r["time_mean"] is None:
        time = "-"
    elif r["time_ci_low"] is None:
        time = f"{r['time_mean']:.2f} s"
    else:
        time = f"{r['time_mean']:.2f} s [{r['time_ci_low']:.2f}, {r['time_ci_high']:.2f}]"
    name = r["recipe"] or "?"
    if r["differs"]:
        name += f" ({', '.join(SHORT.get(k, k) for k in r['differs'])} differs)"
    if r.get("metric", "test_acc") != "test_acc":  # a GAN group: its target metric, best in its direction / mean
        acc = "-" if r["score_best"] is None else f"{r['metric']} {r['score_best']:.4g} / {r['score_mean']:.4g}"
    else:
        acc = "-" if r["final_acc_best"] is None else f"{r['final_acc_best']:.2%} / {r['final_acc_mean']:.2%}"
    success = f"{r['reached']}/{r['runs']}" + (f" ({r['success_rate']:.0%})" if r["runs"] else "")
    if r["excluded"]:
        success += f" +{r['excluded']} excl."
    device = f"{r['world_size'] or r['device_count'] or 1}x {r['device_name'] or '?'}"
    return [str(r["rank"] or "-"), name, str(r["runs"]), success, time, acc, _fmt(r["gpu_hours_mean"], ".4f"),
            cost_text(r),
            _fmt(r["mfu_mean"], ".1%"), _fmt(r["data_wait_fraction_mean"], ".1%"), r["dataset"] or "-", device,
            r["precision"] or "-"]


def cost_text(r: dict) -> str:
    """A compare_table row's cost/run: PRICE_NA where no price applies (price_na), "-" where unknown."""
    if r.get("price_na"):
        return PRICE_NA
    return _fmt(r["cost_mean"], ".4f") if r["cost_mean"] is None else f"${r['cost_mean']:.4f}"


def print_table(rows: list[dict], title: str, say=print) -> None:
    from bench.core.tables import print_table as show

    show(title, COLUMNS, [cells(r) for r in rows], left=COLUMNS.index("time to target (95% CI)"), say=say)


# ------------------------------------------------------------------------------------------ the plot

def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower x and higher y), by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def pareto_plot(rows: list[dict], path, x: str = "time") -> Path:
    """Mean time-to-target (x="time", groups without one left out) or mean wall time (x="wall") against mean
    best accuracy, Pareto front highlighted, points labelled. Returns the written path."""
    from bench.report.plots import default_style

    with default_style():
        return _pareto(rows, Path(path), x)


def _pareto(rows: list[dict], path: Path, x: str) -> Path:
    from bench.report.plots import figure, save

    key, xlabel = {"time": ("time_mean", "mean time to target (s)"),
                   "wall": ("wall_mean", "mean wall time per run (s)")}[x]
    pts = [r for r in rows if r.get(key) is not None and r.get("best_acc_mean") is not None]
    fig = figure()
    ax = fig.add_subplot()
    left_out = len(rows) - len(pts)
    ax.set_title("time-to-accuracy trade-off by recipe" + (f" ({left_out} group(s) without a value left out)"
                                                           if left_out else ""))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean best test accuracy (%)")
    ax.grid(alpha=0.3)
    if not pts:
        ax.text(0.5, 0.5, "nothing to plot: no group has both a time and an accuracy", transform=ax.transAxes,
                ha="center", va="center")
    else:
        xy = [(r[key], r["best_acc_mean"] * 100) for r in pts]
        front = pareto_front(xy)
        ax.scatter([p[0] for p in xy], [p[1] for p in xy], color="tab:gray", label="recipe group", zorder=2)
        fx = [xy[i] for i in front]
        ax.plot([p[0] for p in fx], [p[1] for p in fx], "o-", color="tab:red", markersize=8,
                label="Pareto front (faster and more accurate than the rest)", zorder=3)
        # Below the axes, outside the data: inside them the legend sat on a point (wrn22_forms_cpu's pareto.png).
        fig.legend(loc="outside lower center", ncols=2, fontsize="small")
        ax.margins(x=0.15, y=0.1)  # room for the labels at the edges
        labels = []
        for r in pts:
            label = r["recipe"] or "?"
            if r.get("differs"):
                label += " [" + ", ".join(f"{SHORT.get(k, k)}={str(r[k])[:12]}" for k in r["differs"]) + "]"
            labels.append(label)
        _place_labels(fig, ax, xy, labels)
    save(fig, path)
    return path


# Where a point's label may go, nearest first: (x, y) offset directions; each is tried at growing distances.
_AROUND = [(1, 1), (1, -1), (-1, 1), (-1, -1), (0, 1), (0, -1), (1, 0), (-1, 0)]
_DISTANCES = (5, 12, 20, 30)  # points


def _place_labels(fig, ax, xy: list[tuple], labels: list[str]) -> None:
    """Each label beside its point where it covers no point, no line of the front, no label placed before it,
    and stays inside the axes (so off the legend and the tick labels): the first such place of _AROUND x
    _DISTANCES, else the one that covers least. Decided on the laid-out figure, with the Agg renderer that
    savefig uses for a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.transforms import Bbox

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw_without_rendering()  # constrained layout and the axis limits, as they will be saved
    frame = ax.get_window_extent(renderer)
    r = 8 / 2 * fig.dpi / 72 + 1  # the largest marker's radius (the front's, markersize 8), in pixels
    marks = [Bbox.from_bounds(px - r, py - r, 2 * r, 2 * r) for px, py in ax.transData.transform(xy)]
    for line in ax.get_lines():  # the front's segments too, every 3 pixels: a label across a line reads badly
        ends = ax.transData.transform(line.get_xydata())
        for (x0, y0), (x1, y1) in zip(ends[:-1], ends[1:]):
            n = max(int(((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5 / 3), 1)
            marks += [Bbox.from_bounds(x0 + (x1 - x0) * i / n - 1, y0 + (y1 - y0) * i / n - 1, 2, 2)
                      for i in range(1, n)]
    placed: list = []

    def cost(box) -> float:
        inside = Bbox.intersection(box, frame)
        outside = box.width * box.height - (inside.width * inside.height if inside else 0.0)
        covered = sum(_overlap(box, other) for other in marks + placed)
        return covered + outside

    for (px, py), label in zip(xy, labels):
        best = None
        for d in _DISTANCES:
            for dx, dy in _AROUND:
                text = ax.annotate(label, (px, py), textcoords="offset points", xytext=(dx * d, dy * d),
                                   fontsize="small", ha={1: "left", 0: "center", -1: "right"}[dx],
                                   va={1: "bottom", 0: "center", -1: "top"}[dy])
                text.set_in_layout(False)  # placed inside the axes: it must not move them
                box = text.get_window_extent(renderer)
                c = cost(box)
                if best is None or c < best[0]:
                    if best is not None:
                        best[1].remove()
                    best = (c, text, box)
                else:
                    text.remove()
                if c == 0:
                    break
            if best[0] == 0:
                break
        placed.append(best[2])


def _overlap(a, b) -> float:
    from matplotlib.transforms import Bbox

    both = Bbox.intersection(a, b)
    return both.width * both.height if both is not None else 0.0


# ------------------------------------------------------------------------------------------ command

def run(results: Path, target: float | None, recipes: list[str] | None, plot: Path | None,
        json_path: Path | None, say=print) -> int:
    import json

    from bench.core.results import atomic_write, read_table

    results = Path(results)
    if target is not None and not 0 < target <= 1:
        eg = target / 100 if 1 < target <= 100 else 0.94  # 94 meant 94%: suggest 0.94; for -1 or 0, not -0.01 or 0
        raise BenchError(f"--target {target}: targets are fractions (0.94 means 94%); "
                         f"allowed: > 0 and <= 1, e.g. --target {eg:g}")
    if not results.is_file():
        raise BenchError(f"{results}: no results table (run `bench run` first, or pass --results PATH)")
    df = read_table(results)
    rows = compare_table(df, target, recipes)
    if not rows:
        raise BenchError(f"{results}: no rows match (target {target}, recipes {recipes or 'all'})")
    for w in table_warnings(df, target, recipes):
        say(w)
    title = f"{results}: {len(rows)} group(s), ranked by mean time to target"
    if target is not None:
        title += f" {target:.2%}"
    print_table(rows, title, say)
    excluded = sum(r["excluded"] for r in rows)
    if excluded:
        say(f"{excluded} aborted/failed row(s) excluded from times and success rates (counted per group)")
    if plot is not None:
        say(f"Pareto plot: {pareto_plot(rows, plot)}")
    if json_path is not None:
        doc = {"results": str(results), "target": target, "recipes": recipes, "group_keys": list(GROUP_KEYS),
               "warnings": table_warnings(df, target, recipes), "rows": rows}
        text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
        atomic_write(Path(json_path), lambda f: f.write(text))
        say(f"JSON: {json_path}")
    return 0
