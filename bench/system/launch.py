"""Starting processes: re-launching `bench run` under single-node torchrun, and checking that this node can
place as many processes as a recipe asks for. Multi-node launches are launch/torchrun.sh's and SLURM's job:
bench never schedules work itself where a launcher can."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Sequence

from bench.core.errors import BenchError

# On CPU the process count is not bounded by devices; callers decide what is sensible.
UNLIMITED = sys.maxsize


def torchrun_command(argv: Sequence[str], nproc_per_node: int, python: str = sys.executable) -> list[str]:
    """The single-node torchrun command line that runs `python -m bench *argv` with nproc_per_node workers
    (launch/torchrun.sh builds the same line, and the multi-node one)."""
    if nproc_per_node < 1:
        raise BenchError(f"need at least one process, got nproc_per_node={nproc_per_node}")
    # A restarted rank would reset the clock mid-run and hide the failure from the results.
    return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc_per_node}",
            "--max_restarts=0", "-m", "bench", *argv]


def relaunch_with_torchrun(argv: Sequence[str], nproc_per_node: int) -> int:
    """Run `bench *argv` (bench's own arguments, e.g. sys.argv[1:]) again under single-node torchrun
    with nproc_per_node workers; returns torchrun's exit status.

    torchrun runs in its own process group and this process forwards SIGINT/SIGTERM to it exactly
    once, so Ctrl-C reaches the workers through torchrun's orderly shutdown rather than twice.
    """
    cmd = torchrun_command(argv, nproc_per_node)
    own_group = {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}
    proc = subprocess.Popen(cmd, **own_group)

    forwarded: list[int] = []

    def forward(signum, _frame):
        forwarded.append(signum)
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, forward)
    except ValueError:  # not the main thread: no handlers, the child still runs
        pass
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # Shell convention for death by signal: 130 for Ctrl-C, 143 for SIGTERM, whatever torchrun itself returned.
    if forwarded and code != 0:
        return 128 + forwarded[0]
    return 128 - code if code < 0 else code


def available_devices(device_type: str) -> int:
    """How many processes per node the hardware can place: the visible CUDA GPUs, or UNLIMITED on
    CPU, where processes share cores and the caller decides what is sensible."""
    if device_type == "cuda":
        import torch

        return torch.cuda.device_count()
    return UNLIMITED


def check_capacity(requested_procs_per_node: int, device_type: str) -> None:
    """Refuse to start more GPU processes on this node than there are GPUs.

    For the path where bench starts torchrun itself; under an external launcher, placement is the
    launcher's business (each srun task may see a single GPU)."""
    if requested_procs_per_node < 1:
        raise BenchError(f"hardware.procs_per_node must be at least 1, got {requested_procs_per_node}")
    have = available_devices(device_type)
    if requested_procs_per_node <= have:
        return
    fix = (
        f"run with --set hardware.procs_per_node={have} to use the {have} present"
        if have > 0
        else "run on a machine with a GPU or choose a CPU device"
    )
    raise BenchError(
        f"the recipe asks for {requested_procs_per_node} processes per node on {device_type} but only "
        f"{have} GPU(s) are visible on this node; {fix}. Note that the learning rate and per-device batch "
        f"size are left unchanged, so the global batch shrinks, unless you override them too with --set"
    )


