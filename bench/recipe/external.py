"""The `external` section of a recipe (kind: external): its checks, and the code it depends on.

`problems(recipe)` is what bench.recipe.validation adds for this kind (or for a stray external section on another
kind). `with_code(recipe)` fills `external.code_sha256` from the files `external.code` names, so that the recipe
hash (and every row and bundle) changes with the script; a hash already given in the recipe pins the file and a
file that differs is refused."""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from pathlib import Path
from typing import Optional

from bench.core.digest import file_sha256
from bench.core.errors import BenchError
from bench.core.paths import data_base_dir
from bench.core.referee import check_pattern
from bench.recipe.schema import External, Recipe

PYTHON = "{python}"  # in a command: the interpreter running bench


def problems(r: Recipe) -> list[str]:
    ext = r.external
    if r.kind != "external":
        return [] if ext == External() else [f"external: set, but kind is {r.kind!r}; allowed: kind: external, "
                                             f"or no external section"]
    out = []
    if not ext.command or not all(isinstance(a, str) and a for a in ext.command):
        out.append(f"external.command: {ext.command!r}; allowed: a non-empty list of non-empty strings, e.g. "
                   f"['{PYTHON}', 'train.py', '--epochs', '8']")
    out += [f"external.parse: {p}" for p in check_pattern(ext.parse)]
    for name in ("run_start", "run_end"):
        pattern = getattr(ext, name)
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as e:
                out.append(f"external.{name}: {pattern!r} is not a valid regular expression ({e})")
    if not ext.metric or not ext.metric.replace("_", "").isalnum():
        out.append(f"external.metric: {ext.metric!r}; allowed: an MLLOG key such as eval_accuracy")
    if not all(isinstance(c, str) and c for c in ext.code):
        out.append(f"external.code: {ext.code!r}; allowed: a list of file paths")
    bad = {k: v for k, v in ext.code_sha256.items()
           if not (isinstance(v, str) and len(v) == 64 and all(ch in "0123456789abcdef" for ch in v))}
    if bad:
        out.append(f"external.code_sha256: {bad!r}; allowed: file path -> 64 lowercase hex digits")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in ext.env.items()):
        out.append(f"external.env: {ext.env!r}; allowed: a mapping of names to strings")
    if r.target.metric != "test_acc":
        out.append(f"target.metric: {r.target.metric!r}; kind: external races an accuracy: allowed: test_acc "
                   f"(a fraction; the command may print percent, see external.parse)")
    return out


def workdir(r: Recipe) -> Path:
    """Where the command runs: external.cwd relative to the checkout (as data paths are), or here."""
    cwd = r.external.cwd
    if cwd is None:
        return Path.cwd()
    p = Path(os.path.expanduser(cwd))
    p = p if p.is_absolute() else data_base_dir() / p
    if not p.is_dir():
        raise BenchError(f"external.cwd: {cwd!r} is not a folder (looked at {p})")
    return p


def with_code(r: Recipe, cwd: Optional[Path] = None) -> Recipe:
    """The recipe with external.code_sha256 filled in from the files (paths relative to the command's folder)."""
    if r.kind != "external" or not r.external.code:
        return r
    cwd = cwd or workdir(r)
    hashes = {}
    for name in r.external.code:
        path = Path(name) if Path(name).is_absolute() else cwd / name
        try:
            hashes[name] = file_sha256(path)
        except OSError as e:
            raise BenchError(f"external.code: {name!r}: cannot read it ({e.strerror}; looked at {path})") from None
    for name, pinned in r.external.code_sha256.items():
        if name in hashes and hashes[name] != pinned:
            raise BenchError(f"external.code_sha256: {name!r} is pinned to {pinned[:12]}... but the file hashes to "
                             f"{hashes[name][:12]}...: the code changed; update the pin or restore the file")
    merged = {**r.external.code_sha256, **hashes}
    return dataclasses.replace(r, external=dataclasses.replace(r.external, code_sha256=merged))


def combined_sha256(hashes: dict) -> Optional[str]:
    """One hash over every code file (path and content hash), for a results row."""
    if not hashes:
        return None
    blob = "\n".join(f"{k}\t{v}" for k, v in sorted(hashes.items()))
    return hashlib.sha256(blob.encode()).hexdigest()
