"""The machine's bf16 capability, decided in the test and never read from the machine running it: both branches
of `precision: auto`, the BENCH_CPU_BF16 override, and env.json recording how it was decided."""
import pytest

from bench.core.errors import BenchError
from bench.recipe import load
from bench.system import cpu, machine
from bench.system.envinfo import capture

AMX = {"fpu", "avx2", "amx_bf16", "avx512_bf16"}
AVX2_ONLY = {"fpu", "avx2", "fma"}


@pytest.fixture(autouse=True)
def unforced(monkeypatch):
    """Each test decides the capability itself, whatever the suite was started with."""
    monkeypatch.delenv(cpu.BF16_ENV, raising=False)


@pytest.mark.parametrize("flags, native", [(AMX, True), ({"avx512_bf16"}, True), ({"bf16", "asimd"}, True),
                                           (AVX2_ONLY, False), (set(), False)])
def test_native_bf16_follows_the_flags_given(flags, native):
    assert machine.native_bf16("cpu", flags) is native


def test_cpu_flags_and_model_read_the_first_lines_of_their_kind(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test Xeon\nflags\t\t: fpu avx2 amx_bf16\n\n"
                    "processor\t: 1\nmodel name\t: Other\nflags\t\t: fpu\n")
    assert cpu.flags(str(info)) == {"fpu", "avx2", "amx_bf16"} and cpu.model(str(info)) == "Test Xeon"
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert cpu.flags(str(arm)) == {"fp", "asimd", "bf16"} and cpu.native_bf16(cpu.flags(str(arm)))
    assert cpu.flags(str(tmp_path / "missing")) == set() and cpu.model(str(tmp_path / "missing"))


@pytest.mark.parametrize("forced, native", [("native", True), ("emulated", False)])
def test_the_environment_decides_over_the_cpus_flags(monkeypatch, forced, native):
    monkeypatch.setenv(cpu.BF16_ENV, forced)
    monkeypatch.setattr(cpu, "flags", lambda path=cpu.CPUINFO: AVX2_ONLY if native else AMX)
    assert machine.native_bf16("cpu") is native
    # flags handed in by the caller are a decision too, and win
    assert machine.native_bf16("cpu", AMX) is True and machine.native_bf16("cpu", AVX2_ONLY) is False


def test_a_bad_override_names_the_variable_and_the_choices(monkeypatch):
    monkeypatch.setenv(cpu.BF16_ENV, "yes")
    with pytest.raises(BenchError, match="BENCH_CPU_BF16='yes': allowed: native or emulated"):
        machine.native_bf16("cpu")


@pytest.mark.parametrize("native, chosen", [(True, "bf16"), (False, "fp32")])
def test_precision_auto_on_a_cpu_takes_each_branch(monkeypatch, native, chosen):
    recipe = load("cpu_quick")
    assert recipe.precision == "auto"
    said = []
    settled = machine.settle(recipe, "cpu", say=said.append, flags=AMX if native else AVX2_ONLY)
    assert settled.precision == chosen
    reason = "it computes bf16 natively" if native else "it has no native bf16: software bf16 is ~10x slower than fp32"
    assert said == [f"precision auto -> {chosen} on this cpu ({reason})"]


@pytest.mark.parametrize("forced, chosen", [("native", "bf16"), ("emulated", "fp32")])
def test_precision_auto_says_when_the_environment_decided(monkeypatch, forced, chosen):
    monkeypatch.setenv(cpu.BF16_ENV, forced)
    said = []
    assert machine.settle(load("cpu_quick"), "cpu", say=said.append).precision == chosen
    assert said[0].endswith(f"decided by BENCH_CPU_BF16={forced}, not by the CPU's flags)")


@pytest.mark.parametrize("native", [True, False])
def test_explicit_bf16_is_kept_and_warned_about_only_where_emulated(native):
    said = []
    recipe = load("cpu_quick", ["precision=bf16"])
    assert machine.settle(recipe, "cpu", say=said.append, flags=AMX if native else AVX2_ONLY) is recipe
    assert bool(said) is not native
    if said:
        assert said[0].startswith("warning: precision bf16 on a CPU without native bf16")


@pytest.mark.parametrize("forced", [None, "native", "emulated"])
def test_env_json_records_how_bf16_was_decided(monkeypatch, forced):
    if forced:
        monkeypatch.setenv(cpu.BF16_ENV, forced)
    monkeypatch.setattr(cpu, "flags", lambda path=cpu.CPUINFO: AMX)
    recorded = capture("cpu")["cpu"]
    assert recorded["bf16"] == (forced or "native")
    assert recorded["bf16_decided_by"] == (f"BENCH_CPU_BF16={forced}" if forced else "cpu flags")


@pytest.mark.parametrize("native, chosen", [(True, "bf16"), (False, "fp16")])
def test_precision_auto_on_a_gpu_takes_each_branch(monkeypatch, native, chosen):
    monkeypatch.setattr(machine.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(machine.torch.cuda, "is_bf16_supported", lambda *a, **k: native)
    monkeypatch.setenv(cpu.BF16_ENV, "emulated" if native else "native")  # a CPU setting: ignored here
    said = []
    assert machine.settle(load("cpu_quick"), "cuda", say=said.append).precision == chosen
    assert said == [f"precision auto -> {chosen} on this cuda (it "
                    + ("computes bf16 natively)" if native else "has no native bf16)")]
