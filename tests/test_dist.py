import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.system import dist, launch
from bench.system.dist import DistContext, detect
from bench.core.errors import BenchError

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "dist_worker.py"


# --------------------------------------------------------------------------- detect


def test_detect_empty_env_is_single_process():
    ctx = detect({})
    assert ctx == DistContext()
    assert ctx.is_main and not ctx.distributed and ctx.launcher == "none"


def test_detect_torchrun():
    env = {
        "TORCHELASTIC_RUN_ID": "x", "RANK": "5", "LOCAL_RANK": "1", "WORLD_SIZE": "8",
        "LOCAL_WORLD_SIZE": "4", "GROUP_RANK": "1", "GROUP_WORLD_SIZE": "2",
        "MASTER_ADDR": "n1", "MASTER_PORT": "29500",
        # torchrun inside an srun task (slurm.sbatch): torchrun's view must win.
        "SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_STEP_ID": "0", "SLURM_LOCALID": "0",
    }
    assert detect(env) == DistContext(5, 1, 8, 4, 1, 2, "n1", 29500, "torchrun")
    assert not detect(env).is_main and detect(env).distributed


def slurm_env(**over):
    env = {
        "SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_NTASKS": "8", "SLURM_NODEID": "1",
        "SLURM_NNODES": "2", "SLURM_TASKS_PER_NODE": "4(x2)", "SLURM_STEP_ID": "0",
        "SLURM_JOB_NODELIST": "node[01-04,07]", "SLURM_JOB_ID": "123456",
    }
    env.update(over)
    return {k: v for k, v in env.items() if v is not None}


def test_detect_slurm():
    ctx = detect(slurm_env())
    assert ctx == DistContext(5, 1, 8, 4, 1, 2, "node01", 15000 + 123456 % 5000, "slurm")


@pytest.mark.parametrize(
    "nodelist, hosts",
    [
        ("node[01-04,07]", ["node01", "node02", "node03", "node04", "node07"]),
        ("gpu-a[1-2],gpu-b3", ["gpu-a1", "gpu-a2", "gpu-b3"]),
        ("host1,host2", ["host1", "host2"]),
        ("n[098-101]", ["n098", "n099", "n100", "n101"]),
        ("r[1-2]-n[01-02]", ["r1-n01", "r1-n02", "r2-n01", "r2-n02"]),
        ("localhost", ["localhost"]),
    ],
)
def test_nodelist_forms(nodelist, hosts):
    assert dist.expand_nodelist(nodelist) == hosts
    assert detect(slurm_env(SLURM_JOB_NODELIST=nodelist)).master_addr == hosts[0]


@pytest.mark.parametrize(
    "spec, node, local_world", [("4(x2)", 1, 4), ("2,1", 0, 2), ("2,1", 1, 1), ("2(x2),1", 2, 1)]
)
def test_tasks_per_node_forms(spec, node, local_world):
    nodes = len(dist.expand_tasks_per_node(spec))
    env = slurm_env(SLURM_TASKS_PER_NODE=spec, SLURM_NODEID=str(node), SLURM_NNODES=str(nodes),
                    SLURM_PROCID="0", SLURM_LOCALID="0")
    assert detect(env).local_world_size == local_world


def test_slurm_ntasks_per_node_and_env_master():
    env = slurm_env(SLURM_TASKS_PER_NODE=None, SLURM_NTASKS_PER_NODE="4", MASTER_ADDR="10.0.0.1",
                    MASTER_PORT="4242")
    ctx = detect(env)
    assert (ctx.local_world_size, ctx.master_addr, ctx.master_port) == (4, "10.0.0.1", 4242)


@pytest.mark.parametrize(
    "over",
    [
        {"SLURM_STEP_ID": None},  # sbatch batch shell of an 8-task job: no srun step
        {"SLURM_STEP_ID": "4294967294"},  # the batch pseudo-step
        {"SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_TASKS_PER_NODE": "1"},
    ],
)
def test_slurm_without_an_srun_step_is_single_process(over):
    assert detect(slurm_env(**over)) == DistContext()


