"""Two nodes on one machine: two `launch/torchrun.sh` processes with NNODES=2 meet through torchrun's c10d
rendezvous on 127.0.0.1 and train together as two nodes of one process each (gloo, fp32, tiny).

Nothing but the host tells these "nodes" apart from real ones: ranks, node ranks and the process group
come from the rendezvous exactly as on a cluster, so the row must say nodes = 2."""
import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench.core.results import read_table

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "precision=fp32", "--set", "data.train_subset=2000", "--set", "data.test_subset=500",
        "--set", "model.params.widths=[8,16,32,32]", "--set", "optim.epochs=1", "--set", "target.value=0.2",
        "--set", "hardware.nodes=2", "--set", "hardware.procs_per_node=1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_env(**extra) -> dict:
    # Nothing of an enclosing launcher: each torchrun must see only what this test gives it.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "TORCHELASTIC_")) and k not in
           ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", PYTHON=sys.executable, **extra)
    return env


@pytest.mark.slow
def test_two_torchrun_nodes_meet_on_localhost_and_record_two_nodes(tmp_path, decoded_jpeg):
    env = node_env(NNODES="2", RDZV_ENDPOINT=f"127.0.0.1:{free_port()}", RDZV_ID=f"test-{secrets.token_hex(4)}")
    cmd = [str(ROOT / "launch" / "torchrun.sh"), "cpu_quick", "1", "--", "--data", str(decoded_jpeg),
           "--results", str(tmp_path / "results.csv"), "--reports", str(tmp_path / "reports"), *TINY]
    nodes = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True) for _ in range(2)]
    try:
        outputs = [node.communicate(timeout=300)[0] for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)
    assert [node.returncode for node in nodes] == [0, 0], "\n---\n".join(outputs)
    df = read_table(tmp_path / "results.csv")
    assert len(df) == 1, "\n---\n".join(outputs)  # rank 0, on one of the two nodes, writes the only row
    row = df.iloc[0]
    assert (row["nodes"], row["world_size"], row["procs_per_node"], row["backend"]) == (2, 2, 1, "gloo")
    assert row["status"] in ("reached", "missed") and row["epochs"] == 1
