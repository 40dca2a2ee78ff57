"""What a run ran on: software versions, hardware, and the exact code (git state). Recorded with every run."""
from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

import psutil

import bench
from bench.core.paths import PACKAGE_DIR
from bench.system import cpu

GIT_TIMEOUT_S = 10


def _git(args: list[str], cwd: Path) -> bytes | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=GIT_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(path: str | os.PathLike | None = None) -> dict:
    """commit, dirty and diff_sha256 of the repository holding `path` (default: the bench package).

    Untracked files under results/ do not count as dirty: the benchmark writes them itself."""
    cwd = Path(path) if path is not None else PACKAGE_DIR
    state = {"commit": None, "dirty": None, "diff_sha256": None}
    if _git(["rev-parse", "--git-dir"], cwd) is None:
        return state
    head = _git(["rev-parse", "--verify", "-q", "HEAD"], cwd)
    state["commit"] = head.decode().strip() if head else None
    status = _git(["status", "--porcelain", "-z"], cwd)
    if status is not None:
        entries = [e for e in status.split(b"\0") if e]
        state["dirty"] = any(not e.startswith(b"?? results/") for e in entries)
    if head:
        diff = _git(["diff", "HEAD", "--no-ext-diff", "--no-color"], cwd)
        if diff is not None:
            state["diff_sha256"] = hashlib.sha256(diff).hexdigest()
    return state


def _gpus() -> tuple[list[dict], str | None]:
    """GPUs per NVML (all on the machine, whatever CUDA_VISIBLE_DEVICES says) and why not, if not."""
    try:
        import pynvml
    except ImportError as e:
        return [], f"pynvml not importable ({e}); install nvidia-ml-py"
    try:
        pynvml.nvmlInit()
    except Exception as e:  # NVMLError has a subclass per cause; its name says which
        return [], f"{type(e).__name__}: {e}"
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            gpus.append({"name": _text(pynvml.nvmlDeviceGetName(handle)),
                         "memory_mb": pynvml.nvmlDeviceGetMemoryInfo(handle).total // 2**20,
                         "driver": driver})
        return gpus, None
    except Exception as e:
        return [], f"{type(e).__name__}: {e}"
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def _text(value) -> str:
    # older pynvml releases return bytes
    return value.decode() if isinstance(value, bytes) else str(value)


def _torchvision_version() -> str | None:
    # Importing torchvision costs ~1 s; the installed metadata has the same version minus a local
    # tag like "+cu130", which torch's own version already records.
    if "torchvision" in sys.modules:
        return sys.modules["torchvision"].__version__
    try:
        return importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        return None


def _dali() -> tuple[str | None, str | None]:
    # Imported only here: it takes ~0.3 s on a warm cache, and a broken install must not stop a run.
    try:
        import nvidia.dali
        return str(nvidia.dali.__version__), None
    except Exception as e:
        return None, f"{type(e).__name__}: {e}"


def capture(device: str = "auto") -> dict:
    """A JSON-ready description of this process's environment; `device` is the one the run asked for."""
    import torch

    tv_version = _torchvision_version()
    cuda_available = torch.cuda.is_available()
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    nccl = None
    if cuda_available:
        try:
            v = torch.cuda.nccl.version()
            nccl = ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
        except Exception:
            pass
    dali, dali_error = _dali()
    gpus, nvml_error = _gpus()
    return {
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "bench": bench.__version__,
        "torch": torch.__version__,
        "torchvision": tv_version,
        "device": device if device != "auto" else ("cuda" if cuda_available else "cpu"),
        "cuda": {"version": torch.version.cuda, "available": cuda_available,
                 "device_count": torch.cuda.device_count() if cuda_available else 0},
        "cudnn": cudnn,
        "nccl": nccl,
        "dali": dali,
        "dali_error": dali_error,
        "gpus": gpus,
        "gpu_count": len(gpus),
        "nvml_error": nvml_error,
        "cpu": {"model": cpu.model(), "logical_cores": psutil.cpu_count(logical=True),
                "physical_cores": psutil.cpu_count(logical=False), **cpu.bf16_record()},
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "git": git_state(),
        "argv": list(sys.argv),
    }


def format_lines(value, indent: int = 0) -> list[str]:
    """Readable `key: value` lines; nested dicts and lists indented beneath their key."""
    pad = "  " * indent
    lines = []
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{k}:")
                lines += format_lines(v, indent + 1)
            else:
                lines.append(f"{pad}{k}: {_scalar(v)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)) and item:
                sub = format_lines(item, indent + 1)
                lines.append(f"{pad}- {sub[0].lstrip()}")
                lines += sub[1:]
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    return lines


def _scalar(v) -> str:
    if v is None:
        return "-"
    if v == [] or v == {}:
        return "(none)"
    return str(v)
