"""Both sbatch templates in launch/, submitted for real to a one-node SLURM cluster of the tests' own
(tests/slurm_cluster.py): two gloo processes on the CPU, trained tiny (fp32: this CPU has no native bf16).

What a one-node cluster cannot show (node lists of many hosts, several nodes per job) stays with the
stand-in `srun`/`scontrol` tests in test_dist.py; test_multinode.py runs two torchrun nodes on localhost.
"""
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench.core.results import read_table
from slurm_cluster import KILL_WAIT_S, wait_for_line

ROOT = Path(__file__).resolve().parents[1]

# Each template with only its #SBATCH lines overridden for a CPU-only node (as launch/README.md says).
TEMPLATES = {
    "slurm_srun.sbatch": (["--nodes=1", "--ntasks-per-node=2", "--gpus-per-node=0", "--cpus-per-task=1"], {}),
    "slurm.sbatch": (["--nodes=1", "--ntasks-per-node=1", "--gpus-per-node=0", "--cpus-per-task=2"],
                     {"NPROC_PER_NODE": "2"}),
}
TINY = ["--set", "precision=fp32", "--set", "data.train_subset=2000", "--set", "data.test_subset=500",
        "--set", "model.params.widths=[8,16,32,32]", "--set", "hardware.procs_per_node=2"]
ONE_EPOCH = ["--set", "optim.epochs=1", "--set", "target.value=0.2"]
# Still training when the test acts: many epochs, a target it cannot reach.
ENDLESS = ["--set", "optim.epochs=500", "--set", "target.value=0.99"]
JOB_TIMEOUT_S = 300


def submit(cluster, tmp_path, archive, template, *bench_args):
    sbatch_args, extra_env = TEMPLATES[template]
    args = ["cpu_quick", "--data", str(archive), "--results", str(tmp_path / "results.csv"),
            "--reports", str(tmp_path / "reports"), *TINY, *bench_args]
    # sbatch hands the submitting environment to the job: PYTHONPATH (this checkout) and BENCH_DATA
    # (the session's decoded-data cache) travel with it.
    env = cluster.env(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", PYTHON=sys.executable,
                      RECIPE=args[0], BENCH_ARGS=" ".join(args[1:]), **extra_env)
    out = tmp_path / "job.out"
    job_id = cluster.sbatch(ROOT / "launch" / template, *sbatch_args, f"--output={out}", cwd=ROOT, env=env)
    return job_id, out


def only_row(tmp_path, log: Path):
    df = read_table(tmp_path / "results.csv")  # strict: a torn line would raise
    assert len(df) == 1, log.read_text()  # one row per job, not one per process
    return df.iloc[0]


@pytest.mark.slow
@pytest.mark.parametrize("template", TEMPLATES)
def test_template_job_lands_one_row(slurm_cluster, tmp_path, decoded_jpeg, template):
    job_id, log = submit(slurm_cluster, tmp_path, decoded_jpeg, template, *ONE_EPOCH)
    job = slurm_cluster.wait(job_id, JOB_TIMEOUT_S)
    assert (job.state, job.exit_code) == ("COMPLETED", "0:0"), log.read_text()
    row = only_row(tmp_path, log)
    assert (row["world_size"], row["nodes"], row["procs_per_node"], row["backend"]) == (2, 1, 2, "gloo")
    assert row["status"] in ("reached", "missed") and row["epochs"] == 1
    assert list((tmp_path / "reports").iterdir())[0].name.startswith("cpu_quick-")  # the bundle, published


