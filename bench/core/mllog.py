"""MLPerf Training style event log: one `:::MLLOG {json}` line per event.

The line format and key names follow MLPerf's logger so that its tooling (and anyone who
has read an MLPerf log) can read ours. The clock is MLPerf's: run_start -> the run_stop
that follows the first eval_accuracy at or above target; init_* brackets compile/warm-up.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from bench.core.errors import BenchError

PREFIX = ":::MLLOG "
POINT_IN_TIME = "POINT_IN_TIME"
INTERVAL_START = "INTERVAL_START"
INTERVAL_END = "INTERVAL_END"
EVENT_TYPES = (POINT_IN_TIME, INTERVAL_START, INTERVAL_END)

INIT_START = "init_start"
INIT_STOP = "init_stop"
RUN_START = "run_start"
RUN_STOP = "run_stop"
EPOCH_START = "epoch_start"
EPOCH_STOP = "epoch_stop"
EVAL_START = "eval_start"
EVAL_STOP = "eval_stop"
EVAL_ACCURACY = "eval_accuracy"
SEED = "seed"
GLOBAL_BATCH_SIZE = "global_batch_size"
TRAIN_SAMPLES = "train_samples"
EVAL_SAMPLES = "eval_samples"
SUBMISSION_BENCHMARK = "submission_benchmark"
SUBMISSION_ORG = "submission_org"
SUBMISSION_DIVISION = "submission_division"
SUBMISSION_STATUS = "submission_status"
SUBMISSION_PLATFORM = "submission_platform"
# metadata keys MLPerf attaches to epoch/eval and run_stop events
EPOCH_NUM = "epoch_num"
STATUS = "status"
SUCCESS = "success"
ABORTED = "aborted"

_FIELDS = {"namespace": str, "time_ms": int, "event_type": str, "key": str,
           "value": object, "metadata": dict}


class MLLogger:
    """Appends events to `path` (None: stdout, as MLPerf's logger does by default).

    Each line is flushed as written so a crash mid-run keeps every earlier event.
    """

    def __init__(self, path: Path | None, namespace: str = "", clock=time.time):
        self.path = Path(path) if path is not None else None
        self.namespace = namespace
        self.clock = clock
        self._lock = threading.Lock()  # telemetry or loader threads may log too
        self._file = open(self.path, "a", encoding="utf-8") if self.path else None

    def event(self, key: str, value=None, metadata: dict | None = None) -> dict:
        return self._log(POINT_IN_TIME, key, value, metadata)

    def start(self, key: str, value=None, metadata: dict | None = None) -> dict:
        return self._log(INTERVAL_START, key, value, metadata)

    def end(self, key: str, value=None, metadata: dict | None = None) -> dict:
        return self._log(INTERVAL_END, key, value, metadata)

    def _log(self, event_type: str, key: str, value, metadata: dict | None) -> dict:
        caller = sys._getframe(2)  # 0: _log, 1: event/start/end, 2: whoever logged
        meta = {"file": caller.f_code.co_filename, "lineno": caller.f_lineno}
        meta.update(metadata or {})
        record = {"namespace": self.namespace, "time_ms": int(self.clock() * 1000),
                  "event_type": event_type, "key": key, "value": value, "metadata": meta}
        line = PREFIX + json.dumps(record) + "\n"
        with self._lock:
            out = self._file or sys.stdout
            out.write(line)
            out.flush()
        return record

    def close(self) -> None:
        if self._file:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _parse_line(line: str) -> dict:
    if not line.startswith(PREFIX):
        raise ValueError(f"does not start with {PREFIX.strip()!r}")
    record = json.loads(line[len(PREFIX):])
    if not isinstance(record, dict) or set(record) != set(_FIELDS):
        got = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"expected exactly the keys {sorted(_FIELDS)}, got {got}")
    for name, kind in _FIELDS.items():
        if not isinstance(record[name], kind) or (kind is int and isinstance(record[name], bool)):
            raise ValueError(f"{name} is {record[name]!r}, expected {kind.__name__}")
    if record["event_type"] not in EVENT_TYPES:
        raise ValueError(f"event_type {record['event_type']!r} is not one of {EVENT_TYPES}")
    return record


def parse_mllog(path: Path, allow_truncated_tail: bool = False) -> list[dict]:
    """Read a log written by MLLogger back into records.

    A bad line raises BenchError naming the file and line. With allow_truncated_tail, a
    final line that lacks its newline and does not parse (a writer killed mid-line) is
    dropped; a bad line anywhere else, or a bad last line that was fully written, still fails.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise BenchError(f"cannot read MLPerf log {path}: {e}") from e
    lines = text.splitlines()
    records = []
    for i, line in enumerate(lines, start=1):
        try:
            records.append(_parse_line(line))
        except ValueError as e:  # json.JSONDecodeError is a ValueError
            cut_off = i == len(lines) and not text.endswith("\n")
            if cut_off and allow_truncated_tail:
                break
            hint = (" (the last line has no newline: the writer was probably killed mid-line; "
                    "pass allow_truncated_tail=True to skip it)" if cut_off else "")
            raise BenchError(f"{path}:{i}: not an MLPerf log line: {e}{hint}") from e
    return records
