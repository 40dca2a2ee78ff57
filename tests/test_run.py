"""`bench run` end to end on real images (the JPEG copy), small enough for a 2-core CI box."""
import csv
import signal
import sys
from pathlib import Path

import pytest

from bench.cli import main
from bench.core.results import read_table
from bench.system.cpu import BF16_ENV as CPU_BF16_ENV
from processes import signal_when

REPO = Path(__file__).resolve().parent.parent
TINY = ["--set", "data.train_subset=4000", "--set", "data.test_subset=1000", "--set", "optim.epochs=3",
        "--set", "model.params.widths=[16,32,64,64]"]


def run_cli(tmp_path, *extra):
    results = tmp_path / "results.csv"
    code = main(["run", "cpu_quick", "--results", str(results), "--reports", str(tmp_path / "reports"),
                 "--data", str(extra_data(extra)), *[e for e in extra if not str(e).startswith("DATA=")]])
    return code, results


def extra_data(extra):
    return next((str(e)[5:] for e in extra if str(e).startswith("DATA=")), "")


@pytest.mark.slow
def test_short_real_training_beats_chance_and_lands_a_row(tmp_path, jpeg_archive, capsys, monkeypatch):
    # Decided here, not read from the machine: fp32 runs fast on every CPU (test_machine.py takes both branches)
    monkeypatch.setenv(CPU_BF16_ENV, "emulated")
    code, results = run_cli(tmp_path, *TINY, "--set", "target.value=0.99", f"DATA={jpeg_archive}")
    assert code == 0
    out = capsys.readouterr().out
    assert "missed" in out and "appended to" in out
    df = read_table(results)
    assert len(df) == 1
    row = df.iloc[0]
    # chance is 10%: 3 short epochs on 4,000 real images must be far above it
    assert row["best_acc"] > 0.30, row["best_acc"]
    assert row["status"] == "missed" and row["epochs"] == 3 and pd_isna(row["time_to_target_s"])
    assert row["dataset"] == "imagefolder:cifar10-jpeg-q75" and len(row["dataset_fingerprint"]) == 64
    # cpu_quick says `precision: auto`: fp32 where the CPU would emulate bf16
    assert "precision auto -> fp32 on this cpu" in out and row["precision"] == "fp32"
    assert row["loader"] == "device" and row["device"] == "cpu"
    assert row["wall_s"] > row["init_s"] > 0 and 0 <= row["data_wait_fraction"] < 1
    assert row["gpu_hours"] == pytest.approx(row["wall_s"] / 3600, rel=1e-6)
    assert pd_isna(row["cost_usd"]) and row["price_source"].startswith("none for a CPU run")
    assert row["train_images"] == 4000 and row["test_images"] == 1000


@pytest.mark.slow
def test_reaches_a_reachable_target_and_stops_early(tmp_path, jpeg_archive):
    code, results = run_cli(tmp_path, *TINY, "--set", "optim.epochs=6", "--set", "target.value=0.25",
                            f"DATA={jpeg_archive}")
    assert code == 0
    row = read_table(results).iloc[0]
    assert row["status"] == "reached" and row["epochs"] < 6
    assert row["best_acc"] >= 0.25 and 0 < row["time_to_target_s"] <= row["wall_s"]


def pd_isna(v):
    import pandas as pd

    return pd.isna(v)


@pytest.mark.slow
def test_ctrl_c_lands_an_aborted_row(tmp_path, jpeg_archive):
    results = tmp_path / "results.csv"
    cmd = [sys.executable, "-m", "bench", "run", "cpu_quick", "--data", str(jpeg_archive), "--results",
           str(results), "--reports", str(tmp_path / "reports"), "--set", "data.train_subset=4000",
           "--set", "optim.epochs=50", "--set", "target.value=0.99"]
    code, out, _ = signal_when(cmd, marker="epoch   1", sig=signal.SIGINT, cwd=tmp_path, within_s=180)
    assert code == 130, out
    with open(results) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]["status"] == "aborted", out
    assert "KeyboardInterrupt" in rows[0]["error"]
    assert float(rows[0]["wall_s"]) > 0 and rows[0]["epochs"] == "1"


def test_make_bench_default_recipe_falls_back_on_cpu(capsys, monkeypatch):
    """The device check is patched, so the fallback is tested on any machine, GPU or not."""
    import torch

    from bench.cli.runs import default_recipe

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_recipe() == "cpu_quick"
    assert "falling back" in capsys.readouterr().out
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_recipe() == "wrn22"
    assert capsys.readouterr().out == ""


def test_missing_data_source_is_a_clear_error(tmp_path, capsys):
    code = main(["run", "cpu_quick", "--data", str(tmp_path / "nope.tar.xz"), "--results", str(tmp_path / "r.csv")])
    assert code == 2
    assert "nope.tar.xz" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()
