"""`bench verify` on hand-made bundles (tests/bundles.py), check by check: each edit to a verifying bundle is
named by file, line, run and field, and nothing else is; unreadable raw files are listed one by one; a GAN
score bundle is checked on its own columns. The same checks on a real trained bundle are in test_report.py."""
from __future__ import annotations

import json
import shutil

import pytest

from bundles import (RUNS, bench, copy_of, edited_row, make_bundle, problems_of, run_ids_of,
                     verify_errors)


def test_verify_names_a_recipe_whose_contents_do_not_match_its_hash(tmp_path, capsys):
    b = make_bundle(tmp_path, RUNS[:2])
    text = (b / "recipe.yaml").read_text()
    (b / "recipe.yaml").write_text(text.replace("lr: 0.4", "lr: 0.5", 1))
    err = verify_errors(b, capsys)
    stated = text.splitlines()[0].rsplit("hash", 1)[1].strip()
    assert f"recipe.yaml: its header says hash '{stated}' but its contents hash to '" in err, err
    assert "recipe.yaml: changed" in err


def test_verify_names_a_duplicated_and_a_missing_row(tmp_path, capsys):
    b = make_bundle(tmp_path, RUNS[:3])
    lines = (b / "results.csv").read_text().splitlines(keepends=True)
    header, first, second, third = lines
    (b / "results.csv").write_text(header + first + second + first)  # the third run's row replaced by a copy
    err = verify_errors(b, capsys)
    ids = sorted(p.name for p in (b / "runs").iterdir())
    assert f"results.csv:4: run {ids[0]} appears twice" in err, err
    assert f"results.csv: run {ids[2]} has an event log with run_stop but no row" in err, err


def test_verify_names_a_row_without_an_event_log(tmp_path, capsys):
    b = make_bundle(tmp_path, RUNS[:1])
    lines = (b / "results.csv").read_text().splitlines(keepends=True)
    stranger = "20260101T000009.000000Z-000009"
    (b / "results.csv").write_text("".join(lines) + lines[1].replace(lines[1].split(",")[0], stranger, 1))
    err = verify_errors(b, capsys)
    assert f"results.csv:3: run {stranger} has no event log (runs/{stranger}/mllog.txt)" in err, err


def test_verify_names_an_edited_dawnbench_tsv(tmp_path, capsys):
    b = make_bundle(tmp_path, RUNS[:1])
    run_id = next((b / "runs").iterdir()).name
    tsv = b / "runs" / run_id / "dawnbench.tsv"
    lines = tsv.read_text().splitlines(keepends=True)
    epoch, hours, acc = lines[-1].rstrip("\n").split("\t")
    lines[-1] = f"{epoch}\t{float(hours) / 2!r}\t{acc}\n"  # half the time: a faster entry than the logs hold
    tsv.write_text("".join(lines))
    err = verify_errors(b, capsys)
    assert f"runs/{run_id}/dawnbench.tsv: differs from what the raw files give" in err, err
    assert f"runs/{run_id}/dawnbench.tsv: changed" in err


ROW_EDITS = {"status": "missed", "time_to_target_s": "21.0", "best_acc": "0.95", "final_acc": "0.95", "epochs": "3",
             "init_s": "2.5", "wall_s": "22.5", "gpu_hours": "1.0", "cost_usd": "5.0", "seed": "7", "world_size": "2",
             "target": "0.8", "recipe": "other", "recipe_hash": "0" * 16, "dataset_fingerprint": "e" * 64}


@pytest.mark.parametrize("field", ROW_EDITS)
def test_verify_names_each_edited_row_field(hand_bundle, tmp_path, capsys, field):
    """Every verifiable cell of results.csv is recomputed from the raw files: an edit is named by line, run and
    column, with the value the event logs give."""
    b, rid = edited_row(hand_bundle, tmp_path, field, ROW_EDITS[field])
    err = verify_errors(b, capsys)
    assert f"results.csv:2: run {rid}: {field}: file has " in err, err
    problems = [line for line in err.splitlines() if line.startswith("  - ")]
    assert len(problems) == 2 and "results.csv: changed" in err, err  # that cell, and the MANIFEST's hash


