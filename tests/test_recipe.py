"""Recipe loading and validation: every bad input gets exit code 2 and a message naming the field."""
from pathlib import Path

import pytest

from bench import recipe as recipes
from bench.cli import main
from bench.core.errors import BenchError

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def error_of(path, overrides=()) -> str:
    with pytest.raises(BenchError) as info:
        recipes.load(str(path), list(overrides))
    assert info.value.exit_code == 2
    return str(info.value)


def test_every_repo_recipe_validates():
    files = sorted(str(p) for p in (REPO / "recipes").rglob("*.yaml"))
    assert len(files) >= 4
    assert main(["validate", *files]) == 0


def test_defaults_and_hash_are_stable(tmp_path):
    p = write(tmp_path, "tiny.yaml", "model: {arch: resnet9}\n")
    a, b = recipes.load(str(p)), recipes.load(str(p))
    assert a.name == "tiny" and a.hash == b.hash
    assert a.optim.schedule.kind == "one_cycle"
    # runs does not change what is measured, every other field does
    assert recipes.load(str(p), ["runs=5"]).hash == a.hash
    assert recipes.load(str(p), ["optim.lr=0.5"]).hash != a.hash


def test_recipe_is_frozen(tmp_path):
    r = recipes.load(str(write(tmp_path, "f.yaml", "{}\n")))
    with pytest.raises(Exception):
        r.optim.lr = 1.0  # type: ignore[misc]


def test_extends_deep_merges_and_overrides(tmp_path):
    write(tmp_path, "base.yaml", "optim: {lr: 0.1, epochs: 7, schedule: {kind: linear, warmup: 0.3}}\n"
                                 "data: {batch_size: 64}\n")
    child = write(tmp_path, "child.yaml", "extends: base\noptim: {lr: 0.2, schedule: {warmup: 0.1}}\n")
    r = recipes.load(str(child), ["data.batch_size=32", "optim.weight_decay=1e-4"])
    assert r.name == "child"  # never inherited from the parent
    assert (r.optim.lr, r.optim.epochs) == (0.2, 7)
    assert (r.optim.schedule.kind, r.optim.schedule.warmup) == ("linear", 0.1)
    assert r.data.batch_size == 32 and r.optim.weight_decay == 1e-4


MY_NET = "import torch.nn as nn\n\ndef net(num_classes=10, width=4):\n    return nn.Linear(width, num_classes)\n"


def test_a_child_that_changes_model_arch_inherits_none_of_the_parents_model_params(tmp_path):
    """cpu_quick's model.params (widths, scale) are resnet9's arguments: a child naming its own network does
    not inherit them; its own params stay, and a child that keeps the arch still inherits them."""
    write(tmp_path, "my.py", MY_NET)
    r = recipes.load(str(write(tmp_path, "mine.yaml", "extends: cpu_quick\nmodel: {arch: my.py:net}\n")))
    assert r.model.arch == f"{tmp_path.resolve()}/my.py:net" and r.model.params == {}
    assert r.optim == recipes.load("cpu_quick").optim  # everything else is still inherited
    own = write(tmp_path, "own.yaml", "extends: cpu_quick\nmodel: {arch: my.py:net, params: {width: 8}}\n")
    assert recipes.load(str(own)).model.params == {"width": 8}
    same = write(tmp_path, "same.yaml", "extends: cpu_quick\nmodel: {arch: resnet9, params: {scale: 0.25}}\n")
    assert recipes.load(str(same)).model.params == {"widths": [16, 32, 64, 128], "scale": 0.25}
    assert main(["validate", str(tmp_path / "mine.yaml")]) == 0


def test_scientific_notation_is_a_float(tmp_path):
    r = recipes.load(str(write(tmp_path, "s.yaml", "optim: {weight_decay: 1e-4}\n")))
    assert r.optim.weight_decay == pytest.approx(1e-4)


