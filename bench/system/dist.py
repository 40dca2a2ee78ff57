"""Distributed plumbing: who am I in the process group, joining it, and the collectives a run needs.

bench never manages worker processes itself. Multi-process runs come from torchrun (started by the user,
by launch/torchrun.sh, or by bench.system.launch.relaunch_with_torchrun) or from one srun task per GPU;
`detect` reads what those launchers put in the environment.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping, Sequence

from bench.core.errors import BenchError

# Slurm reserves step ids near 2**32 for the batch script, the extern step and friends; a shell in
# one of those is not an srun task and must not wait for peers that were never started.
_SLURM_PSEUDO_STEP_MIN = 0xFFFFFFF0

# Derived MASTER_PORTs stay below Linux's ephemeral range (32768+) so they cannot collide with
# ports the kernel hands out to outgoing connections.
_SLURM_PORT_BASE, _SLURM_PORT_SPAN = 15000, 5000



@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    node_rank: int = 0
    nodes: int = 1
    master_addr: str = ""
    master_port: int = 0
    launcher: str = "none"  # "none" | "torchrun" | "slurm"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def grouped(self) -> bool:
        """Joins a process group: always when a launcher started us, even alone, so a one-GPU torchrun
        run exercises NCCL and DDP exactly as an eight-GPU one does."""
        return self.launcher != "none"


# --------------------------------------------------------------------------- detection


def _int(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        if default is None:
            raise BenchError(f"environment variable {name} is not set but the launcher needs it")
        return default
    try:
        return int(raw)
    except ValueError:
        raise BenchError(f"environment variable {name}={raw!r} is not an integer") from None


def expand_nodelist(nodelist: str) -> list[str]:
    """Slurm's compressed host list, expanded: "node[01-03,07],gpu-b3" -> node01 node02 node03 node07 gpu-b3.
    python-hostlist (NSC's, maintained for exactly this) parses it; a bad list is a BenchError."""
    import hostlist

    try:
        hosts = hostlist.expand_hostlist(nodelist.strip())
    except hostlist.BadHostlist as exc:
        raise BenchError(f"cannot parse the Slurm node list {nodelist!r}: {exc}") from None
    if not hosts:
        raise BenchError(f"cannot read a host from the Slurm node list {nodelist!r}")
    return hosts


def expand_tasks_per_node(spec: str) -> list[int]:
    """Slurm's per-node task counts, expanded: "4(x2)" -> [4, 4], "2(x2),1" -> [2, 2, 1]."""
    import hostlist

    try:
        return hostlist.parse_slurm_tasks_per_node(spec.strip())
    except (hostlist.BadHostlist, ValueError) as exc:
        raise BenchError(f"cannot parse the Slurm tasks-per-node value {spec!r}: {exc}") from None


def detect(env: Mapping[str, str] = os.environ) -> DistContext:
    """Where this process sits in the job: torchrun's variables win, then an srun task, else alone."""
    if "TORCHELASTIC_RUN_ID" in env or ("RANK" in env and "WORLD_SIZE" in env):
        ctx = _from_torchrun(env)
    elif _is_srun_task(env):
        ctx = _from_slurm(env)
    else:
        return DistContext()
    _check(ctx)
    return ctx


def _from_torchrun(env: Mapping[str, str]) -> DistContext:
    # Defaults cover a hand-written RANK/WORLD_SIZE environment on one node; torchrun sets them all.
    rank, world = _int(env, "RANK"), _int(env, "WORLD_SIZE")
    local_world = _int(env, "LOCAL_WORLD_SIZE", world)
    return DistContext(
        rank=rank,
        local_rank=_int(env, "LOCAL_RANK", rank % max(local_world, 1)),
        world_size=world,
        local_world_size=local_world,
        node_rank=_int(env, "GROUP_RANK", rank // max(local_world, 1)),
        nodes=_int(env, "GROUP_WORLD_SIZE", -(-world // max(local_world, 1))),
        master_addr=env.get("MASTER_ADDR", ""),
        master_port=_int(env, "MASTER_PORT", 0),
        launcher="torchrun",
    )


def _is_srun_task(env: Mapping[str, str]) -> bool:
    # SLURM_NTASKS alone is also set in the batch shell of a many-task job; only srun tasks carry a
    # real step id, and a single-task step has no peers, so bench may launch torchrun itself there.
    if "SLURM_PROCID" not in env or "SLURM_STEP_ID" not in env:
        return False
    if _int(env, "SLURM_STEP_ID") >= _SLURM_PSEUDO_STEP_MIN:
        return False
    return _int(env, "SLURM_STEP_NUM_TASKS", _int(env, "SLURM_NTASKS", 1)) > 1


def _from_slurm(env: Mapping[str, str]) -> DistContext:
    world = _int(env, "SLURM_STEP_NUM_TASKS", _int(env, "SLURM_NTASKS", 1))
    nodes = _int(env, "SLURM_STEP_NUM_NODES", _int(env, "SLURM_NNODES", 1))
    node_rank = _int(env, "SLURM_NODEID", 0)
    per_node_spec = env.get("SLURM_STEP_TASKS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE")
    if per_node_spec:
        per_node = expand_tasks_per_node(per_node_spec)
        if node_rank >= len(per_node):
            raise BenchError(
                f"SLURM_NODEID={node_rank} but the tasks-per-node value {per_node_spec!r} "
                f"describes only {len(per_node)} node(s)"
            )
        local_world = per_node[node_rank]
    else:
        local_world = _int(env, "SLURM_NTASKS_PER_NODE", -(-world // nodes))
    nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if env.get("MASTER_ADDR"):
        master_addr = env["MASTER_ADDR"]
    elif nodelist:
        master_addr = expand_nodelist(nodelist)[0]
    else:
        raise BenchError("neither MASTER_ADDR nor SLURM_JOB_NODELIST is set, so rank 0's host is unknown")
    if env.get("MASTER_PORT"):
        master_port = _int(env, "MASTER_PORT")
    else:
        master_port = _SLURM_PORT_BASE + _int(env, "SLURM_JOB_ID", 0) % _SLURM_PORT_SPAN
    return DistContext(
        rank=_int(env, "SLURM_PROCID"),
        local_rank=_int(env, "SLURM_LOCALID"),
        world_size=world,
        local_world_size=local_world,
        node_rank=node_rank,
        nodes=nodes,
        master_addr=master_addr,
        master_port=master_port,
        launcher="slurm",
    )


def _check(ctx: DistContext) -> None:
    names = {
        "torchrun": ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE"),
        "slurm": ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "tasks per node", "SLURM_NODEID", "SLURM_NNODES"),
    }[ctx.launcher]
    pairs = [
        (ctx.rank, ctx.world_size, names[0], names[1]),
        (ctx.local_rank, ctx.local_world_size, names[2], names[3]),
        (ctx.node_rank, ctx.nodes, names[4], names[5]),
    ]
    for idx, size, idx_name, size_name in pairs:
        if size < 1 or not 0 <= idx < size:
            raise BenchError(
                f"inconsistent {ctx.launcher} environment: {idx_name}={idx} with {size_name}={size} "
                f"(need 0 <= {idx_name} < {size_name})"
            )
    if ctx.local_world_size > ctx.world_size:
        raise BenchError(
            f"inconsistent {ctx.launcher} environment: {names[3]}={ctx.local_world_size} "
            f"exceeds {names[1]}={ctx.world_size}"
        )
    if ctx.distributed and not (ctx.master_addr and ctx.master_port):
        raise BenchError(
            f"{ctx.launcher} environment has WORLD_SIZE={ctx.world_size} but MASTER_ADDR/MASTER_PORT "
            f"({ctx.master_addr or 'unset'}:{ctx.master_port or 'unset'}) do not say where rank 0 listens"
        )


# --------------------------------------------------------------------------- process group


def local_device_index(ctx: DistContext) -> int:
    """The CUDA device this rank drives: local_rank, or 0 when the launcher shows each task one GPU
    (srun --gpus-per-task=1 narrows CUDA_VISIBLE_DEVICES per task)."""
    import torch

    count = torch.cuda.device_count()
    if ctx.local_rank < count:
        return ctx.local_rank
    if count == 1:
        return 0
    raise BenchError(
        f"local rank {ctx.local_rank} has no GPU: {count} visible on this node "
        f"for {ctx.local_world_size} processes per node"
    )


def backend_name(device_type: str) -> str:
    return "nccl" if device_type == "cuda" else "gloo"


def init(ctx: DistContext, device_type: str, timeout_s: float = 120) -> str:
    """Join the process group described by ctx; returns the backend ("none" when running alone).

    timeout_s bounds both the rendezvous and every later collective, so a dead peer turns into an
    error on the survivors instead of a hang.
    """
    import torch
    import torch.distributed as dist

    if not ctx.grouped:
        return "none"
    if dist.is_initialized():
        return dist.get_backend()
    backend = backend_name(device_type)
    if backend == "nccl":
        # Read when the NCCL process group is built: 1 aborts the communicator and ends the process
        # when a collective fails or times out (torch 2.x's default, 3, skips the abort). Older
        # releases read it without the TORCH_ prefix.
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
        torch.cuda.set_device(local_device_index(ctx))
    if ctx.launcher == "slurm":
        # srun does not export these; env:// reads them.
        os.environ["MASTER_ADDR"] = ctx.master_addr
        os.environ["MASTER_PORT"] = str(ctx.master_port)
    dist.init_process_group(
        backend,
        init_method="env://",
        rank=ctx.rank,
        world_size=ctx.world_size,
        timeout=timedelta(seconds=timeout_s),
    )
    return backend


def shutdown() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_seed(base_seed: int, rank: int) -> int:
    """Per-rank seed: base_seed + rank, so ranks draw different augmentations and data orders while
    the run stays reproducible from (base_seed, world_size). Callers log the seed of every rank."""
    return base_seed + rank


def all_reduce_sum(values: Sequence[float | int], device: Any) -> list[float]:
    """Element-wise sum over all ranks in one collective (float64, so counts stay exact)."""
    if not _active():
        return [float(v) for v in values]
    import torch
    import torch.distributed as dist

    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def dead_local_peers(ctx: DistContext) -> list[int]:
    """Global ranks of this node's workers that are no longer running.

    torchrun starts a node's workers as children of one agent process, so a survivor can name the
    peer that died by looking at its siblings. Elsewhere (srun, other nodes) we cannot tell: [].
    """
    if ctx.launcher != "torchrun" or not ctx.distributed:
        return []
    import psutil

    first = ctx.node_rank * ctx.local_world_size
    expected = set(range(first, first + ctx.local_world_size))
    alive = set()
    try:
        for child in psutil.Process().parent().children():
            try:
                if child.status() != psutil.STATUS_ZOMBIE and "RANK" in (env := child.environ()):
                    alive.add(int(env["RANK"]))
            except (psutil.Error, ValueError):
                continue
    except psutil.Error:
        return []
    return sorted(expected - alive)