@pytest.mark.slow
@pytest.mark.parametrize("template", TEMPLATES)
def test_scancel_lands_an_aborted_row_naming_the_signal(slurm_cluster, tmp_path, decoded_jpeg, template):
    job_id, log = submit(slurm_cluster, tmp_path, decoded_jpeg, template, *ENDLESS)
    wait_for_line(log, "epoch   1", JOB_TIMEOUT_S)
    ranks = _bench_procs(job_id)
    assert len(ranks) == 2, log.read_text()
    slurm_cluster.scancel(job_id)
    cancelled = time.monotonic()
    # slurmstepd signals every process of the step, and torchrun's agent forwards its own SIGTERM to the
    # workers: a rank may get a second SIGTERM while it records the aborted row (seen here under load).
    # Keep signalling the ranks until they are gone, so that race is the rule in this test.
    deadline = cancelled + KILL_WAIT_S + 30  # slurmstepd's SIGKILL comes after KillWait
    while any(p.is_running() for p in ranks) and time.monotonic() < deadline:
        for p in ranks:
            try:
                p.send_signal(signal.SIGTERM)  # psutil refuses if the pid was reused meanwhile
            except psutil.Error:
                pass
        time.sleep(0.01)
    job = slurm_cluster.wait(job_id, KILL_WAIT_S + 60)
    assert job.state == "CANCELLED", log.read_text()
    print(f"\n{template}: scancel -> job gone in {time.monotonic() - cancelled:.1f}s")
    row = only_row(tmp_path, log)
    assert row["status"] == "aborted" and row["world_size"] == 2, log.read_text()
    assert "signal 15" in row["error"], row["error"]  # SIGTERM, what scancel sends first
    assert row["epochs"] >= 1  # the epochs done before the signal are kept


def _bench_procs(job_id: str) -> list[psutil.Process]:
    """The job's training processes (`bench run` under srun or torchrun; not torchrun, srun or the shell)."""
    procs = []
    for p in psutil.process_iter():
        try:
            env, cmd = p.environ(), " ".join(p.cmdline())
        except psutil.Error:
            continue
        if (env.get("SLURM_JOB_ID") == job_id and Path(p.cmdline()[0]).name.startswith("python")
                and "-m bench run" in cmd and "torch.distributed.run" not in cmd):
            procs.append(p)
    return procs


def _rank_pid(job_id: str, rank: str) -> int:
    """The bench process of srun task `rank` of the job (not srun, not the batch shell)."""
    for p in psutil.process_iter():
        try:
            env, cmd = p.environ(), p.cmdline()
        except psutil.Error:
            continue
        if (env.get("SLURM_JOB_ID") == job_id and env.get("SLURM_PROCID") == rank and cmd[1:3] == ["-m", "bench"]):
            return p.pid
    raise AssertionError(f"no bench process of rank {rank} in job {job_id}")


@pytest.mark.slow
def test_dead_rank_ends_the_job_in_bounded_time_and_names_the_rank(slurm_cluster, tmp_path, decoded_jpeg):
    job_id, log = submit(slurm_cluster, tmp_path, decoded_jpeg, "slurm_srun.sbatch", *ENDLESS)
    wait_for_line(log, "epoch   1", JOB_TIMEOUT_S)
    psutil.Process(_rank_pid(job_id, "1")).kill()
    died = time.monotonic()
    # srun --kill-on-bad-exit=1 ends the step at once: SIGTERM to the survivors, SIGKILL after KillWait.
    job = slurm_cluster.wait(job_id, KILL_WAIT_S + 30)
    took = time.monotonic() - died
    print(f"\nrank 1 killed -> job gone in {took:.1f}s")
    text = log.read_text()
    assert job.state == "FAILED", text
    assert "task 1: Killed" in text  # srun names the rank (task = SLURM_PROCID = rank) and how it died
    assert "Terminating StepId" in text  # --kill-on-bad-exit acted, rather than the survivor giving up
    row = only_row(tmp_path, log)  # rank 0 survived long enough to record the run
    assert row["status"] == "aborted" and row["world_size"] == 2, text


@pytest.mark.slow
def test_stopping_a_cluster_leaves_nothing_running(tmp_path):
    """What the session fixture relies on: stop() ends running jobs and every daemon, even with a job
    that would run for ten minutes."""
    from slurm_cluster import SlurmCluster

    cluster = SlurmCluster()
    try:
        cluster.start()
        script = tmp_path / "sleep.sh"
        script.write_text("#!/bin/bash\nsleep 600\n")
        job = cluster.sbatch(script, f"--output={tmp_path / 'sleep.out'}", cwd=tmp_path, env=cluster.env())
        cluster.wait_until_running(job, 60)
        daemons = [p.pid for p in cluster.procs.values()]
    finally:
        killed = cluster.stop()
    assert killed == []  # scancel and the daemons' own shutdown were enough: nothing had to be killed
    assert not cluster.leftovers() and not any(psutil.pid_exists(pid) for pid in daemons)
    assert not cluster.root.exists()