@pytest.mark.parametrize(
    "env, names",
    [
        ({"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"}, ["RANK=2", "WORLD_SIZE=2"]),
        ({"TORCHELASTIC_RUN_ID": "x", "RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "3",
          "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"}, ["LOCAL_RANK=3", "LOCAL_WORLD_SIZE=2"]),
        ({"TORCHELASTIC_RUN_ID": "x", "WORLD_SIZE": "2"}, ["RANK"]),
        ({"RANK": "0", "WORLD_SIZE": "two"}, ["WORLD_SIZE", "'two'"]),
        ({"RANK": "0", "WORLD_SIZE": "2"}, ["MASTER_ADDR"]),
        (slurm_env(SLURM_PROCID="8"), ["SLURM_PROCID=8", "SLURM_NTASKS=8"]),
        (slurm_env(SLURM_NODEID="2"), ["SLURM_NODEID=2"]),
        (slurm_env(SLURM_JOB_NODELIST="n[a-b]"), ["n[a-b]"]),
        (slurm_env(SLURM_TASKS_PER_NODE="4(2)"), ["4(2)"]),
    ],
)
def test_inconsistent_env_names_the_variables(env, names):
    with pytest.raises(BenchError) as err:
        detect(env)
    for name in names:
        assert name in str(err.value)


def test_rank_seed_and_single_process_collectives():
    assert [dist.rank_seed(7, r) for r in range(3)] == [7, 8, 9]
    assert dist.all_reduce_sum([1, 2.5], "cpu") == [1.0, 2.5]
    assert dist.init(DistContext(), "cpu") == "none"
    assert (dist.backend_name("cuda"), dist.backend_name("cpu")) == ("nccl", "gloo")
    dist.shutdown()


# --------------------------------------------------------------------------- capacity


def test_check_capacity(monkeypatch):
    monkeypatch.setattr(launch, "available_devices", lambda device_type: 2)
    launch.check_capacity(2, "cuda")
    with pytest.raises(BenchError) as err:
        launch.check_capacity(8, "cuda")
    msg = str(err.value)
    assert "8" in msg and "2 GPU" in msg and "--set hardware.procs_per_node=2" in msg
    assert "learning rate" in msg and "global batch shrinks" in msg


def test_cpu_capacity_is_unbounded():
    launch.check_capacity(64, "cpu")
    with pytest.raises(BenchError):
        launch.check_capacity(0, "cpu")


# --------------------------------------------------------------------------- launch commands


def test_torchrun_command_single_node():
    cmd = launch.torchrun_command(["run", "r.yaml", "--set", "x=1"], 4, python="py")
    assert cmd == ["py", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4",
                   "--max_restarts=0", "-m", "bench", "run", "r.yaml", "--set", "x=1"]
    with pytest.raises(BenchError, match="at least one process"):
        launch.torchrun_command([], 0)


def multi_node_command(nproc, nnodes, node_rank, endpoint, rdzv_id, argv):
    # What torchrun needs for a c10d rendezvous, written out here as the test's own oracle.
    rank = [f"--node_rank={node_rank}"] if node_rank is not None else []  # SLURM's nodes take theirs in rendezvous
    return ["py", "-m", "torch.distributed.run", f"--nnodes={nnodes}", *rank, "--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}", f"--rdzv_id={rdzv_id}",
            f"--nproc_per_node={nproc}", "--max_restarts=0", "-m", "bench", *argv]


def run_script(*args, **env):
    full_env = {k: v for k, v in os.environ.items() if k not in ("NNODES", "NODE_RANK", "RDZV_ENDPOINT", "DRY_RUN")}
    full_env.update(PYTHON="py", **env)
    return subprocess.run(["bash", str(ROOT / "launch" / "torchrun.sh"), *args], env=full_env,
                          capture_output=True, text=True, timeout=30)


def test_torchrun_sh_single_node_matches_python():
    out = run_script("--dry-run", "recipes/r.yaml", "2", "--", "--set", "a=1 2")
    assert out.returncode == 0, out.stderr
    argv = ["run", "recipes/r.yaml", "--set", "a=1 2"]
    assert shlex.split(out.stdout) == launch.torchrun_command(argv, 2, python="py")


