import sys
import time
import types
from collections import namedtuple

import pytest

from bench.core.errors import BenchError
from bench.system.telemetry import Sampler, decode_throttle, energy_joules, read_csv, write_csv


def test_real_sampler_on_this_machine():
    """Event-based, so a loaded machine cannot fail it: wait (up to a minute) for three ticks, then stop.
    A busy box only makes ticks late; a sampler ignoring its interval would exceed elapsed / interval."""
    s = Sampler(interval_s=0.1)
    t0 = time.monotonic()
    s.start()
    deadline = t0 + 60
    while len(s.samples) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    samples = s.stop()
    elapsed = time.monotonic() - t0
    assert not s._thread.is_alive()
    assert 4 <= len(samples) <= elapsed / 0.1 + 2  # the ticks, plus the closing sample
    for x in samples:
        assert x["proc_rss_mb"] > 1 and x["cpu_percent"] is not None and x["proc_cpu_percent"] is not None
    if s.nvml_status.startswith("ok"):  # this test also runs on the GPU machines
        assert samples[0]["gpus"]
    else:
        assert "NVML unavailable" in s.nvml_status and ":" in s.nvml_status
        assert all(x["gpus"] == [] for x in samples)
    assert [x["t"] for x in samples] == sorted(x["t"] for x in samples)


def test_stop_before_start_and_double_start():
    with pytest.raises(BenchError, match="before start"):
        Sampler().stop()
    with Sampler(interval_s=0.05) as s:
        with pytest.raises(BenchError, match="twice"):
            s.start()


def _gpu(t, power):
    return {"t": t, "gpus": [{"gpu": 0, "power_w": power}]}


def test_energy_constant_and_ramp():
    constant = [_gpu(t, 100.0) for t in range(11)]
    assert energy_joules(constant) == {0: pytest.approx(1000.0)}
    ramp = [_gpu(t, 10.0 * t) for t in range(11)]  # 0 -> 100 W over 10 s: area of a triangle
    assert energy_joules(ramp)[0] == pytest.approx(500.0)
    gap = [_gpu(0, 100.0), _gpu(5, None), _gpu(10, 100.0)]
    assert energy_joules(gap)[0] == pytest.approx(1000.0)
    assert energy_joules([_gpu(0, None), _gpu(1, None)]) == {0: None}
    assert energy_joules([{"t": 0, "gpus": []}]) == {}


def test_decode_throttle():
    assert decode_throttle(0) == []
    assert decode_throttle(0x4 | 0x40) == ["sw_power_cap", "hw_thermal_slowdown"]
    assert decode_throttle(0x1000) == ["unknown_0x1000"]


def _fake_pynvml():
    Util = namedtuple("Util", "gpu memory")
    Mem = namedtuple("Mem", "total free used")
    m = types.ModuleType("pynvml")
    m.calls = []
    m.NVML_CLOCK_SM = 1
    m.NVML_TEMPERATURE_GPU = 0
    m.nvmlInit = lambda: m.calls.append("init")
    m.nvmlShutdown = lambda: m.calls.append("shutdown")
    m.nvmlDeviceGetCount = lambda: 2
    m.nvmlDeviceGetHandleByIndex = lambda i: f"handle{i}"
    m.nvmlDeviceGetName = lambda h: b"Fake GPU"
    m.nvmlDeviceGetUtilizationRates = lambda h: Util(97, 40)
    m.nvmlDeviceGetMemoryInfo = lambda h: Mem(80 * 2**30, 79 * 2**30, 2**30)
    m.nvmlDeviceGetPowerUsage = lambda h: 250_000  # NVML reports milliwatts
    m.nvmlDeviceGetClockInfo = lambda h, kind: {1: 1980}[kind]

    def temperature(h, sensor):
        raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")

    m.nvmlDeviceGetTemperature = temperature
    # Only the older name exists here, to exercise the fallback.
    m.nvmlDeviceGetCurrentClocksThrottleReasons = lambda h: 0x4 | 0x1
    return m


def test_gpu_path_with_fake_nvml(monkeypatch, tmp_path):
    """The GPU path end to end against a mock pynvml: this box has no GPU, so the values
    are invented; the test checks plumbing, units and failure handling, not hardware."""
    fake = _fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    ticks = iter(range(1000))
    s = Sampler(interval_s=0.02, device_indices=[1], clock=lambda: float(next(ticks)))
    with s:
        time.sleep(0.1)
    assert s.nvml_status == "ok: NVML sampling 1 of 2 GPU(s)"
    assert s.gpu_names == {1: "Fake GPU"}
    assert fake.calls == ["init", "shutdown"]
    assert "RuntimeError" in s.errors["temperature"]
    g = s.samples[0]["gpus"][0]
    assert g == {"gpu": 1, "util_gpu_pct": 97, "util_mem_pct": 40, "mem_used_mb": 1024.0,
                 "power_w": 250.0, "sm_clock_mhz": 1980, "temp_c": None, "throttle_mask": 5,
                 "throttle_reasons": ["gpu_idle", "sw_power_cap"]}
    n = len(s.samples)
    assert energy_joules(s.samples) == {1: pytest.approx(250.0 * (n - 1))}  # 1 s per tick

    path = tmp_path / "telemetry.csv"
    write_csv(s.samples, path)
    back = read_csv(path)
    assert len(back) == n and back[0]["gpus"][0] == {**g, "util_gpu_pct": 97.0, "util_mem_pct": 40.0,
                                                       "sm_clock_mhz": 1980.0}
    assert energy_joules(back) == energy_joules(s.samples)


def test_bad_device_index(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml())
    with pytest.raises(BenchError, match=r"\[5\] out of range"):
        Sampler(device_indices=[5]).start()


def test_csv_round_trip_without_gpus(tmp_path):
    samples = [{"t": 1.5, "cpu_percent": 12.0, "proc_rss_mb": 300.0, "proc_cpu_percent": None, "gpus": []}]
    write_csv(samples, tmp_path / "t.csv")
    assert read_csv(tmp_path / "t.csv") == samples


def test_energy_prefers_nvml_total_energy_counter(monkeypatch):
    """Volta and later count joules in hardware: the run's energy is the counter's difference (mJ -> J),
    and the row says so; without the counter, the power samples' trapezoid is used, and says so too."""
    fake = _fake_pynvml()
    readings = iter([1_000_000, 1_750_500])  # mJ at start and at stop
    fake.nvmlDeviceGetTotalEnergyConsumption = lambda h: next(readings)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    ticks = iter(range(1000))
    s = Sampler(interval_s=0.02, device_indices=[0], clock=lambda: float(next(ticks)))
    with s:
        time.sleep(0.05)
    assert s.energy(s.samples) == (pytest.approx(750.5), "nvml_total_energy_counter")

    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml())  # an older GPU: no counter
    ticks = iter(range(1000))
    s = Sampler(interval_s=0.02, device_indices=[0], clock=lambda: float(next(ticks)))
    with s:
        time.sleep(0.05)
    joules, how = s.energy(s.samples)
    assert how == "power_samples_trapezoid" and joules == pytest.approx(250.0 * (len(s.samples) - 1))
    assert Sampler().energy([{"t": 0.0, "gpus": []}]) == (None, None)  # a CPU run: no GPU energy
