"""A recipe's history (bench.report.history): `bench compare --by commit RECIPE` and the site's recipe pages.

Hand-made rows, so every order and every statistic is known: commits ordered by the date of their earliest run
(not by the table's order, nor by name), dirty trees apart, one series per board, the change from the previous
commit tested with Welch's t-test (bench.core.stats.welch)."""
from __future__ import annotations

import pytest
from scipy import stats as sps

from bench.cli import main as bench_main
from bench.core.results import append_row
from bench.report import history as H

BASE = {"recipe": "r", "recipe_hash": "abc123", "dataset": "cifar10", "dataset_fingerprint": "f" * 64,
        "target": 0.94, "device": "cuda", "device_name": "NVIDIA H100", "device_count": 1, "world_size": 1,
        "precision": "bf16", "status": "reached", "git_dirty": False}


def row(i: int, commit: str, stamp: str, time: float | None, **extra) -> dict:
    status = extra.pop("status", "reached" if time is not None else "missed")
    return {**BASE, "run_id": f"{stamp.replace('-', '').replace(':', '')[:15]}.000000Z-{i:06x}", "timestamp": stamp,
            "git_commit": commit * 8, "time_to_target_s": time, "status": status, **extra}


def table() -> list[dict]:
    """Commit ccc ran first (1 Dec), then aaa (3 Dec), then bbb (5 Dec), written to the table out of order; aaa
    was measured again on 9 Dec. bbb is 20% slower than aaa, clearly; ccc -> aaa is noise."""
    return [
        row(1, "b", "2026-12-05T10:00:00+00:00", 12.0), row(2, "b", "2026-12-05T10:10:00+00:00", 12.1),
        row(3, "b", "2026-12-05T10:20:00+00:00", 11.9),
        row(4, "a", "2026-12-03T10:00:00+00:00", 10.0), row(5, "a", "2026-12-03T10:10:00+00:00", 10.1),
        row(6, "a", "2026-12-09T10:00:00+00:00", 9.9),  # aaa again, later: joins aaa, which keeps 3 Dec
        row(7, "c", "2026-12-01T10:00:00+00:00", 10.05), row(8, "c", "2026-12-01T10:10:00+00:00", 9.95),
        row(9, "c", "2026-12-01T10:20:00+00:00", None),  # a miss counts in n, not in the times
        row(10, "c", "2026-12-01T10:30:00+00:00", 99.0, status="aborted"),  # excluded
    ]


def test_commits_are_ordered_by_the_date_of_their_first_run():
    [s] = H.series(table(), "r")
    assert [c.label for c in s.commits] == ["ccccccc", "aaaaaaa", "bbbbbbb"]  # not a, b, c; not table order
    c, a, b = s.commits
    assert a.first.isoformat() == "2026-12-03T10:00:00+00:00" and len(a.runs) == 3  # the 9 Dec run joined it
    assert [r["run_id"][-6:] for r in a.runs] == ["000004", "000005", "000006"]  # oldest first
    assert (len(c.runs), len(c.times), c.excluded) == (3, 2, 1)
    assert c.stats["mean"] == pytest.approx(10.0) and c.change is None


def test_the_change_from_the_previous_commit_is_welchs_test():
    [s] = H.series(table(), "r")
    c, a, b = s.commits
    assert a.change["verdict"] == "no significant change" and not a.change["significant"]
    assert a.change["welch"]["p"] == pytest.approx(sps.ttest_ind(c.times, a.times, equal_var=False).pvalue)
    assert b.change["delta_s"] == pytest.approx(12.0 - 10.0)
    assert b.change["delta_pct"] == pytest.approx(0.2)
    assert b.change["welch"]["p"] < 0.05 and b.change["verdict"] == "slower"
    # the other way round: faster
    rows = [r for r in table() if r["git_commit"][0] != "c"]
    rows = [{**r, "time_to_target_s": 22.0 - r["time_to_target_s"]} for r in rows]  # bbb ~10 s, aaa ~12 s
    [s] = H.series(rows, "r")
    assert [c.label for c in s.commits] == ["aaaaaaa", "bbbbbbb"] and s.commits[1].change["verdict"] == "faster"


