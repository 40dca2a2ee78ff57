import json
import re

import pytest

from bench.core import mllog
from bench.core.errors import BenchError


def _typical_run(path):
    ticks = iter(range(1_700_000_000, 1_700_000_100))
    with mllog.MLLogger(path, namespace="worker0", clock=lambda: next(ticks) + 0.25) as log:
        log.event(mllog.SUBMISSION_BENCHMARK, "cifar10")
        log.start(mllog.INIT_START)
        log.event(mllog.SEED, 1234)
        log.event(mllog.GLOBAL_BATCH_SIZE, 512)
        log.event(mllog.TRAIN_SAMPLES, 50000)
        log.event(mllog.EVAL_SAMPLES, 10000)
        log.end(mllog.INIT_STOP)
        log.start(mllog.RUN_START)
        for epoch in (1, 2):
            log.start(mllog.EPOCH_START, metadata={mllog.EPOCH_NUM: epoch})
            log.end(mllog.EPOCH_STOP, metadata={mllog.EPOCH_NUM: epoch})
            log.start(mllog.EVAL_START, metadata={mllog.EPOCH_NUM: epoch})
            log.event(mllog.EVAL_ACCURACY, 0.90 + 0.03 * epoch, metadata={mllog.EPOCH_NUM: epoch})
            log.end(mllog.EVAL_STOP, metadata={mllog.EPOCH_NUM: epoch})
        log.end(mllog.RUN_STOP, metadata={mllog.STATUS: mllog.SUCCESS})


def test_lines_have_the_mlperf_shape(tmp_path):
    path = tmp_path / "run.log"
    _typical_run(path)
    lines = path.read_text().splitlines()
    assert len(lines) == 19
    types = {"namespace": str, "time_ms": int, "event_type": str, "key": str, "metadata": dict}
    for line in lines:
        assert re.match(r"^:::MLLOG \{.*\}$", line)
        rec = json.loads(line[len(":::MLLOG "):])
        assert list(rec) == ["namespace", "time_ms", "event_type", "key", "value", "metadata"]
        for k, t in types.items():
            assert isinstance(rec[k], t), (k, rec)
        assert rec["event_type"] in {"POINT_IN_TIME", "INTERVAL_START", "INTERVAL_END"}
        assert rec["metadata"]["file"].endswith("test_mllog.py")
        assert isinstance(rec["metadata"]["lineno"], int)
    first = json.loads(lines[0][9:])
    assert first["time_ms"] == 1_700_000_000_250 and first["namespace"] == "worker0"


def test_round_trip_and_metadata(tmp_path):
    path = tmp_path / "run.log"
    _typical_run(path)
    recs = mllog.parse_mllog(path)
    by_key = {}
    for r in recs:
        by_key.setdefault(r["key"], []).append(r)
    assert [r["metadata"]["epoch_num"] for r in by_key["eval_accuracy"]] == [1, 2]
    assert by_key["eval_accuracy"][1]["value"] == pytest.approx(0.96)
    assert by_key["run_stop"][0]["metadata"]["status"] == "success"
    assert by_key["run_stop"][0]["event_type"] == "INTERVAL_END"
    assert by_key["seed"][0]["value"] == 1234


def test_truncated_tail(tmp_path):
    path = tmp_path / "run.log"
    _typical_run(path)
    text = path.read_text()
    path.write_text(text[:-20])  # killed mid-way through the run_stop line
    with pytest.raises(BenchError, match=r"run\.log:19: .*allow_truncated_tail"):
        mllog.parse_mllog(path)
    assert len(mllog.parse_mllog(path, allow_truncated_tail=True)) == 18


def test_bad_line_in_the_middle_is_never_skipped(tmp_path):
    path = tmp_path / "run.log"
    _typical_run(path)
    lines = path.read_text().splitlines(keepends=True)
    lines[3] = ":::MLLOG {not json\n"
    path.write_text("".join(lines))
    with pytest.raises(BenchError, match=r"run\.log:4: "):
        mllog.parse_mllog(path, allow_truncated_tail=True)


def test_missing_field_is_reported(tmp_path):
    path = tmp_path / "run.log"
    path.write_text(':::MLLOG {"namespace": "", "time_ms": 1, "event_type": "POINT_IN_TIME", "key": "seed"}\n')
    with pytest.raises(BenchError, match=r"run\.log:1: .*exactly the keys"):
        mllog.parse_mllog(path)
