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
