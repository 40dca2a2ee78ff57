"""Background host/GPU sampler, so a report can show what the hardware did during a run.

Host metrics (psutil) are always sampled; GPU metrics only when NVML initialises. Every
probe is wrapped: a metric the driver refuses becomes None (first error kept in
`Sampler.errors`), because losing one column must never kill a timed run.

Sample layout (what `stop()` returns, one dict per tick):
    {"t": clock seconds, "cpu_percent": system-wide %, "proc_rss_mb": MB,
     "proc_cpu_percent": % of one core (can exceed 100),
     "gpus": [{"gpu": index, "util_gpu_pct", "util_mem_pct", "mem_used_mb", "power_w",
               "sm_clock_mhz", "temp_c", "throttle_mask", "throttle_reasons": [names]}, ...]}
"""

from __future__ import annotations

import csv
import importlib
import threading
import time
from pathlib import Path

import psutil

from bench.core.errors import BenchError
from bench.core.results import read_records

# NVML's clock event ("throttle") reason bits; fixed by the NVML API, so decoding does
# not depend on which pynvml version is installed.
THROTTLE_BITS = {
    0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap",
    0x8: "hw_slowdown", 0x10: "sync_boost", 0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown", 0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting", 0x200: "board_limit", 0x400: "reliability",
}
GPU_FIELDS = ["util_gpu_pct", "util_mem_pct", "mem_used_mb", "power_w", "sm_clock_mhz",
              "temp_c", "throttle_mask", "throttle_reasons"]
HOST_FIELDS = ["cpu_percent", "proc_rss_mb", "proc_cpu_percent"]
CSV_COLUMNS = ["sample", "t", *HOST_FIELDS, "gpu", *GPU_FIELDS]


def decode_throttle(mask: int) -> list[str]:
    names = [name for bit, name in THROTTLE_BITS.items() if mask & bit]
    unknown = mask & ~sum(THROTTLE_BITS)
    return names + ([f"unknown_0x{unknown:x}"] if unknown else [])


class Sampler:
    def __init__(self, interval_s: float = 1.0, device_indices: list[int] | None = None,
                 clock=time.time):
        if interval_s <= 0:
            raise BenchError(f"telemetry interval_s={interval_s!r} must be positive")
        self.interval_s = interval_s
        self.device_indices = device_indices
        self.clock = clock
        self.nvml_status = "not started"
        self.gpu_names: dict[int, str] = {}
        self.errors: dict[str, str] = {}
        self.samples: list[dict] = []
        self._nvml = None
        self._handles: dict[int, object] = {}
        self._energy_mj: dict[int, list] = {}  # NVML's total-energy counter per GPU, read at start and stop
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _try(self, name: str, fn, *args):
        try:
            return fn(*args)
        except Exception as e:  # any driver/psutil failure means "unknown", not a crash
            self.errors.setdefault(name, f"{type(e).__name__}: {e}")
            return None

    def _init_nvml(self) -> None:
        try:
            nvml = importlib.import_module("pynvml")
            nvml.nvmlInit()
        except Exception as e:
            self.nvml_status = f"NVML unavailable, recording CPU only: {type(e).__name__}: {e}"
            return
        count = self._try("count", nvml.nvmlDeviceGetCount)
        if count is None:
            self._try("shutdown", nvml.nvmlShutdown)
            self.nvml_status = f"NVML initialised but cannot count GPUs: {self.errors['count']}"
            return
        indices = list(range(count)) if self.device_indices is None else self.device_indices
        bad = [i for i in indices if not 0 <= i < count]
        if bad:
            nvml.nvmlShutdown()
            raise BenchError(f"telemetry device_indices {bad} out of range: NVML sees {count} GPU(s)")
        self._nvml = nvml
        for i in indices:
            h = self._try(f"handle_{i}", nvml.nvmlDeviceGetHandleByIndex, i)
            if h is None:
                continue
            self._handles[i] = h
            name = self._try("name", nvml.nvmlDeviceGetName, h)
            self.gpu_names[i] = name.decode() if isinstance(name, bytes) else name
        self.nvml_status = f"ok: NVML sampling {len(self._handles)} of {count} GPU(s)"

    def _gpu_sample(self, index: int, h) -> dict:
        nvml = self._nvml
        util = self._try("utilization", nvml.nvmlDeviceGetUtilizationRates, h)
        mem = self._try("memory", nvml.nvmlDeviceGetMemoryInfo, h)
        power_mw = self._try("power", nvml.nvmlDeviceGetPowerUsage, h)
        reasons_fn = (getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
                      or getattr(nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None))
        mask = self._try("throttle", reasons_fn, h) if reasons_fn else None
        return {
            "gpu": index,
            "util_gpu_pct": util.gpu if util else None,
            "util_mem_pct": util.memory if util else None,
            "mem_used_mb": mem.used / 2**20 if mem else None,
            "power_w": power_mw / 1000 if power_mw is not None else None,
            "sm_clock_mhz": self._try("sm_clock", nvml.nvmlDeviceGetClockInfo, h,
                                      getattr(nvml, "NVML_CLOCK_SM", 1)),
            "temp_c": self._try("temperature", nvml.nvmlDeviceGetTemperature, h,
                                getattr(nvml, "NVML_TEMPERATURE_GPU", 0)),
            "throttle_mask": mask,
            "throttle_reasons": decode_throttle(mask) if mask is not None else None,
        }

    def _sample(self) -> dict:
        rss = self._try("proc_rss", lambda: self._proc.memory_info().rss)
        return {
            "t": self.clock(),
            "cpu_percent": self._try("cpu_percent", psutil.cpu_percent, None),
            "proc_rss_mb": rss / 2**20 if rss is not None else None,
            "proc_cpu_percent": self._try("proc_cpu_percent", self._proc.cpu_percent, None),
            "gpus": [self._gpu_sample(i, h) for i, h in self._handles.items()],
        }

    def _read_energy_counters(self) -> None:
        # Volta and later count the energy a GPU has used since the driver loaded (mJ); the difference over
        # the run is exact where sampling power once a second misses spikes between samples.
        read = getattr(self._nvml, "nvmlDeviceGetTotalEnergyConsumption", None) if self._nvml else None
        for i, h in self._handles.items():
            self._energy_mj.setdefault(i, []).append(self._try("energy_counter", read, h) if read else None)

    def energy(self, samples: list[dict]) -> tuple[float | None, str | None]:
        """(joules over the run summed over GPUs, how it was measured), or (None, None) without GPU data."""
        counted = [v[1] - v[0] for v in self._energy_mj.values() if len(v) == 2 and None not in v]
        if counted and len(counted) == len(self._handles):
            return sum(counted) / 1000, "nvml_total_energy_counter"
        sampled = [j for j in energy_joules(samples).values() if j is not None]
        return (sum(sampled), "power_samples_trapezoid") if sampled else (None, None)

    def _run(self) -> None:
        due = time.monotonic()
        while True:
            self.samples.append(self._sample())
            # Fixed schedule so slow probes do not stretch the interval; skip ticks if late.
            due = max(due + self.interval_s, time.monotonic())
            if self._stop.wait(due - time.monotonic()):
                return

    def start(self) -> "Sampler":
        if self._thread is not None:
            raise BenchError("telemetry Sampler.start() called twice; use a new Sampler per run")
        self._init_nvml()
        self._read_energy_counters()
        # psutil's percentages are "since the previous call"; prime them so tick 0 is meaningful.
        self._try("cpu_percent", psutil.cpu_percent, None)
        self._try("proc_cpu_percent", self._proc.cpu_percent, None)
        self._thread = threading.Thread(target=self._run, name="bench-telemetry", daemon=True)
        self._thread.start()
        return self

    @property
    def started(self) -> bool:
        return self._thread is not None

    def stop(self) -> list[dict]:
        """Join the thread, add a closing sample (so energy covers the whole span), return all."""
        if self._thread is None:
            raise BenchError("telemetry Sampler.stop() called before start()")
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self.samples.append(self._sample())
            self._read_energy_counters()
            if self._nvml is not None:
                self._try("shutdown", self._nvml.nvmlShutdown)
        return list(self.samples)

    def __enter__(self) -> "Sampler":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def energy_joules(samples: list[dict]) -> dict[int, float | None]:
    """Per-GPU energy: trapezoid rule over the samples that have a power reading.

    Samples with power None are skipped (the neighbours are joined by a straight line);
    a GPU with fewer than two readings gets None.
    """
    series: dict[int, list[tuple[float, float]]] = {}
    for s in samples:
        for g in s.get("gpus", []):
            points = series.setdefault(g["gpu"], [])
            if g.get("power_w") is not None:
                points.append((s["t"], g["power_w"]))
    out = {}
    for gpu, pts in series.items():
        pts.sort()
        out[gpu] = (sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(pts, pts[1:]))
                    if len(pts) >= 2 else None)
    return out