def test_torchrun_sh_multi_node_matches_python():
    out = run_script("recipes/r.yaml", "8", DRY_RUN="1", NNODES="2", NODE_RANK="0", RDZV_ENDPOINT="n1:29400",
                     RDZV_ID="job7")
    assert out.returncode == 0, out.stderr
    expected = multi_node_command(8, 2, 0, "n1:29400", "job7", ["run", "recipes/r.yaml"])
    assert shlex.split(out.stdout) == expected


def test_torchrun_sh_errors():
    assert run_script("--dry-run").returncode == 2
    out = run_script("--dry-run", "r.yaml", NNODES="2")
    assert out.returncode != 0 and "RDZV_ENDPOINT" in out.stderr


@pytest.mark.parametrize(
    "name, lines",
    [
        ("slurm.sbatch", ["#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=", "scontrol show hostnames",
                          "export MASTER_ADDR MASTER_PORT", "srun --ntasks-per-node=1",
                          'RDZV_ENDPOINT="$MASTER_ADDR:$MASTER_PORT"', 'launch/torchrun.sh "$RECIPE"']),
        ("slurm_srun.sbatch", ["#SBATCH --ntasks-per-node=8", "#SBATCH --gpus-per-node=8", "scontrol show hostnames",
                               "export MASTER_ADDR MASTER_PORT",
                               'srun --kill-on-bad-exit=1 "${PYTHON:-python3}" -m bench run "$RECIPE" ${BENCH_ARGS:-}']),
    ],
)
def test_sbatch_templates(name, lines):
    path = ROOT / "launch" / name
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    text = path.read_text()
    for line in lines:
        assert line in text


def run_sbatch(tmp_path, name, **env):
    # Stand-ins: scontrol lists the allocation, srun drops its options and runs the task once. Kept next to
    # the real one-node cluster (test_slurm.py) for what one node cannot show: a two-host node list, the
    # rendezvous endpoint on its first host and NNODES from a many-node allocation.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "scontrol").write_text("#!/bin/sh\necho node01; echo node02\n")
    (bindir / "srun").write_text('#!/bin/bash\necho "srun $*" >&2\nwhile [[ $1 == --* ]]; do shift; done\nexec "$@"\n')
    for f in bindir.iterdir():
        f.chmod(0o755)
    full_env = worker_env(PATH=f"{bindir}:{os.environ['PATH']}", SLURM_JOB_NODELIST="node[01-02]",
                          SLURM_JOB_ID="123", SLURM_JOB_NUM_NODES="2", SLURM_SUBMIT_DIR=str(ROOT),
                          RECIPE="recipes/r.yaml", BENCH_ARGS="--set a=1 --set b=2", **env)
    return subprocess.run(["bash", str(ROOT / "launch" / name)], env=full_env, capture_output=True, text=True,
                          timeout=30)


def test_slurm_sbatch_runs_torchrun_per_node(tmp_path):
    out = run_sbatch(tmp_path, "slurm.sbatch", DRY_RUN="1", PYTHON="py", NPROC_PER_NODE="4")
    assert out.returncode == 0, out.stderr
    assert "srun --ntasks-per-node=1 --kill-on-bad-exit=1" in out.stderr
    expected = multi_node_command(4, 2, None, "node01:15123", "123",
                                  ["run", "recipes/r.yaml", "--set", "a=1", "--set", "b=2"])
    assert shlex.split(out.stdout) == expected


def test_slurm_srun_sbatch_runs_bench_per_task(tmp_path):
    out = run_sbatch(tmp_path, "slurm_srun.sbatch", PYTHON="echo")
    assert out.returncode == 0, out.stderr
    assert "srun --kill-on-bad-exit=1" in out.stderr
    assert out.stdout.split() == ["-m", "bench", "run", "recipes/r.yaml", "--set", "a=1", "--set", "b=2"]


# --------------------------------------------------------------------------- real process groups


def worker_env(**extra):
    # Start from a clean slate: the test runner itself may sit inside a launcher.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "TORCHELASTIC_")) and k not in
           ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **extra)
    return env


def torchrun(tmp_path, *worker_args, timeout=120):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "--max_restarts=0", str(WORKER), str(tmp_path), *worker_args]
    start = time.monotonic()
    proc = subprocess.run(cmd, env=worker_env(), capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - start


def read_ranks(tmp_path):
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]


