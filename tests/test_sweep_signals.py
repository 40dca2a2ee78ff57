"""SIGTERM during `bench sweep`: each recipe trains in a child process (bench.studies.sweep.
run_in_fresh_process), and whichever process the signal reaches, the run in progress lands an `aborted`
row, the sweep stops (the next recipe never starts), it exits 128 + SIGTERM, and no process is left behind.

SLURM signals every process of the job at a time limit ("group"); `kill PID` or a job script that forwards
the signal reaches the sweep alone ("parent"); a per-process kill reaches the training process alone
("child").
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from bench.core.results import read_table

BASE = """
name: tiny_base
model: {{arch: resnet9, params: {{widths: [4, 4, 8, 8]}}}}
data: {{source: {images}, batch_size: 16, eval_batch_size: 16}}
optim: {{epochs: 500}}
precision: fp32
warmup_steps: 0
target: {{value: 0.99}}
hardware: {{device: cpu, threads: 1}}
"""


def training_child(parent: psutil.Process) -> psutil.Process:
    """The spawned process running the recipe (not multiprocessing's resource tracker)."""
    kids = [p for p in parent.children() if "spawn_main" in " ".join(p.cmdline())]
    assert len(kids) == 1, [p.cmdline() for p in parent.children()]
    return kids[0]


@pytest.mark.slow
@pytest.mark.parametrize("who", ["group", "parent", "child"])
def test_sigterm_aborts_the_run_in_progress_and_stops_the_sweep(tmp_path, tiny_images, who):
    fam = tmp_path / "fam"
    fam.mkdir()
    (fam / "_base.yaml").write_text(BASE.format(images=tiny_images))
    (fam / "a.yaml").write_text("extends: _base\nname: tiny_a\n")
    (fam / "b.yaml").write_text("extends: _base\nname: tiny_b\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "bench", "sweep", str(fam), "--results", str(tmp_path / "results.csv"),
           "--reports", str(tmp_path / "reports"), "--plot-dir", str(tmp_path / "plots")]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    seen, group = [], proc.pid
    try:
        for line in proc.stdout:
            seen.append(line)
            if "epoch   1" in line:
                break
        assert "epoch   1" in seen[-1], "".join(seen) + proc.stderr.read()
        child = training_child(psutil.Process(proc.pid))
        {"group": lambda: os.killpg(group, signal.SIGTERM), "parent": lambda: proc.send_signal(signal.SIGTERM),
         "child": lambda: child.send_signal(signal.SIGTERM)}[who]()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(group, signal.SIGKILL)
    text = "".join(seen) + out + err
    assert proc.returncode == 128 + signal.SIGTERM, text
    assert err.strip().splitlines()[-1] == "bench: terminated by SIGTERM (signal 15)", text
    df = read_table(tmp_path / "results.csv")
    assert list(df["recipe"]) == ["tiny_a"], text  # tiny_b never started
    row = df.iloc[0]
    assert row["status"] == "aborted" and "SIGTERM" in row["error"] and row["epochs"] >= 1, text
    assert "[2/2] tiny_b" not in text
    deadline = time.monotonic() + 30  # the child may still be exiting after its parent
    while time.monotonic() < deadline and _group_alive(group):
        time.sleep(0.2)
    assert not _group_alive(group), "processes of the sweep are still running"


def _group_alive(pgid: int) -> list[int]:
    alive = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return alive


def test_a_second_sigterm_cannot_interrupt_the_recording_of_the_first():
    """The run's handler raises Terminated once and ignores SIGTERM from then on (until run_recipe restores
    the previous handler): a sweep passing on the signal its child already got must not cut the row short."""
    from bench.core.errors import Terminated
    from bench.run import runner

    before = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(Terminated):
            runner._on_sigterm(signal.SIGTERM, None)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, before)
