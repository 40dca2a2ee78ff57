"""A one-node SLURM cluster of the tests' own: its own munge key and daemon, its own slurm.conf, ports,
state, spool and log folders, so it never touches (or needs) a system cluster. `conftest.slurm_cluster`
starts it on first use and stops it at the end of the session, failing tests included.

Nothing may outlive the session: every daemon is told by the kernel to die with the pytest process
(PR_SET_PDEATHSIG), and `stop` cancels every job, stops the daemons and then kills any process still
carrying this cluster's SLURM_CONF in its environment (job steps are re-parented away from slurmd).
"""
from __future__ import annotations

import ctypes
import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

COMMANDS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo")
# What a job's processes get between SIGTERM and SIGKILL: slurm.conf's own default, as on most clusters.
KILL_WAIT_S = 30


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if pytest dies (even by SIGKILL), the daemon gets SIGTERM.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


@dataclass
class Job:
    id: str
    state: str  # COMPLETED, FAILED, CANCELLED, ...
    exit_code: str  # "code:signal", as scontrol shows it
    fields: dict


class SlurmCluster:
    def __init__(self) -> None:
        missing = [d for d in COMMANDS if not shutil.which(d) and not Path("/usr/sbin", d).exists()]
        # The suite installs these (Makefile SYSTEM_PACKAGES): missing means a broken set-up, not a skip.
        assert not missing, (f"SLURM tests need {', '.join(missing)}: run `make test` (it installs slurm-wlm "
                             f"and munge) or apt-get install slurm-wlm munge")
        # munged insists that every folder above its socket be searchable by all: pytest's tmp folders
        # are private (0700), so the cluster lives in a folder of its own under /tmp.
        self.root = Path(tempfile.mkdtemp(prefix="bench-slurm-"))
        self.root.chmod(0o755)
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.procs: dict[str, subprocess.Popen] = {}

    # ------------------------------------------------------------------ start / stop

    def start(self, timeout_s: float = 60) -> "SlurmCluster":
        munge = self.root / "munge"
        munge.mkdir(mode=0o755)
        for d in ("state", "spool", "log"):
            (self.root / d).mkdir()
        key = munge / "munge.key"
        subprocess.run([_sbin("mungekey"), "--create", f"--keyfile={key}"], check=True)
        self._spawn("munged", [_sbin("munged"), "--foreground", f"--key-file={key}", f"--socket={munge / 'socket'}",
                               f"--pid-file={munge / 'pid'}", f"--log-file={munge / 'log'}",
                               f"--seed-file={munge / 'seed'}"])
        _wait_for(lambda: (munge / "socket").exists(), timeout_s, "munged's socket", self._logs)
        self.conf.write_text(self._slurm_conf(munge / "socket"))
        self._spawn("slurmctld", [_sbin("slurmctld"), "-D", "-f", str(self.conf)])
        self._spawn("slurmd", [_sbin("slurmd"), "-D", "-f", str(self.conf), "-N", self.host])
        _wait_for(lambda: self._node_state() == "idle", timeout_s, f"node {self.host} idle in sinfo", self._logs)
        return self

    def _slurm_conf(self, socket_path: Path) -> str:
        user = getpass.getuser()
        r = self.root
        return "\n".join([
            "ClusterName=benchtest",
            f"SlurmctldHost={self.host}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            f"SlurmUser={user}",
            f"SlurmdUser={user}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={socket_path}",
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}",
            f"SlurmdPidFile={r / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
            # No cgroups in a container-like VM: track processes by parentage, bind nothing.
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "MpiDefault=none",
            "ReturnToService=2",
            "MailProg=/bin/true",
            f"KillWait={KILL_WAIT_S}",
            f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory=1000 State=UNKNOWN",
            f"PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP",
            "",
        ])

    def _spawn(self, name: str, cmd: list[str]) -> None:
        out = open(self.root / "log" / f"{name}.out", "w")
        # cwd: slurmd's job steps (slurmstepd) inherit it, and it is how leftovers() knows them.
        self.procs[name] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env(), cwd=self.root,
                                            start_new_session=True, preexec_fn=_die_with_parent)
        out.close()

    def cancel_all(self) -> None:
        """Cancel every job and wait until the queue is empty."""
        subprocess.run(["scancel", "--user", getpass.getuser()], env=self.env(), capture_output=True)
        _wait_for(lambda: not self.squeue(), KILL_WAIT_S + 15, "the cancelled jobs to end", self._logs)

    def stop(self) -> list[str]:
        """Cancel every job, stop the daemons, kill stragglers. Returns what had to be killed (for a test)."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            try:
                self.cancel_all()
            except AssertionError:
                pass  # the sweep below kills what is left
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        killed = self.kill_leftovers()
        shutil.rmtree(self.root, ignore_errors=True)
        return killed

    def leftovers(self) -> list[psutil.Process]:
        """Processes other than this one that belong to this cluster: their environment points at its
        slurm.conf, or they are its job steps (slurmstepd overwrites its environment with its title, but
        keeps the working folder slurmd gave it)."""
        out = []
        for p in psutil.process_iter():
            try:
                if p.pid == os.getpid():
                    continue
                if (p.environ().get("SLURM_CONF") == str(self.conf)
                        or (p.name().startswith("slurmstepd") and Path(p.cwd()) == self.root)):
                    out.append(p)
            except psutil.Error:
                continue
        return out

    def kill_leftovers(self) -> list[str]:
        names: list[str] = []
        # Several passes: a slurmstepd whose job shell was just killed can outlive the first one.
        for _ in range(5):
            procs = self.leftovers()
            if not procs:
                break
            for p in procs:
                try:
                    names.append(" ".join(p.cmdline())[:120])
                    p.kill()
                except psutil.Error:
                    pass
            psutil.wait_procs(procs, timeout=10)
        return names

    def _node_state(self) -> str:
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=self.env(), capture_output=True, text=True)
        return out.stdout.strip()

    def _logs(self) -> str:
        return "\n".join(f"--- {f.name}\n{f.read_text(errors='replace')[-2000:]}"
                         for f in sorted((self.root / "log").glob("*")) if f.is_file())

    # ------------------------------------------------------------------ using it

    def env(self, **extra: str) -> dict[str, str]:
        """The test process's environment minus anything of an enclosing launcher, plus this cluster."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "TORCHELASTIC_")) and k not in
               ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT")}
        env["SLURM_CONF"] = str(self.conf)
        env.update(extra)
        return env

    def sbatch(self, script: Path, *args: str, cwd: Path, env: dict[str, str]) -> str:
        out = subprocess.run(["sbatch", "--parsable", *args, str(script)], cwd=cwd, env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, f"sbatch failed: {out.stderr}"
        return out.stdout.strip().split(";")[0]

    def squeue(self) -> list[str]:
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T"], env=self.env(), capture_output=True, text=True)
        return out.stdout.splitlines() if out.returncode == 0 else ["squeue failed: " + out.stderr]

    def job(self, job_id: str) -> Job:
        out = subprocess.run(["scontrol", "show", "job", "-o", job_id], env=self.env(), capture_output=True,
                             text=True, check=True)
        fields = dict(re.findall(r"(\w+)=(\S*)", out.stdout))
        return Job(job_id, fields["JobState"], fields["ExitCode"], fields)

    def wait(self, job_id: str, timeout_s: float) -> Job:
        """The job once it has left the queue (its final state), polling twice a second."""
        _wait_for(lambda: self.job(job_id).state not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING",
                                                         "SUSPENDED"),
                  timeout_s, f"job {job_id} to end", lambda: "\n".join(self.squeue()) + "\n" + self._logs())
        return self.job(job_id)

    def wait_until_running(self, job_id: str, timeout_s: float) -> None:
        _wait_for(lambda: self.job(job_id).state == "RUNNING", timeout_s, f"job {job_id} to start",
                  lambda: "\n".join(self.squeue()) + "\n" + self._logs())

    def scancel(self, job_id: str) -> None:
        subprocess.run(["scancel", job_id], env=self.env(), check=True)


def _sbin(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _wait_for(ready, timeout_s: float, what: str, explain=lambda: "") -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}\n{explain()}")
        time.sleep(0.5)


def wait_for_line(path: Path, text: str, timeout_s: float, explain=lambda: "") -> None:
    """Until `text` appears in the file `path` (a job's output)."""
    _wait_for(lambda: path.exists() and text in path.read_text(errors="replace"), timeout_s,
              f"{text!r} in {path}", lambda: (path.read_text(errors="replace") if path.exists() else "") + explain())
