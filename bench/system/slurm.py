"""The few SLURM client commands bench drives: sbatch to submit, squeue for live jobs, sacct (or, where
a cluster keeps no accounting, scontrol) for how finished jobs ended.

Plain subprocess calls with the submitting environment (SLURM_CONF and friends pass through); every
failure becomes a BenchError that quotes the command's own message.
"""
from __future__ import annotations

import getpass
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from bench.core.errors import BenchError

# squeue states of a job that has not ended yet; PENDING is "queued", the rest count as running.
LIVE_STATES = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING",
               "STAGE_OUT", "SIGNALING", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "STOPPED"}


@dataclass(frozen=True)
class Ended:
    state: str  # COMPLETED, FAILED, CANCELLED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, ...
    exit_code: str  # "code:signal"


def _run(cmd: list[str], cwd: Optional[Path] = None, timeout_s: float = 120) -> subprocess.CompletedProcess:
    if shutil.which(cmd[0]) is None:
        raise BenchError(f"{cmd[0]} not found on PATH: SLURM sweeps run where the SLURM client commands are "
                         f"(a cluster's login node); install slurm-client or load the cluster's slurm module")
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise BenchError(f"`{' '.join(cmd)}` gave no answer within {timeout_s:.0f} s: is slurmctld up "
                         f"(`sinfo`)?") from None


def submit(script: Path, cwd: Path) -> str:
    """sbatch SCRIPT from cwd; returns the job id (the array's id for an array)."""
    out = _run(["sbatch", "--parsable", str(script)], cwd=cwd)
    job_id = out.stdout.strip().split(";")[0]
    if out.returncode != 0 or not re.fullmatch(r"\d+", job_id):
        raise BenchError(f"sbatch {script} failed: {(out.stderr or out.stdout).strip()}\n"
                         f"fix the option it names (`sinfo` lists the partitions) and rerun the sweep")
    return job_id


def live_jobs(user: Optional[str] = None) -> dict[str, str]:
    """{job id: squeue state} for the user's jobs that have not ended; array tasks as "<array>_<task>"."""
    out = _run(["squeue", "-h", "-r", "-o", "%i|%T", "-u", user or getpass.getuser()])
    if out.returncode != 0:
        raise BenchError(f"squeue failed: {out.stderr.strip()}")
    return dict(line.split("|", 1) for line in out.stdout.splitlines() if "|" in line)


def ended_jobs(job_ids: Iterable[str]) -> dict[str, Ended]:
    """How jobs that left the queue ended: sacct where the cluster keeps accounting, else scontrol (which
    remembers a job for MinJobAge, 5 minutes by default). Jobs neither knows are left out."""
    ids = sorted(set(job_ids))
    if not ids:
        return {}
    found: dict[str, Ended] = {}
    if shutil.which("sacct"):
        out = _run(["sacct", "-n", "-P", "-X", "-o", "JobID,State,ExitCode", "-j", ",".join(ids)])
        if out.returncode == 0:
            for line in out.stdout.splitlines():
                job, state, code = (line.split("|") + ["", ""])[:3]
                if job in ids:
                    found[job] = Ended(state.split()[0] if state else "UNKNOWN", code)
    for job in ids:
        if job not in found:
            out = _run(["scontrol", "show", "job", "-o", job])
            fields = dict(re.findall(r"(\w+)=(\S*)", out.stdout)) if out.returncode == 0 else {}
            if fields.get("JobState") and fields["JobState"] not in LIVE_STATES:
                found[job] = Ended(fields["JobState"], fields.get("ExitCode", ""))
    return found
