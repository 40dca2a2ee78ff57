"""Where the harness finds its own files: the recipes/ and data/ folders of the checkout it runs from.

A plain `pip install .` has no checkout beside the package: BENCH_RECIPES then names a recipes folder (a
clone's recipes/, say), and relative data paths in recipes (data/...) are read next to that folder.

Also the checks every command makes of the paths it is given (check_output, check_input): see below."""
from __future__ import annotations

import os
from pathlib import Path

from bench.core.errors import BenchError

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


# ------------------------------------------------------------------------------------------ path checks
# Every path a command takes is checked by one of these two before any work starts (data loading, training,
# timing), so a bad one ends in one `bench: error:` line that names the option, the path, what is wrong and
# the fix, instead of a traceback hours later. Permissions are asked of os.access (as root it always says yes).


def _label(option: str, path: Path) -> str:
    return f"{option} {path}" if option else str(path)


def check_output(option: str, path: str | os.PathLike, *, folder: bool = False, what: str | None = None,
                 example: str | None = None, replaced: bool = False) -> Path:
    """Refuse an output path that could not be written: a file to be created (folder=False) or a folder to be
    created or filled (folder=True). Its nearest existing ancestor must be a writable folder (so no ancestor is
    a regular file); an existing path must be of the right kind and writable. Creates nothing.

    `what` names it in the fix ("CSV file", "folder"); `example` is a file name to suggest when a file path
    names a folder (--results results/ -> e.g. --results results/results.csv). A folder `replaced` as a whole
    (built beside it, then renamed into place: bench site --out) needs a writable parent, not a writable self."""
    path = Path(path)
    what = what or ("folder" if folder else "file")
    label, where = _label(option, path), "under" if folder else "in"
    if path.exists():
        if not folder and path.is_dir():
            eg = f", e.g. {_label(option, path / example)}" if example else ""
            raise BenchError(f"{label}: is a directory; name a {what} in it{eg}")
        if folder and not path.is_dir():
            raise BenchError(f"{label}: is a file, not a folder; name a folder (created if missing), or move "
                             f"the file away")
    parent = path if folder and path.is_dir() and not replaced else path.parent
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise BenchError(f"{label}: lies under a file: cannot create or write it in {parent} (not a folder); "
                         f"name a {what} {where} a folder you can write")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BenchError(f"{label}: not writable: cannot create or write it in {parent} (no write permission); "
                         f"fix the folder's permissions or name a {what} {where} a folder you can write")
    if path.exists() and not folder and not os.access(path, os.W_OK):
        raise BenchError(f"{label}: not writable (no write permission on the file); fix its permissions or name "
                         f"another {what}")
    return path


def check_input(option: str, path: str | os.PathLike, *, folder: bool = False, what: str | None = None,
                fix: str | None = None) -> Path:
    """Refuse an input path that could not be read: it must exist, be a file (folder=False) or a folder
    (folder=True), and be readable. `fix` is what to do when it is missing (default: name an existing one)."""
    path = Path(path)
    what = what or ("folder" if folder else "file")
    label = _label(option, path)
    if not path.exists():
        raise BenchError(f"{label}: does not exist; {fix or f'name an existing {what}'}")
    if folder and not path.is_dir():
        raise BenchError(f"{label}: is a file, not a folder; name a {what}")
    if not folder and path.is_dir():
        raise BenchError(f"{label}: is a folder, not a file; name a {what}")
    if not os.access(path, os.R_OK | (os.X_OK if folder else 0)):
        raise BenchError(f"{label}: not readable (no read permission); fix its permissions or name another {what}")
    return path
