"""The referee of an external command (`bench external`, `kind: external`): its stamped output -> runs and figures.

The harness starts a command, reads its stdout and stderr line by line and stamps every line on arrival with
its own clock (bench.system.child). The stamped lines are the raw truth: this module turns them into runs,
evaluations and figures, the same way while the command runs (so `stop_at_target` can act) and when
`bench verify` replays a bundle's `children/<id>/output.jsonl`. It never reads a clock itself.

Records (one JSON object per line of output.jsonl; `t` is seconds since the command started, by the referee):
    {"t": 0.0, "start": [argv...], "epoch": <time.time() at the start>}
    {"t": ..., "fd": 1 | 2, "text": "...", "cut": <bytes dropped from a too long line>, "utf8": false}
    {"t": ..., "stop": "target" | "timeout" | "SIGINT" | "SIGTERM"}     the referee stopped the command's group
    {"t": ..., "exit": <code> | null, "signal": <number> | null}

What counts as an evaluation (`parse`):
    mllog      ':::MLLOG {json}' lines (anywhere in the line): `eval_accuracy` (or the `metric` key), value a
               fraction, metadata.epoch_num optional; run_start / run_stop bracket runs; time_ms is the
               command's own clock
    dawnbench  DAWNBench TSV rows `epoch<TAB>hours<TAB>top1Accuracy` (percent); a header line starts a run;
               hours is the command's own time
    a regex    with named groups: `value` (a fraction) or `pct` (percent), optionally `epoch` and `time`
               (the command's own seconds since its run started)
`run_start` / `run_end` regexes mark run boundaries in any mode (several runs in one command, e.g. airbench).

Timing (the referee's clock, never the command's):
    init            the run's begin (the command's start, or the previous run's end) -> its start (a run_start
                    line, or the begin when the command prints none: `timed_from` says which)
    time_to_target  start -> arrival of the first evaluation at or above the target
    wall            begin -> the run's end; the last run of a command also takes the time until the command
                    exits, so a command's runs share its whole wall time (device-hours) without overlap
The command's own time for the evaluation that decides a run (the one that reached, else the last) is kept
beside the referee's and flagged when it is faster by more than `tolerance_s` plus the printed figure's
resolution.

A line that claims an evaluation but holds a non-number, NaN, infinity, a value out of range or a negative
time is refused (listed, never recorded); a line cut for length is never parsed.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Optional

from bench.core.errors import BenchError
from bench.core.targets import reaches

MLLOG_MARK = ":::MLLOG"
DAWNBENCH_HEADER = ("epoch", "hours", "top1accuracy")
PARSERS = ("mllog", "dawnbench")  # anything else is a regex
MAX_EPOCH = 1e9
MAX_SECONDS = 1e9  # ~31 years: any longer own time is not a time
MAX_TIME_MS = 1e16
TAIL_LINES = 10  # of stderr, in a failed run's error
TAIL_CHARS = 400
REFUSED_KEPT = 20  # refused lines listed per command (all are counted)

STOPPED_BY_SIGNAL = ("SIGINT", "SIGTERM", "error")  # the harness itself was stopped (or failed)
TIMED_FROM = {"mark": "run start line", "child": "command start", "previous": "previous run's end",
              "warmup": "warm-up run's end"}


class Refused(ValueError):
    """A line that claims an evaluation but cannot be one."""


@dataclass(frozen=True)
class Settings:
    parse: str  # "mllog", "dawnbench" or a regex
    target: float  # a fraction
    mode: str = "max"
    metric: str = "eval_accuracy"  # the MLLOG key that holds evaluations
    run_start: Optional[str] = None
    run_end: Optional[str] = None
    warmup_runs: int = 0
    tolerance_s: float = 0.0  # how far the command's own time may undercut the referee's (pipe latency)

    def compiled(self) -> tuple:
        return tuple(_compile(p, what) for p, what in ((self.parse if self.parse not in PARSERS else None, "parse"),
                                                       (self.run_start, "run_start"), (self.run_end, "run_end")))


def _compile(pattern: Optional[str], what: str):
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as e:
        raise BenchError(f"{what}: {pattern!r} is not a valid regular expression ({e})") from None


def check_pattern(parse: str) -> list[str]:
    """Problems with a `parse` setting (for recipe validation and the CLI): a regex needs `value` or `pct`."""
    if parse in PARSERS:
        return []
    try:
        rx = re.compile(parse)
    except re.error as e:
        return [f"{parse!r} is neither mllog, dawnbench nor a valid regular expression ({e})"]
    groups = set(rx.groupindex)
    problems = []
    if not groups & {"value", "pct"}:
        problems.append(f"the regex {parse!r} has no named group `value` (a fraction) or `pct` (percent), "
                        f"e.g. 'val_acc (?P<value>[0-9.]+)'")
    if {"value", "pct"} <= groups:
        problems.append(f"the regex {parse!r} has both `value` and `pct`; name one")
    unknown = groups - {"value", "pct", "epoch", "time"}
    if unknown:
        problems.append(f"the regex {parse!r} has unknown named groups {sorted(unknown)}; allowed: value or pct, "
                        f"epoch, time")
    return problems


# ------------------------------------------------------------------------------------------ numbers

def _finite(x, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, str)):
        raise Refused(f"{what} is {x!r}, not a number")
    try:
        v = float(x)
    except (ValueError, OverflowError):
        raise Refused(f"{what} is {x!r}, not a number") from None
    if not math.isfinite(v):
        raise Refused(f"{what} is {x!r}, not a finite number")
    return v


def fraction(x, what: str = "accuracy") -> float:
    v = _finite(x, what)
    if not 0.0 <= v <= 1.0:
        raise Refused(f"{what} {x!r} is not a fraction in [0, 1]")
    return v


def percent(x, what: str = "accuracy") -> float:
    v = _finite(x, what)
    if not 0.0 <= v <= 100.0:
        raise Refused(f"{what} {x!r} is not a percentage in [0, 100]")
    return v / 100.0


def epoch_number(x):
    if x is None:
        return None
    v = _finite(x, "epoch")
    if not 0 <= v <= MAX_EPOCH:
        raise Refused(f"epoch {x!r} is out of range [0, {MAX_EPOCH:g}]")
    return int(v) if v == int(v) else v


def seconds(x, what: str = "time") -> float:
    v = _finite(x, what)
    if v < 0:
        raise Refused(f"{what} {x!r} is negative")
    if v > MAX_SECONDS:
        raise Refused(f"{what} {x!r} is more than {MAX_SECONDS:g} s")
    return v


def resolution(text) -> float:
    """The step of a printed number: '0.0123' -> 0.0001, '12' -> 1 (what rounding may hide)."""
    try:
        exp = Decimal(str(text).strip()).as_tuple().exponent
    except InvalidOperation:
        return 0.0
    return float(10.0 ** exp) if isinstance(exp, int) else 0.0


# ------------------------------------------------------------------------------------------ parsers
# Each returns None (not an evaluation line), or a dict: {"eval": (value, epoch, own_s or None, resolution)},
# {"mark": "start" | "end", "own_ms": ...}; it raises Refused for a line that claims to be one but is not.

def parse_mllog(text: str, key: str) -> Optional[dict]:
    i = text.find(MLLOG_MARK)
    if i < 0:
        return None
    try:
        rec = json.loads(text[i + len(MLLOG_MARK):])
    except (ValueError, RecursionError) as e:  # JSONDecodeError, or an integer too long to parse
        raise Refused(f"not MLLOG JSON ({type(e).__name__}: {str(e)[:80]})") from None
    if not isinstance(rec, dict) or not isinstance(rec.get("key"), str):
        raise Refused("an MLLOG record needs a string `key`")
    meta = rec.get("metadata") if rec.get("metadata") is not None else {}
    if not isinstance(meta, dict):
        raise Refused(f"MLLOG metadata is {type(meta).__name__}, not a mapping")
    own_ms = rec.get("time_ms")
    if own_ms is not None:
        own_ms = _finite(own_ms, "time_ms")
        if not 0 <= own_ms <= MAX_TIME_MS:
            raise Refused(f"time_ms {rec.get('time_ms')!r} is out of range")
    k = rec["key"]
    if k == key:
        value = rec.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Refused(f"{key} value {value!r} is not a number")
        return {"eval": (fraction(value, f"{key} value"), epoch_number(meta.get("epoch_num")), None,
                         0.001), "own_ms": own_ms}
    if k == "run_start":
        return {"mark": "start", "own_ms": own_ms}
    if k == "run_stop":
        return {"mark": "end", "own_ms": own_ms}
    return None


_TSV_ROW = re.compile(r"^\s*[0-9]+\t[^\t]*\t[^\t]*$")


def parse_dawnbench(text: str) -> Optional[dict]:
    fields = [f.strip() for f in text.strip().split("\t")]
    if tuple(f.lower() for f in fields) == DAWNBENCH_HEADER:
        return {"mark": "start", "own_ms": None}
    if not _TSV_ROW.match(text.rstrip()):
        return None
    epoch, hours, top1 = fields
    own = seconds(_finite(hours, "hours") * 3600.0, f"hours {hours!r} in seconds")
    return {"eval": (percent(top1, "top1Accuracy"), epoch_number(epoch), own, 3600.0 * resolution(hours))}


def parse_regex(text: str, rx) -> Optional[dict]:
    m = rx.search(text)
    if m is None:
        return None
    g = m.groupdict()
    value = fraction(g["value"]) if g.get("value") is not None else percent(g.get("pct"))
    own = seconds(g["time"], "time") if g.get("time") is not None else None
    return {"eval": (value, epoch_number(g.get("epoch")), own, resolution(g["time"]) if own is not None else 0.0)}


# ------------------------------------------------------------------------------------------ runs

@dataclass
class Run:
    begin: float  # the previous run's end, or the command's start
    start: float  # run_start line, or the begin
    timed_from: str  # a TIMED_FROM key
    evals: list = field(default_factory=list)  # {"t", "value", "epoch", "own_s", "res"}
    end: Optional[float] = None
    ended_by: Optional[str] = None
    own_start_ms: Optional[float] = None
    warmup: bool = False

    def reached(self, target: float, mode: str) -> Optional[dict]:
        return next((e for e in self.evals if reaches(e["value"], target, mode)), None)


class Referee:
    """Feed it the records of one command, in order; `finish()` gives its runs and their figures.

    `feed` returns True exactly once: when a counted run (not a warm-up) first reaches the target."""

    def __init__(self, settings: Settings):
        self.s = settings
        self._value_rx, self._start_rx, self._end_rx = settings.compiled()
        self.runs: list[Run] = []  # counted runs, closed or open
        self.warmups: list[Run] = []
        self.open: Optional[Run] = None
        self._begin = 0.0  # where the next run begins (its init and wall count from here)
        self._implicit = 0.0  # where the next run starts when no line marks its start
        self._next_from = "child"
        self.refused: list[dict] = []
        self.n_refused = 0
        self.lines = 0
        self.cut_lines = 0
        self.bad_utf8 = 0
        self.stderr_tail: list[str] = []
        self.start: Optional[dict] = None
        self.stop: Optional[dict] = None
        self.exit: Optional[dict] = None
        self._announced = False

    # -------------------------------------------------------------- records

    def feed(self, rec: dict) -> bool:
        t = rec.get("t")
        if "start" in rec:
            self.start = rec
            return False
        if "exit" in rec:
            self.exit = rec
            return False
        if "stop" in rec:
            if self.stop is None:
                self.stop = rec
            return False
        self.lines += 1
        text = rec.get("text", "")
        if rec.get("utf8") is False:
            self.bad_utf8 += 1
        if rec.get("fd") == 2:
            self.stderr_tail = (self.stderr_tail + [text])[-TAIL_LINES:]
        if rec.get("cut"):
            self.cut_lines += 1
            self._refuse(t, f"line longer than the reader keeps ({rec['cut']} bytes cut): not parsed", text)
            return False
        return self._line(t, text)

    def _line(self, t: float, text: str) -> bool:
        opened = self._start_rx is not None and self._start_rx.search(text) is not None
        try:
            item = self._parse(text)
        except Refused as e:
            self._refuse(t, str(e), text)
            item = None
        if opened:
            self._open(t, mark=True, own_ms=(item or {}).get("own_ms") if (item or {}).get("mark") == "start" else None)
        fired = False
        if item is not None and "mark" in item:
            if item["mark"] == "start":
                if not opened:
                    self._open(t, mark=True, own_ms=item.get("own_ms"))
            else:
                self._close(t, "run_stop line")
        elif item is not None:
            fired = self._eval(t, item, text)
        if self._end_rx is not None and self._end_rx.search(text):
            self._close(t, "run_end line")
        return fired

    def _parse(self, text: str) -> Optional[dict]:
        if self.s.parse == "mllog":
            return parse_mllog(text, self.s.metric)
        if self.s.parse == "dawnbench":
            return parse_dawnbench(text)
        return parse_regex(text, self._value_rx)

    def _eval(self, t: float, item: dict, text: str) -> bool:
        run = self.open or self._open(t, mark=False)
        value, epoch, own, res = item["eval"]
        if item.get("own_ms") is not None and run.own_start_ms is not None:
            try:
                own = seconds((item["own_ms"] - run.own_start_ms) / 1000.0, "time_ms since run_start")
            except Refused as e:
                self._refuse(t, str(e), text)
                return False
        run.evals.append({"t": t, "value": value, "epoch": epoch if epoch is not None else len(run.evals) + 1,
                          "own_s": own, "res": res})
        if run.warmup or self._announced or not reaches(value, self.s.target, self.s.mode):
            return False
        self._announced = True
        return True

    def _refuse(self, t, why: str, text: str) -> None:
        self.n_refused += 1
        if len(self.refused) < REFUSED_KEPT:
            self.refused.append({"t": t, "why": why, "line": text[:160]})

    # -------------------------------------------------------------- runs

    def _open(self, t: float, mark: bool, own_ms=None) -> Run:
        if self.open is not None:
            self._close(t, "next run's start")
        start = t if mark else self._implicit
        run = Run(begin=self._begin, start=start, timed_from="mark" if mark else self._next_from,
                  own_start_ms=own_ms, warmup=len(self.warmups) < self.s.warmup_runs)
        self.open = run
        return run

    def _close(self, t: float, why: str) -> None:
        run = self.open
        if run is None:
            return
        run.end, run.ended_by, self.open = t, why, None
        if run.warmup:
            self.warmups.append(run)  # its time stays in the next run's init: _begin does not move
            self._implicit, self._next_from = t, "warmup"
        else:
            self.runs.append(run)
            self._begin, self._implicit, self._next_from = t, t, "previous"

    # -------------------------------------------------------------- figures

    def finish(self) -> dict:
        """The command's runs as plain dicts (JSON-ready), once its exit record has been fed."""
        end = self.exit["t"] if self.exit is not None else None
        open_run = self.open
        if open_run is not None and not open_run.warmup:
            open_run.end, open_run.ended_by = end, "exit"
            self.runs.append(open_run)
        if not self.runs:  # nothing counted (no output, or warm-ups only): the whole command is one run
            open_run = Run(begin=0.0, start=0.0, timed_from="child", end=end, ended_by="exit")
            self.runs.append(open_run)
        self.open = None
        out = []
        for i, run in enumerate(self.runs):
            last = i == len(self.runs) - 1
            out.append(self._facts(run, is_open=run is open_run, wall_end=end if last else run.end))
        return {"runs": out, "child_wall_s": end, "exit": self._exit_text(), "lines": self.lines,
                "refused": self.refused, "n_refused": self.n_refused, "cut_lines": self.cut_lines,
                "bad_utf8_lines": self.bad_utf8, "warmup_runs": len(self.warmups),
                "stopped": (self.stop or {}).get("stop")}

    def _exit_text(self) -> Optional[str]:
        if self.exit is None:
            return None
        if self.exit.get("signal") is not None:
            return f"killed by signal {self.exit['signal']}"
        return f"exit code {self.exit.get('exit')}"

    def _status(self, run: Run, is_open: bool) -> tuple[str, Optional[str]]:
        hit = run.reached(self.s.target, self.s.mode)
        stopped = (self.stop or {}).get("stop") if is_open else None
        if stopped in STOPPED_BY_SIGNAL:
            why = "failed" if stopped == "error" else f"was interrupted ({stopped})"
            return "aborted", (f"the harness {why}: the command's process group was stopped at "
                               f"{self.stop['t']:.3f} s")
        if stopped == "timeout" and hit is None:
            return "aborted", f"timeout: the command was stopped at {self.stop['t']:.3f} s (--timeout)"
        if stopped in ("timeout", "target"):
            return "reached", None
        if is_open and self.exit is not None and (self.exit.get("exit") != 0 or self.exit.get("signal") is not None):
            tail = " | ".join(self.stderr_tail)[-TAIL_CHARS:]
            return "failed", f"the command ended with {self._exit_text()}" + (f"; stderr: {tail}" if tail else "")
        if is_open and self.exit is None:
            return "aborted", "the referee stopped before the command exited"
        if not run.evals:
            where = "the command exited" if is_open else f"the run ended ({run.ended_by})"
            if self.warmups and is_open:
                where += f" after {len(self.warmups)} warm-up run(s)"
            return "failed", (f"{where} without printing an evaluation the referee recognises (parse: "
                              f"{self.s.parse if self.s.parse in PARSERS else 'regex ' + repr(self.s.parse)}; "
                              f"{self.lines} lines read, {self.n_refused} refused)")
        return ("reached" if hit is not None else "missed"), None

    def _facts(self, run: Run, is_open: bool, wall_end: Optional[float]) -> dict:
        status, error = self._status(run, is_open)
        hit = run.reached(self.s.target, self.s.mode)
        decisive = hit if hit is not None else (run.evals[-1] if run.evals else None)
        values = [e["value"] for e in run.evals]
        evals = [{"epoch": e["epoch"], "elapsed_s": e["t"] - run.start, "acc": e["value"], "t": e["t"],
                  "own_s": e["own_s"]} for e in run.evals]
        own = referee_s = gap = tol = None
        flag = None
        if decisive is not None:
            referee_s = decisive["t"] - run.start
            own = decisive["own_s"]
            if own is not None:
                gap = referee_s - own
                tol = self.s.tolerance_s + decisive["res"]
                flag = gap > tol
        return {
            "status": status, "error": error,
            "time_to_target_s": hit["t"] - run.start if status == "reached" and hit is not None else None,
            "best_acc": max(values) if values else None, "final_acc": values[-1] if values else None,
            "epochs": len(values), "init_s": run.start - run.begin,
            "wall_s": wall_end - run.begin if wall_end is not None else None,
            "begin_s": run.begin, "start_s": run.start, "end_s": run.end, "ended_by": run.ended_by,
            "timed_from": TIMED_FROM[run.timed_from], "evals": evals,
            "own_time_s": own, "referee_time_s": referee_s, "own_gap_s": gap, "own_tolerance_s": tol,
            "own_time_flag": flag,
        }


