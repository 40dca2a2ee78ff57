import multiprocessing as mp
import os

import pandas as pd
import pytest

from bench.core import results
from bench.core.errors import BenchError
from bench.core.prices import lookup, resolve_price
from bench.core.results import COLUMNS, append_row, read_table


def _row(**kw):
    row = {"run_id": results.new_run_id(), "status": "reached", "recipe": "r", "seed": 0}
    row.update(kw)
    return row


def test_append_and_read_back_types_and_order(tmp_path):
    path = tmp_path / "results" / "results.csv"
    append_row(path, _row(run_id="a", seed=3, time_to_target_s=0.1 + 0.2, wall_s=12.5, git_dirty=False,
                          device_count=1, recipe="resnet 'quoted', with comma", error=None))
    append_row(path, _row(run_id="b", seed=4, status="failed", error="Traceback\nline two", git_dirty=True))
    df = read_table(path)
    assert list(df.columns) == COLUMNS
    assert list(df.run_id) == ["a", "b"]
    assert df.time_to_target_s[0] == 0.1 + 0.2  # repr precision survives
    assert df.seed.tolist() == [3, 4] and str(df.seed.dtype) == "Int64"
    assert df.git_dirty.tolist() == [False, True]
    assert df.recipe[0] == "resnet 'quoted', with comma"
    assert df.error[1] == "Traceback\nline two"
    assert pd.isna(df.error[0]) and pd.isna(df.time_to_target_s[1])


def test_missing_or_empty_table_is_empty_frame(tmp_path):
    assert list(read_table(tmp_path / "none.csv").columns) == COLUMNS
    (tmp_path / "empty.csv").write_text("")
    assert len(read_table(tmp_path / "empty.csv")) == 0


def _append_many(path, worker, n, barrier):
    try:
        for i in range(n):
            barrier.wait()  # every writer appends at the same moment, every round
            append_row(path, {"run_id": f"w{worker}-{i}", "status": "missed", "seed": i})
    except BaseException:
        barrier.abort()  # so that the other writers stop at once instead of waiting out the timeout
        raise


