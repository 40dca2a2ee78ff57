"""A network of the user's own (issue #21): `model.arch` as `path/to/file.py:function` or `package.module:function`.

Resolved relative to the recipe file that names it (or the current directory for --set), hashed by content
(never by where the checkout lives), copied into the report bundle, checked by `bench verify`, rebuilt from the
copy by `bench verify --rerun`, and raced through `bench run` (one process and two gloo ranks under torchrun),
`bench sweep` (locally and on SLURM), `bench speed`, `bench overhead` and a GAN run; `bench validate` names
each mistake with the field and the fix.

And (issue #20): every built-in parameter value a builder refuses, `bench validate` refuses first, with the
builder's own words and without importing torch."""
from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench import recipe as recipes
from bench.cli import main
from bench.core.errors import BenchError
from bench.models import ARCHITECTURES, GAN_ARCHITECTURES, build_model, count_parameters, model_params
from bench.recipe.schema import resolved_hash

REPO = Path(__file__).resolve().parent.parent

NET = '''"""A small network of a user's own (tests/test_user_model.py)."""
import torch.nn as nn


class Scale(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return x * self.scale


def net(num_classes=10, widths=(8, 16), scale=1.0):
    layers, c = [], 3
    for w in widths:
        layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2)]
        c = w
    return nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(c, num_classes), Scale(scale))


wide = net  # another name: another recipe


def needs_depth(depth, num_classes=10):
    return nn.Linear(depth, num_classes)


def no_classes(width=3):
    return nn.Linear(3, width)


def not_a_module(num_classes=10):
    return "a string"
'''

RECIPE = """
name: {name}
model: {{arch: {arch}, params: {{widths: [8, 16]}}}}
data: {{source: {data}, batch_size: 16, eval_batch_size: 64, train_subset: {train}, test_subset: {test}}}
optim: {{epochs: 2, lr: 0.05}}
precision: fp32
target: {{value: {target}}}
hardware: {{device: cpu, threads: 1}}
"""


