"""A recipe's history: did a change make it slower? (`bench compare --by commit RECIPE`, the site's recipe pages)

Per recipe and *board* (data set name and fingerprint, target metric and value, hardware: what the leaderboard
never mixes), the runs are grouped by the commit they ran at. A run from a dirty tree is not its commit: it
stands apart as `<commit>+dirty`; a row without a commit is `unknown`.

**Commits are ordered by the date of their rows**: a commit's date is its earliest run (the row's `timestamp`,
or the time in its `run_id`, `20261127T115222.622623Z-...`, when the timestamp is missing), ties by the label.
The results table holds no commit graph, so this is the order the commits were *measured* in; a commit measured
again later keeps its first date and gathers all its runs. Each commit's line states its mean time to target
over the runs that reached it (the statistics of bench compare: `reached` and `missed` rows count, `aborted` and
`failed` rows are excluded), and its change from the previous commit: the difference of the means and Welch's
two-sided t-test (bench.core.stats.welch), significant at p < ALPHA.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench.core.errors import BenchError
from bench.report.scores import metric_of, target_text

COUNTED = ("reached", "missed")
ALPHA = 0.05


def hardware(row: dict) -> str:
    """'1x AMD EPYC (cpu)', '8x NVIDIA H100 80GB HBM3 (cuda, 2 nodes)': what a board's runs ran on."""
    count = row.get("world_size") or row.get("device_count") or 1
    extra = [row.get("device") or "?"]
    if (row.get("nodes") or 1) > 1:
        extra.append(f"{row['nodes']} nodes")
    return f"{count}x {row.get('device_name') or '?'} ({', '.join(extra)})"


def board_key(row: dict) -> tuple:
    """(data set, fingerprint, metric, target, hardware): rows with the same key may be compared."""
    return (row.get("dataset") or "?", row.get("dataset_fingerprint"), metric_of(row), row.get("target"),
            hardware(row))


def board_title(key: tuple) -> str:
    dataset, _, metric, target, hw = key
    return f"{dataset} · {target_text(metric, target)} · {hw}"