def replay(records: list[dict], settings: Settings) -> dict:
    """A command's figures from its stored records: what verify recomputes."""
    ref = Referee(settings)
    for rec in records:
        ref.feed(rec)
    return ref.finish()


# ------------------------------------------------------------------------------------------ the event log

def event_log(run: dict, epoch0: float, target: float, metric: str = "eval_accuracy") -> str:
    """The referee's MLPerf-format event log of one run (runs/<id>/mllog.txt): its boundaries and evaluations at
    the referee's arrival times (time_ms: the wall clock at the command's start plus referee seconds)."""
    def line(t, event_type, key, value=None, **meta):
        rec = {"namespace": "", "time_ms": int(round((epoch0 + t) * 1000)), "event_type": event_type, "key": key,
               "value": value, "metadata": {"referee": "bench external", **meta}}
        return f"{MLLOG_MARK} {json.dumps(rec, sort_keys=True)}"

    out = [line(run["begin_s"], "INTERVAL_START", "init_start"),
           line(run["begin_s"], "POINT_IN_TIME", "target_accuracy", target),
           line(run["start_s"], "INTERVAL_END", "init_stop", init_s=run["init_s"], timed_from=run["timed_from"]),
           line(run["start_s"], "INTERVAL_START", "run_start")]
    for e in run["evals"]:
        out.append(line(e["t"], "POINT_IN_TIME", metric, e["acc"], epoch_num=e["epoch"], elapsed_s=e["elapsed_s"],
                        own_s=e["own_s"]))
    end = run["begin_s"] + run["wall_s"] if run["wall_s"] is not None else run["end_s"]
    if end is not None:
        out.append(line(end, "INTERVAL_END", "run_stop", status="success" if run["status"] == "reached" else "aborted",
                        bench_status=run["status"], wall_s=run["wall_s"], epochs=run["epochs"],
                        time_to_target_s=run["time_to_target_s"]))
    return "\n".join(out) + "\n"


