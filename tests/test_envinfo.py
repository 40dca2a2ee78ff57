import json
import subprocess
import sys

import pytest

from bench.system import envinfo

KEYS = {"host", "os", "python", "torch", "torchvision", "cuda", "cudnn", "nccl", "dali", "gpus", "gpu_count",
        "nvml_error", "cpu", "ram_gb", "git", "argv", "timestamp"}


@pytest.fixture
def no_nvml(monkeypatch):
    pynvml = pytest.importorskip("pynvml")

    def fail():
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    monkeypatch.setattr(pynvml, "nvmlInit", fail)


def test_capture_keys_and_no_nvml(no_nvml):
    info = envinfo.capture("cpu")
    assert KEYS <= info.keys()
    assert info["gpus"] == [] and info["gpu_count"] == 0
    assert "Not Found" in info["nvml_error"]
    assert info["device"] == "cpu" and info["cpu"]["logical_cores"] >= 1 and info["ram_gb"] > 0
    assert set(info["git"]) == {"commit", "dirty", "diff_sha256"}
    json.dumps(info)


def test_nvml_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    gpus, why = envinfo._gpus()
    assert gpus == [] and "nvidia-ml-py" in why


def _git(repo, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=repo,
                   check=True, capture_output=True)


def test_git_state_clean_then_dirty(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    _git(tmp_path, "add", "a.py")
    _git(tmp_path, "commit", "-q", "-m", "init")
    clean = envinfo.git_state(tmp_path)
    assert len(clean["commit"]) == 40 and clean["dirty"] is False

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "results.csv").write_text("run_id\n")
    assert envinfo.git_state(tmp_path)["dirty"] is False  # the benchmark's own output

    (tmp_path / "a.py").write_text("x = 2\n")
    edited = envinfo.git_state(tmp_path)
    assert edited["dirty"] is True and edited["commit"] == clean["commit"]
    assert edited["diff_sha256"] != clean["diff_sha256"]
    (tmp_path / "a.py").write_text("x = 3\n")
    assert envinfo.git_state(tmp_path)["diff_sha256"] != edited["diff_sha256"]


def test_git_state_outside_repo(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert envinfo.git_state(tmp_path) == {"commit": None, "dirty": None, "diff_sha256": None}


def test_bench_env_json(tmp_path, no_nvml, capsys):
    from bench.cli import build_parser

    parser = build_parser()
    out = tmp_path / "env.json"
    args = parser.parse_args(["env", "--json", str(out)])
    assert args.func(args) == 0
    assert KEYS <= json.loads(out.read_text()).keys()

    args = parser.parse_args(["env"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "nvml_error: NVMLError" in text and "\n  logical_cores: " in text
