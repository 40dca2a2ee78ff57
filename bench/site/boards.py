"""What the leaderboard shows, as plain values: result groups, the boards they sit on, and the bundles.

A *group* is one `bench compare` row (same recipe, recipe hash, dataset fingerprint, device, count, world size,
precision and target; see bench.report.compare). A *board* holds the groups that may be ranked against each
other: same data set (name and content fingerprint, so official CIFAR-10 and the JPEG copy never share one),
same target and same hardware. Statistics come from bench.core.stats and compare_table; nothing is recomputed
here that those already give.

Only reads: tables, bundles' run folders, and `bench.report.verify.check` for each bundle.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from bench.core.errors import BenchError
from bench.report import compare
from bench.report.summary import OFFICIAL_DATASET


@dataclass
class Bundle:
    """One report bundle: where it is, which runs it holds, and what `bench verify` says about it."""
    name: str
    path: Path
    run_ids: list[str]
    problems: list[str]
    convergence: dict | None = None  # bench.site.convergence: the check against the recipe's reference points

    @property
    def verified(self) -> bool:
        return not self.problems

    @property
    def convergence_failed(self) -> bool:
        return bool(self.convergence and self.convergence.get("failed"))

    @property
    def short(self) -> str:
        """The bundle's random tail (`cpu_quick-20261127T120359Z-a7cb03` -> `a7cb03`), a compact link label."""
        return self.name.rsplit("-", 1)[-1]


@dataclass
class Group:
    """One leaderboard row: compare_table's figures plus what the site adds (olympic mean, energy, ...)."""
    row: dict                      # compare_table's row, unchanged
    members: list[dict]            # the table rows behind it (all statuses)
    olympic: dict                  # bench.core.stats.olympic_mean over the counted runs
    energy_j_mean: float | None
    date: str | None               # the newest run's timestamp, date part
    commits: list[str]             # git commits of the runs, short, "+dirty" when the tree was dirty
    bundles: list[Bundle]          # the bundles holding this group's runs
    price_na: bool                 # compare.price_na: no accelerator price applies (a CPU), cost unknown

    @property
    def verify_state(self) -> str:
        """'pass' when every bundle behind the group verifies, 'fail' when one does not, 'none' without one."""
        if not self.bundles:
            return "none"
        return "pass" if all(b.verified for b in self.bundles) else "fail"

    @property
    def convergence_failed(self) -> list[Bundle]:
        """The bundles behind this row whose runs converge faster than their references (bench rcp)."""
        return [b for b in self.bundles if b.convergence_failed]


@dataclass
class Board:
    dataset: str
    fingerprint: str | None
    metric: str                    # the target's metric (bench.report.scores): test_acc, fd_judge, ...
    target: float | None
    hardware: str
    groups: list[Group] = field(default_factory=list)

    @property
    def mode(self) -> str:
        """'max' or 'min': which way the board's metric is better (a GAN's fd_judge: lower)."""
        from bench.report.scores import mode_of

        return mode_of(self.metric)

    @property
    def official(self) -> bool:
        return self.dataset == OFFICIAL_DATASET

    @property
    def title(self) -> str:
        from bench.report.history import board_title

        return board_title((self.dataset, self.fingerprint, self.metric, self.target, self.hardware))

    @property
    def anchor(self) -> str:
        fp = (self.fingerprint or "none")[:12]
        parts = ["board", self.dataset, fp] + ([] if self.metric == "test_acc" else [self.metric])
        # an id and a URL fragment alike: letters, digits, _ . - only (a device name may hold anything)
        return re.sub(r"[^A-Za-z0-9_.-]", "_", "-".join(parts + [f"{self.target}", self.hardware]))


# ------------------------------------------------------------------------------------------ reading

def read_tables(paths: list[Path]):
    """The rows of every table, one DataFrame; a run id seen twice (the same table passed twice, or a copy)
    is kept once, from the first table that has it."""
    import pandas as pd

    from bench.core.results import read_table

    frames = []
    for path in paths:
        if not Path(path).is_file():
            raise BenchError(f"--results {path}: no such file (run `bench run` first, or pass the results table "
                             f"with --results PATH)")
        frames.append(read_table(path))
    if not frames:
        raise BenchError("no results table given: pass --results PATH")
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return df.drop_duplicates(subset="run_id", keep="first", ignore_index=True)


