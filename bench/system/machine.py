"""What this machine can do, checked against what a recipe asks, before anything is trained or written.
A benchmark's precision and device count are never changed silently: we refuse and name the `--set`
that would run it instead."""
from __future__ import annotations

import os
from dataclasses import dataclass, replace

import psutil
import torch

from bench.core.errors import BenchError
from bench.recipe import Recipe
from bench.system import cpu


@dataclass(frozen=True)
class Machine:
    device_type: str  # cuda | cpu
    device_name: str
    device_count: int  # GPUs on this node (CPU: 1)


def detect_machine() -> Machine:
    if torch.cuda.is_available():
        return Machine("cuda", torch.cuda.get_device_name(0), torch.cuda.device_count())
    return Machine("cpu", cpu.model(), 1)


def device_type_for(recipe: Recipe, machine: Machine) -> str:
    want = recipe.hardware.device
    return machine.device_type if want == "auto" else want


def pick_device(device_type: str, index: int | None = None) -> torch.device:
    """The one place a torch device is chosen: "auto" means the GPU when there is one; asking for CUDA
    without one is a BenchError that names the fix."""
    if device_type == "auto":
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    if device_type == "cuda":
        if not torch.cuda.is_available():
            raise BenchError("hardware.device: 'cuda' but this machine has no CUDA GPU; to run on the CPU use "
                             "--set hardware.device=cpu (and --set precision=bf16 if fp16)")
        return torch.device("cuda", torch.cuda.current_device() if index is None else index)
    if device_type != "cpu":
        raise BenchError(f"device {device_type!r}: allowed: auto, cuda, cpu")
    return torch.device("cpu")


def check(recipe: Recipe, machine: Machine, launched: bool = False) -> str:
    """Raise BenchError for what this machine cannot run as asked; return the device type to use."""
    device_type = device_type_for(recipe, machine)
    if device_type == "cuda" and machine.device_type != "cuda":
        pick_device("cuda")  # raises, naming the fix
    if recipe.precision == "fp16" and device_type != "cuda":
        raise BenchError("precision: 'fp16' needs a CUDA GPU and this run is on the CPU, where fp16 is about "
                         "20x slower than bf16; to run it here use --set precision=bf16 "
                         "(the result is then recorded as bf16, not fp16)")
    if recipe.hardware.sync_bn and device_type != "cuda":
        raise BenchError("hardware.sync_bn: true needs GPU modules (SyncBatchNorm has no CPU kernels); "
                         "use --set hardware.sync_bn=false on the CPU")
    if device_type == "cuda" and not launched:
        # Under torchrun/srun the launcher places processes (an srun task may see one GPU only).
        from bench.system.launch import check_capacity

        check_capacity(recipe.hardware.procs_per_node, device_type)
    if recipe.data.loader == "dali":
        try:
            import nvidia.dali  # noqa: F401
        except ImportError:
            raise BenchError("data.loader: 'dali' but NVIDIA DALI is not installed; "
                             "`pip install nvidia-dali-cuda130` (make setup does), or use --set data.loader=device") from None
    return device_type


def native_bf16(device_type: str, flags: set[str] | None = None) -> bool:
    """Whether `device_type` computes bf16 in hardware: the GPU's answer, or the CPU's (bench.system.cpu:
    `flags` when the caller gives them, else BENCH_CPU_BF16 when set, else /proc/cpuinfo's flags)."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return cpu.native_bf16(flags)


def settle(recipe: Recipe, device_type: str, say=print, flags: set[str] | None = None) -> Recipe:
    """The recipe as it will run here: `precision: auto` becomes bf16 where the device computes bf16 natively,
    else fp16 on a GPU and fp32 on a CPU. The choice is said out loud and each row records it in `precision`;
    the recipe hash and the bundle's recipe.yaml stay those of the recipe as asked for, the same on every
    machine. An explicit precision is never changed, only warned about."""
    native = native_bf16(device_type, flags)
    if recipe.precision == "auto":
        chosen = "bf16" if native else ("fp16" if device_type == "cuda" else "fp32")
        why = ("it computes bf16 natively" if native else
               "it has no native bf16" + (": software bf16 is ~10x slower than fp32" if device_type == "cpu" else ""))
        if device_type == "cpu" and flags is None and cpu.forced_bf16():
            why += f"; decided by {cpu.BF16_ENV}={cpu.forced_bf16()}, not by the CPU's flags"
        say(f"precision auto -> {chosen} on this {device_type} ({why})")
        return replace(recipe, precision=chosen)
    if recipe.precision == "bf16" and device_type == "cpu" and not native:
        say("warning: precision bf16 on a CPU without native bf16 (no avx512_bf16/amx_bf16): torch emulates it, "
            "about 10x slower than fp32 here; --set precision=fp32 or precision=auto runs faster")
    return recipe


def free_cores(sample_s: float = 0.2) -> int:
    """Cores not busy with other work: torch with more threads than free cores runs 10-20x slower."""
    cores = psutil.cpu_count() or 1
    busy = psutil.cpu_percent(interval=sample_s) * cores / 100
    return max(1, cores - int(busy + 0.5))


def set_threads(recipe: Recipe, local_world: int) -> int:
    threads = recipe.hardware.threads or max(1, free_cores() // max(local_world, 1))
    if os.environ.get("OMP_NUM_THREADS") and not recipe.hardware.threads:
        threads = int(os.environ["OMP_NUM_THREADS"])  # an explicit environment setting wins
    torch.set_num_threads(threads)
    return threads
