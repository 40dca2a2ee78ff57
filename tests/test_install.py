"""Installed without -e (a plain `pip install .`, no checkout beside the package): recipes are found through
BENCH_RECIPES, relative data paths next to that folder, and without it the error says what to set."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(REPO)], check=True, capture_output=True, timeout=300,
                   cwd=tmp_path_factory.mktemp("build"))
    assert (target / "bench" / "cli" / "__init__.py").is_file() and (target / "bench" / "core" / "prices.yaml").is_file()
    assert (target / "bench" / "data" / "targets.yaml").is_file()
    return target


def bench(installed: Path, cwd: Path, *args, **env):
    clean = {k: v for k, v in os.environ.items() if k not in ("BENCH_RECIPES", "PYTHONPATH")}
    # -I would drop PYTHONPATH; -P keeps the working directory off sys.path, so only the install is seen
    return subprocess.run([sys.executable, "-P", "-m", "bench", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**clean, "PYTHONPATH": str(installed), **env})


def test_installed_package_is_not_the_checkout(installed, tmp_path):
    out = subprocess.run([sys.executable, "-P", "-c", "import bench; print(bench.__file__)"], cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(installed)}, capture_output=True, text=True)
    assert out.stdout.strip().startswith(str(installed)), out


def test_recipes_by_name_through_bench_recipes(installed, tmp_path):
    out = bench(installed, tmp_path, "show", "cpu_quick", BENCH_RECIPES=str(REPO / "recipes"))
    assert out.returncode == 0, out.stderr
    assert "source: data/cifar10-jpeg-q75.tar.xz" in out.stdout
    out = bench(installed, tmp_path, "validate", str(REPO / "recipes" / "wrn22_8gpu.yaml"))
    assert out.returncode == 0, out.stderr  # extends: wrn22 is found beside the file


def test_without_bench_recipes_the_error_names_it(installed, tmp_path):
    out = bench(installed, tmp_path, "show", "cpu_quick")
    assert out.returncode == 2 and "BENCH_RECIPES" in out.stderr and "Traceback" not in out.stderr


def test_relative_data_paths_resolve_next_to_the_recipes_folder(installed, tmp_path):
    code = ("from bench.core.paths import data_base_dir; from bench.data.sources import resolve_path; "
            "print(resolve_path('data/cifar10-jpeg-q75.tar.xz', data_base_dir()))")
    out = subprocess.run([sys.executable, "-P", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(installed), "BENCH_RECIPES": str(REPO / "recipes")})
    assert out.stdout.strip() == str(REPO / "data" / "cifar10-jpeg-q75.tar.xz"), out.stderr
