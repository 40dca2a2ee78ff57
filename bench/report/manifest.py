"""MANIFEST: `<sha256>  <relative/path>` for every file in a bundle but itself, sorted by path.

The files are split in two: *raw* files are what a run wrote (the evidence) and *derived* files are what
bench.report builds from them. `bench report` may rebuild derived files, but only while every raw file
still matches the MANIFEST; `bench verify` checks all of them.
"""
from __future__ import annotations

import re
from pathlib import Path

from bench.core.digest import file_sha256 as sha256
from bench.core.results import atomic_write

NAME = "MANIFEST"
PLOTS = ("plots/accuracy_vs_time.png", "plots/time_to_target.png", "plots/telemetry.png")
GAN_PLOTS = ("plots/quality_vs_time.png", "plots/wasserstein.png", "plots/is_judge_vs_time.png")  # kind: gan
DERIVED_TOP = ("summary.json", "report.md", *PLOTS, *GAN_PLOTS)
DERIVED_PER_RUN = ("dawnbench.tsv", "dawnbench.json")
_LINE = re.compile(r"^([0-9a-f]{64})  (\S.*)$")


def is_derived(rel: str) -> bool:
    # Exact names only: an unknown file under plots/ must count as raw, or a report rebuild would
    # quietly vouch for it in the new MANIFEST.
    if rel in DERIVED_TOP:
        return True
    parts = rel.split("/")
    return len(parts) == 3 and parts[0] == "runs" and parts[2] in DERIVED_PER_RUN


def bundle_files(bundle: Path) -> list[str]:
    """Relative POSIX paths of every file under `bundle` except the MANIFEST, sorted."""
    return sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*")
                  if p.is_file() and p.relative_to(bundle).as_posix() != NAME)


def current_hashes(bundle: Path) -> dict[str, str]:
    return {rel: sha256(bundle / rel) for rel in bundle_files(bundle)}


def render(hashes: dict[str, str]) -> str:
    return "".join(f"{h}  {rel}\n" for rel, h in sorted(hashes.items()))


def write(bundle: Path) -> None:
    text = render(current_hashes(bundle))
    atomic_write(bundle / NAME, lambda f: f.write(text))


def read(bundle: Path) -> tuple[dict[str, str], list[str]]:
    """(listed hashes, problems). Problems name the MANIFEST line; a missing MANIFEST is one problem."""
    path = bundle / NAME
    if not path.is_file():
        return {}, [f"{NAME}: missing, so nothing in the bundle can be checked against it"]
    listed: dict[str, str] = {}
    problems = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        return {}, [f"{NAME}: cannot read it ({e})"]
    for i, line in enumerate(lines, start=1):
        m = _LINE.match(line)
        if not m:
            problems.append(f"{NAME}:{i}: not a '<sha256>  <path>' line: {line[:80]!r}")
        elif m.group(2) in listed:
            problems.append(f"{NAME}:{i}: {m.group(2)} is listed twice")
        else:
            listed[m.group(2)] = m.group(1)
    return listed, problems


def check(bundle: Path, raw_only: bool = False) -> list[str]:
    """Every difference between the MANIFEST and the files, one line each, naming the file."""
    listed, problems = read(bundle)
    if problems and not listed:
        return problems
    present = bundle_files(bundle)
    keep = (lambda rel: not is_derived(rel)) if raw_only else (lambda rel: True)
    for rel in sorted(set(listed) - set(present)):
        if keep(rel):
            problems.append(f"{rel}: missing (listed in {NAME}, not in the bundle)")
    for rel in present:
        if not keep(rel):
            continue
        if rel not in listed:
            problems.append(f"{rel}: extra file (not listed in {NAME})")
        elif sha256(bundle / rel) != listed[rel]:
            problems.append(f"{rel}: changed (its sha256 differs from the one in {NAME})")
    return problems
