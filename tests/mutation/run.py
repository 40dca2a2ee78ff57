"""`make mutation`: mutation testing with mutmut over the modules where a silent change would falsify a
result (the clock, the fit loop, the optimiser and schedules, the results table, statistics, the report
summary and verify, augmentation and sharding). Not part of `make test` or CI: it takes over an hour on 2 cores.

Each module gets a run of its own, in build/mutation/<module>/, a fresh copy of the working tree whose
pyproject.toml names that module alone and the fast tests that cover it (mutmut then runs, for each mutant,
only the tests that call the mutated function). The killed/survived counts land in
build/mutation/<module>/counts.json and, for all modules run so far, in build/mutation/scores.md.

    python tests/mutation/run.py [--modules clock,stats] [--jobs 2]
    make mutation [MUTATION_MODULES=clock,stats] [MUTATION_JOBS=2]

Read a survivor with `cd build/mutation/<module> && mutmut show <mutant name>`; the names are listed in
build/mutation/<module>/results.txt.
"""
from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAST = ["-m", "not slow"]

# module -> the test files that exercise it (mutmut narrows these down per mutated function)
MODULES = {
    "clock": ("bench/core/clock.py", ["tests/test_timing.py", "tests/test_train.py"]),
    "loop": ("bench/train/loop.py", ["tests/test_train.py", "tests/test_timing.py", "tests/test_optim.py"]),
    "optim": ("bench/train/optim.py", ["tests/test_optim.py"]),
    "results": ("bench/core/results.py", ["tests/test_results.py"]),
    "stats": ("bench/core/stats.py", ["tests/test_stats.py"]),
    "summary": ("bench/report/summary.py", ["tests/test_summary.py", "tests/test_verify.py", "tests/test_report.py"]),
    "verify": ("bench/report/verify.py", ["tests/test_verify.py", "tests/test_report.py"]),
    "augment": ("bench/data/augment.py", ["tests/test_augment.py", "tests/test_loaders.py"]),
    "sharding": ("bench/data/sharding.py", ["tests/test_loaders.py"]),
}
COPY = ["bench", "tests", "recipes", "pyproject.toml"]  # what the fast tests read (no data: they need none)


def config(module: str, tests: list[str]) -> str:
    lines = [
        "", "[tool.mutmut]",
        'source_paths = ["bench"]',
        f'only_mutate = ["{module}"]',
        'also_copy = ["recipes"]',
        f"pytest_add_cli_args = {json.dumps(FAST + ['-p', 'no:cacheprovider'])}",
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}",
        # torch is not fork-safe once it has run: mutants fork from a server that only imported the tests
        'process_isolation = "forkserver"',
        # generous: a loaded 2-core machine must not turn slow tests into "timeouts"; a mutant that loops
        # forever still ends up here
        "timeout_multiplier = 10.0",
        "timeout_constant = 30.0",
    ]
    return "\n".join(lines) + "\n"


def prepare(work: Path, module: str, tests: list[str]) -> None:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for name in COPY:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, work / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, work / name)
    with open(work / "pyproject.toml", "a", encoding="utf-8") as f:
        f.write(config(module, tests))


def mutmut() -> list[str]:
    exe = Path(sys.executable).with_name("mutmut")
    if not exe.exists():
        sys.exit(f"mutmut is not installed next to {sys.executable}: pip install -e '.[mutation]'")
    return [str(exe)]


def run_module(name: str, out: Path, jobs: int) -> dict:
    module, tests = MODULES[name]
    tests = [t for t in tests if (REPO / t).exists()]  # an older checkout may lack some (for "before" scores)
    work = out / name
    prepare(work, module, tests)
    # PYTHONPATH must not point at a checkout: the tests have to import mutmut's mutated copy (mutants/).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    started = datetime.datetime.now()
    with open(work / "run.log", "w", encoding="utf-8") as log:
        code = subprocess.run([*mutmut(), "run", "--max-children", str(jobs)], cwd=work, env=env, stdout=log,
                              stderr=subprocess.STDOUT).returncode
    minutes = (datetime.datetime.now() - started).total_seconds() / 60
    listing = subprocess.run([*mutmut(), "results", "--all", "true"], cwd=work, env=env, capture_output=True,
                             text=True).stdout
    (work / "results.txt").write_text(listing, encoding="utf-8")
    counts = collections.Counter(line.rsplit(": ", 1)[1].strip() for line in listing.splitlines() if ": " in line)
    result = {"module": module, "tests": tests, "exit_code": code, "minutes": round(minutes, 1),
              "counts": dict(sorted(counts.items())), "date": started.date().isoformat(), "host": platform.node()}
    (work / "counts.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def score_line(r: dict) -> str:
    c = r["counts"]
    killed, survived = c.get("killed", 0), c.get("survived", 0)
    score = f"{killed / (killed + survived):.0%}" if killed + survived else "-"
    other = {k: v for k, v in c.items() if k not in ("killed", "survived")}
    rest = ", ".join(f"{v} {k}" for k, v in other.items()) or "-"
    return f"| `{r['module']}` | {sum(c.values())} | {killed} | {survived} | {rest} | {score} | {r['minutes']} |"


def write_scores(out: Path) -> Path:
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("*/counts.json"))]
    text = ["| module | mutants | killed | survived | other | killed / (killed + survived) | minutes |",
            "|---|---:|---:|---:|---|---:|---:|", *map(score_line, rows)]
    path = out / "scores.md"
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--modules", default=",".join(MODULES), help=f"comma-separated, from: {', '.join(MODULES)}")
    p.add_argument("--jobs", type=int, default=2, help="mutants tested at once (default 2)")
    p.add_argument("--out", type=Path, default=REPO / "build" / "mutation")
    args = p.parse_args(argv)
    names = [m.strip() for m in args.modules.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODULES]
    if unknown:
        p.error(f"unknown module(s) {', '.join(unknown)}; choose from {', '.join(MODULES)}")
    for name in names:
        print(f"mutmut: {MODULES[name][0]} with {' '.join(MODULES[name][1])} ...", flush=True)
        r = run_module(name, args.out, args.jobs)
        print(f"  {r['counts']} in {r['minutes']} min (log: {args.out / name / 'run.log'})", flush=True)
    print(f"scores: {write_scores(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
