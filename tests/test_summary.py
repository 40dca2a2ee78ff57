"""bench.report.summary: the raw-file readers and their errors, a run's facts from its event log, and every
field of summary.json from a hand-made Raw. The figures on whole bundles are in test_report.py."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.core.errors import BenchError
from bundles import RUNS, copy_of, make_bundle, run_ids_of


def load_error(b: Path) -> str:
    from bench.report import summary

    with pytest.raises(BenchError) as e:
        summary.load(b)
    return str(e.value)


RECIPE_EDITS = {  # the recipe.yaml written instead -> the error `bench report` / verify give
    "a: 1\nb: 2\nc: d: e\n": "recipe.yaml:3: not valid YAML (mapping values are not allowed here)",
    # an unclosed list: the parser finds out at the end of the text, on line 3
    "# resolved recipe x, hash 0\na: [\n": "recipe.yaml:3: not valid YAML (expected the node content, but found "
                                           "'<stream end>')",
    "a: \x07\n": "recipe.yaml: not valid YAML (unacceptable character #x0007: special characters are not allowed)",
    "": "recipe.yaml: not a resolved recipe (no target.value)",
    "- 1\n": "recipe.yaml: not a resolved recipe (no target.value)",
    "target: 5\n": "recipe.yaml: not a resolved recipe (no target.value)",
    "target: {metric: test_acc}\n": "recipe.yaml: not a resolved recipe (no target.value)",
}


@pytest.mark.parametrize("text", RECIPE_EDITS)
def test_an_unreadable_recipe_yaml_is_named_with_its_line(hand_bundle, tmp_path, text):
    b = copy_of(hand_bundle, tmp_path)
    (b / "recipe.yaml").write_text(text)
    assert load_error(b) == RECIPE_EDITS[text]


@pytest.mark.parametrize("header, stated", [
    ("# resolved recipe cpu_quick, hash 95e0", "95e0"),
    ("# resolved recipe hash_race, hash 95e0", "95e0"),  # the last "hash" on the line is the label
    ("# written by hand", None),
    ("name: hash_race", None),  # not a comment: no header at all
])
def test_the_recipe_header_gives_the_stated_hash(hand_bundle, tmp_path, header, stated):
    from bench.report import summary

    b = copy_of(hand_bundle, tmp_path)
    body = (b / "recipe.yaml").read_text().split("\n", 1)[1]
    (b / "recipe.yaml").write_text(f"{header}\n{body}")
    recipe, got = summary.read_recipe(b)
    assert got == stated and recipe["target"]["value"] == 0.9


def test_load_reads_every_raw_file(hand_bundle):
    from bench.report import summary

    raw = summary.load(hand_bundle)
    header = (hand_bundle / "recipe.yaml").read_text().splitlines()[0]
    assert raw.dir == hand_bundle and header.endswith(f"hash {raw.recipe_hash}") and raw.target == 0.9
    assert raw.env == json.loads((hand_bundle / "env.json").read_text())
    assert raw.dataset == json.loads((hand_bundle / "dataset.json").read_text())
    assert [r["run_id"] for r in raw.rows] == list(raw.logs) == run_ids_of(hand_bundle)
    assert raw.logs[run_ids_of(hand_bundle)[0]][0]["key"] == "init_start"


@pytest.mark.parametrize("content, error", [
    (b"[1, 2]", "env.json: expected a JSON object, got list"),
    (b'{"a": 1,\n', "env.json:2: not valid JSON (Expecting property name enclosed in double quotes)"),
    (b'{"host": "\xff"}', "env.json: cannot read it ('utf-8' codec can't decode byte 0xff in position 10: "
                          "invalid start byte)"),
    (None, "env.json: missing"),
])
def test_an_unreadable_json_file_is_named(hand_bundle, tmp_path, content, error):
    b = copy_of(hand_bundle, tmp_path)
    if content is None:
        (b / "env.json").unlink()
    else:
        (b / "env.json").write_bytes(content)
    assert load_error(b) == error


def test_a_cut_results_csv_is_named_with_its_line(hand_bundle, tmp_path):
    b = copy_of(hand_bundle, tmp_path)
    with (b / "results.csv").open("a") as f:
        f.write("20260101T000009.000000Z-000009,cpu_quick\n")
    assert load_error(b) == ("results.csv:3: malformed row: line 3 has 2 fields, the header has 21; probably cut "
                             "short by a crash or an edit. The bundle's raw files were edited or cut short: it does "
                             "not verify.")


def test_a_missing_or_cut_event_log_is_named_by_its_place_in_the_bundle(hand_bundle, tmp_path):
    b = copy_of(hand_bundle, tmp_path)
    rid = run_ids_of(b)[0]
    log = b / "runs" / rid / "mllog.txt"
    text = log.read_text()
    log.write_text(text[:-30])
    lines = text.count("\n")
    assert load_error(b).startswith(f"runs/{rid}/mllog.txt:{lines}: not an MLPerf log line: ")
    assert load_error(b).endswith("(the last line has no newline: the writer was probably killed mid-line)")
    assert str(b) not in load_error(b) and "allow_truncated_tail" not in load_error(b)
    log.unlink()
    assert load_error(b) == f"runs/{rid}/mllog.txt: missing"


# ------------------------------------------------------------------------------------------ a run's facts from its log

def log_events(evals, stop: dict | None) -> list[dict]:
    """MLLOG records as summary reads them: seed, init, one epoch_stop per evaluation, then run_stop."""
    ev = [{"key": "seed", "value": 3, "metadata": {}},
          {"key": "init_stop", "value": None, "metadata": {"init_s": 1.5}}]
    for i, (t, acc) in enumerate(evals, start=1):
        ev.append({"key": "epoch_stop", "value": None, "metadata": {"epoch_num": i}})
        ev.append({"key": "eval_accuracy", "value": acc, "metadata": {"epoch_num": i, "elapsed_s": t}})
    if stop is not None:
        ev.append({"key": "run_stop", "value": None, "metadata": stop})
    return ev


def reached_stop(**over) -> dict:
    return {"status": "success", "bench_status": "reached", "wall_s": 22.0, "epochs": 2, "time_to_target_s": 20.0,
            **over}


def test_run_facts_read_a_reached_run():
    from bench.report.summary import run_facts

    f = run_facts("r", log_events([(10.0, 0.85), (20.0, 0.91)], reached_stop()), 0.9, True, "max")
    assert (f["status"], f["time_to_target_s"], f["best_acc"], f["final_acc"], f["epochs"], f["seed"],
            f["init_s"], f["wall_s"]) == ("reached", 20.0, 0.91, 0.91, 2, 3, 1.5, 22.0)
    assert f["log_problems"] == []


@pytest.mark.parametrize("stop, problem", [
    (reached_stop(epochs=3), "runs/r/mllog.txt:7: run_stop epochs 3 but the events give 2"),
    (reached_stop(time_to_target_s=None), "runs/r/mllog.txt:7: run_stop time_to_target_s None but the events give 20.0"),
    (reached_stop(time_to_target_s=19.0), "runs/r/mllog.txt:7: run_stop time_to_target_s 19.0 but the events give 20.0"),
    (reached_stop(bench_status="missed", status="aborted"),
     "runs/r/mllog.txt:7: run_stop says bench_status 'missed' but the evaluations make it 'reached'"),
    (reached_stop(status="aborted"), "runs/r/mllog.txt:7: run_stop status 'aborted' does not match 'reached'"),
])
def test_run_facts_name_where_a_log_contradicts_itself(stop, problem):
    from bench.report.summary import run_facts

    f = run_facts("r", log_events([(10.0, 0.85), (20.0, 0.91)], stop), 0.9, True, "max")
    assert problem in f["log_problems"], f["log_problems"]


@pytest.mark.parametrize("value, shown", [(True, "True"), (float("nan"), "nan"), (float("inf"), "inf"),
                                          ("high", "'high'"), (None, "None")])
def test_run_facts_refuse_an_evaluation_that_is_not_a_finite_number(value, shown):
    from bench.report.summary import run_facts

    with pytest.raises(BenchError, match=re.escape(f"runs/r/mllog.txt:4: eval_accuracy value is {shown}, "
                                                   "expected a finite number")):
        run_facts("r", log_events([(10.0, value)], reached_stop()), 0.9, True, "max")
    events = log_events([(10.0, 0.95)], reached_stop())
    del events[3]["metadata"]["elapsed_s"]
    with pytest.raises(BenchError, match="runs/r/mllog.txt:4: eval_accuracy elapsed_s is None, expected a finite"):
        run_facts("r", events, 0.9, True, "max")


def test_run_facts_keep_the_first_seed_and_the_sample_counts():
    from bench.report.summary import run_facts

    events = log_events([(10.0, 0.95)], reached_stop(epochs=1, time_to_target_s=10.0))
    events[1:1] = [{"key": "seed", "value": 4, "metadata": {}},  # a second seed event does not replace the first
                   {"key": "train_samples", "value": 50000, "metadata": {}},
                   {"key": "eval_samples", "value": 10000, "metadata": {}}]
    f = run_facts("r", events, 0.9, True, "max")
    assert (f["seed"], f["train_samples"], f["eval_samples"]) == (3, 50000, 10000)


def test_run_facts_name_a_logged_target_that_is_not_the_recipes():
    from bench.report.summary import run_facts

    events = log_events([(10.0, 0.95)], reached_stop(epochs=1, time_to_target_s=10.0))
    events.insert(1, {"key": "target_accuracy", "value": 0.8, "metadata": {}})
    assert run_facts("r", events, 0.9, True, "max")["log_problems"] == [
        "runs/r/mllog.txt: target_accuracy 0.8 differs from recipe.yaml's 0.9"]
    events[1]["value"] = 0.9 * (1 + 1e-12)  # a JSON round trip's difference is no difference
    assert run_facts("r", events, 0.9, True, "max")["log_problems"] == []


def test_run_facts_take_missing_init_and_wall_times_as_unknown():
    from bench.report.summary import run_facts

    events = log_events([(10.0, 0.95)], reached_stop(epochs=1, time_to_target_s=10.0, wall_s=None))
    del events[1]["metadata"]["init_s"]
    f = run_facts("r", events, 0.9, True, "max")
    assert f["init_s"] is None and f["wall_s"] is None and f["status"] == "reached"


@pytest.mark.parametrize("where, what", [
    (2, "target_accuracy value"), (3, "init_stop metadata init_s"), (5, "eval_accuracy epoch_num"),
    (5, "eval_accuracy elapsed_s"), (5, "eval_accuracy value"), (6, "run_stop metadata wall_s")])
def test_run_facts_name_the_line_and_field_of_a_bad_number(where, what):
    from bench.report.summary import run_facts

    events = log_events([(10.0, 0.95)], reached_stop(epochs=1, time_to_target_s=10.0))
    events.insert(1, {"key": "target_accuracy", "value": 0.9, "metadata": {}})
    ev = events[where - 1]
    field = what.rsplit(" ", 1)[1]
    if field == "value":
        ev["value"] = "x"
    else:
        ev["metadata"][field] = "x"
    with pytest.raises(BenchError) as e:
        run_facts("r", events, 0.9, True, "max")
    assert str(e.value) == f"runs/r/mllog.txt:{where}: {what} is 'x', expected a finite number"


# ------------------------------------------------------------------------------------------ the summary's fields

RICH_RECIPE = {"name": "wrn_test", "target": {"value": 0.9, "metric": "test_acc"},
               "model": {"arch": "wrn", "params": {"depth": 22, "width": 6}}, "provenance": {"source": "the seed"},
               "data": {"loader": "dali", "train_subset": 4000, "test_subset": 1000}, "precision": "auto",
               "memory_format": "channels_last", "compile": True}
RICH_ENV = {"device": "cuda", "world_size": 2, "nodes": 1, "torch": "2.11.0", "cuda": {"version": "13.0"},
            "cudnn": 91000, "nccl": "2.27.3", "dali": "2.4.0", "gpus": [{"driver": "580.65"}, {"driver": "x"}],
            "git": {"commit": "abc123", "dirty": True}, "host": "node7", "threads": 8,
            "cpu": {"model": "Test EPYC"}, "python": "3.11.2", "launcher": "torchrun"}
RICH_DATASET = {"name": "cifar10-jpeg-q75", "fingerprint": "e" * 64, "counts": {"train": 50000, "test": 10000}}


def rich_raw(rows: list[dict], logs: dict, env: dict = RICH_ENV):
    from bench.report import summary

    return summary.Raw(Path("bundle"), RICH_RECIPE, "0123abcd", dict(env), RICH_DATASET, rows, logs)


def samples_logged(events: list[dict], train: int, test: int) -> list[dict]:
    return events[:1] + [{"key": "train_samples", "value": train, "metadata": {}},
                         {"key": "eval_samples", "value": test, "metadata": {}}] + events[1:]


def test_summary_json_says_what_the_raw_files_say():
    """Every descriptive field of summary.json, from a hand-made Raw whose every input is distinct."""
    from bench.report import summary

    logs = {"r1": samples_logged(log_events([(10.0, 0.95)], reached_stop(epochs=1, time_to_target_s=10.0,
                                                                                wall_s=3600.0)), 4000, 1000),
            "r2": log_events([(10.0, 0.5)], {"status": "aborted", "bench_status": "aborted", "wall_s": 7200.0,
                                                   "epochs": None, "time_to_target_s": None})}
    rows = [{"run_id": "r1", "device_name": "NVIDIA H100", "device_count": "2", "precision": "",
             "price_usd_per_hour": "", "price_source": "", "_line": 2},
            {"run_id": "r2", "device_name": "other", "device_count": "4", "precision": "bf16",
             "price_usd_per_hour": "2.5", "price_source": "a price list", "_line": 3}]
    rows = [{k: (v or None) for k, v in r.items()} for r in rows]  # as read_rows gives them: '' is None
    s = summary.compute(rich_raw(rows, logs))
    assert s["schema"] == "bench-summary/1" and s["target"] == 0.9 and s["target_metric"] == "test_acc"
    assert s["recipe"] == {"name": "wrn_test", "hash": "0123abcd", "model": "wrn",
                           "model_params": {"depth": 22, "width": 6}, "provenance": {"source": "the seed"}}
    assert s["dataset"] == {"name": "cifar10-jpeg-q75", "fingerprint": "e" * 64, "official_cifar10": False,
                            "counts": {"train": 50000, "test": 10000}, "train_subset": 4000, "test_subset": 1000,
                            "train_images_used": 4000, "test_images_used": 1000}
    assert s["device"] == {"type": "cuda", "name": "NVIDIA H100", "count": 2, "world_size": 2, "nodes": 1}
    # what ran: the first row that names a precision, over the recipe's `auto`
    assert (s["precision"], s["memory_format"], s["loader"], s["compile"]) == ("bf16", "channels_last", "dali", True)
    assert s["environment"] == {"torch": "2.11.0", "cuda": "13.0", "cudnn": 91000, "nccl": "2.27.3", "dali": "2.4.0",
                                "driver": "580.65", "git_commit": "abc123", "git_dirty": True, "host": "node7",
                                "threads": 8, "cpu_model": "Test EPYC", "python": "3.11.2", "launcher": "torchrun"}
    assert s["price"] == {"usd_per_device_hour": 2.5, "source": "a price list"}
    assert s["timing_rules"] == summary.TIMING_RULES and s["conventions"] == summary.CONVENTIONS
    # device-hours are world_size x wall hours; r1 has no price (cost unknown), r2 is priced from its row
    runs = {r["run_id"]: r for r in s["runs"]}
    assert (runs["r1"]["device_hours"], runs["r1"]["cost_usd"]) == (2.0, None)
    assert (runs["r2"]["device_hours"], runs["r2"]["cost_usd"]) == (4.0, 10.0)
    assert s["totals"] == {"device_hours": 6.0, "cost_usd": None}  # one unknown cost makes the total unknown
    assert s["excluded_runs"] == [{"run_id": "r2", "status": "aborted"}]
    assert s["stats"]["n_runs"] == 1 and s["stats_note"] is None


def test_summary_prices_and_totals_without_a_world_size_or_any_price():
    from bench.core.prices import LEGACY_CPU_SOURCE
    from bench.report import summary

    env = {k: v for k, v in RICH_ENV.items() if k not in ("world_size", "cuda", "cpu", "git", "gpus")}
    stop = reached_stop(epochs=1, time_to_target_s=10.0, wall_s=1800.0)
    logs = {"r1": log_events([(10.0, 0.95)], stop), "r2": log_events([(10.0, 0.95)], stop),
            "r3": log_events([(10.0, 0.95)], None)}  # killed: no run_stop, no wall time, no device-hours
    rows = [{"run_id": "r1", "price_source": LEGACY_CPU_SOURCE, "device_count": "1.5", "_line": 2},
            {"run_id": "r2", "price_source": "n/a", "_line": 3}]
    s = summary.compute(rich_raw(rows, logs, env))
    runs = {r["run_id"]: r for r in s["runs"]}
    assert runs["r1"]["device_hours"] == 0.5 and runs["r1"]["cost_usd"] == 0.0  # rows written so were free
    assert runs["r2"]["cost_usd"] is None and runs["r3"]["device_hours"] is None and runs["r3"]["cost_usd"] is None
    assert s["totals"] == {"device_hours": 1.0, "cost_usd": None}
    assert s["device"]["count"] is None  # a device count that is not a whole number is no count
    assert s["environment"]["cuda"] is None and s["environment"]["driver"] is None
    assert s["environment"]["git_commit"] is None and s["environment"]["cpu_model"] is None
    assert s["price"] == {"usd_per_device_hour": None, "source": LEGACY_CPU_SOURCE}

    free = summary.compute(rich_raw(rows[:1], {"r1": logs["r1"]}, env))
    assert free["totals"] == {"device_hours": 0.5, "cost_usd": 0.0}
    none = summary.compute(rich_raw([], {"r3": logs["r3"]}, env))
    assert none["totals"] == {"device_hours": None, "cost_usd": None}
    assert none["device"] == {"type": "cuda", "name": None, "count": None, "world_size": None, "nodes": 1}
    assert none["precision"] == "auto" and none["dataset"]["train_images_used"] is None
    empty = summary.compute(rich_raw([], {}, env))  # a run set whose first run died before its log
    assert empty["runs"] == [] and empty["stats"] is None and empty["dataset"]["test_images_used"] is None


def test_a_run_counts_in_the_statistics_only_if_it_finished_with_an_evaluation():
    from bench.report import summary

    runs = [{"run_id": "a", "status": "reached", "final_acc": 0.95, "time_to_target_s": 10.0},
            {"run_id": "b", "status": "missed", "final_acc": 0.80, "time_to_target_s": 99.0},  # a miss has no time
            {"run_id": "c", "status": "missed", "final_acc": None, "time_to_target_s": None},  # no evaluation
            {"run_id": "d", "status": "failed", "final_acc": 0.1, "time_to_target_s": None}]
    stats, note = summary.summarize_runs(runs, 0.9, "max", "accuracy")
    assert note is None and stats["n_runs"] == 2 and stats["n_reached"] == 1
    assert stats["time"]["mean"] == 10.0 and stats["accuracy"]["mean"] == pytest.approx(0.875)
    assert summary.summarize_runs(runs[2:], 0.9, "max", "accuracy") == (
        None, "no run finished (every run was aborted or failed), so there is nothing to summarise")


def test_summary_json_is_written_sorted_and_indented(tmp_path):
    text = (make_bundle(tmp_path, RUNS[:1]) / "summary.json").read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    assert text.startswith('{\n  "compile": false,\n  "conventions": {\n    "accuracy": ')


def test_summary_and_verify_compare_with_a_relative_1e9_and_an_absolute_1e12():
    from bench.report.summary import close

    assert close(0.5, 0.5 * (1 + 1e-10)) and not close(0.5, 0.5 * (1 + 1e-8)) and not close(0.5, 0.6)
    assert close(0.0, 1e-13) and not close(0.0, 1e-11)


def facts_of(evals, stop, target_counts=True):
    from bench.report.summary import run_facts

    return run_facts("r", log_events(evals, stop), 0.9, target_counts, "max")


def test_a_diverged_runs_last_evaluation_is_not_its_best():
    """bench.train.loop stops a diverged (failed) run on the epoch that diverged, before that epoch's
    evaluation can count as best; the final accuracy is still the last one evaluated."""
    failed = {"status": "aborted", "bench_status": "failed", "wall_s": 30.0, "epochs": 3, "time_to_target_s": None}
    f = facts_of([(10.0, 0.5), (20.0, 0.7), (30.0, 0.95)], failed)
    assert (f["status"], f["best_acc"], f["final_acc"], f["time_to_target_s"]) == ("failed", 0.7, 0.95, None)
    assert f["log_problems"] == []
    # a run that diverged in an epoch with no evaluation: every evaluation counts
    from bench.report.summary import run_facts

    events = log_events([(10.0, 0.5), (20.0, 0.6)], failed)
    events.insert(-1, {"key": "epoch_stop", "value": None, "metadata": {"epoch_num": 3}})
    f = run_facts("r", events, 0.9, True, "max")
    assert (f["status"], f["best_acc"], f["final_acc"], f["log_problems"]) == ("failed", 0.6, 0.6, [])


def test_a_run_with_no_evaluation_or_on_synthetic_data_has_no_accuracy_or_time():
    missed = {"status": "aborted", "bench_status": "missed", "wall_s": 5.0, "epochs": 0, "time_to_target_s": None}
    f = facts_of([], missed)
    assert (f["status"], f["final_acc"], f["best_acc"], f["epochs"]) == ("missed", None, None, 0)
    # accuracy on synthetic data never counts towards the target: missed, with no time-to-target
    f = facts_of([(10.0, 0.95)], dict(missed, epochs=1), target_counts=False)
    assert (f["status"], f["best_acc"], f["time_to_target_s"]) == ("missed", 0.95, None)
    assert f["log_problems"] == []


def test_excluded_runs_are_the_failed_the_aborted_and_those_never_evaluated():
    from bench.report import summary

    stop = {"status": "aborted", "wall_s": 5.0, "epochs": 1, "time_to_target_s": None}
    logs = {"r1": log_events([(10.0, 0.5)], dict(stop, bench_status="failed")),
            "r2": log_events([], dict(stop, bench_status="missed", epochs=0)),
            "r3": log_events([(10.0, 0.5)], dict(stop, bench_status="missed")),
            "r4": log_events([(10.0, 0.5)], None)}
    s = summary.compute(rich_raw([], logs))
    assert s["excluded_runs"] == [{"run_id": "r1", "status": "failed"}, {"run_id": "r2", "status": "missed"},
                                  {"run_id": "r4", "status": "aborted"}]
    assert s["stats"]["n_runs"] == 1