def write_csv(samples: list[dict], path: Path) -> None:
    """One row per sample per GPU (host columns repeated); a sample without GPUs is one
    row with empty GPU columns. `sample` numbers the ticks; throttle reasons join with '|'."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for n, s in enumerate(samples):
            host = {"sample": n, "t": s["t"], **{k: s.get(k) for k in HOST_FIELDS}}
            for g in s.get("gpus") or [{}]:
                row = {**host, "gpu": g.get("gpu"), **{k: g.get(k) for k in GPU_FIELDS}}
                if row["throttle_reasons"] is not None:
                    row["throttle_reasons"] = "|".join(row["throttle_reasons"])
                w.writerow({k: "" if v is None else v for k, v in row.items()})


def read_csv(path: Path) -> list[dict]:
    """Inverse of write_csv: rebuilds the list of sample dicts."""
    ints = {"sample", "gpu", "throttle_mask"}

    def num(col, v):
        if v == "":
            return None
        if col == "throttle_reasons":
            return v.split("|")
        return int(v) if col in ints else float(v)

    samples: dict[int, dict] = {}
    try:
        header, rows = read_records(Path(path), strict=True, hint="The telemetry file was edited or cut short.")
    except OSError as e:
        raise BenchError(f"cannot read telemetry CSV {path}: {e}") from e
    for line, fields in rows:
        row = dict(zip(header, fields))
        try:
            r = {c: num(c, row[c]) for c in CSV_COLUMNS}
        except (KeyError, ValueError, AttributeError) as e:
            raise BenchError(f"{path}:{line}: bad telemetry row ({type(e).__name__}: {e})") from e
        s = samples.setdefault(r["sample"], {"t": r["t"], **{k: r[k] for k in HOST_FIELDS},
                                             "gpus": []})
        if r["throttle_mask"] is not None and r["throttle_reasons"] is None:
            r["throttle_reasons"] = []  # an empty list was written as an empty cell
        if r["gpu"] is not None:
            s["gpus"].append({"gpu": r["gpu"], **{k: r[k] for k in GPU_FIELDS}})
    return [samples[k] for k in sorted(samples)]