@pytest.mark.parametrize("field", ["wall_s", "cost_usd", "seed", "world_size", "target"])
def test_verify_names_a_cell_that_is_not_a_number(hand_bundle, tmp_path, capsys, field):
    b, rid = edited_row(hand_bundle, tmp_path, field, "n/a")
    err = verify_errors(b, capsys)
    assert f"results.csv:2: run {rid}: {field} is 'n/a', not a number" in err, err
    assert "does not verify (2 problems)" in err  # that cell, and the MANIFEST's hash


def test_summary_diff_names_every_difference():
    from bench.report.verify import _Diff

    # a run out of place comes first: the runs after it are still compared
    want = {"a": 1.0, "b": {"c": [1, 2]}, "runs": [{"run_id": "r2", "x": 1}, {"run_id": "r1", "x": 0.5}],
            "gone": 3, "s": "t", "n": None, 5: 2, "shape": {"x": 1}}
    got = {"a": 1.0 + 1e-12, "b": {"c": [1, 2, 3]}, "runs": [{"run_id": "r3", "x": 1}, {"run_id": "r1", "x": 0.6}],
           "extra": 4, "s": "u", "n": 0, 5: 2, "shape": [1]}
    d = _Diff("summary.json")
    d.walk(want, got, "")
    assert d.problems == [
        "summary.json: b.c: 3 entries, the event logs give 2",
        "summary.json: extra: unexpected field (value 4)",
        "summary.json: gone: missing (the event logs give 3)",
        "summary.json: n: file has 0, the raw files give None",
        "summary.json: runs[0]: run 'r3', expected 'r2'",
        "summary.json: runs[r1].x: file has 0.6, the event logs give 0.5",
        "summary.json: s: file has 'u', the raw files give 't'",
        "summary.json: shape: file has [1], the raw files give {'x': 1}",
    ]
    assert d.figures == 5  # a, b.c[0], b.c[1], runs[r1].x and key 5: numbers compared on both sides


def test_verify_counts_only_real_numbers_as_figures():
    from bench.report.verify import _is_num

    assert _is_num(1) and _is_num(1.5) and not _is_num(True) and not _is_num("1") and not _is_num(None)


ROW_NUMBERS = ("time_to_target_s", "best_acc", "final_acc", "epochs", "init_s", "wall_s", "gpu_hours", "cost_usd",
               "seed", "world_size", "target")


def test_verify_counts_its_runs_and_every_figure_it_compared(tmp_path, capsys):
    """`verified: N runs, M figures`: M is every number in summary.json plus every filled numeric cell of
    results.csv that verify recomputes, counted here from the files themselves."""
    import csv

    b = make_bundle(tmp_path, RUNS)

    def numbers(x) -> int:
        if isinstance(x, dict):
            return sum(numbers(v) for v in x.values())
        if isinstance(x, list):
            return sum(numbers(v) for v in x)
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    with (b / "results.csv").open(newline="") as f:
        cells = sum(bool(row[k]) for row in csv.DictReader(f) for k in ROW_NUMBERS)
    want = numbers(json.loads((b / "summary.json").read_text())) + cells
    assert cells == 5 * 11 - 1 - 4  # the miss has no time-to-target; the aborted run no time, best, final, epochs
    assert bench("verify", b) == 0
    first, convergence = capsys.readouterr().out.splitlines()[:2]  # then the convergence check (tests/test_rcp.py)
    assert first == f"verified: 5 runs, {want} figures" and convergence.startswith("convergence: ")