@pytest.mark.parametrize("text, needles", [
    ("optim: {lrr: 0.1}\n", ["optim.lrr", "unknown field", "lr"]),
    ("optim: {lr: fast}\n", ["optim.lr", "'fast'", "float"]),
    ("optim: {epochs: 2.5}\n", ["optim.epochs", "2.5", "int"]),
    ("optim: {lr: -1}\n", ["optim.lr", "-1", "> 0"]),
    ("optim: {lr: 0}\n", ["optim.lr", "> 0"]),
    ("target: {value: 94}\n", ["target.value", "94", "<= 1"]),
    ("target: {value: 1.01}\n", ["target.value", "<= 1"]),
    ("precision: fp8\n", ["precision", "'fp8'", "'bf16'"]),
    ("data: {loader: magic}\n", ["data.loader", "'dali'"]),
    ("data: {batch_size: 0}\n", ["data.batch_size", ">= 1"]),
    ("model: {arch: vgg}\n", ["model.arch", "vgg"]),
    ("model: {arch: darknet, params: {depth: 3}}\n", ["model.params.depth", "funnel"]),
    ("optim: {schedule: {min_mom: 0.99, max_mom: 0.9}}\n", ["min_mom"]),
    ("optim: 3\n", ["optim", "mapping"]),
    ("compile: yes please\n", ["compile", "yes please", "True", "max-autotune"]),
])
def test_bad_values_name_field_value_and_allowed(tmp_path, text, needles):
    msg = error_of(write(tmp_path, "bad.yaml", text))
    assert "bad.yaml" in msg
    for n in needles:
        assert n in msg, (n, msg)


def test_all_problems_reported_at_once(tmp_path):
    msg = error_of(write(tmp_path, "two.yaml", "optim: {lr: -1, epochs: 0}\n"))
    assert "optim.lr" in msg and "optim.epochs" in msg and "2 problems" in msg


def test_yaml_syntax_error_has_line(tmp_path):
    msg = error_of(write(tmp_path, "syn.yaml", "model:\n  arch: resnet9\n  params: {widths: [1, 2\n"))
    assert "syn.yaml" in msg and "line" in msg and "YAML syntax error" in msg


def test_unsafe_yaml_is_refused(tmp_path):
    msg = error_of(write(tmp_path, "evil.yaml", "name: !!python/object/apply:os.system ['echo hi']\n"))
    assert "evil.yaml" in msg


def test_missing_parent_and_cycle(tmp_path):
    msg = error_of(write(tmp_path, "orphan.yaml", "extends: nowhere\n"))
    assert "nowhere" in msg and "no such recipe" in msg
    write(tmp_path, "a.yaml", "extends: b\n")
    write(tmp_path, "b.yaml", "extends: a\n")
    msg = error_of(tmp_path / "a.yaml")
    assert "cycle" in msg and "a.yaml -> b.yaml -> a.yaml" in msg


def test_bad_override_syntax(tmp_path):
    p = write(tmp_path, "o.yaml", "{}\n")
    assert "key.path=value" in error_of(p, ["optim.lr"])
    assert "optim.nope" in error_of(p, ["optim.nope=1"])


def test_validate_cli_exit_codes(tmp_path, capsys):
    good = write(tmp_path, "good.yaml", "{}\n")
    bad = write(tmp_path, "bad.yaml", "optim: {lr: -1}\n")
    assert main(["validate", str(good)]) == 0
    assert main(["validate", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "optim.lr" in err and "1 of 2" in err


def test_run_refuses_bad_recipe_before_training(tmp_path, capsys):
    bad = write(tmp_path, "bad.yaml", "target: {value: 2}\n")
    results = tmp_path / "results.csv"
    assert main(["run", str(bad), "--results", str(results)]) == 2
    assert "target.value" in capsys.readouterr().err
    assert not results.exists()


def test_run_refuses_fp16_on_cpu_and_names_the_fix(tmp_path, capsys):
    p = write(tmp_path, "h.yaml", "precision: fp16\nhardware: {device: cpu}\n")
    results = tmp_path / "results.csv"
    assert main(["run", str(p), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert "--set precision=bf16" in err and "fp16" in err
    assert not results.exists()


def test_run_refuses_sync_bn_on_cpu(tmp_path, capsys):
    p = write(tmp_path, "s.yaml", "hardware: {device: cpu, sync_bn: true}\n")
    assert main(["run", str(p), "--results", str(tmp_path / "r.csv")]) == 2
    assert "hardware.sync_bn" in capsys.readouterr().err
