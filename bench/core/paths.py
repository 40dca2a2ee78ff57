"""Where the harness finds its own files: the checkout it runs from, or the copies installed with it.

A checkout (or `pip install -e .`) reads recipes/ and data/ at the repository root. A plain
`pip install .` has no checkout: the same folders travel inside the package as `bench._recipes` and
`bench._data` (pyproject.toml maps them), and BENCH_RECIPES names another recipes folder outright."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = PACKAGE_DIR.parent


def _shipped(folder: str, package: str) -> Path:
    in_checkout = REPO_ROOT / folder
    if in_checkout.is_dir():
        return in_checkout
    from importlib.util import find_spec

    spec = find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else in_checkout


def recipes_dir() -> Path:
    """BENCH_RECIPES if set, else the checkout's recipes/, else the installed copy."""
    env = os.environ.get("BENCH_RECIPES")
    return Path(env).expanduser() if env else _shipped("recipes", "bench._recipes")


def data_base_dir() -> Path:
    """Relative data paths in recipes (data/...) are written against this folder."""
    shipped = _shipped("data", "bench._data")
    return shipped.parent if shipped.name == "data" else REPO_ROOT