def test_too_few_times_are_not_tested_and_say_so():
    rows = [row(1, "a", "2026-12-01T00:00:00+00:00", 10.0), row(2, "b", "2026-12-02T00:00:00+00:00", 30.0),
            row(3, "b", "2026-12-02T01:00:00+00:00", 31.0), row(4, "c", "2026-12-03T00:00:00+00:00", None),
            row(5, "d", "2026-12-04T00:00:00+00:00", 32.0), row(6, "d", "2026-12-04T01:00:00+00:00", 33.0)]
    [s] = H.series(rows, "r")
    a, b, c, d = s.commits
    assert b.change["welch"]["p"] is None and b.change["verdict"].startswith("not tested")
    assert b.change["delta_s"] == pytest.approx(20.5)
    assert c.change["verdict"] == "no time to compare" and c.stats["mean"] is None
    # against the previous commit (c: no time), not the first (a) nor the last timed one (b)
    assert d.change["verdict"] == "no time to compare" and d.change["delta_s"] is None


def test_dirty_trees_unknown_commits_and_missing_timestamps():
    rows = [row(1, "a", "2026-12-02T00:00:00+00:00", 10.0),
            row(2, "a", "2026-12-01T00:00:00+00:00", 11.0, git_dirty=True),
            {**row(3, "b", "2026-11-30T00:00:00+00:00", 12.0), "timestamp": None},  # the run_id's time counts
            {**row(4, "x", "2026-12-03T00:00:00+00:00", 13.0), "git_commit": None}]
    [s] = H.series(rows, "r")
    assert [c.label for c in s.commits] == ["bbbbbbb", "aaaaaaa+dirty", "aaaaaaa", "unknown"]
    assert s.commits[0].first.isoformat() == "2026-11-30T00:00:00+00:00"


def test_one_series_per_board_and_recipe():
    rows = table() + [row(20, "a", "2026-12-03T11:00:00+00:00", 50.0, device_name="AMD EPYC", device="cpu"),
                      row(21, "a", "2026-12-03T11:00:00+00:00", 0.5, target=0.8),
                      row(22, "a", "2026-12-03T11:00:00+00:00", 5.0, recipe="other")]
    series = H.series(rows, "r")
    assert len(series) == 3
    for s in series:
        for c in s.commits:
            assert all(H.board_key(r) == s.key for r in c.runs) and all(r["recipe"] == "r" for r in c.runs)
    titles = [s.title for s in series]
    assert "cifar10 · time to 94.00% · 1x NVIDIA H100 (cuda)" in titles
    assert "cifar10 · time to 94.00% · 1x AMD EPYC (cpu)" in titles
    # a score target: lower is better, titled by its metric
    gan = [{**r, "metric": "fd_judge", "target": 250.0} for r in table()]
    [s] = H.series(gan, "r")
    assert s.title == "cifar10 · time to fd_judge ≤ 250 · 1x NVIDIA H100 (cuda)"


def test_compare_by_commit_prints_the_same_table(tmp_path, capsys):
    path = tmp_path / "results.csv"
    for r in table():
        append_row(path, r)
    assert bench_main(["compare", "--by", "commit", "r", "--results", str(path), "--no-plot"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "r on cifar10 · time to 94.00% · 1x NVIDIA H100 (cuda): 3 commit(s), oldest first"
    body = [line.split()[0] for line in lines[2:5]]
    assert body == ["ccccccc", "aaaaaaa", "bbbbbbb"]
    slower = lines[4]
    assert "+2.00 s (+20.0%)" in slower and "slower" in slower
    assert "2/3" in lines[2] and "+1 excl." in lines[2] and "first commit" in lines[2]
    assert "ordered by their earliest run's timestamp" in out and "Welch" in out
    assert not (tmp_path / "compare.png").exists()


def test_compare_by_commit_refuses_what_it_cannot_answer(tmp_path, capsys):
    path = tmp_path / "results.csv"
    append_row(path, table()[0])
    assert bench_main(["compare", "--by", "commit", "--results", str(path), "--no-plot"]) == 2
    assert "name the recipe" in capsys.readouterr().err
    assert bench_main(["compare", "--by", "commit", "nope", "--results", str(path), "--no-plot"]) == 2
    assert "no rows of recipe 'nope'; the table holds: r" in capsys.readouterr().err
    assert bench_main(["compare", "r", "--results", str(path), "--no-plot"]) == 2
    assert "--by commit" in capsys.readouterr().err


def test_the_plot_is_a_png(tmp_path):
    [s] = H.series(table(), "r")
    png = H.plot(s, tmp_path / "h.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
