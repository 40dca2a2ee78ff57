"""`bench overhead`: the bare loop, the batches both loops share, and the command end to end (tiny)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from bench.studies.overhead import KEYS, Steps, bare_round

REPO = Path(__file__).resolve().parent.parent


class ListLoader:
    """Epoch e serves batches (e, 0), (e, 1), (e, 2) as (x, y) with x filled with e*10 + i."""

    samples_per_epoch = 6

    def epoch(self, e):
        for i in range(3):
            yield torch.full((2, 1), float(e * 10 + i)), torch.zeros(2, dtype=torch.long)


def test_steps_serve_the_same_batches_and_run_into_the_next_epoch():
    steps = Steps(ListLoader(), 5)
    assert len(steps) == 5
    first = [float(x[0, 0]) for x, _ in steps.epoch(0)]
    assert first == [0, 1, 2, 10, 11]
    assert [float(x[0, 0]) for x, _ in steps.epoch(0)] == first  # read again: the same batches


class Counting(torch.optim.SGD):
    steps = 0

    def step(self, closure=None):
        Counting.steps += 1
        return super().step(closure)


def test_bare_round_steps_once_per_batch_and_counts_images():
    model = nn.Linear(1, 2)
    opt = Counting(model.parameters(), lr=0.1)
    before = model.weight.detach().clone()
    ips = bare_round(model, opt, nn.CrossEntropyLoss(), Steps(ListLoader(), 4).epoch(0), device_type="cpu",
                     precision="fp32", sync=lambda: None)
    assert Counting.steps == 4 and ips > 0
    assert not torch.equal(model.weight, before)


@pytest.mark.slow
def test_overhead_command_writes_the_keys(tmp_path, jpeg_archive):
    out = tmp_path / "overhead.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "bench", "overhead", "cpu_quick", "--data", str(jpeg_archive), "--steps", "2",
           "--rounds", "1", "--json", str(out), "--set", "precision=fp32", "--set", "data.train_subset=512",
           "--set", "data.test_subset=200", "--set", "data.batch_size=128", "--set", "model.params.widths=[8,8,16,16]"]
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    row = json.loads(out.read_text())
    assert list(row)[:len(KEYS)] == list(KEYS)
    assert row["recipe"] == "cpu_quick" and row["device"] == "cpu" and row["steps"] == 2
    assert row["bare_images_per_s"] > 0 and row["harness_images_per_s"] > 0
    assert row["ratio"] == pytest.approx(row["harness_images_per_s"] / row["bare_images_per_s"])
    assert "ratio" in p.stdout and "round 1/1" in p.stdout


def test_overhead_refuses_bad_counts(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.run([sys.executable, "-m", "bench", "overhead", "cpu_quick", "--steps", "0"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "--steps 0" in p.stderr and "Traceback" not in p.stderr
