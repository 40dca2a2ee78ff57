"""What this CPU is (its model name) and whether it computes bf16 in hardware, the one fact about it that
changes what a run does (`precision: auto`, Muon's implementation). No torch here: envinfo and machine
both read it."""
from __future__ import annotations

import os
import platform

from bench.core.errors import BenchError

CPUINFO = "/proc/cpuinfo"

# CPU feature flags under which bf16 matrix products run in hardware. Without them torch emulates bf16 and
# autocast runs ~10x slower than fp32 (measured on a 2-core AMD EPYC VM with AVX2 only).
NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}  # x86 AVX512-BF16, x86 AMX, aarch64 (Features: bf16)

# Decides the CPU's bf16 capability instead of reading it: `native` or `emulated`. The test suite runs once
# each way with it (tests/README.md), and a user can see what a CPU of the other kind would choose. A run
# records it (env.json: cpu.bf16, cpu.bf16_decided_by).
BF16_ENV = "BENCH_CPU_BF16"
BF16_CHOICES = ("native", "emulated")


def _first(keys: tuple[str, ...], path: str) -> str | None:
    """The value of the first `key: value` line of /proc/cpuinfo whose key is one of `keys`."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in keys:
                    return value.strip()
    except OSError:
        pass
    return None


def model(path: str = CPUINFO) -> str:
    return _first(("model name",), path) or platform.processor() or platform.machine()


def flags(path: str = CPUINFO) -> set[str]:
    """x86 `flags` or aarch64 `Features`; empty where /proc/cpuinfo cannot be read."""
    return set((_first(("flags", "Features"), path) or "").split())


def forced_bf16() -> str | None:
    """BENCH_CPU_BF16's value (native or emulated), None when unset; anything else is refused."""
    value = os.environ.get(BF16_ENV, "").strip()
    if not value:
        return None
    if value not in BF16_CHOICES:
        raise BenchError(f"{BF16_ENV}={value!r}: allowed: {' or '.join(BF16_CHOICES)} "
                         f"(or unset it to read the CPU's flags)")
    return value


def native_bf16(given: set[str] | None = None) -> bool:
    """The one place the harness decides it: from the flags a caller gives, else BENCH_CPU_BF16 when set,
    else this CPU's flags."""
    if given is None:
        forced = forced_bf16()
        if forced is not None:
            return forced == "native"
        given = flags()
    return bool(NATIVE_BF16_FLAGS & given)


def bf16_record() -> dict:
    """For env.json: what the CPU's bf16 was taken to be, and what decided it."""
    forced = forced_bf16()
    return {"bf16": "native" if native_bf16() else "emulated",
            "bf16_decided_by": f"{BF16_ENV}={forced}" if forced else "cpu flags"}
