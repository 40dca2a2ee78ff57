"""DistributedDataParallel on the CPU: two gloo processes started by torchrun through `bench run`.

That DDP trains like one process on the global batch is tested step by step, bit for bit, in
test_ddp_steps.py (a run-to-target comparison within a few points could not tell a missing gradient
all-reduce from noise); here the whole path: the re-launch, two ranks to the target, one row.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench.core.results import read_table

CONFIG = ["--set", "data.train_subset=8000", "--set", "data.test_subset=2000", "--set", "optim.epochs=3",
          "--set", "target.value=0.40", "--set", "model.params.widths=[16,32,64,64]"]


def bench_cmd(tmp_path, archive, *extra):
    return [sys.executable, "-m", "bench", "run", "cpu_quick", "--data", str(archive),
            "--results", str(tmp_path / "results.csv"), "--reports", str(tmp_path / "reports"), *CONFIG, *extra]


def env():
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_two_processes_reach_the_target_and_land_one_row(tmp_path, jpeg_archive):
    two = subprocess.run(bench_cmd(tmp_path, jpeg_archive, "--set", "hardware.procs_per_node=2",
                                   "--set", "data.batch_size=256"),
                         cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=400)
    assert two.returncode == 0, two.stdout + two.stderr
    assert "re-launching through torchrun" in two.stdout
    df = read_table(tmp_path / "results.csv")
    assert len(df) == 1  # rank 0 alone writes: one row per run, not one per process
    ddp = df.iloc[0]
    assert (ddp["world_size"], ddp["backend"], ddp["global_batch_size"]) == (2, "gloo", 512)
    assert ddp["status"] == "reached" and ddp["final_acc"] >= 0.40
    assert ddp["gpu_hours"] == pytest.approx(2 * ddp["wall_s"] / 3600, rel=1e-6)


def _rank_pid(root: psutil.Process, rank: str) -> int | None:
    for p in root.children(recursive=True):
        try:
            if p.environ().get("RANK") == rank and "bench" in " ".join(p.cmdline()):
                return p.pid
        except psutil.Error:
            continue
    return None


@pytest.mark.slow
def test_killed_rank_aborts_both_and_lands_an_aborted_row(tmp_path, jpeg_archive):
    cmd = bench_cmd(tmp_path, jpeg_archive, "--set", "hardware.procs_per_node=2", "--set", "optim.epochs=40",
                    "--set", "target.value=0.99")
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    out = []
    try:
        for line in proc.stdout:
            out.append(line)
            if "epoch   1" in line:
                break
        victim = _rank_pid(psutil.Process(proc.pid), "1")
        assert victim, "".join(out)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.time()
        rest, _ = proc.communicate(timeout=300)  # ending is the claim; a hang runs into this timeout
        took = time.time() - killed_at
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = "".join(out) + rest
    assert proc.returncode != 0, text
    print(f"\nthe run ended {took:.1f}s after rank 1 was killed")
    assert not [p for p in psutil.process_iter(["environ"]) if _is_leftover(p, tmp_path)]
    df = read_table(tmp_path / "results.csv")  # strict: a corrupt line would raise
    assert len(df) == 1, text
    row = df.iloc[0]
    assert row["status"] == "aborted" and row["world_size"] == 2
    assert "rank 1" in row["error"], row["error"]


def _is_leftover(p: psutil.Process, tmp_path: Path) -> bool:
    try:
        return str(tmp_path) in " ".join(p.cmdline())
    except psutil.Error:
        return False