def test_verify_lists_every_unreadable_raw_file_then_stops(tmp_path):
    b = make_bundle(tmp_path, RUNS[:2])
    first, second = run_ids_of(b)
    (b / "env.json").write_text("{")
    with (b / "runs" / second / "mllog.txt").open("a") as f:
        f.write(":::MLLOG {not json}\n:::MLLOG {}\n")
    problems = problems_of(b)
    assert problems[:2] == ["env.json: changed (its sha256 differs from the one in MANIFEST)",
                            f"runs/{second}/mllog.txt: changed (its sha256 differs from the one in MANIFEST)"]
    assert problems[2].startswith("env.json:1: not valid JSON ("), problems
    assert problems[3].startswith(f"runs/{second}/mllog.txt:"), problems
    assert problems[4:] == ["summary.json, results.csv: not recomputed, because the raw files above could not be read"]


def test_verify_recomputes_nothing_when_only_one_event_log_is_unreadable(tmp_path):
    b = make_bundle(tmp_path, RUNS[:2])
    log = b / "runs" / run_ids_of(b)[1] / "mllog.txt"
    log.write_text(log.read_text() + ":::MLLOG {not json}\n:::MLLOG {}\n")
    assert problems_of(b)[-1] == ("summary.json, results.csv: not recomputed, because the raw files above could "
                                  "not be read")


def test_verify_without_a_runs_folder_names_it(tmp_path):
    from bench.report import verify

    b = make_bundle(tmp_path, RUNS[:1])
    shutil.rmtree(b / "runs")
    out = verify.check(b)
    assert "runs/: missing, so there are no event logs to read" in out.problems
    assert out.problems[-1].startswith("summary.json, results.csv: not recomputed") and out.runs == 0


def test_verify_names_a_log_it_cannot_summarise_and_keeps_the_other_problems(tmp_path):
    from bench.report import verify

    b = make_bundle(tmp_path, RUNS[:1])
    rid = run_ids_of(b)[0]
    log = b / "runs" / rid / "mllog.txt"
    lines = log.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if '"eval_accuracy"' in line)
    record = json.loads(lines[at].split(" ", 1)[1])
    record["value"] = "high"
    lines[at] = ":::MLLOG " + json.dumps(record) + "\n"
    log.write_text("".join(lines))
    out = verify.check(b)
    assert out.problems == [
        f"runs/{rid}/mllog.txt: changed (its sha256 differs from the one in MANIFEST)",
        f"runs/{rid}/mllog.txt:{at + 1}: eval_accuracy value is 'high', expected a finite number",
        "summary.json: not recomputed, because of the problem above"]
    assert out.runs == 1


def test_verify_names_an_unreadable_summary_json(hand_bundle, tmp_path):
    b = copy_of(hand_bundle, tmp_path)
    (b / "summary.json").write_text('{"schema": ')
    problems = problems_of(b)
    assert problems[0] == "summary.json: changed (its sha256 differs from the one in MANIFEST)"
    assert problems[1].startswith("summary.json:1: not valid JSON ("), problems
    assert len(problems) == 2


def test_verify_names_an_edited_summary_figure_by_its_path(hand_bundle, tmp_path):
    b = copy_of(hand_bundle, tmp_path)
    s = json.loads((b / "summary.json").read_text())
    s["stats"]["n_runs"] = 4
    (b / "summary.json").write_text(json.dumps(s))
    assert problems_of(b) == ["summary.json: changed (its sha256 differs from the one in MANIFEST)",
                              "summary.json: stats.n_runs: file has 4, the event logs give 1"]


def test_verify_names_a_blank_cell_the_logs_fill(hand_bundle, tmp_path):
    b, rid = edited_row(hand_bundle, tmp_path, "time_to_target_s", "")
    assert problems_of(b) == [
        "results.csv: changed (its sha256 differs from the one in MANIFEST)",
        f"results.csv:2: run {rid}: time_to_target_s: file has None, the event logs give 20.0"]


def test_verify_accepts_a_row_number_within_1e9_relative(hand_bundle, tmp_path):
    b, _ = edited_row(hand_bundle, tmp_path, "wall_s", repr(21.5 * (1 + 1e-12)))
    assert problems_of(b) == ["results.csv: changed (its sha256 differs from the one in MANIFEST)"]