def when(row: dict) -> datetime | None:
    """When the run started: its timestamp, else the time its run_id begins with; None when neither parses."""
    stamp = row.get("timestamp")
    if stamp:
        try:
            t = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
            return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    rid = str(row.get("run_id") or "")
    try:
        return datetime.strptime(rid[:15], "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def commit_label(row: dict) -> str:
    commit = row.get("git_commit")
    if not commit:
        return "unknown"
    return str(commit)[:7] + ("+dirty" if row.get("git_dirty") else "")


@dataclass
class Commit:
    label: str
    runs: list[dict]                  # counted rows (reached / missed), oldest first
    excluded: int                     # aborted / failed rows at this commit
    first: datetime | None            # the earliest run: the commit's place in the order
    times: list[float]                # time to target of the runs that reached it
    stats: dict                       # bench.core.stats.describe(times)
    hashes: list[str]                 # recipe hashes of its runs (a change to the recipe shows here)
    change: dict | None = None        # from the previous commit: delta_s, delta_pct, welch, verdict


@dataclass
class Series:
    recipe: str
    key: tuple
    commits: list[Commit] = field(default_factory=list)

    @property
    def title(self) -> str:
        return board_title(self.key)

    @property
    def slug(self) -> str:
        """A file- and anchor-safe name for the board."""
        import hashlib

        return "board-" + hashlib.sha256(repr(self.key).encode()).hexdigest()[:10]


def _order(row: dict) -> tuple:
    t = when(row)
    return (t is None, t or datetime.min.replace(tzinfo=timezone.utc), str(row.get("run_id") or ""))


def change(prev: Commit, cur: Commit) -> dict:
    """The change of the mean time to target from `prev` to `cur`, and whether Welch's test calls it real."""
    from bench.core.stats import welch

    a, b = prev.stats["mean"], cur.stats["mean"]
    test = welch(prev.times, cur.times)
    out = {"delta_s": None if a is None or b is None else b - a,
           "delta_pct": None if a is None or b is None or a == 0 else (b - a) / a,
           "welch": test, "significant": test["p"] is not None and test["p"] < ALPHA}
    if out["delta_s"] is None:
        out["verdict"] = "no time to compare"
    elif test["p"] is None:
        out["verdict"] = "not tested (needs >= 2 times on each side)"
    elif out["significant"]:
        out["verdict"] = "slower" if out["delta_s"] > 0 else "faster"
    else:
        out["verdict"] = "no significant change"
    return out


def series(rows: list[dict], recipe: str) -> list[Series]:
    """The recipe's history on each board it has runs on, commits in the order of their first run."""
    from bench.core.stats import describe

    boards: dict[tuple, list[dict]] = {}
    for r in sorted((r for r in rows if r.get("recipe") == recipe), key=_order):
        boards.setdefault(board_key(r), []).append(r)
    out = []
    for key, members in boards.items():
        by_commit: dict[str, list[dict]] = {}
        for r in members:  # oldest first, so each commit's first row is its date
            by_commit.setdefault(commit_label(r), []).append(r)
        commits = []
        for label, runs in by_commit.items():
            counted = [r for r in runs if r.get("status") in COUNTED]
            times = [r["time_to_target_s"] for r in counted
                     if r.get("status") == "reached" and r.get("time_to_target_s") is not None]
            commits.append(Commit(label, counted, len(runs) - len(counted), when(runs[0]), times, describe(times),
                                  sorted({str(r.get("recipe_hash"))[:16] for r in runs if r.get("recipe_hash")})))
        commits.sort(key=lambda c: (c.first is None, c.first or datetime.min.replace(tzinfo=timezone.utc), c.label))
        for prev, cur in zip(commits, commits[1:]):
            cur.change = change(prev, cur)
        out.append(Series(recipe, key, commits))
    return sorted(out, key=lambda s: s.title)


# ------------------------------------------------------------------------------------------ the table

COLUMNS = ["commit", "first run (UTC)", "reached/n", "mean time to target (95% CI)", "change", "Welch p",
           "verdict", "recipe hash"]


def _seconds(v) -> str:
    return "-" if v is None else f"{v:.2f} s"


def cells(c: Commit) -> list[str]:
    s = c.stats
    if s["mean"] is None:
        time = "-"
    elif s["ci_low"] is None:
        time = _seconds(s["mean"])
    else:
        time = f"{s['mean']:.2f} s [{s['ci_low']:.2f}, {s['ci_high']:.2f}]"
    ch = c.change
    if ch is None:
        delta, p, verdict = "-", "-", "first commit"
    else:
        delta = "-" if ch["delta_s"] is None else f"{ch['delta_s']:+.2f} s" + (
            "" if ch["delta_pct"] is None else f" ({ch['delta_pct']:+.1%})")
        p = "-" if ch["welch"]["p"] is None else f"{ch['welch']['p']:.3g}"
        verdict = ch["verdict"]
    runs = f"{len(c.times)}/{len(c.runs)}" + (f" +{c.excluded} excl." if c.excluded else "")
    first = c.first.strftime("%Y-%m-%d %H:%M") if c.first else "-"
    return [c.label, first, runs, time, delta, p, verdict, ", ".join(h[:8] for h in c.hashes) or "-"]


def run(results: Path, recipe: str | None, say=print) -> int:
    """`bench compare --by commit RECIPE`: the recipe's history as a table per board."""
    from bench.core.results import read_table
    from bench.core.tables import print_table
    from bench.report.compare import records

    if not recipe:
        raise BenchError("bench compare --by commit: name the recipe, e.g. `bench compare --by commit cpu_quick`")
    results = Path(results)
    if not results.is_file():
        raise BenchError(f"{results}: no results table (run `bench run` first, or pass --results PATH)")
    rows = records(read_table(results))
    found = series(rows, recipe)
    if not found:
        known = sorted({r.get("recipe") for r in rows if r.get("recipe")})
        raise BenchError(f"{results}: no rows of recipe {recipe!r}; the table holds: {', '.join(known) or 'none'}")
    for s in found:
        print_table(f"{recipe} on {s.title}: {len(s.commits)} commit(s), oldest first", COLUMNS,
                    [cells(c) for c in s.commits], left=2, say=say)
    say(f"Commits are ordered by their earliest run's timestamp (the order they were measured in); a dirty tree "
        f"counts apart as <commit>+dirty. Change: the mean time to target against the previous commit's; Welch's "
        f"two-sided t-test, significant at p < {ALPHA} (needs >= 2 reached runs on each side).")
    return 0


# ------------------------------------------------------------------------------------------ the plot

def plot(s: Series, path: Path) -> Path:
    """Time to target against the date of each run (every run a point; missed runs as crosses along the top),
    and each commit's mean time as a line over its runs, the means joined in commit order."""
    from bench.report.plots import default_style

    with default_style():
        return _plot(s, Path(path))


def _plot(s: Series, path: Path) -> Path:
    import matplotlib.dates as mdates

    from bench.report.plots import figure, save

    fig = figure((8.0, 4.2))
    ax = fig.add_subplot()
    colours = [f"C{i % 10}" for i in range(len(s.commits))]
    timed = any(c.times for c in s.commits)
    top = max((t for c in s.commits for t in c.times), default=0.5)  # no time at all: misses mid-height
    means = []
    for c, colour in zip(s.commits, colours):
        hit = [(when(r), r["time_to_target_s"]) for r in c.runs
               if r.get("status") == "reached" and r.get("time_to_target_s") is not None and when(r)]
        miss = [when(r) for r in c.runs if r.get("status") != "reached" and when(r)]
        if hit:
            ax.plot([h[0] for h in hit], [h[1] for h in hit], "o", color=colour, alpha=0.7, label=c.label)
        if miss:
            ax.plot(miss, [top * 1.08] * len(miss), "x", color=colour, markersize=8,
                    label=f"{c.label}: missed" if not hit else None)
        if c.stats["mean"] is not None and hit:
            xs = [h[0] for h in hit]
            ax.hlines(c.stats["mean"], min(xs), max(xs), colors=colour, linewidth=3)
            means.append((min(xs) + (max(xs) - min(xs)) / 2, c.stats["mean"]))
    if len(means) > 1:
        ax.plot([m[0] for m in means], [m[1] for m in means], "-", color="black", linewidth=1,
                label="commit means, in order")
    if not any(c.runs for c in s.commits):
        ax.text(0.5, 0.5, "no counted runs", transform=ax.transAxes, ha="center", va="center")
    elif not timed:  # the y axis would read as seconds it does not have
        ax.set_ylim(0, 1)
        ax.set_yticks([])
        ax.text(0.5, 0.3, "no run reached the target: no time to plot", transform=ax.transAxes, ha="center",
                va="center")
    stamps = [when(r) for c in s.commits for r in c.runs if when(r)]
    if stamps:  # a little room either side; a single run would otherwise span years of empty axis
        pad = max((max(stamps) - min(stamps)) * 0.05, timedelta(minutes=30))
        ax.set_xlim(min(stamps) - pad, max(stamps) + pad)
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("date of the run (UTC)")
    ax.set_ylabel("time to target (s)")
    ax.set_title(f"{s.recipe}: time to target by commit (x above the points: missed)", fontsize="medium")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    save(fig, path)
    return path
