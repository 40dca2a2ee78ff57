"""kind: external (`bench external`, recipes of kind external): the referee, its reader, its records, its faults.

Figures are pinned exactly with scripted arrival times: output lines are fed, as bytes, through the real line
reader (bench.system.child.LineReader) and stamped with times the test chooses, then through the real referee
(bench.core.referee), the real runner and bundle writer (bench.run.external) and `bench verify`. Every expected
number is a sum written out by hand. A few tests start real processes, for what only a real process group can
show: signals to the group, the timeout, megabyte and non-UTF-8 lines, exit codes, Ctrl-C and SIGTERM.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench.core import referee
from bench.core.errors import BenchError
from bench.core.referee import Settings
from bench.system.child import Child, LineReader, line_record
from processes import signal_when

PY = sys.executable
REPO = Path(__file__).resolve().parent.parent
LATENCY = {"method": "scripted", "samples_s": [0.001, 0.0005]}  # tolerance: 2 x 0.001 s
ENV = {"host": "testhost", "git": {"commit": "abc", "dirty": False}, "torch": None, "device": "cpu",
       "cpu": {"model": "Test CPU"}, "cuda": {}, "gpus": [], "python": "3"}


def ml(key, value=None, time_ms=None, **meta) -> str:
    rec = {"namespace": "", "time_ms": time_ms, "event_type": "POINT_IN_TIME", "key": key, "value": value,
           "metadata": meta}
    return ":::MLLOG " + json.dumps(rec)


def stamped(script) -> list[dict]:
    """[(t, fd, bytes chunk)] -> output records, through the real LineReader (one per stream), each line stamped
    with the arrival time of the chunk that completed it."""
    readers = {1: LineReader(), 2: LineReader()}
    out = []
    for t, fd, chunk in script:
        data = chunk.encode() if isinstance(chunk, str) else chunk
        out += [line_record(t, fd, raw, cut) for raw, cut in readers[fd].feed(data)]
    return out


def replay(script, exit_t, code=0, settings=None, stop=None, sig=None):
    recs = [{"t": 0.0, "start": ["cmd"], "epoch": 1000.0}] + stamped(script)
    if stop:
        recs.append({"t": stop[0], "stop": stop[1]})
    recs.append({"t": exit_t, "exit": code, "signal": sig})
    return referee.replay(recs, settings or Settings(parse="mllog", target=0.9, tolerance_s=0.002))


def lines(*items):
    """(t, text) pairs on stdout, each a whole line."""
    return [(t, 1, text + "\n") for t, text in items]


# ------------------------------------------------------------------------------------------ the referee's figures

def test_mllog_run_figures_by_the_referees_clock():
    f = replay(lines((0.5, ml("init_start", time_ms=100_000)), (2.0, ml("run_start", time_ms=101_500)),
                     (12.0, ml("eval_accuracy", 0.5, 111_400, epoch_num=1)),
                     (22.0, ml("eval_accuracy", 0.95, 121_490, epoch_num=2)),
                     (23.0, ml("run_stop", time_ms=122_000))), exit_t=25.0)
    (run,) = f["runs"]
    assert run["status"] == "reached" and run["timed_from"] == "run start line"
    assert run["init_s"] == 2.0  # command start -> its run_start line
    assert run["time_to_target_s"] == 22.0 - 2.0  # run_start line -> arrival of the first eval >= 0.9
    assert run["wall_s"] == 25.0  # the whole command: its last run runs to its exit
    assert (run["epochs"], run["best_acc"], run["final_acc"]) == (2, 0.95, 0.95)
    assert [e["elapsed_s"] for e in run["evals"]] == [10.0, 20.0]
    # its own time: (121490 - 101500) ms = 19.99 s; the referee's 20.0 s; gap 0.01 > 0.002 + 0.001 (ms resolution)
    assert run["own_time_s"] == pytest.approx(19.99) and run["own_gap_s"] == pytest.approx(0.01)
    assert run["own_tolerance_s"] == 0.003 and run["own_time_flag"] is True
    assert f["child_wall_s"] == 25.0 and f["exit"] == "exit code 0"


def test_an_own_time_within_the_tolerance_is_not_flagged():
    f = replay(lines((2.0, ml("run_start", time_ms=1000)), (22.0, ml("eval_accuracy", 0.95, 20_998))), exit_t=22.5)
    run = f["runs"][0]
    assert run["own_gap_s"] == pytest.approx(0.002) and run["own_time_flag"] is False


def test_without_a_run_start_line_the_clock_starts_with_the_command():
    f = replay(lines((3.0, ml("eval_accuracy", 0.4)), (7.0, ml("eval_accuracy", 0.92))), exit_t=8.0)
    run = f["runs"][0]
    assert run["timed_from"] == "command start" and run["init_s"] == 0.0
    assert run["time_to_target_s"] == 7.0 and run["wall_s"] == 8.0
    assert run["own_time_s"] is None and run["own_time_flag"] is None  # MLLOG time_ms needs a run_start to count from
    assert [e["epoch"] for e in run["evals"]] == [1, 2]  # numbered by the referee when the command gives none


def test_dawnbench_rows_are_percent_and_their_hours_are_the_commands_own_time():
    s = Settings(parse="dawnbench", target=0.94, tolerance_s=0.002)
    f = replay(lines((1.0, "epoch\thours\ttop1Accuracy"), (5.0, "1\t0.001\t80.5"),
                     (9.0, "2\t0.00222\t94.25"), (9.5, "not a row")), exit_t=10.0, settings=s)
    run = f["runs"][0]
    assert run["timed_from"] == "run start line" and run["init_s"] == 1.0  # the header starts the run
    assert [e["acc"] for e in run["evals"]] == [0.805, 0.9425] and run["time_to_target_s"] == 8.0
    # own: 0.00222 h = 7.992 s; referee 8.0 s; gap 0.008 <= 0.002 + 3600 x 1e-5 (the hours column's resolution)
    assert run["own_time_s"] == pytest.approx(7.992) and run["own_tolerance_s"] == pytest.approx(0.038)
    assert run["own_time_flag"] is False


def test_dawnbench_own_hours_that_leave_time_out_are_flagged():
    s = Settings(parse="dawnbench", target=0.94, tolerance_s=0.002)
    f = replay(lines((1.0, "epoch\thours\ttop1Accuracy"), (9.0, "2\t0.0020\t94.25")), exit_t=10.0, settings=s)
    run = f["runs"][0]  # 0.0020 h = 7.2 s against 8.0 s: 0.8 s more than 0.002 + 0.36
    assert run["own_gap_s"] == pytest.approx(0.8) and run["own_time_flag"] is True


# airbench94_muon.py prints one table row per epoch and a last row per run with epoch "eval" and its TTA accuracy;
# its first run ("warmup") trains on random labels to compile. This is the README's regex for that table.
AIRBENCH_VALUE = r"^\|[^|]*\|\s*eval\s*\|[^|]*\|[^|]*\|\s*(?P<value>[0-9.]+)\s*\|\s*(?P<time>[0-9.]+)\s*\|"
AIRBENCH_END = r"^\|[^|]*\|\s*eval\s*\|"


def airbench_row(run, epoch, train, val, tta, secs):
    cells = [(str(run) if run is not None else "").rjust(6), str(epoch).rjust(5), f"{train:0.4f}".rjust(9),
             f"{val:0.4f}".rjust(7), (f"{tta:0.4f}" if tta is not None else "").rjust(11), f"{secs:0.4f}".rjust(12)]
    return "".join(f"|  {c}  " for c in cells) + "|"


def test_several_runs_in_one_command_with_a_warmup_run_an_airbench_style_table():
    s = Settings(parse=AIRBENCH_VALUE, target=0.94, run_end=AIRBENCH_END, warmup_runs=1, tolerance_s=0.002)
    head = "|  run     |  epoch  |  train_acc  |  val_acc  |  tta_val_acc  |  time_seconds  |"
    script = lines(
        (1.0, head),
        (30.0, airbench_row("warmup", 0, 0.1, 0.1, None, 20.0)),
        (40.0, airbench_row(None, "eval", 0.1, 0.1, 0.1, 25.0)),       # warm-up ends: its time is init
        (43.0, airbench_row(0, 0, 0.6, 0.7, None, 2.0)),
        (46.5, airbench_row(None, "eval", 0.9, 0.935, 0.9412, 5.5)),    # run 1 reaches 94%: 6.5 s after 40
        (49.0, airbench_row(1, 0, 0.6, 0.7, None, 2.0)),
        (52.0, airbench_row(None, "eval", 0.9, 0.93, 0.9390, 4.9)),     # run 2 misses
        (52.5, "Mean: 0.9401    Std: 0.0015"))
    f = replay(script, exit_t=54.0, settings=s)
    r1, r2 = f["runs"]
    assert f["warmup_runs"] == 1
    assert (r1["timed_from"], r1["init_s"], r1["time_to_target_s"], r1["wall_s"]) == \
        ("warm-up run's end", 40.0, 6.5, 46.5)  # begins with the command: init holds start-up and the warm-up
    assert (r2["status"], r2["timed_from"], r2["init_s"], r2["wall_s"]) == \
        ("missed", "previous run's end", 0.0, 54.0 - 46.5)  # the last run runs to the exit
    assert r1["wall_s"] + r2["wall_s"] == f["child_wall_s"] == 54.0  # device-hours counted once
    assert r1["own_time_s"] == 5.5 and r1["own_gap_s"] == 1.0 and r1["own_time_flag"] is True
    assert r2["final_acc"] == 0.939 and r2["own_time_s"] == 4.9


def test_mllog_run_start_and_run_stop_pairs_make_runs_and_an_empty_run_fails():
    f = replay(lines((1.0, ml("run_start", time_ms=0)), (3.0, ml("eval_accuracy", 0.95, 2000)),
                     (4.0, ml("run_stop", time_ms=3000)), (6.0, ml("run_start", time_ms=5000)),
                     (7.0, ml("run_stop", time_ms=6000)), (8.0, ml("run_start", time_ms=7000)),
                     (9.5, ml("eval_accuracy", 0.85, 8500))), exit_t=10.0)
    a, b, c = f["runs"]
    assert (a["status"], a["init_s"], a["time_to_target_s"], a["wall_s"]) == ("reached", 1.0, 2.0, 4.0)
    assert (b["status"], b["init_s"], b["wall_s"]) == ("failed", 2.0, 3.0) and "without printing an evaluation" in b["error"]
    assert (c["status"], c["init_s"], c["wall_s"], c["final_acc"]) == ("missed", 1.0, 3.0, 0.85)


# ------------------------------------------------------------------------------------------ how runs end

def test_a_non_zero_exit_is_failed_with_the_tail_of_stderr():
    f = replay(lines((1.0, ml("eval_accuracy", 0.95))) + [(1.5, 2, "Traceback (most recent call last):\n"),
                                                          (1.6, 2, "RuntimeError: CUDA out of memory\n")],
               exit_t=2.0, code=3)
    run = f["runs"][0]
    assert run["status"] == "failed" and run["time_to_target_s"] is None and run["best_acc"] == 0.95
    assert run["error"].startswith("the command ended with exit code 3; stderr: Traceback")
    assert run["error"].endswith("RuntimeError: CUDA out of memory")


def test_a_command_that_never_prints_an_evaluation_is_failed_with_the_reason():
    f = replay(lines((1.0, "loading data"), (2.0, "val 0.93")), exit_t=3.0)
    run = f["runs"][0]
    assert (run["status"], run["wall_s"], run["epochs"]) == ("failed", 3.0, 0)
    assert run["error"] == ("the command exited without printing an evaluation the referee recognises (parse: "
                            "mllog; 2 lines read, 0 refused)")


@pytest.mark.parametrize("stop,status,error", [
    ("target", "reached", None),
    ("SIGINT", "aborted", "the harness was interrupted (SIGINT): the command's process group was stopped at 5.000 s"),
    ("SIGTERM", "aborted", "the harness was interrupted (SIGTERM): the command's process group was stopped at 5.000 s"),
])
def test_a_run_the_referee_stops(stop, status, error):
    f = replay(lines((4.0, ml("eval_accuracy", 0.91))), exit_t=5.5, code=None, sig=15, stop=(5.0, stop))
    run = f["runs"][0]
    assert (run["status"], run["error"], run["wall_s"]) == (status, error, 5.5)
    assert f["stopped"] == stop and f["exit"] == "killed by signal 15"


def test_a_timeout_is_aborted_unless_the_target_was_already_reached():
    f = replay(lines((4.0, ml("eval_accuracy", 0.5))), exit_t=5.2, code=None, sig=15, stop=(5.0, "timeout"))
    assert f["runs"][0]["status"] == "aborted"
    assert f["runs"][0]["error"] == "timeout: the command was stopped at 5.000 s (--timeout)"
    f = replay(lines((4.0, ml("eval_accuracy", 0.95))), exit_t=5.2, code=None, sig=15, stop=(5.0, "timeout"))
    assert (f["runs"][0]["status"], f["runs"][0]["time_to_target_s"]) == ("reached", 4.0)


def test_the_target_is_announced_once_and_never_for_a_warmup_run():
    ref = referee.Referee(Settings(parse="mllog", target=0.9, warmup_runs=1))
    fired = [ref.feed(r) for r in stamped(lines(
        (1.0, ml("run_start")), (2.0, ml("eval_accuracy", 0.95)), (3.0, ml("run_stop")),  # warm-up: never
        (4.0, ml("run_start")), (5.0, ml("eval_accuracy", 0.95)), (6.0, ml("eval_accuracy", 0.97))))]
    assert fired == [False, False, False, False, True, False]


# ------------------------------------------------------------------------------------------ hostile output

@pytest.mark.parametrize("line,why", [
    (ml("eval_accuracy", float("nan")), "not a finite number"),
    (':::MLLOG {"key": "eval_accuracy", "value": 1e999, "time_ms": 1, "metadata": {}}', "not a finite number"),
    (':::MLLOG {"key": "eval_accuracy", "value": ' + "9" * 5000 + ', "metadata": {}}', "not MLLOG JSON"),
    (ml("eval_accuracy", 93.0), "not a fraction"),
    (ml("eval_accuracy", -0.1), "not a fraction"),
    (ml("eval_accuracy", True), "not a number"),
    (ml("eval_accuracy", [0.95]), "not a number"),
    (ml("eval_accuracy", "0.95"), "not a number"),
    (ml("eval_accuracy", 0.95, epoch_num=1e300), "epoch"),
    (ml("eval_accuracy", 0.95, time_ms=-5), "time_ms"),
    (':::MLLOG {"key": "eval_accuracy", "value": 0.95', "not MLLOG JSON"),
    (':::MLLOG ["eval_accuracy", 0.95]', "needs a string `key`"),
])
def test_a_malicious_mllog_line_is_refused_not_recorded(line, why):
    f = replay(lines((1.0, line), (2.0, ml("eval_accuracy", 0.5))), exit_t=3.0)
    run = f["runs"][0]
    assert run["epochs"] == 1 and run["best_acc"] == 0.5 and run["status"] == "missed"
    assert f["n_refused"] == 1 and why in f["refused"][0]["why"], f["refused"]


def test_an_own_time_before_its_run_start_is_refused():
    f = replay(lines((1.0, ml("run_start", time_ms=50_000)), (2.0, ml("eval_accuracy", 0.95, 40_000))), exit_t=3.0)
    assert f["runs"][0]["epochs"] == 0 and "negative" in f["refused"][0]["why"]


@pytest.mark.parametrize("row,why", [("1\tnan\t94.0", "hours"), ("1\t-0.5\t94.0", "negative"),
                                     ("1\t0.1\t940", "percentage"), ("1\t1e999\t94", "hours"),
                                     ("99999999999\t0.1\t94", "epoch")])
def test_a_malicious_dawnbench_row_is_refused(row, why):
    f = replay(lines((1.0, row)), exit_t=2.0, settings=Settings(parse="dawnbench", target=0.9))
    assert f["runs"][0]["status"] == "failed" and f["n_refused"] == 1 and why in f["refused"][0]["why"]


def test_a_regex_match_with_a_huge_number_or_a_negative_time_is_refused():
    s = Settings(parse=r"acc=(?P<value>\S+) t=(?P<time>\S+)", target=0.9)
    f = replay(lines((1.0, "acc=1e400 t=3"), (2.0, "acc=0.95 t=-3"), (3.0, "acc=0.95 t=2.5")), exit_t=4.0, settings=s)
    assert f["n_refused"] == 2 and f["runs"][0]["epochs"] == 1 and f["runs"][0]["own_time_s"] == 2.5


def test_the_reader_cuts_megabyte_lines_and_replaces_bytes_that_are_not_utf8():
    big = b"x" * 3_000_000
    recs = stamped([(1.0, 1, big[:1_000_000]), (1.5, 1, big[1_000_000:] + b"\n" + b"caf\xe9 \xff\n"),
                    (2.0, 1, b"end\r\n"), (2.5, 2, b"no newline")])
    assert [(r["t"], len(r["text"]), r.get("cut")) for r in recs[:1]] == [(1.5, 65536, 3_000_000 - 65536)]
    assert recs[1] == {"t": 1.5, "fd": 1, "text": "caf\ufffd \ufffd", "utf8": False}
    assert recs[2] == {"t": 2.0, "fd": 1, "text": "end"}
    r = LineReader()
    assert r.feed(b"no newline") == [] and r.flush() == [(b"no newline", 0)] and r.flush() == []


def test_a_cut_line_is_never_parsed_even_when_it_would_match():
    f = replay([(1.0, 1, ml("eval_accuracy", 0.95) + " " + "y" * 70_000 + "\n")], exit_t=2.0)
    assert f["runs"][0]["epochs"] == 0 and f["cut_lines"] == 1 and "cut" in f["refused"][0]["why"]


def test_bad_parse_settings_are_named():
    assert referee.check_pattern("mllog") == [] and referee.check_pattern(r"acc (?P<pct>\d+)") == []
    assert "no named group" in referee.check_pattern(r"acc (\d+)")[0]
    assert "valid regular expression" in referee.check_pattern("acc (")[0]
    assert "unknown named groups ['foo']" in referee.check_pattern(r"(?P<value>\d)(?P<foo>\d)")[0]


# ------------------------------------------------------------------------------------------ recipes

def external_recipe(tmp_path, **ext):
    from bench.recipe import from_dict

    target = ext.pop("target", 0.9)
    data = {"name": "ext", "kind": "external", "target": {"value": target},
            "external": {"command": ["{python}", "train.py"], "cwd": str(tmp_path), **ext}}
    return from_dict(data)


def test_recipe_validation_names_every_external_problem(tmp_path):
    from bench.recipe import from_dict

    with pytest.raises(BenchError) as e:
        from_dict({"name": "x", "kind": "external", "target": {"metric": "fd_judge", "value": 3, "mode": "min"},
                   "external": {"command": [], "parse": "acc (\\d+)", "run_end": "(", "code_sha256": {"a": "b"}}})
    msg = str(e.value)
    for part in ("external.command", "external.parse", "external.run_end", "external.code_sha256", "target.metric"):
        assert part in msg, msg
    with pytest.raises(BenchError, match="external: set, but kind is 'classifier'"):
        from_dict({"name": "x", "external": {"command": ["a"]}})


def test_code_files_are_hashed_into_the_recipe_and_a_pin_is_enforced(tmp_path):
    from bench.recipe.external import with_code

    (tmp_path / "train.py").write_text("print(1)\n")
    r = external_recipe(tmp_path, code=["train.py"])
    a = with_code(r)
    assert a.external.code_sha256 == {"train.py": referee_sha(tmp_path / "train.py")}
    (tmp_path / "train.py").write_text("print(2)\n")
    b = with_code(r)
    assert a.hash != b.hash != r.hash  # the script's content is part of what was measured
    with pytest.raises(BenchError, match="the code changed"):
        with_code(a)  # a's hash pins the first version
    with pytest.raises(BenchError, match="cannot read it"):
        with_code(external_recipe(tmp_path, code=["missing.py"]))


def referee_sha(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_example_recipe_is_valid_and_its_defaults_leave_old_hashes_alone():
    from bench import recipe

    r = recipe.load(REPO / "recipes" / "examples" / "toy_external.yaml")
    assert r.kind == "external" and r.external.parse == "mllog" and (REPO / r.external.code[0]).is_file()
    plain = recipe.from_dict({"name": "x"})
    d = plain.to_dict()
    del d["external"]
    from bench.recipe.schema import resolved_hash

    assert resolved_hash(d) == plain.hash  # a recipe without the section hashes as it did before it existed


# ------------------------------------------------------------------------------------------ the runner, scripted

class ScriptedChild:
    """A command whose output arrives at scripted times, through the real LineReader; stop() ends it `after` s
    later with SIGTERM, as a command that obeys SIGTERM would; `interrupt_at` raises KeyboardInterrupt there."""

    pid = None
    epoch0 = 1_000_000.0

    def __init__(self, script, exit_t, code=0, interrupt_at=None, after=0.25):
        self.script, self.exit_t, self.code, self.interrupt_at, self.after = script, exit_t, code, interrupt_at, after
        self.now, self.stopped_at, self.stops = 0.0, None, []

    def __call__(self, argv, cwd=None, env=None):
        self.argv, self.cwd, self.env = argv, cwd, env
        return self

    def start(self):
        return {"t": 0.0, "start": list(self.argv), "epoch": self.epoch0}

    def _exit(self):
        if self.stopped_at is not None:
            return {"t": self.stopped_at + self.after, "exit": None, "signal": 15}
        return {"t": self.exit_t, "exit": self.code, "signal": None}

    def events(self):
        readers = {1: LineReader(), 2: LineReader()}
        for t, fd, chunk in self.script:
            if self.stopped_at is not None and t > self.stopped_at + self.after:
                break
            if self.interrupt_at is not None and t >= self.interrupt_at:
                self.now = self.interrupt_at
                raise KeyboardInterrupt
            self.now = t
            if fd == "tick":
                yield {"t": t, "tick": True}
                continue
            for raw, cut in readers[fd].feed(chunk.encode()):
                yield line_record(t, fd, raw, cut)
        yield self._exit()

    def stop(self, reason, grace_s):
        self.stops.append(reason)
        if self.stopped_at is None:
            self.stopped_at = self.now
        return {"t": self.stopped_at, "stop": reason, "grace_s": grace_s}

    def shutdown(self, reason, grace_s):
        return [self.stop(reason, grace_s), self._exit()]


def run_scripted(tmp_path, child, **ext):
    from bench.run.external import run_recipe

    r = external_recipe(tmp_path, **ext)
    said = []
    rows, bundle = run_recipe(r, results_path=tmp_path / "results.csv", reports_dir=tmp_path / "reports",
                              say=said.append, spawn=child, latency=LATENCY, env=dict(ENV))
    return rows, bundle, said


MLLOG_SCRIPT = lines((2.0, ml("run_start", time_ms=101_500)), (12.0, ml("eval_accuracy", 0.5, 111_400, epoch_num=1)),
                     (22.0, ml("eval_accuracy", 0.95, 121_490, epoch_num=2)), (23.0, ml("run_stop", time_ms=122_000)))


def test_a_scripted_command_lands_rows_and_a_bundle_that_verifies(tmp_path):
    from bench.core.results import read_table
    from bench.report.verify import verify

    rows, bundle, said = run_scripted(tmp_path, ScriptedChild(MLLOG_SCRIPT, exit_t=25.0))
    (row,) = rows
    assert (row["status"], row["init_s"], row["time_to_target_s"], row["wall_s"], row["epochs"]) == \
        ("reached", 2.0, 20.0, 25.0, 2)
    assert row["gpu_hours"] == 25.0 / 3600 and row["cost_usd"] is None and row["device"] == "cpu"
    assert row["own_time_flag"] is True and row["dataset"] == "declared:cifar10" and row["kind"] == "external"
    table = read_table(tmp_path / "results.csv")
    assert table.iloc[0]["time_to_target_s"] == 20.0 and table.iloc[0]["wall_s"] == 25.0
    assert verify(bundle).runs == 1
    s = json.loads((bundle / "summary.json").read_text())
    assert s["kind"] == "external" and s["stats"]["time"]["mean"] == 20.0
    run = s["runs"][0]
    assert (run["init_s"], run["time_to_target_s"], run["wall_s"], run["device_hours"]) == (2.0, 20.0, 25.0, 25 / 3600)
    log = [json.loads(x.split(" ", 1)[1]) for x in (bundle / "runs" / row["run_id"] / "mllog.txt").read_text().splitlines()]
    assert [(e["key"], e["time_ms"]) for e in log] == [
        ("init_start", 1_000_000_000), ("target_accuracy", 1_000_000_000), ("init_stop", 1_000_002_000),
        ("run_start", 1_000_002_000), ("eval_accuracy", 1_000_012_000), ("eval_accuracy", 1_000_022_000),
        ("run_stop", 1_000_025_000)]
    tsv = (bundle / "runs" / row["run_id"] / "dawnbench.tsv").read_text().splitlines()
    assert tsv == ["epoch\thours\ttop1Accuracy", f"1\t{10 / 3600!r}\t50.0", f"2\t{20 / 3600!r}\t95.0"]
    assert "**faster**" in (bundle / "report.md").read_text()


def edited_copy(bundle: Path, tmp_path: Path, name: str) -> Path:
    import shutil

    dst = tmp_path / name
    shutil.copytree(bundle, dst)
    return dst


def test_verify_recomputes_every_figure_from_the_stamped_output(tmp_path):
    from bench.report import manifest
    from bench.report.verify import check

    _, bundle, _ = run_scripted(tmp_path, ScriptedChild(MLLOG_SCRIPT, exit_t=25.0))
    (cid,) = [p.name for p in (bundle / "children").iterdir()]
    # the eval that reached arrives 1 s later in the stamped output, and the MANIFEST is made to agree
    b = edited_copy(bundle, tmp_path, "later")
    out = b / "children" / cid / "output.jsonl"
    out.write_text(out.read_text().replace('{"t": 22.0,', '{"t": 23.0,'))
    manifest.write(b)
    problems = check(b).problems
    assert any("summary.json: runs[" in p and "time_to_target_s: file has 20.0, the event logs give 21.0" in p
               for p in problems), problems
    assert any("results.csv:2" in p and "time_to_target_s" in p for p in problems), problems
    assert any("mllog.txt: differs" in p for p in problems), problems
    # an edited row alone
    b = edited_copy(bundle, tmp_path, "row")
    text = (b / "results.csv").read_text()
    (b / "results.csv").write_text(text.replace(",20.0,", ",19.0,", 1))
    manifest.write(b)
    problems = check(b).problems
    assert problems == [f"results.csv:2: run {cid}-r001: time_to_target_s: file has 19.0, the event logs give 20.0"]
    # a stamp that is not a time
    b = edited_copy(bundle, tmp_path, "nan")
    out = b / "children" / cid / "output.jsonl"
    out.write_text(out.read_text().replace('{"t": 22.0,', '{"t": NaN,'))
    manifest.write(b)
    problems = check(b).problems
    assert problems[0].startswith(f"children/{cid}/output.jsonl:4: a record needs a finite, non-negative number"), problems


def test_stop_at_target_stops_the_command_and_the_run_is_reached(tmp_path):
    child = ScriptedChild(MLLOG_SCRIPT + lines((40.0, ml("eval_accuracy", 0.99))), exit_t=50.0)
    rows, bundle, _ = run_scripted(tmp_path, child, stop_at_target=True, grace_s=5.0)
    assert child.stops == ["target"]
    assert (rows[0]["status"], rows[0]["time_to_target_s"], rows[0]["wall_s"], rows[0]["epochs"]) == \
        ("reached", 20.0, 22.25, 2)  # stopped at 22.0, gone 0.25 s later; the eval at 40 s never came
    recs = [json.loads(x) for x in next((bundle / "children").iterdir()).joinpath("output.jsonl").read_text().splitlines()]
    assert {"t": 22.0, "stop": "target", "grace_s": 5.0} in recs and recs[-1] == {"t": 22.25, "exit": None, "signal": 15}


def test_a_timeout_stops_a_silent_command_and_records_it(tmp_path):
    child = ScriptedChild(lines((1.0, ml("eval_accuracy", 0.3))) + [(t, "tick", "") for t in (2.0, 3.0, 4.5)],
                          exit_t=100.0)
    rows, bundle, _ = run_scripted(tmp_path, child, timeout_s=4.0)
    assert child.stops == ["timeout"]
    assert (rows[0]["status"], rows[0]["wall_s"]) == ("aborted", 4.75)
    assert rows[0]["error"] == "timeout: the command was stopped at 4.500 s (--timeout)"
    from bench.report.verify import verify

    verify(bundle)


def test_ctrl_c_mid_run_lands_an_aborted_row_then_goes_on(tmp_path):
    child = ScriptedChild(MLLOG_SCRIPT, exit_t=25.0, interrupt_at=15.0)
    with pytest.raises(KeyboardInterrupt):
        run_scripted(tmp_path, child)
    with open(tmp_path / "results.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert row["status"] == "aborted" and float(row["wall_s"]) == 15.25 and row["epochs"] == "1"
    assert row["error"].startswith("the harness was interrupted (SIGINT)")
    (bundle,) = (tmp_path / "reports").iterdir()
    assert not bundle.name.endswith(".partial")
    from bench.report.verify import verify

    verify(bundle)


def test_several_starts_of_a_command_each_land_their_rows(tmp_path):
    from bench.run.external import run_recipe

    r = external_recipe(tmp_path)
    rows, bundle = run_recipe(r, results_path=tmp_path / "results.csv", reports_dir=tmp_path / "reports", runs=2,
                              say=lambda s: None, spawn=ScriptedChild(MLLOG_SCRIPT, exit_t=25.0), latency=LATENCY,
                              env=dict(ENV))
    assert [r_["time_to_target_s"] for r_ in rows] == [20.0, 20.0] and len({r_["child"] for r_ in rows}) == 2
    s = json.loads((bundle / "summary.json").read_text())
    assert s["stats"]["time"]["n"] == 2 and s["totals"]["device_hours"] == 50 / 3600


def test_device_hours_and_cost_count_every_gpu_the_command_uses(tmp_path, monkeypatch):
    from bench.core.prices import lookup
    from bench.run import external

    monkeypatch.setattr(external, "_device", lambda gpus: ("cuda", "NVIDIA H100 80GB HBM3"))
    rows, bundle, _ = run_scripted(tmp_path, ScriptedChild(MLLOG_SCRIPT, exit_t=25.0), gpus=4)
    price = lookup("NVIDIA H100 80GB HBM3", "cuda").usd_per_hour
    assert (rows[0]["device_count"], rows[0]["gpu_hours"]) == (4, 4 * 25.0 / 3600)
    assert rows[0]["cost_usd"] == 4 * 25.0 / 3600 * price and price > 0
    from bench.report.verify import verify

    assert verify(bundle).runs == 1  # device-hours and cost recomputed from the output and env.json's device count


def test_a_sweep_counts_external_runs_already_in_the_table_and_reads_no_data(tmp_path, monkeypatch):
    """bench sweep's resume rule for kind: external: same recipe hash (the script's sha256 included), no data
    fingerprint (none is loaded: the command reads its own data), same code and device."""
    import yaml

    from bench.studies import sweep

    (tmp_path / "train.py").write_text("print('v1')\n")
    rows, _, _ = run_scripted(tmp_path, ScriptedChild(MLLOG_SCRIPT, exit_t=25.0), code=["train.py"])
    f = tmp_path / "ext.yaml"
    f.write_text(yaml.safe_dump({"name": "ext", "kind": "external", "target": {"value": 0.9},
                                 "external": {"command": ["{python}", "train.py"], "cwd": str(tmp_path),
                                              "code": ["train.py"]}}))
    monkeypatch.setattr("bench.data.sources.load_dataset", lambda *a, **k: pytest.fail("no data set is loaded"))
    ident = sweep.Identity("abc", rows[0]["device_name"])
    plan = sweep.make_plan([f], [], 2, False, tmp_path / "results.csv", None, None, ident)
    assert (plan[0].done, plan[0].todo, plan[0].fingerprint) == (1, 1, None)
    (tmp_path / "train.py").write_text("print('v2')\n")  # another script: another recipe hash, nothing done
    plan = sweep.make_plan([f], [], 2, False, tmp_path / "results.csv", None, None, ident)
    assert (plan[0].done, plan[0].todo) == (0, 2)


def test_bad_commands_are_refused_before_anything_is_written(tmp_path, capsys):
    from bench.cli import main

    common = ["--results", str(tmp_path / "r.csv"), "--reports", str(tmp_path / "rep")]
    assert main(["external", *common]) == 2
    assert "no command; put it after --" in capsys.readouterr().err
    assert main(["external", "--parse", "acc=(\\d+)", *common, "--", PY, "x.py"]) == 2
    assert "external.parse" in capsys.readouterr().err
    assert main(["external", *common, "--", "no-such-program-here", "x"]) == 2
    assert "is not a program on PATH" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # no table, no bundle


# ------------------------------------------------------------------------------------------ real processes

def write(tmp_path: Path, name: str, body: str) -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(body))
    return p


def drain(child: Child, until=None) -> list[dict]:
    out = []
    for rec in child.events():
        if "tick" not in rec:
            out.append(rec)
        if until is not None and until(rec):
            break
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is gone for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def gone(*pids: int, within: float = 3.0) -> bool:
    """Every pid has exited (a SIGKILLed process may need a moment to be scheduled into its exit)."""
    deadline = time.monotonic() + within
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_stopping_ends_the_whole_process_group_and_sigkills_one_that_ignores_sigterm(tmp_path):
    script = write(tmp_path, "group.py", """
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)          # the leader ignores SIGTERM
        kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # a worker in its group
        print("kid", kid.pid, flush=True)
        time.sleep(60)
    """)
    child = Child([PY, str(script)], poll_s=0.05)
    child.start()
    first = drain(child, until=lambda r: "text" in r)
    kid = int(first[-1]["text"].split()[1])
    t0 = time.monotonic()
    stop = child.stop("SIGTERM", grace_s=0.5)
    rest = drain(child)
    assert stop["stop"] == "SIGTERM" and rest[-1]["signal"] == signal.SIGKILL
    assert 0.5 <= time.monotonic() - t0 < 5
    assert gone(child.pid, kid)


def test_a_real_command_with_megabyte_and_binary_lines_an_exit_code_and_stderr(tmp_path):
    script = write(tmp_path, "noisy.py", """
        import sys
        out = sys.stdout.buffer
        out.write(b"z" * 2_000_000 + b"\\n"); out.write(b"\\xff\\xfe garbage\\n")
        out.write(b':::MLLOG {"key": "eval_accuracy", "value": 0.97, "time_ms": 1, "metadata": {}}\\n'); out.flush()
        sys.stderr.write("boom: disk full\\n")
        sys.exit(3)
    """)
    child = Child([PY, str(script)], poll_s=0.05)
    recs = [child.start()] + drain(child)
    f = referee.replay(recs, Settings(parse="mllog", target=0.9))
    assert [r.get("cut") for r in recs if r.get("fd") == 1][:1] == [2_000_000 - 65536]
    assert any(r.get("utf8") is False for r in recs)
    run = f["runs"][0]
    assert run["status"] == "failed" and run["best_acc"] == 0.97 and f["cut_lines"] == 1
    assert run["error"] == "the command ended with exit code 3; stderr: boom: disk full"
    assert recs[-1]["exit"] == 3 and recs[-1]["t"] >= max(r["t"] for r in recs[:-1])


def test_bench_external_cli_referees_a_real_command_with_a_timeout(tmp_path, capsys):
    """Through `bench external` as a user types it: a command that prints one evaluation and then hangs is
    stopped at --timeout, recorded as aborted, and its bundle verifies."""
    from bench.cli import main
    from bench.core.results import read_table

    script = write(tmp_path, "hang.py", """
        import time
        print("epoch\\thours\\ttop1Accuracy", flush=True)
        print("1\\t0.0001\\t71.5", flush=True)
        time.sleep(60)
    """)
    code = main(["external", "--parse", "dawnbench", "--timeout", "1.0", "--grace", "0.5", "--code", str(script),
                 "--results", str(tmp_path / "r.csv"), "--reports", str(tmp_path / "rep"), "--name", "hang",
                 "--", PY, str(script)])
    out = capsys.readouterr().out
    assert code == 0, out  # recorded, as bench run: the status is in the row
    row = read_table(tmp_path / "r.csv").iloc[0]
    assert row["status"] == "aborted" and row["error"].startswith("timeout: the command was stopped at 1.")
    assert 1.0 <= row["wall_s"] < 4 and row["best_acc"] == 0.715 and row["recipe"] == "hang"
    (bundle,) = (tmp_path / "rep").iterdir()
    assert main(["verify", str(bundle)]) == 0
    env = json.loads((bundle / "env.json").read_text())
    assert env["external"]["code_sha256"] == {str(script): referee_sha(script)}
    assert len(env["external"]["pipe_latency"]["samples_s"]) == 20


def test_the_example_recipe_runs_through_bench_run_and_reruns(tmp_path, capsys):
    from bench.cli import main
    from bench.core.results import read_table

    code = main(["run", str(REPO / "recipes" / "examples" / "toy_external.yaml"), "--results", str(tmp_path / "r.csv"),
                 "--reports", str(tmp_path / "rep")])
    out = capsys.readouterr().out
    assert code == 0, out
    row = read_table(tmp_path / "r.csv").iloc[0]
    assert row["status"] == "reached" and (row["epochs"], row["final_acc"]) == (8, 0.91)  # it trains on to epoch 8
    assert row["timed_from"] == "run start line" and 0 < row["time_to_target_s"] < row["wall_s"]
    (bundle,) = (tmp_path / "rep").iterdir()
    assert main(["verify", str(bundle), "--rerun"]) == 0, capsys.readouterr().out


def run_harness(tmp_path, sig):
    """`bench external` in a process of its own, signalled once the command has printed; returns (exit code,
    output, the command's and its worker's pids)."""
    script = write(tmp_path, "slow.py", """
        import subprocess, sys, time
        kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print("pids", __import__("os").getpid(), kid.pid, flush=True)
        print(':::MLLOG {"key": "run_start", "value": null, "time_ms": 0, "metadata": {}}', flush=True)
        print(':::MLLOG {"key": "eval_accuracy", "value": 0.5, "time_ms": 10, "metadata": {"epoch_num": 1}}', flush=True)
        time.sleep(60)
    """)
    cmd = [PY, "-m", "bench", "external", "--results", str(tmp_path / "r.csv"), "--reports", str(tmp_path / "rep"),
           "--grace", "1", "--", PY, str(script)]
    code, out, _ = signal_when(cmd, marker="eval_accuracy", sig=sig, cwd=REPO, within_s=120,
                               env={"OMP_NUM_THREADS": "1"})
    pids = next(x for x in out.splitlines() if "| pids" in x).split()[2:4]
    return code, out, [int(p) for p in pids]


@pytest.mark.parametrize("sig,code,why", [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")])
def test_ctrl_c_or_sigterm_to_the_harness_ends_the_group_and_lands_an_aborted_row(tmp_path, sig, code, why):
    rc, out, pids = run_harness(tmp_path, sig)
    assert rc == code, out
    with open(tmp_path / "r.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert row["status"] == "aborted" and row["error"].startswith(f"the harness was interrupted ({why})"), row
    assert row["epochs"] == "1" and float(row["wall_s"]) > 0
    assert gone(*pids), out
    (bundle,) = (tmp_path / "rep").iterdir()
    assert not bundle.name.endswith(".partial")


def test_group_telemetry_counts_every_process_of_the_command(tmp_path):
    from bench.system.child import GroupSampler

    script = write(tmp_path, "two.py", """
        import subprocess, sys, time
        kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        print("kid", kid.pid, flush=True)
        time.sleep(30)
    """)
    child = Child([PY, str(script)], poll_s=0.05)
    child.start()
    kid = int(drain(child, until=lambda r: "text" in r)[-1]["text"].split()[1])
    sampler = GroupSampler(child.pid, device_indices=[])
    members = {p.pid for p in sampler.members()}
    sample = sampler._sample()
    child.stop("SIGTERM", 0.5)
    drain(child)
    assert {child.pid, kid} <= members and sample["procs"] >= 2 and sample["proc_rss_mb"] > 1


def test_the_pipe_latency_probe_measures_through_the_same_reader():
    from bench.system.child import pipe_latency

    got = pipe_latency(n=5)
    assert len(got["samples_s"]) == 5 and all(0 <= s < 1 for s in got["samples_s"]) and "monotonic" in got["method"]
    assert referee.tolerance(got["samples_s"]) == 2 * max(got["samples_s"])