def tolerance(latency_samples) -> float:
    """How much faster than the referee a command's own time may be before it is flagged: the run's start line and
    its evaluation line may each reach the referee late by up to the largest pipe latency measured."""
    samples = [float(x) for x in latency_samples or [] if isinstance(x, (int, float)) and math.isfinite(x)]
    return 2.0 * max(samples) if samples else 0.0


def settings(recipe: dict, latency_samples=()) -> Settings:
    """The referee's settings from a resolved recipe as a plain mapping (Recipe.to_dict(), or a bundle's
    recipe.yaml read back) and the pipe latency samples recorded with it."""
    ext = recipe.get("external") or {}
    tgt = recipe.get("target") or {}
    return Settings(parse=ext.get("parse") or "mllog", target=float(tgt["value"]), mode=tgt.get("mode") or "max",
                    metric=ext.get("metric") or "eval_accuracy", run_start=ext.get("run_start"),
                    run_end=ext.get("run_end"), warmup_runs=int(ext.get("warmup_runs") or 0),
                    tolerance_s=tolerance(latency_samples))


def read_records(path, label: Optional[str] = None) -> list[dict]:
    """A stored output.jsonl; a line that is not a record raises BenchError naming it (as `label`)."""
    from pathlib import Path

    path = Path(path)
    name = label or path.name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BenchError(f"{name}: cannot read it ({e})") from None
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        try:
            rec = json.loads(line)
        except ValueError as e:
            raise BenchError(f"{name}:{i}: not a JSON record ({e})") from None
        t = rec.get("t") if isinstance(rec, dict) else None
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
            raise BenchError(f"{name}:{i}: a record needs a finite, non-negative number `t`")
        out.append(rec)
    return out


def run_id(child_id: str, k: int) -> str:
    """The k-th counted run (from 1) of the command started as `child_id` (a bench.core.results.new_run_id)."""
    return f"{child_id}-r{k:03d}"