def check_group(results, launcher):
    assert sorted(r["ctx"]["rank"] for r in results) == [0, 1]
    for r in results:
        assert r["ctx"]["world_size"] == 2 and r["ctx"]["launcher"] == launcher and r["backend"] == "gloo"
        assert r["sums"] == [3.0, 1.0]  # (0+1)+(1+1), 0.5+0.5
    assert [r["seed"] for r in results] == [1000, 1001]


@pytest.mark.slow
def test_two_ranks_under_torchrun(tmp_path):
    proc, _ = torchrun(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_group(read_ranks(tmp_path), "torchrun")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_ranks_as_fake_srun_tasks(tmp_path):
    common = dict(SLURM_NTASKS="2", SLURM_STEP_ID="0", SLURM_JOB_NODELIST="localhost", SLURM_NNODES="1",
                  SLURM_NODEID="0", SLURM_TASKS_PER_NODE="2", MASTER_PORT=str(free_port()))
    procs = [
        subprocess.Popen([sys.executable, str(WORKER), str(tmp_path), "--timeout", "60"],
                         env=worker_env(SLURM_PROCID=str(r), SLURM_LOCALID=str(r), **common),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for r in range(2)
    ]
    try:
        outputs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], outputs
    check_group(read_ranks(tmp_path), "slurm")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_dead_rank_ends_the_run(tmp_path):
    # Ending at all is the claim: a hang runs into the generous subprocess timeout (the worker's collective
    # timeout is 20 s); a fixed bound on the elapsed time would only measure how loaded the machine is.
    proc, elapsed = torchrun(tmp_path, "--fail-rank", "1", "--timeout", "20", timeout=300)
    after_death = time.time() - float((tmp_path / "rank1.died").read_text())
    print(f"\ndead rank: torchrun exited {proc.returncode}, {elapsed:.1f}s after start, {after_death:.1f}s after rank 1 died")
    assert proc.returncode != 0
    assert "exitcode  : 3" in proc.stderr or "exitcode: 3" in proc.stderr.replace(" ", ""), proc.stderr[-3000:]
    # Rank 0 was blocked in all_reduce; it must be gone, not orphaned and hanging.
    assert not alive(int((tmp_path / "rank0.pid").read_text()))
    assert not (tmp_path / "rank0.json").exists()


@pytest.mark.slow
def test_stuck_rank_hits_the_collective_timeout(tmp_path):
    proc, elapsed = torchrun(tmp_path, "--hang-rank", "1", "--timeout", "5", timeout=300)  # see above
    print(f"\nstuck rank: torchrun exited {proc.returncode}, {elapsed:.1f}s after start (timeout 5 s)")
    assert proc.returncode != 0
    # Rank 0's all_reduce gave up on its own; then torchrun stopped the stuck rank 1.
    assert "timed out" in (tmp_path / "rank0.err").read_text().lower()
    assert not alive(int((tmp_path / "rank1.pid").read_text()))


CHILD = """
import signal, sys, time
got = []
signal.signal(signal.SIGINT, lambda *a: got.append(1))
open(sys.argv[1], "w").write("ready")
while not got:
    time.sleep(0.05)
time.sleep(0.5)  # a second, duplicated SIGINT would land here
open(sys.argv[1] + ".count", "w").write(str(len(got)))
sys.exit(10 + len(got))
"""


def test_relaunch_forwards_ctrl_c_once(tmp_path):
    ready = tmp_path / "ready"
    parent = f"""
import sys
from bench.system import launch
launch.torchrun_command = lambda argv, n: [sys.executable, "-c", {CHILD!r}, {str(ready)!r}]
sys.exit(launch.relaunch_with_torchrun(["run", "r.yaml"], 2))
"""
    # bench in a group of its own stands in for a terminal's foreground job.
    proc = subprocess.Popen([sys.executable, "-c", parent], env=worker_env(), start_new_session=True)
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group, torchrun's not included
    # bench answers like a shell (128 + SIGINT) once it has passed the signal on, exactly once
    assert proc.wait(timeout=30) == 130
    assert (tmp_path / "ready.count").read_text() == "1"
