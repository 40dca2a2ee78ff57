"""Bad input is refused before anything trains: exit 2, one message naming the file or field and the fix,
no traceback, no row, no bundle. Every case drives the real command line."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main

REPO = Path(__file__).resolve().parent.parent


def run_bench(tmp_path, *args, capsys):
    code = main([*map(str, args)])
    return code, capsys.readouterr()


def nothing_written(tmp_path):
    leftovers = [p for p in tmp_path.rglob("*") if p.suffix in (".csv", ".partial") or p.name == "mllog.txt"]
    return not leftovers


def recipe_file(tmp_path, text: str | bytes, name="r.yaml") -> Path:
    p = tmp_path / name
    (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
    return p


def refuse(tmp_path, capsys, *args):
    code, out = run_bench(tmp_path, *args, capsys=capsys)
    assert code == 2, out
    assert "Traceback" not in out.err
    assert nothing_written(tmp_path / "out") if (tmp_path / "out").exists() else True
    return out.err


def run_args(tmp_path, recipe, *extra):
    out = tmp_path / "out"
    return ("run", recipe, "--results", out / "results.csv", "--reports", out / "reports", *extra)


def test_recipe_that_is_not_utf8_text(tmp_path, capsys):
    r = recipe_file(tmp_path, b"name: x\nmodel: {arch: resnet9}\n\xff\xfe\x00garbage")
    err = refuse(tmp_path, capsys, *run_args(tmp_path, r))
    assert str(r) in err and "UTF-8" in err


def test_empty_recipe_file(tmp_path, capsys):
    r = recipe_file(tmp_path, "# nothing but a comment\n")
    err = refuse(tmp_path, capsys, *run_args(tmp_path, r))
    assert str(r) in err and "empty" in err


@pytest.mark.parametrize("field, value", [("optim.lr", ".nan"), ("optim.lr", ".inf"),
                                          ("optim.weight_decay", "-.inf"), ("target.value", ".nan"),
                                          ("optim.schedule.div", ".inf"), ("optim.label_smoothing", ".nan")])
def test_nan_and_inf_are_not_numbers_here(tmp_path, capsys, field, value):
    err = refuse(tmp_path, capsys, *run_args(tmp_path, "cpu_quick", "--set", f"{field}={value}"))
    assert field in err and "finite" in err


def test_results_naming_a_directory_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    code, out = run_bench(tmp_path, "run", "cpu_quick", "--results", tmp_path / "out",
                          "--reports", tmp_path / "out" / "reports", capsys=capsys)
    assert code == 2 and "is a directory" in out.err and "--results" in out.err
    assert not (tmp_path / "out" / "reports").exists()


def test_malformed_results_table_is_refused_before_training(tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    table = out_dir / "results.csv"
    table.write_text("run_id,status,wall_s\nabc,reached,1.0\nbroken line with,too,many,fields\n")
    before = table.read_bytes()
    code, out = run_bench(tmp_path, "run", "cpu_quick", "--results", table, "--reports", out_dir / "reports",
                          capsys=capsys)
    assert code == 2, out
    assert "line 3" in out.err and "malformed" in out.err and "Remove that line" in out.err
    assert "appended" not in out.out
    assert table.read_bytes() == before and not (out_dir / "reports").exists()


def test_results_in_a_folder_that_cannot_be_created(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out = run_bench(tmp_path, "run", "cpu_quick", "--results", blocker / "sub" / "results.csv",
                          capsys=capsys)
    assert code == 2 and "cannot create" in out.err


@pytest.mark.parametrize("name", ["../escape", "a/b", "", "white space"])
def test_recipe_names_that_would_leave_the_reports_folder(tmp_path, capsys, name):
    r = recipe_file(tmp_path, f"name: {name!r}\n")
    err = refuse(tmp_path, capsys, *run_args(tmp_path, r))
    assert "name" in err


def test_recipe_path_that_is_a_directory(tmp_path, capsys):
    (tmp_path / "d.yaml").mkdir()
    err = refuse(tmp_path, capsys, "validate", tmp_path / "d.yaml")
    assert "d.yaml" in err


def test_compare_target_given_in_percent(tmp_path, capsys):
    table = tmp_path / "t.csv"
    table.write_text("run_id,status,target\nx,reached,0.94\n")
    code, out = run_bench(tmp_path, "compare", "--results", table, "--target", "94", "--no-plot", capsys=capsys)
    assert code == 2 and "--target" in out.err and "0.94" in out.err


def test_unknown_set_field_names_the_allowed_ones(tmp_path, capsys):
    err = refuse(tmp_path, capsys, "show", "cpu_quick", "--set", "optim.learning_rate=0.1")
    assert "optim.learning_rate" in err and "lr" in err


def test_sigterm_lands_an_aborted_row_and_exits_143(tmp_path, jpeg_archive):
    """What SLURM sends at a time limit: the row lands, one line says so, no traceback, exit 128 + 15."""
    import signal
    import time

    from bench.core.results import read_table

    results = tmp_path / "results.csv"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "bench", "run", "cpu_quick", "--data", str(jpeg_archive), "--results", str(results),
           "--reports", str(tmp_path / "reports"), "--set", "precision=fp32", "--set", "data.train_subset=1024",
           "--set", "data.test_subset=256", "--set", "model.params.widths=[8,16,16,16]",
           "--set", "optim.epochs=200", "--set", "target.value=0.99"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    deadline = time.time() + 300
    for line in proc.stdout:
        seen.append(line)
        if "epoch   1" in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    text = "".join(seen) + out
    assert proc.returncode == 128 + signal.SIGTERM, text + err
    assert "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == "bench: terminated by SIGTERM (signal 15)", err
    row = read_table(results).iloc[0]
    assert row["status"] == "aborted" and "SIGTERM" in row["error"] and row["epochs"] >= 1
    assert "appended to" in text
