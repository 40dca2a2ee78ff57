"""launch/gpu_check.sh, the one script a lent GPU runs: its syntax, and its race part end to end on the CPU
(DRY_RUN=1: tiny settings, fp32), down to the table it prints."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "launch" / "gpu_check.sh"


def test_gpu_check_parses():
    p = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


@pytest.mark.slow
def test_gpu_check_dry_run_prints_the_table(tmp_path):
    env = {**os.environ, "DRY_RUN": "1", "PARTS": "race", "OUT": str(tmp_path), "PYTHON": sys.executable,
           "OMP_NUM_THREADS": "1"}
    p = subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "race.csv")))
    assert sorted(r["recipe"] for r in rows) == ["airbench94_muon", "darknet", "resnet9", "wrn22"]
    assert all(r["status"] == "missed" and r["device"] == "cpu" for r in rows)  # tiny runs cannot reach targets
    table = p.stdout[p.stdout.index("## time to target"):]
    for name in ("| airbench94_muon |", "| wrn22 |", "| darknet |", "| resnet9 |", "overhead wrn22:",
                 "overhead airbench94_muon:"):
        assert name in table, table
    assert sorted(f.name for f in tmp_path.glob("overhead_*.json")) == ["overhead_airbench94_muon.json",
                                                                        "overhead_wrn22.json"]
