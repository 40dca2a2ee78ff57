"""Where the harness finds its own files: the recipes/ and data/ folders of the checkout it runs from.

A plain `pip install .` has no checkout beside the package: BENCH_RECIPES then names a recipes folder (a
clone's recipes/, say), and relative data paths in recipes (data/...) are read next to that folder."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = PACKAGE_DIR.parent


def recipes_dir() -> Path:
    """BENCH_RECIPES if set, else the checkout's recipes/ (which may not exist: see missing_recipes_hint)."""
    env = os.environ.get("BENCH_RECIPES")
    return Path(env).expanduser() if env else REPO_ROOT / "recipes"


def data_base_dir() -> Path:
    """Relative data paths in recipes (data/...) are written against the folder that holds recipes/."""
    return recipes_dir().parent


def missing_recipes_hint() -> str:
    """Why no recipe can be found by name, and the fix; empty when the recipes folder is there."""
    folder = recipes_dir()
    if folder.is_dir():
        return ""
    if os.environ.get("BENCH_RECIPES"):
        return f"BENCH_RECIPES={folder} is not a folder: point it at a recipes folder"
    return (f"no recipes folder at {folder}: this bench is installed without its checkout; set BENCH_RECIPES to "
            f"a recipes folder (e.g. the recipes/ of a clone) or name a recipe file by its path")