def test_verify_checks_the_rows_after_a_row_without_an_event_log(hand_bundle, tmp_path):
    b = copy_of(hand_bundle, tmp_path)
    header, row = (b / "results.csv").read_text().splitlines(keepends=True)
    rid = row.split(",")[0]
    stranger = "20260101T000009.000000Z-000009"
    (b / "results.csv").write_text(header + row.replace(rid, stranger, 1) + row.replace(",21.5,", ",22.5,"))
    assert problems_of(b) == [
        "results.csv: changed (its sha256 differs from the one in MANIFEST)",
        f"results.csv:2: run {stranger} has no event log (runs/{stranger}/mllog.txt)",
        f"results.csv:3: run {rid}: wall_s: file has 22.5, the event logs give 21.5"]


def test_verify_names_a_missing_export_and_reads_any_bytes(hand_bundle, tmp_path, capsys):
    b = copy_of(hand_bundle, tmp_path)
    rid = run_ids_of(b)[0]
    (b / "runs" / rid / "dawnbench.tsv").unlink()
    with (b / "report.md").open("ab") as f:
        f.write(b"\xff\xfe not UTF-8\n")
    assert problems_of(b) == [
        f"runs/{rid}/dawnbench.tsv: missing (listed in MANIFEST, not in the bundle)",
        "report.md: changed (its sha256 differs from the one in MANIFEST)",
        "report.md: differs from what the raw files give (edited, or built by another version)",
        f"runs/{rid}/dawnbench.tsv: missing (bench report DIR rebuilds it)"]


def test_verify_counts_one_problem_as_one(hand_bundle, tmp_path, capsys):
    b = copy_of(hand_bundle, tmp_path)
    (b / "notes.txt").write_text("mine\n")
    err = verify_errors(b, capsys)
    assert "does not verify (1 problem):\n  - notes.txt: extra file (not listed in MANIFEST)" in err, err


GAN_RUNS = [{"status": "reached", "evals": [(10.0, 300.0), (20.0, 240.0)], "ttt": 20.0},
            {"status": "missed", "evals": [(10.0, 400.0), (21.0, 260.0)]}]


def test_a_score_bundle_verifies_and_its_metric_columns_are_checked(tmp_path):
    """A GAN run set (kind: gan, fd_judge, lower is better): best_metric / final_metric are the recomputed
    columns, and it has no DAWNBench exports to re-render."""
    b = make_bundle(tmp_path, GAN_RUNS, target=250.0, recipe_name="wgan_cpu")
    s = json.loads((b / "summary.json").read_text())
    assert s["kind"] == "gan" and [r["best_metric"] for r in s["runs"]] == [240.0, 260.0]
    # an eval_score's other figures ride along; the baselines come without the logger's file and line
    assert s["runs"][0]["evals"][1] == {"epoch": 2, "elapsed_s": 20.0, "value": 240.0, "is_judge": 1.5}
    assert s["runs"][1]["baselines"] == {"untrained": {"fd_judge": 400.0}, "real": {"fd_judge": 50.0}}
    assert s["stats"]["ttest"]["hypothesis"] == ("H0: mean fd_judge >= target; H1: mean fd_judge < target "
                                                 "(one-sided)")
    assert s["target_check"] == {"untrained": 400.0, "real": 50.0, "target": 250.0, "halfway": 225.0,
                                 "share_of_the_way": pytest.approx(150 / 350), "at_least_halfway": False}
    assert problems_of(b) == []
    assert not list(b.glob("runs/*/dawnbench.*"))
    c, rid = edited_row(b, tmp_path, "best_metric", "230.0")
    assert problems_of(c) == ["results.csv: changed (its sha256 differs from the one in MANIFEST)",
                              f"results.csv:2: run {rid}: best_metric: file has 230.0, the event logs give 240.0"]