def test_concurrent_appends_lose_nothing(tmp_path):
    """Four writers released together by a barrier for each of 25 rounds: without the lock each round's
    writers read the same table and all but one row of the round is lost, so a missing lock fails this
    every time, not now and then."""
    path = tmp_path / "results.csv"
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(4, timeout=120)
    procs = [ctx.Process(target=_append_many, args=(str(path), w, 25, barrier)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
    assert [p.exitcode for p in procs] == [0] * 4
    df = read_table(path)
    assert len(df) == 100
    assert set(df.run_id) == {f"w{w}-{i}" for w in range(4) for i in range(25)}


def _die_mid_write(path, how):
    if how == "half-written":
        def write_half(f, header, rows):
            f.write(",".join(header) + "\n")
            f.write("x" * 10)
            f.flush()
            os._exit(1)
        results._write_rows = write_half
    else:
        os.replace = lambda *a: os._exit(1)
    append_row(path, {"run_id": "doomed", "status": "reached"})


@pytest.mark.parametrize("how", ["half-written", "before-rename"])
def test_killed_writer_leaves_table_intact(tmp_path, how):
    path = tmp_path / "results.csv"
    for i in range(3):
        append_row(path, _row(run_id=f"r{i}"))
    before = path.read_bytes()
    p = mp.get_context("spawn").Process(target=_die_mid_write, args=(str(path), how))
    p.start()
    p.join(60)
    assert p.exitcode == 1
    assert path.read_bytes() == before
    assert list(read_table(path).run_id) == ["r0", "r1", "r2"]
    # the dead writer's lock is released and its temp file is cleaned up by the next append
    append_row(path, _row(run_id="r3"))
    assert list(read_table(path).run_id) == ["r0", "r1", "r2", "r3"]
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_new_and_extra_columns(tmp_path):
    path = tmp_path / "results.csv"
    append_row(path, _row(run_id="a"))
    append_row(path, _row(run_id="b", zz_new_metric=1.5, aa_note="hi"))
    header = path.read_text().splitlines()[0].split(",")
    assert header == COLUMNS + ["zz_new_metric", "aa_note"]
    df = read_table(path)
    assert list(df.columns) == COLUMNS + ["zz_new_metric", "aa_note"]
    assert pd.isna(df.zz_new_metric[0]) and df.zz_new_metric[1] == 1.5


def test_older_table_lacking_columns(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("run_id,status,wall_s,legacy\nold1,reached,10.0,x\n")
    df = read_table(path)
    assert list(df.columns) == COLUMNS + ["legacy"]
    assert df.wall_s[0] == 10.0 and pd.isna(df.cost_usd[0]) and df.legacy[0] == "x"
    append_row(path, _row(run_id="new1", wall_s=2.0))
    df = read_table(path)
    assert list(df.run_id) == ["old1", "new1"] and df.legacy.isna().tolist() == [False, True]


def test_malformed_line(tmp_path):
    path = tmp_path / "results.csv"
    append_row(path, _row(run_id="a"))
    append_row(path, _row(run_id="b"))
    with open(path, "a") as f:
        f.write("c,2024,cut-short\n")
    with pytest.raises(BenchError, match=r"line 4.*Remove that line") as e:
        read_table(path)
    assert str(path) in str(e.value)
    with pytest.warns(UserWarning, match="line.* 4"):
        df = read_table(path, strict=False)
    assert list(df.run_id) == ["a", "b"]
    with pytest.raises(BenchError, match="line 4"):
        append_row(path, _row(run_id="d"))


def test_bad_status_rejected(tmp_path):
    with pytest.raises(BenchError, match="status"):
        append_row(tmp_path / "r.csv", _row(status="ok"))
    with pytest.raises(BenchError, match="status"):
        append_row(tmp_path / "r.csv", {"run_id": "x"})
    assert not (tmp_path / "r.csv").exists()


def test_run_ids_sort_and_differ():
    ids = [results.new_run_id() for _ in range(50)]
    assert len(set(ids)) == 50 and ids[0] < ids[-1]


def test_price_lookup():
    v100 = lookup("Tesla V100-SXM2-16GB", "cuda")
    assert v100.usd_per_hour == 3.06 and "DAWNBench" in v100.source
    h100 = lookup("NVIDIA H100 80GB HBM3", "cuda")
    assert h100.usd_per_hour == 12.29 and "2024" in h100.source
    cpu = lookup("AMD EPYC", "cpu")
    assert cpu.usd_per_hour is None and cpu.source.startswith("none for a CPU run")
    unknown = lookup("Radeon Mystery 9000", "cuda")
    assert unknown.usd_per_hour is None
    assert unknown.source == "no price for Radeon Mystery 9000 in bench/core/prices.yaml; add one"


def test_recipe_price_override_and_cost():
    p = resolve_price("NVIDIA H100 80GB HBM3", "cuda", 2.5, "our cluster, internal rate")
    assert (p.usd_per_hour, p.source) == (2.5, "our cluster, internal rate")
    assert resolve_price("Tesla V100", "cuda", None, None).usd_per_hour == 3.06
    with pytest.raises(BenchError):
        resolve_price("Tesla V100", "cuda", -1.0, None)
    assert results.device_hours(8, 1800) == 4.0
    assert results.cost(4.0, 3.06) == pytest.approx(12.24)
    assert results.cost(1.0, lookup("x", "cpu")) is None  # unknown, not zero
    assert results.cost(1.0, lookup("Radeon", "cuda")) is None
    fields = results.cost_fields("Tesla V100-SXM2-16GB", "cuda", 8, 3600)
    assert fields["gpu_hours"] == 8.0 and fields["cost_usd"] == pytest.approx(24.48)


def test_cost_fields_are_the_four_columns_from_the_right_price():
    v100 = results.cost_fields("Tesla V100-SXM2-16GB", "cuda", 8, 3600)
    assert v100 == {"gpu_hours": 8.0, "cost_usd": pytest.approx(24.48), "price_usd_per_hour": 3.06,
                    "price_source": lookup("Tesla V100-SXM2-16GB", "cuda").source}
    own = results.cost_fields("NVIDIA H100 80GB HBM3", "cuda", 1, 1800, 2.0, "spot rate")
    assert own == {"gpu_hours": 0.5, "cost_usd": 1.0, "price_usd_per_hour": 2.0, "price_source": "spot rate"}
    cpu = results.cost_fields("AMD EPYC", "cpu", 1, 3600)
    assert cpu["cost_usd"] is None and cpu["price_usd_per_hour"] is None and cpu["gpu_hours"] == 1.0
    assert cpu["price_source"] == lookup("AMD EPYC", "cpu").source


def test_structured_values_are_written_as_sorted_json():
    assert results.format_value({"b": 1, "a": [2, 3]}) == '{"a": [2, 3], "b": 1}'
    assert results.format_value(True) == "True" and results.format_value(None) == ""


def test_read_types_hold_for_hand_edited_cells(tmp_path):
    """A hand-edited "n/a" in a number column is NA (the column stays float), a fraction in an integer column
    keeps the column float, booleans stay pandas booleans, text stays text."""
    import csv

    path = tmp_path / "r.csv"
    append_row(path, _row(run_id="a", seed=3, wall_s=12.5, git_dirty=False, recipe="123"))
    append_row(path, _row(run_id="b", seed=4, wall_s=13.0, git_dirty=True, recipe="456"))
    lines = list(csv.reader(path.open(newline="")))
    lines[1][lines[0].index("wall_s")] = "n/a"
    lines[2][lines[0].index("seed")] = "4.5"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(lines)
    df = read_table(path)
    assert str(df.git_dirty.dtype) == "boolean" and df.git_dirty.tolist() == [False, True]
    assert str(df.wall_s.dtype) == "float64" and pd.isna(df.wall_s[0]) and df.wall_s[1] == 13.0
    assert str(df.seed.dtype) == "float64" and df.seed.tolist() == [3.0, 4.5]
    assert df.recipe.tolist() == ["123", "456"]  # a recipe name that looks like a number stays a name


def test_merging_with_a_key_adds_only_rows_the_table_lacks(tmp_path):
    """`bench sweep --cluster` merges per-job tables with key="run_id": a row already there, or twice among the
    new rows, is added once; a merge that adds nothing leaves the file as it was."""
    path = tmp_path / "merged.csv"
    assert results.append_rows(path, [_row(run_id="a"), _row(run_id="b")], leading=COLUMNS, key="run_id") == 2
    before = path.read_bytes()
    assert results.append_rows(path, [_row(run_id="b"), _row(run_id="a")], leading=COLUMNS, key="run_id") == 0
    assert path.read_bytes() == before
    added = results.append_rows(path, [_row(run_id="c", seed=1), _row(run_id="b"), _row(run_id="c", seed=2),
                                       _row(run_id="d")], leading=COLUMNS, key="run_id")
    assert added == 2
    df = read_table(path)
    assert list(df.run_id) == ["a", "b", "c", "d"] and df.seed[2] == 1  # the first "c" is the one kept
    assert results.append_rows(path, [_row(run_id="a")], leading=COLUMNS) == 1  # no key: appended as given
    assert list(read_table(path).run_id) == ["a", "b", "c", "d", "a"]


def test_a_blank_line_inside_a_table_ends_nothing(tmp_path):
    path = tmp_path / "r.csv"
    for run_id in "abc":
        append_row(path, _row(run_id=run_id))
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + [""] + lines[2:]) + "\n")  # a hand edit left an empty line
    assert list(read_table(path).run_id) == ["a", "b", "c"]
    header, rows = results.read_records(path)
    assert [line for line, _ in rows] == [2, 4, 5]  # rows keep their own line numbers for error messages


def test_header_errors_name_the_file_and_line_1(tmp_path):
    for header in ("run_id,status,,seed", "run_id,status,run_id"):
        path = tmp_path / "h.csv"
        path.write_text(header + "\na,reached,x,1\n")
        with pytest.raises(BenchError) as e:
            results.read_records(path)
        assert str(e.value).startswith(f"{path}:1: header has an empty or repeated column")
        assert "fix the header line" in str(e.value)
    path.write_text("a,a\n")
    with pytest.raises(BenchError, match=r"^bundle/results.csv:1: header"):  # a bundle's table names itself so
        results.read_records(path, label="bundle/results.csv")


def test_reading_is_strict_unless_asked_and_lists_every_skipped_line(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("a,b\n1,2\n3\n4,5\n6,7,8\n")
    with pytest.raises(BenchError, match=r":3: malformed row: line 3 has 1 fields, the header has 2"):
        results.read_records(path)
    with pytest.warns(UserWarning, match=r"skipped malformed line\(s\) 3, 5$"):
        header, rows = results.read_records(path, strict=False)
    assert header == ["a", "b"] and rows == [(2, ["1", "2"]), (4, ["4", "5"])]


def test_unreadable_tables_say_why(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes(b"run_id,status\n\xff\xfe,reached\n")
    with pytest.raises(BenchError, match=r"r.csv: not UTF-8 text \(invalid start byte at byte 14\)"):
        results.read_records(path)
    path.write_text("run_id,status\nx," + "y" * 200_000 + "\n")  # past the csv module's field limit
    with pytest.raises(BenchError, match=r"r.csv:2: not valid CSV \(field larger than field limit"):
        results.read_records(path)


def test_values_with_line_breaks_round_trip_exactly(tmp_path):
    path = tmp_path / "r.csv"
    append_row(path, _row(run_id="a", error="first\r\nsecond\rthird\nfourth"))
    assert read_table(path).error[0] == "first\r\nsecond\rthird\nfourth"
    append_row(path, _row(run_id="b"))
    body = path.read_bytes()
    assert body.count(b"\r") == 2 and body.endswith(b",\n")  # rows end in \n; only the value holds \r


def test_run_ids_are_utc_to_the_microsecond_with_a_random_tail(monkeypatch):
    import datetime as dt
    import re
    import time

    monkeypatch.setenv("TZ", "Asia/Kathmandu")  # UTC+5:45: a local clock would be far off
    time.tzset()
    try:
        run_id = results.new_run_id()
        now = dt.datetime.now(dt.timezone.utc)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert re.fullmatch(r"\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{6}", run_id), run_id
    stamp = dt.datetime.strptime(run_id[:23], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=dt.timezone.utc)
    assert abs((now - stamp).total_seconds()) < 60


def test_atomic_write_uses_a_temp_file_beside_the_target_and_keeps_permissions(tmp_path):
    path = tmp_path / "deep" / "er" / "table.csv"
    seen = []

    def write(f):
        seen.extend(p.name for p in path.parent.glob(path.name + ".*.tmp"))  # what _remove_stale_temps clears
        f.write("x\n")

    results.atomic_write(path, write)
    assert len(seen) == 1 and path.read_text() == "x\n"
    assert os.stat(path).st_mode & 0o777 == 0o644  # not mkstemp's 0600
    os.chmod(path, 0o640)
    results.atomic_write(path, lambda f: f.write("y\n"))
    assert os.stat(path).st_mode & 0o777 == 0o640 and path.read_text() == "y\n"
    assert [p.name for p in path.parent.iterdir()] == ["table.csv"]


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("old\n")

    def fail(f):
        f.write("half")
        raise ValueError("disk full")

    with pytest.raises(ValueError, match="disk full"):
        results.atomic_write(path, fail)
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_appending_creates_missing_folders(tmp_path):
    path = tmp_path / "a" / "b" / "c" / "results.csv"
    append_row(path, _row(run_id="a"))
    assert list(read_table(path).run_id) == ["a"]


def test_a_held_lock_times_out_with_a_message_that_names_it(tmp_path, monkeypatch):
    from filelock import FileLock

    path = tmp_path / "results.csv"
    monkeypatch.setattr(results, "LOCK_TIMEOUT_S", 0.2)
    holder = mp.get_context("spawn")
    ready, done = holder.Event(), holder.Event()
    p = holder.Process(target=_hold_lock, args=(str(path) + ".lock", ready, done))
    p.start()
    try:
        assert ready.wait(60)
        with pytest.raises(BenchError) as e:
            append_row(path, _row(run_id="a"))
    finally:
        done.set()
        p.join(60)
    assert f"could not lock {path}.lock within 0.2 s" in str(e.value)
    assert "delete the lock file and retry" in str(e.value)
    assert not path.exists()
    append_row(path, _row(run_id="a"))  # released: the same append now goes through
    assert FileLock(str(path) + ".lock").acquire(timeout=1)


def _hold_lock(lock_path, ready, done):
    from filelock import FileLock

    with FileLock(lock_path):
        ready.set()
        done.wait(60)


def test_bad_status_lists_the_allowed_ones(tmp_path):
    with pytest.raises(BenchError) as e:
        append_row(tmp_path / "r.csv", _row(status="ok"))
    assert str(e.value) == f"results row status is 'ok'; must be one of {', '.join(results.STATUSES)}"


def test_extra_columns_read_as_numbers_only_when_every_value_is_one(tmp_path):
    path = tmp_path / "r.csv"
    append_row(path, _row(run_id="a", extra_full=1.5, extra_empty=None, extra_text="x", extra_partial=None))
    append_row(path, _row(run_id="b", extra_full=2.5, extra_empty=None, extra_text="7", extra_partial=3))
    df = read_table(path)
    assert str(df.extra_full.dtype) == "float64" and df.extra_full.tolist() == [1.5, 2.5]
    assert df.extra_partial.tolist()[1] == 3 and pd.isna(df.extra_partial[0])
    assert df.extra_text.tolist() == ["x", "7"]
    assert df.extra_empty.dtype == object and df.extra_empty.tolist() == [None, None]
    assert df.error.dtype == object and df.error[0] is None  # text columns: object, None where empty


def test_check_table_refuses_what_could_not_take_a_row(tmp_path):
    results.check_table(tmp_path / "new" / "deeper" / "results.csv")  # creatable: fine, and nothing created
    assert not (tmp_path / "new").exists()
    with pytest.raises(BenchError, match=r"is a directory; name a CSV file in it, e\.g\. --results .*results\.csv"):
        results.check_table(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    blocker.chmod(0o755)  # a file is no folder even where its permissions would pass os.access (e.g. as root)
    with pytest.raises(BenchError, match=r"cannot create or write it in .*file \(not a folder\)"):
        results.check_table(blocker / "sub" / "results.csv")
    table = tmp_path / "results.csv"
    append_row(table, _row(run_id="a"))
    results.check_table(table)
    with open(table, "a") as f:
        f.write("cut,short\n")
    with pytest.raises(BenchError, match=r"results.csv:3: malformed row"):
        results.check_table(table)