def find_bundles(dirs: list[Path]) -> list[Bundle]:
    """Every bundle (a folder with a runs/ folder) directly under each of `dirs`, checked by `bench verify`."""
    from bench.report import verify

    out, seen = [], set()
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise BenchError(f"--reports {d}: no such directory (pass the folder that holds report bundles, "
                             f"e.g. results/reports)")
        for path in sorted(p for p in d.iterdir() if (p / "runs").is_dir()):
            if path.name in seen:  # a bundle's page is named after its folder: two of one name would collide
                continue
            seen.add(path.name)
            ids = sorted(p.name for p in (path / "runs").iterdir() if p.is_dir())
            out.append(Bundle(path.name, path, ids, verify.check(path).problems))
    return out


# ------------------------------------------------------------------------------------------ grouping

def _short_commit(row: dict) -> str | None:
    commit = row.get("git_commit")
    if not commit:
        return None
    return commit[:7] + ("+dirty" if row.get("git_dirty") else "")


def _mean(values):
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def hardware(row: dict) -> str:
    """'1x AMD EPYC (cpu)', '8x NVIDIA H100 80GB HBM3 (cuda, 2 nodes)': bench.report.history.hardware, the one
    rule for what a board's runs ran on (a recipe's history is drawn per board too)."""
    from bench.report.history import hardware as rule

    return rule(row)


def make_group(row: dict, members: list[dict], bundles_by_run: dict[str, Bundle]) -> Group:
    from bench.core.stats import olympic_mean

    counted = [m for m in members if m.get("status") in compare.COUNTED]
    times = [m.get("time_to_target_s") if m.get("status") == "reached" else None for m in counted]
    stamps = sorted(m["timestamp"] for m in members if m.get("timestamp"))
    commits = sorted({c for c in map(_short_commit, members) if c})
    bundles = {bundles_by_run[m["run_id"]].name: bundles_by_run[m["run_id"]]
               for m in members if m.get("run_id") in bundles_by_run}
    return Group(row=row, members=members, olympic=olympic_mean(times),
                 energy_j_mean=_mean([m.get("energy_j") for m in counted]),
                 date=stamps[-1][:10] if stamps else None, commits=commits,
                 bundles=[bundles[k] for k in sorted(bundles)],
                 price_na=compare.price_na(counted))  # the rule bench compare prints by


def groups(df, bundles: list[Bundle]) -> list[Group]:
    """compare_table's ranked groups, each with its member rows and bundles."""
    members: dict[tuple, list[dict]] = {}
    for r in compare.records(df):
        members.setdefault(compare.group_key(r), []).append(r)
    by_run = {rid: b for b in bundles for rid in b.run_ids}
    return [make_group(row, members[compare.group_key(row)], by_run) for row in compare.compare_table(df)]


def boards(df, bundles: list[Bundle]) -> list[Board]:
    """Groups split into boards (data set, target, hardware); official CIFAR-10 first, then by name, target and
    hardware. Inside a board groups keep compare_table's order (fastest mean time first) and are re-ranked."""
    out: dict[tuple, Board] = {}
    for g in groups(df, bundles):
        first = g.members[0]
        key = (first.get("dataset") or "?", g.row["dataset_fingerprint"], g.row["metric"], g.row["target"],
               hardware(first))
        out.setdefault(key, Board(*key)).groups.append(g)
    for board in out.values():
        rank = 0
        for g in board.groups:
            if g.row["time_mean"] is not None:
                rank += 1
            g.row = {**g.row, "rank": rank if g.row["time_mean"] is not None else None}
    return sorted(out.values(), key=lambda b: (not b.official, b.dataset, b.fingerprint or "",
                                               b.metric != "test_acc", b.metric,  # accuracy boards before scores
                                               -1 if b.target is None else b.target, b.hardware))
