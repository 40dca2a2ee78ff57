"""bench speed: the JSON/CSV schema on a real (tiny) CPU measurement, and the out-of-memory back-off with
failures injected at chosen batch sizes."""
import csv
import json

import pytest

from bench.cli import build_parser
import torch

from bench.studies import memory, speed
from bench.core.errors import BenchError

TINY = """
name: tiny_speed
model: {arch: resnet9, params: {widths: [8, 8, 16, 16]}}
data: {batch_size: 16}
precision: bf16
hardware: {device: cpu, threads: 1}
"""


def parse(*argv):
    return build_parser().parse_args(["speed", *map(str, argv)])


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def test_json_rows_have_exactly_the_schema_keys_and_csv_appends(tiny, tmp_path):
    from bench.models import build_model, count_parameters
    from bench.system.flops import flops_per_image

    net = build_model("resnet9", {"widths": [8, 8, 16, 16]})
    params, flops = count_parameters(net), flops_per_image(net, device=torch.device("cpu"))["train_step"]
    out, table = tmp_path / "speed.json", tmp_path / "speed.csv"
    for precision, layout in (("fp32", "contiguous"), ("bf16", "channels_last")):
        args = parse(tiny, "--batch-sizes", "4,8", "--steps", 3, "--warmup", 1, "--precision", precision,
                     "--memory-format", layout, "--json", out, "--csv", table)
        assert speed.run_speed(args) == 0
        rows = json.loads(out.read_text())
        assert [r["batch_size"] for r in rows] == [4, 8]
        for r in rows:
            assert list(r) == list(speed.JSON_KEYS)
            assert (r["recipe"], r["device"], r["precision"], r["memory_format"]) == \
                ("tiny_speed", "cpu", precision, layout)
            assert r["step_ms"] > 0 and r["forward_ms"] > 0 and r["backward_ms"] > 0
            # images/s is the batch over the median step time (3 steps: the median is not the mean)
            assert r["images_per_s"] == pytest.approx(r["batch_size"] * 1000 / r["step_ms"], rel=1e-12)
            # the model's own counts: batch size and precision change neither
            assert r["params"] == params and r["flops_per_image"] == flops
            assert r["mfu"] is None  # no peak table for CPUs: no guessed utilisation
            assert r["peak_memory_mb"] is None or r["peak_memory_mb"] >= 0
    with open(table, newline="") as f:
        written = list(csv.DictReader(f))
    assert len(written) == 4
    assert set(speed.JSON_KEYS) | set(speed.ENV_KEYS) == set(written[0])
    assert written[0]["torch"] == torch.__version__ and written[0]["threads"] == "1"


def test_fp16_on_cpu_is_refused_with_the_flag_that_works(tiny):
    with pytest.raises(BenchError, match="precision=bf16"):
        speed.run_speed(parse(tiny, "--precision", "fp16", "--steps", 1))


def oom_above(limit, calls):
    def measure_at(b):
        calls.append(b)
        if b > limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate for batch {b}")
        return {"batch_size": b, "peak_memory_mb": 1.0}
    return measure_at


def test_back_off_after_doubling_finds_the_largest_fit():
    calls = []
    batch, result, tries = memory.find_max_batch(oom_above(300, calls), start=64)
    # doubles 64 -> 512 (fails), then bisects back on multiples of 8 until the gap is ~6% of the batch
    assert calls == [64, 128, 256, 512, 384, 320, 288, 304]
    assert batch == 288 and result["batch_size"] == 288
    assert tries[-1] == (304, False) and (288, True) in tries


def test_start_that_does_not_fit_halves_first():
    calls = []
    batch, _, _ = memory.find_max_batch(oom_above(300, calls), start=1024)
    assert calls[:3] == [1024, 512, 256] and batch == 288


def test_max_batch_caps_the_doubling():
    calls = []
    batch, _, _ = memory.find_max_batch(oom_above(10**6, calls), start=64, max_batch=200)
    assert calls == [64, 128, 200] and batch == 200


def test_other_errors_are_not_mistaken_for_out_of_memory():
    def broken(b):
        raise ValueError("shape mismatch")
    with pytest.raises(ValueError):
        memory.find_max_batch(broken, start=8)
    assert memory.is_oom(RuntimeError("CUDA error: out of memory"))
    assert memory.is_oom(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 GB"))
    assert memory.is_oom(MemoryError()) and not memory.is_oom(RuntimeError("expected scalar type"))


def test_nothing_fits_is_an_error():
    with pytest.raises(BenchError, match="batch size 1"):
        memory.find_max_batch(oom_above(0, []), start=4)


def test_cpu_guard_refuses_a_batch_predicted_to_exceed_free_ram():
    guarded = memory.guard_cpu_ram(lambda b: {"batch_size": b, "peak_memory_mb": 1e12})
    guarded(1)
    with pytest.raises(MemoryError, match="predicted"):
        guarded(2)


def test_command_reports_the_backed_off_batch(tiny, tmp_path):
    calls = []

    def fake_measure(recipe, device, b, steps, warmup):
        calls.append(b)
        if b > 100:
            raise RuntimeError("CUDA out of memory (injected)")
        return {"batch_size": b, "images_per_s": 10.0 * b, "step_ms": 100.0, "forward_ms": 30.0,
                "backward_ms": 60.0, "peak_memory_mb": 1.0}

    out = tmp_path / "max.json"
    args = parse(tiny, "--find-max-batch", "--batch-sizes", 16, "--json", out)
    assert speed.run_speed(args, measure_fn=fake_measure) == 0
    rows = json.loads(out.read_text())
    assert calls == [16, 32, 64, 128, 96, 112, 104]
    assert len(rows) == 1 and rows[0]["batch_size"] == 96 and list(rows[0]) == list(speed.JSON_KEYS)