def write_net(folder: Path, name: str = "net.py", text: str = NET) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def write_recipe(path: Path, arch: str = "net.py:net", data="data/cifar10-jpeg-q75.tar.xz", train=64, test=64,
                 target=0.01, name=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(RECIPE.format(name=name or path.stem, arch=arch, data=data, train=train, test=test, target=target))
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def validate_err(capsys, path) -> str:
    capsys.readouterr()
    assert main(["validate", str(path)]) == 2
    return capsys.readouterr().err


# ---------------------------------------------------------------- where the file is, and the hash


def test_a_file_path_is_relative_to_the_recipe_file_that_sets_it(tmp_path, monkeypatch):
    net = write_net(tmp_path / "nets")
    base = write_recipe(tmp_path / "fam" / "_base.yaml", arch="../nets/net.py:net")
    child = tmp_path / "fam" / "deeper" / "child.yaml"
    child.parent.mkdir()
    child.write_text("extends: ../_base\noptim: {lr: 0.1}\n")  # inherits the parent's arch, anchored at the parent
    r = recipes.load(str(child))
    assert r.model.arch == f"{net.resolve()}:net"
    assert r.model.source == {"file": "net.py", "sha256": sha(net)}
    # --set is relative to the current directory; the hash is the same either way
    monkeypatch.chdir(tmp_path / "fam" / "deeper")
    again = recipes.load(str(child), ["model.arch=../../nets/net.py:net"])
    assert again.model.arch == r.model.arch and again.hash == r.hash
    assert recipes.load(str(base)).model.arch == r.model.arch


def test_the_hash_follows_the_files_contents_not_where_it_lies(tmp_path):
    first = write_recipe(tmp_path / "a" / "r.yaml")
    write_net(tmp_path / "a")
    second = write_recipe(tmp_path / "elsewhere" / "deep" / "r.yaml")
    net = write_net(tmp_path / "elsewhere" / "deep")
    a, b = recipes.load(str(first)), recipes.load(str(second))
    assert a.model.arch != b.model.arch and a.hash == b.hash  # another checkout, the same recipe
    assert str(tmp_path) not in json.dumps(_hashed_view(a.to_dict()))
    net.write_text(NET + "\n# one comment more\n")
    edited = recipes.load(str(second))
    assert edited.hash != a.hash and edited.model.source["sha256"] == sha(net)  # a changed file is another recipe
    assert recipes.load(str(first), [f"model.arch={tmp_path}/a/net.py:wide"]).hash != a.hash  # the function's name counts too


def _hashed_view(d: dict) -> dict:
    from bench.models.user import hash_view

    d = json.loads(json.dumps(d))
    hash_view(d)
    return d


def test_a_built_in_recipe_hashes_as_before_model_source_existed():
    for path in sorted((REPO / "recipes").rglob("*.yaml")):
        if path.parent.name == "examples" or path.name in recipes.SPACE_FILES:  # a family's search space
            continue
        d = recipes.load(str(path)).to_dict()
        assert d["model"]["source"] is None
        before = json.loads(json.dumps(d))
        del before["model"]["source"]
        assert resolved_hash(before) == resolved_hash(d), path


def test_an_import_path_model_hashes_its_module_file_or_its_distribution(tmp_path, monkeypatch):
    from importlib.metadata import version

    pkg = tmp_path / "userpkg"
    write_net(pkg, "nets.py")
    (pkg / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    r = recipes.from_dict({"name": "imp", "model": {"arch": "userpkg.nets:net", "params": {"widths": [4]}}})
    assert r.model.arch == "userpkg.nets:net"
    assert r.model.source == {"file": "nets.py", "sha256": sha(pkg / "nets.py")}
    assert build_model(r.model.arch, r.model.params, source=r.model.source)[-2].out_features == 10
    tv = recipes.from_dict({"name": "tv", "model": {"arch": "torchvision.models:resnet18"}})
    assert tv.model.source == {"distribution": "torchvision", "version": version("torchvision")}
    assert build_model(tv.model.arch, {}, num_classes=7, source=tv.model.source).fc.out_features == 7
    # the module's file changes after the recipe was loaded: the network is not built from other code
    (pkg / "nets.py").write_text(NET + "\n# changed\n")
    with pytest.raises(BenchError, match=r"model\.source: the recipe states .* changed since"):
        build_model(r.model.arch, r.model.params, source=r.model.source)


def test_a_file_model_goes_through_the_one_resolver(tmp_path):
    """model_params, param_problems and build_model take a user's arch; FLOPs and speed build through them."""
    import torch

    from bench.run import parts
    from bench.studies import speed

    write_net(tmp_path)
    r = recipes.load(str(write_recipe(tmp_path / "r.yaml")))
    assert model_params(r.model.arch) == {"widths": [8, 16], "scale": 1.0}
    net = build_model(r.model.arch, r.model.params, source=r.model.source)
    flops = parts.count_flops(r, torch.device("cpu"))
    assert "error" not in flops and flops["train_step"] > flops["forward"] > 0
    params, counted = speed.model_cost(r, torch.device("cpu"))
    assert params == count_parameters(net) and counted == flops["train_step"]
    assert set(ARCHITECTURES) == {"darknet", "wrn", "resnet9", "airnet"}  # "every classifier" is still the built-ins


def test_bench_speed_measures_a_file_model(tmp_path):
    from bench.cli import build_parser
    from bench.studies import speed

    r = write_recipe(tmp_path / "r.yaml")
    write_net(tmp_path)
    out = tmp_path / "speed.json"
    args = build_parser().parse_args(["speed", str(r), "--batch-sizes", "4", "--steps", "2", "--warmup", "1",
                                      "--json", str(out)])
    assert speed.run_speed(args) == 0
    row = json.loads(out.read_text())[0]
    assert row["recipe"] == "r" and row["step_ms"] > 0 and row["params"] > 0 and row["flops_per_image"] > 0


def test_a_function_that_returns_no_module_is_named_when_built(tmp_path, monkeypatch):
    write_net(tmp_path)
    monkeypatch.chdir(tmp_path)  # a mapping's relative model file is relative to the current directory
    r = recipes.from_dict({"name": "x", "model": {"arch": "net.py:not_a_module"}})
    assert r.model.arch == f"{tmp_path.resolve()}/net.py:not_a_module"
    with pytest.raises(BenchError, match=r"model\.arch: net\.py:not_a_module returned str, not a torch\.nn\.Module"):
        build_model(r.model.arch, r.model.params, source=r.model.source)


# ---------------------------------------------------------------- bench validate's errors


def _recipe_with(tmp_path, arch, params=None, source=None) -> Path:
    write_net(tmp_path)
    p = tmp_path / "v.yaml"
    p.write_text(yaml.safe_dump({"model": {"arch": arch, "params": params or {},
                                           **({"source": source} if source else {})}}))
    return p


STATED = {"file": "net.py", "sha256": "abc"}
VALIDATE_ERRORS = {
    "missing file": ("nets/missing.py:net", {}, None, [
        "model.arch: model file {tmp}/nets/missing.py not found", "relative to the recipe file that sets model.arch"]),
    "missing function": ("net.py:nett", {}, None, [
        "model.arch: {tmp}/net.py has no 'nett'; callables defined there: ", "net, no_classes", "fix the name"]),
    "a parameter the function lacks": ("net.py:net", {"widht": [8]}, None, [
        "model.params.widht is not a parameter of net.py:net; allowed: widths, scale"]),
    "a required parameter not given": ("net.py:needs_depth", {}, None, [
        "model.params.depth is required by net.py:needs_depth (it has no default); set model.params.depth"]),
    "no num_classes": ("net.py:no_classes", {}, None, ["model.arch: net.py:no_classes must take a num_classes argument"]),
    "num_classes in params": ("net.py:net", {"num_classes": 3}, None, [
        "model.params.num_classes: set by the harness from the data set's classes"]),
    "not a .py file": ("nets/net.txt:net", {}, None, ["model.arch: 'nets/net.txt:net' names 'nets/net.txt', which is "
                                                      "not a .py file; allowed: path/to/file.py:function"]),
    "not a function name": ("net.py:1net", {}, None, ["model.arch: 'net.py:1net' does not name a function"]),
    "no such module": ("no_such_pkg.nets:net", {}, None, ["model.arch: no module named 'no_such_pkg'",
                                                           "install it, put its folder on PYTHONPATH"]),
    "a stated source that is not the file's": ("net.py:net", {}, STATED, [
        "model.source: the recipe states {'file': 'net.py', 'sha256': 'abc'} but the model file {tmp}/net.py gives",
        "drop model.source"]),
    "a source for a built-in arch": ("resnet9", {}, STATED, [
        "model.source: {'file': 'net.py', 'sha256': 'abc'} is set, but model.arch 'resnet9' is built in; remove it"]),
}


@pytest.mark.parametrize("case", sorted(VALIDATE_ERRORS))
def test_validate_names_each_mistake_in_a_users_model(case, tmp_path, capsys):
    arch, params, source, wanted = VALIDATE_ERRORS[case]
    err = validate_err(capsys, _recipe_with(tmp_path, arch, params, source))
    for text in wanted:
        assert text.replace("{tmp}", str(tmp_path.resolve())) in err, err
    assert "1 problem)" in err, err


def test_validate_names_a_syntax_error_with_its_line(tmp_path, capsys):
    write_net(tmp_path, "broken.py", "import torch.nn as nn\ndef net(num_classes=10:\n    pass\n")
    err = validate_err(capsys, _recipe_with(tmp_path, "broken.py:net"))
    assert f"model.arch: importing {tmp_path.resolve()}/broken.py failed (line 2): SyntaxError" in err, err


def test_validate_accepts_the_shipped_example(capsys):
    assert main(["validate", str(REPO / "recipes" / "examples" / "my_net.yaml")]) == 0
    assert "my_net.py:my_net" in capsys.readouterr().out


# ---------------------------------------------------------------- code that ends the process

EXITS = {  # a model file whose import ends the process: what a training script does at its top level
    "raise": "raise SystemExit(0)\n",
    "sys.exit": "import sys\nsys.exit()\n",
    "argparse": "import argparse\np = argparse.ArgumentParser()\np.add_argument('--lr', type=float)\n"
                "args = p.parse_args()\n",
}


@pytest.mark.parametrize("how", sorted(EXITS))
def test_a_model_file_that_exits_on_import_is_an_error_not_a_silent_success(how, tmp_path):
    """`bench validate` and `bench run` both ended with exit code 0, printed nothing and landed no row."""
    write_net(tmp_path, text=NET + EXITS[how])
    r = write_recipe(tmp_path / "r.yaml", data=tmp_path / "no-data-needed")
    table = tmp_path / "results.csv"
    for args in (["validate", str(r)], ["run", str(r), "--results", str(table), "--reports", str(tmp_path / "rep")]):
        out = subprocess.run([sys.executable, "-m", "bench", *args], cwd=tmp_path, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 2, (args[0], out.returncode, out.stdout, out.stderr)
        assert f"model.arch: importing {(tmp_path / 'net.py').resolve()} ended the process (SystemExit" in out.stderr
        assert 'if __name__ == "__main__":' in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert not table.exists()


def test_a_builder_that_exits_is_an_error(tmp_path, monkeypatch):
    write_net(tmp_path, text=NET + "\n\ndef quits(num_classes=10):\n    import sys\n    sys.exit(3)\n")
    monkeypatch.chdir(tmp_path)
    r = recipes.from_dict({"name": "x", "model": {"arch": "net.py:quits"}})
    with pytest.raises(BenchError, match=r"model\.arch: calling net\.py:quits ended the process \(SystemExit\(3\)\); "
                                         r"return the network from the function"):
        build_model(r.model.arch, r.model.params, source=r.model.source)


EXITS_IN_TRAINING = NET + '''

class ExitsInTraining(nn.Module):
    """Ends the process at its second training forward: warm-up (1 step) passes, the first timed step does not."""

    def __init__(self, num_classes):
        super().__init__()
        self.fc, self.calls = nn.Linear(3, num_classes), 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == 2:
                raise SystemExit(0)
        return self.fc(x.mean((2, 3)))


def exits(num_classes=10):
    return ExitsInTraining(num_classes)
'''


@pytest.mark.slow
def test_a_model_that_exits_during_a_run_is_recorded_and_fails(tmp_path, tiny_images, capsys):
    from bench.core.results import read_table

    write_net(tmp_path, text=EXITS_IN_TRAINING)
    r = tmp_path / "r.yaml"
    r.write_text(RECIPE.format(name="r", arch="net.py:exits", data=tiny_images, train=32, test=16, target=0.9)
                 .replace("params: {widths: [8, 16]}", "params: {}") + "warmup_steps: 1\n")
    code = main(["run", str(r), "--results", str(tmp_path / "results.csv"), "--reports", str(tmp_path / "rep")])
    err = capsys.readouterr().err
    assert code == 1 and "ended the process during the run (SystemExit(0))" in err and "net.py:exits" in err, err
    row = read_table(tmp_path / "results.csv").iloc[0]
    assert row["status"] == "aborted" and "SystemExit" in row["error"]


# ---------------------------------------------------------------- the bundle: a copy, verified


@pytest.fixture
def user_bundle(tmp_path):
    """A hand-made bundle (tests/bundles.py: the real BundleWriter) of a file-model recipe."""
    from bundles import RUNS, bench, make_bundle

    write_net(tmp_path / "src")
    r = write_recipe(tmp_path / "src" / "mine.yaml")
    b = make_bundle(tmp_path / "out", RUNS[:1], recipe_name=str(r))
    assert bench("verify", b) == 0
    return b, tmp_path / "src" / "net.py"


def test_the_bundle_keeps_a_copy_of_the_model_and_names_it(user_bundle):
    from bench.report import summary as summ

    bundle, original = user_bundle
    assert (bundle / "model" / "net.py").read_bytes() == original.read_bytes()
    data, stated = summ.read_recipe(bundle)
    assert data["model"]["arch"] == "model/net.py:net"  # relative to recipe.yaml, as any recipe's model file
    assert data["model"]["source"] == {"file": "net.py", "sha256": sha(original)}
    assert stated == resolved_hash(data) == recipes.load(str(original.parent / "mine.yaml"), ["target.value=0.9"]).hash
    assert str(original.parent) not in (bundle / "recipe.yaml").read_text()  # no path of the checkout
    # the bundle's recipe.yaml is a recipe: it builds from the copy
    again = recipes.load(str(bundle / "recipe.yaml"))
    assert again.model.arch == f"{(bundle / 'model' / 'net.py').resolve()}:net" and again.hash == stated


def test_verify_names_an_edited_copy_even_with_its_manifest_line_rewritten(user_bundle, tmp_path):
    from bench.report import manifest, verify

    bundle, _ = user_bundle
    copy = tmp_path / "edited"
    shutil.copytree(bundle, copy)
    (copy / "model" / "net.py").write_text(NET.replace("nn.ReLU()", "nn.GELU()"))
    problems = verify.check(copy).problems
    assert "model/net.py: changed (its sha256 differs from the one in MANIFEST)" in problems, problems
    assert any(p.startswith("model/net.py: its sha256 is ") and "recipe.yaml's model.source states" in p
               and "the copy of the model was edited" in p for p in problems), problems
    manifest.write(copy)  # the MANIFEST made to agree: the recipe's own statement still tells
    problems = verify.check(copy).problems
    assert len(problems) == 1 and problems[0].startswith("model/net.py: its sha256 is "), problems
    (copy / "model" / "net.py").unlink()
    manifest.write(copy)
    assert any(p.startswith("model/net.py: missing (recipe.yaml's model.source names it")
               for p in verify.check(copy).problems)


# ---------------------------------------------------------------- for real: bench run, verify, rerun


def test_save_model_keeps_the_models_source_not_its_path(tmp_path, monkeypatch):
    """--save-model of a file model: the checkpoint carries the file's text and sha256 (no path of this machine),
    and bench.run.checkpoint.load_model rebuilds the network from it where the file does not exist."""
    import numpy as np
    import torch

    from bench.data.identity import make_identity
    from bench.data.types import Dataset, Split
    from bench.run.checkpoint import save_model

    net_file = write_net(tmp_path / "src")
    r = recipes.load(str(write_recipe(tmp_path / "src" / "mine.yaml")))
    torch.manual_seed(0)
    net = build_model(r.model.arch, r.model.params, source=r.model.source)
    split = Split(np.zeros((10, 32, 32, 3), np.uint8), np.arange(10))
    ds = Dataset(split, split, make_identity("made-up", [str(i) for i in range(10)], split, split))
    path = save_model(tmp_path / "out" / "m.pt", net, r, {"final_acc": 0.1, "status": "missed"}, ds,
                      ["bench", "run", "mine"])
    ckpt = torch.load(path, weights_only=True)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert ckpt["arch"] == meta["arch"] == "net.py:net"
    assert ckpt["source"] == {"file": "net.py", "sha256": sha(net_file), "text": NET}
    assert meta["source"] == {"file": "net.py", "sha256": sha(net_file)}
    assert str(tmp_path) not in json.dumps({k: v for k, v in ckpt.items() if k != "state_dict"}) + json.dumps(meta)
    shutil.rmtree(tmp_path / "src")  # elsewhere: the file is gone
    monkeypatch.chdir(tmp_path / "out")
    from bench.run.checkpoint import load_model

    again = load_model(path)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(again.eval()(x), net.eval()(x))
    from bench.train.quality import load_judge

    assert torch.equal(load_judge(path).net(x), net.eval()(x))  # a judge of one's own loads the same way
    ckpt["source"]["text"] += "# edited\n"  # a text that is not what its sha256 says is refused
    torch.save(ckpt, tmp_path / "out" / "edited.pt")
    with pytest.raises(BenchError, match=r"edited\.pt: the model source net\.py it carries does not match its sha256"):
        load_model(tmp_path / "out" / "edited.pt")


@pytest.fixture(scope="module")
def jpeg_runs(tmp_path_factory, decoded_jpeg):
    """A file model and an import-path model, each through `bench run` on a subset of the shipped JPEG copy."""
    tmp = tmp_path_factory.mktemp("user-runs")
    write_net(tmp / "src")
    file_recipe = write_recipe(tmp / "src" / "mine.yaml", data=decoded_jpeg, train=1000, test=500, target=0.12)
    pkg = tmp / "pkgs" / "userpkg"
    write_net(pkg, "nets.py")
    (pkg / "__init__.py").write_text("")
    args = ["--results", str(tmp / "results.csv"), "--reports", str(tmp / "reports")]
    assert main(["run", str(file_recipe), *args]) == 0
    sys.path.insert(0, str(tmp / "pkgs"))
    try:
        assert main(["run", str(file_recipe), "--set", "model.arch=userpkg.nets:net", "--set", "name=imported",
                     *args]) == 0
    finally:
        sys.path.remove(str(tmp / "pkgs"))
    bundles = {p.name.split("-")[0]: p for p in (tmp / "reports").iterdir()}
    return tmp, file_recipe, bundles


@pytest.mark.slow
def test_file_and_import_path_models_race_through_bench_run_and_verify(jpeg_runs):
    from bench.core.results import read_table
    from bench.report import verify

    tmp, file_recipe, bundles = jpeg_runs
    df = read_table(tmp / "results.csv").set_index("recipe")
    assert list(df.loc[["mine", "imported"], "model"]) == ["net.py:net", "userpkg.nets:net"]
    assert set(df["status"]) <= {"reached", "missed"} and (df["best_acc"] > 0.12).all()
    assert df.loc["mine", "recipe_hash"] == recipes.load(str(file_recipe)).hash
    assert (df["flops_per_image_train"] > 0).all()  # FLOPs (and MFU, on a GPU) build through the resolver
    for name, bundle in bundles.items():
        assert verify.check(bundle).problems == [], name
        assert (bundle / "model" / "net.py" if name == "mine" else bundle / "model" / "nets.py").is_file()
    data = yaml.safe_load((bundles["imported"] / "recipe.yaml").read_text())
    assert data["model"]["arch"] == "userpkg.nets:net" and data["model"]["source"]["file"] == "nets.py"


@pytest.mark.slow
def test_rerun_builds_from_the_bundles_copy(jpeg_runs, capsys):
    tmp, file_recipe, bundles = jpeg_runs
    original = file_recipe.parent / "net.py"
    text = original.read_text()
    original.write_text("raise RuntimeError('the checkout's file, not the bundle's copy')\n")
    try:
        capsys.readouterr()
        main(["verify", str(bundles["mine"]), "--rerun"])
    finally:
        original.write_text(text)
    captured = capsys.readouterr()
    out = captured.out + captured.err
    stated = (bundles["mine"] / "recipe.yaml").read_text().splitlines()[0].rsplit("hash", 1)[1].strip()
    assert f"rerun: 1 new run(s) of mine [{stated}]" in out, out
    assert "new run 1: " in out, out


@pytest.mark.slow
def test_overhead_runs_a_file_model(tmp_path, tiny_images):
    write_net(tmp_path)
    r = write_recipe(tmp_path / "r.yaml", data=tiny_images, train=32, test=16)
    out = tmp_path / "overhead.json"
    assert main(["overhead", str(r), "--steps", "2", "--rounds", "1", "--json", str(out)]) == 0
    row = json.loads(out.read_text())
    assert row["recipe"] == "r" and row["bare_images_per_s"] > 0 and row["harness_images_per_s"] > 0


@pytest.mark.slow
def test_two_gloo_ranks_under_torchrun_import_the_same_file(tmp_path, jpeg_archive):
    from test_ddp import bench_cmd, env

    from bench.core.results import read_table
    from bench.report import verify

    write_net(tmp_path)  # cpu_quick's widths and scale fit this function's signature
    cmd = bench_cmd(tmp_path, jpeg_archive, "--set", "model.arch=net.py:net", "--set", "hardware.procs_per_node=2",
                    "--set", "data.batch_size=256", "--set", "data.train_subset=2000", "--set", "optim.epochs=2")
    two = subprocess.run(cmd, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=400)
    assert two.returncode == 0, two.stdout + two.stderr
    assert "re-launching through torchrun" in two.stdout
    df = read_table(tmp_path / "results.csv")
    assert len(df) == 1
    row = df.iloc[0]
    assert (row["world_size"], row["backend"], row["model"]) == (2, "gloo", "net.py:net")
    # the point is both ranks building the same file; two epochs on 2,000 images may sit at chance (0.1495 once)
    assert row["status"] == "missed" and row["epochs"] == 2 and 0 < row["best_acc"] < 1
    bundle = next((tmp_path / "reports").iterdir())
    assert verify.check(bundle).problems == [] and (bundle / "model" / "net.py").read_text() == NET


SWEEP_BASE = """
name: tiny_base
model: {{arch: net.py:net, params: {{widths: [8, 8]}}}}
data: {{source: {archive}, batch_size: 128, eval_batch_size: 256, train_subset: 512, test_subset: 256}}
optim: {{epochs: 1}}
precision: fp32
target: {{value: 0.05}}
hardware: {{device: cpu, threads: 1}}
"""


def _family(tmp_path, archive) -> Path:
    fam = tmp_path / "userfam"
    write_net(fam)
    (fam / "_base.yaml").write_text(SWEEP_BASE.format(archive=archive))
    (fam / "a.yaml").write_text("extends: _base\nname: tiny_a\n")
    return fam


@pytest.mark.slow
def test_sweep_runs_a_file_model_and_reruns_it_when_the_file_changes(tmp_path, jpeg_archive, capsys):
    from test_sweep import current_commit, sweep_args

    from bench.core.results import read_table
    from bench.studies import sweep

    fam = _family(tmp_path, jpeg_archive)
    commit = current_commit()
    assert sweep.run_sweep(sweep_args(tmp_path, fam)) == 0  # in a process of its own, from the pickled recipe
    df = read_table(tmp_path / "results.csv")
    assert list(df["model"]) == ["net.py:net"] and df.iloc[0]["status"] in ("reached", "missed")
    assert sweep.run_sweep(sweep_args(tmp_path, fam)) == 0
    if current_commit() != commit:
        pytest.skip("a commit landed during the test; the resumption check needs a fixed commit")
    assert ": skipped, 1 matching run" in capsys.readouterr().out
    (fam / "net.py").write_text(NET + "\n# edited: another recipe\n")
    assert sweep.run_sweep(sweep_args(tmp_path, fam)) == 0
    df = read_table(tmp_path / "results.csv")
    assert len(df) == 2 and df["recipe_hash"].nunique() == 2


@pytest.mark.slow
def test_slurm_sweep_jobs_find_the_model_file(slurm_cluster, tmp_path, jpeg_archive, monkeypatch, capsys):
    from test_cluster_sweep import ROOT, run, sweep_args

    from bench.core.results import read_table
    from bench.studies import cluster_sweep

    fam = _family(tmp_path, jpeg_archive)
    for key, value in slurm_cluster.env(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(cluster_sweep, "POLL_S", 0.5)
    monkeypatch.chdir(tmp_path)  # the jobs start here; the file is found from the recipe's own folder
    assert run(sweep_args(tmp_path, fam, "--slurm", "--wait")) == 0, capsys.readouterr().out
    df = read_table(tmp_path / "results.csv")
    assert list(df["model"]) == ["net.py:net"] and list(df["recipe"]) == ["tiny_a"]
    assert df.iloc[0]["recipe_hash"] == recipes.load(str(fam / "a.yaml")).hash


# ---------------------------------------------------------------- kind: gan with a pair of the user's own

GAN_PAIR = '''from bench.models.dcgan import dcgan


def pair(num_classes=10, **params):
    """A generator and critic pair of one's own (here: the DCGAN, whatever model.params say)."""
    return dcgan(num_classes, **params)
'''


def test_a_gan_recipe_takes_a_pair_of_ones_own_and_refuses_a_classifier(tmp_path):
    from bench.run import gan

    write_net(tmp_path)
    write_net(tmp_path, "pair.py", GAN_PAIR)
    r = recipes.load("wgan_cpu", [f"model.arch={tmp_path}/pair.py:pair", "model.params.nz=8"])
    assert gan.image_size(r) == 32  # wgan's model.params.image_size: the function has no default of its own
    assert gan.build_pair(r).generator.nz == 8
    classifier = recipes.from_dict({**r.to_dict(), "model": {"arch": f"{tmp_path}/net.py:net"}})
    with pytest.raises(BenchError, match=r"model\.arch: .*net\.py:net returned a Sequential without generator, "
                                         r"critic, generator\.nz, generator\.noise; kind: gan needs"):
        gan.build_pair(classifier)


@pytest.mark.slow
def test_a_gan_pair_of_ones_own_runs_and_verifies(tmp_path):
    from test_gan_run import TINY, make_images, make_judge

    from bench.core.results import read_table
    from bench.report import verify

    write_net(tmp_path, "pair.py", GAN_PAIR)
    images, judge = make_images(tmp_path / "images"), make_judge(tmp_path / "judge.pt")
    sets = [a for s in TINY + [f"gan.judge={judge}", f"model.arch={tmp_path}/pair.py:pair"] for a in ("--set", s)]
    assert main(["run", "wgan_cpu", "--data", str(images), "--results", str(tmp_path / "results.csv"),
                 "--reports", str(tmp_path / "reports"), *sets]) == 0
    row = read_table(tmp_path / "results.csv").iloc[0]
    assert row["model"] == "pair.py:pair" and row["metric"] == "fd_judge"
    bundle = next((tmp_path / "reports").iterdir())
    assert verify.check(bundle).problems == [] and (bundle / "model" / "pair.py").is_file()


# ---------------------------------------------------------------- issue #20: built-in parameter values

# (arch, field, a value its builder refuses, a fragment of what is allowed). Every parameter of every built-in
# arch appears at least once (test_every_built_in_parameter_has_a_refused_value).
BAD_VALUES = [
    ("wrn", "depth", 23, "6*N+4"), ("wrn", "depth", 4, "6*N+4"), ("wrn", "width", 0, "an integer >= 1"),
    ("wrn", "start_nf", True, "an integer >= 1"), ("wrn", "form", "cutout", "one of entry, entry_date, fastai07"),
    ("wrn", "drop", 1.0, "a number in [0, 1)"), ("wrn", "branch_scale", "big", "a number, or null"),
    ("darknet", "layers", [1, -1], "integers >= 0"), ("darknet", "layers", "1,2", "a list of"),
    ("darknet", "nf", 2.5, "an integer >= 1"), ("darknet", "funnel", 0, "a number > 0"),
    ("darknet", "funnel", 0.01, "at least 0.015625 with nf=32"), ("darknet", "kernel_sizes", [1, 2], "odd integers"),
    ("resnet9", "widths", [16, 32, 64], "a list of 4 integers >= 1"), ("resnet9", "scale", 0, "a number > 0"),
    ("resnet9", "scale", float("inf"), "a number > 0"),
    ("airnet", "widths", [], "a list of at least 1 integers"), ("airnet", "whiten_kernel", 0, "an integer >= 1"),
    ("airnet", "act", "tanh", "one of gelu, silu"), ("airnet", "act", ["gelu"], "one of gelu, silu"),
    ("airnet", "bn_momentum", 1.0, "a number in [0, 1)"), ("airnet", "bn_eps", 0, "a number > 0"),
    ("airnet", "head_scale", -1, "a number > 0 or null"), ("airnet", "whiten_images", 0, "an integer >= 1"),
    ("dcgan", "image_size", 48, "a power of two >= 16"), ("dcgan", "image_size", 8, "an integer >= 16"),
    ("dcgan", "nz", 0, "an integer >= 1"), ("dcgan", "ngf", 1, "an integer >= 2"), ("dcgan", "ndf", 0, "an integer >= 1"),
    ("dcgan", "n_extra_layers", -1, "an integer >= 0"), ("dcgan", "critic_norm", "spectral", "batch | layer | none"),
    ("dcgan", "block_order", "bn_first", "conv_act_norm (the lesson's blocks)"), ("dcgan", "init", "xavier", "torch_0.3"),
]


def _bad_recipe(tmp_path: Path, arch: str, params: dict) -> Path:
    p = tmp_path / "bad.yaml"
    data = ({"extends": "wgan_cpu", "model": {"params": params}} if arch in GAN_ARCHITECTURES
            else {"model": {"arch": arch, "params": params}})
    p.write_text(yaml.safe_dump(data))
    return p


def test_every_built_in_parameter_has_a_refused_value():
    covered = {(arch, field) for arch, field, _, _ in BAD_VALUES}
    every = {(arch, field) for arch in [*ARCHITECTURES, *GAN_ARCHITECTURES] for field in model_params(arch)}
    assert covered == every, sorted(every - covered)


@pytest.mark.parametrize("arch, field, value, allowed", BAD_VALUES,
                         ids=[f"{a}.{f}={v!r}" for a, f, v, _ in BAD_VALUES])
def test_validate_refuses_what_the_builder_refuses_in_its_words(arch, field, value, allowed, tmp_path, capsys):
    module = importlib.import_module(f"bench.models.{arch}")
    with pytest.raises(BenchError) as built:
        getattr(module, arch)(**{field: value})  # the builder itself, not through the registry
    message = str(built.value)
    assert message.startswith(f"model.params.{field} must be") and allowed in message and repr(value) in message
    err = validate_err(capsys, _bad_recipe(tmp_path, arch, {field: value}))
    assert f"  {message}\n" in err, err  # the same words, before any data is loaded
    assert "1 problem)" in err


def test_validate_lists_every_bad_value_at_once_and_imports_no_torch(tmp_path, capsys):
    from test_cli import imported

    p = _bad_recipe(tmp_path, "wrn", {"depth": 23, "width": 0, "drop": 2})
    err = validate_err(capsys, p)
    assert "(3 problems)" in err and "model.params.depth" in err and "model.params.width" in err
    assert "model.params.drop" in err
    assert imported("validate", str(p)) == set()


def test_the_builders_choices_are_the_checks_choices():
    from bench.models import airnet, checks, dcgan, wrn

    assert tuple(airnet.ACTIVATIONS) == checks.AIRNET_ACTIVATIONS and wrn.FORMS == checks.WRN_FORMS
    assert (dcgan.NORMS, dcgan.BLOCK_ORDERS, dcgan.INITS) == (checks.DCGAN_NORMS, checks.DCGAN_BLOCK_ORDERS,
                                                              checks.DCGAN_INITS)
    assert set(checks.RULES) == set(ARCHITECTURES) | set(GAN_ARCHITECTURES)
