"""`bench sweep`: every recipe of a family, run to its target, resumably; then the comparison.

A recipe is done when the results table already holds enough runs (any status but aborted) that measured
the same thing: same resolved recipe (hash, --set included), same code (git commit), same data (content
fingerprint) and same device. A sweep cut short is therefore finished by running it again, and a sweep
after a code change, on other data or on another machine runs everything anew.
"""
from __future__ import annotations

import multiprocessing
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from bench.core.errors import BenchError, Terminated



@dataclass
class Planned:
    path: Path
    recipe: object  # bench.recipe.Recipe
    fingerprint: str
    done: int  # matching runs already in the table
    todo: int  # runs this sweep will add; their seeds continue after the `done` ones


@dataclass(frozen=True)
class Identity:
    """What must match for an earlier run to count for this sweep (besides the recipe hash)."""
    git_commit: Optional[str]
    device_name: str


def _missing(value) -> bool:
    import pandas as pd

    return value is None or (not isinstance(value, (list, tuple, dict)) and bool(pd.isna(value)))


def _text(value) -> str:
    # Missing values read back as NA, None or NaN: all mean "unknown" and must compare equal to each other.
    return "" if _missing(value) else str(value)


def matching_rows(df, recipe_hash: str, fingerprint: str, ident: Identity):
    """Boolean mask of the table rows that count as runs of this recipe in this sweep."""
    keys = {"recipe_hash": recipe_hash, "dataset_fingerprint": fingerprint,
            "git_commit": ident.git_commit, "device_name": ident.device_name}
    mask = df["status"].map(_text) != "aborted"
    for column, want in keys.items():
        mask &= df[column].map(_text) == _text(want)
    return mask


def _fingerprints(recipes, data: Optional[str], data_dir: Optional[Path]) -> dict[str, str]:
    """Content fingerprint per data source. Loading is what tells it; decoded data sets are cached, so the
    runs that follow load them again cheaply."""
    from bench.core.paths import data_base_dir
    from bench.data.sources import load_dataset

    out: dict[str, str] = {}
    for r in recipes:
        if r.kind == "external":  # the command loads its own data: its rows carry no fingerprint
            continue
        source = data or r.data.source
        if source not in out:
            out[source] = load_dataset(source, data_dir=data_dir, base_dir=data_base_dir()).identity.fingerprint
    return out


def make_plan(files: list[Path], overrides: list[str], runs: Optional[int], force: bool, results_path: Path,
              data: Optional[str], data_dir: Optional[Path], ident: Identity) -> list[Planned]:
    from bench.system import dist
    from bench.system import machine
    from bench import recipe as recipes
    from bench.core.results import read_table

    from bench.recipe.external import with_code  # kind: external: the script's sha256 is part of the hash

    loaded = [with_code(recipes.load(f, overrides)) for f in files]
    names = [r.name for r in loaded]
    twins = sorted({n for n in names if names.count(n) > 1})
    if twins:
        raise BenchError(f"recipes {', '.join(twins)} appear twice in the sweep (same name in several files); "
                         f"give each file its own name: so the comparison can tell them apart")
    mach, launcher = machine.detect_machine(), dist.detect().launcher
    problems = []
    for f, r in zip(files, loaded):
        try:
            machine.check(r, mach)
        except BenchError as exc:
            problems.append(f"{f}: {exc}")
        if r.world_size > 1 and launcher == "none":
            problems.append(f"{f}: {r.world_size} processes: run it with `bench run` (which launches them), "
                            f"or start the sweep under torchrun")
    if problems:  # before anything runs: a sweep that fails at recipe 7 of 9 wastes hours
        raise BenchError("cannot sweep on this machine:\n  " + "\n  ".join(problems))
    prints = _fingerprints(loaded, data, data_dir)
    df = read_table(results_path) if Path(results_path).exists() else None
    plan = []
    for f, r in zip(files, loaded):
        want = runs if runs is not None else r.runs
        fp = prints.get(data or r.data.source) if r.kind != "external" else None
        done = int(matching_rows(df, r.hash, fp, ident).sum()) if df is not None and len(df) else 0
        todo = want if force else max(0, want - done)
        plan.append(Planned(f, r, fp, done, todo))
    return plan


def _duration(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _tagged(tag: str) -> Callable[[str], None]:
    return lambda text: print("\n".join(f"{tag}  {line}" for line in str(text).splitlines()), flush=True)


def _child(recipe, kwargs: dict, tag: str) -> None:
    from bench.run.runner import run_recipe

    try:
        run_recipe(recipe, say=_tagged(tag), **kwargs)
    except BaseException as exc:  # run_recipe has recorded the aborted row; the parent wants a status
        print(f"{tag}  failed: {type(exc).__name__}: {exc}", flush=True)
        sys.exit(130 if isinstance(exc, KeyboardInterrupt) else 128 + exc.signum if isinstance(exc, Terminated) else 1)


def _raise_terminated(signum, frame):
    raise Terminated(signum)


def run_in_fresh_process(recipe, tag: str, **kwargs) -> None:
    """bench.run.runner.run_recipe in a process of its own, as `bench run` would be.

    run_recipe times init from its process's start, so a second recipe in the same process would be
    charged for the first one's whole run (init, wall, device-hours, cost). A process per recipe also
    returns all memory and GPU state between recipes, and a crash of one recipe ends only that recipe."""
    proc = multiprocessing.get_context("spawn").Process(target=_child, args=(recipe, kwargs, tag))
    # Without a handler SIGTERM (`kill`, or a job script forwarding SLURM's) would end this process alone and
    # leave the child training, unrecorded. Raised here, it reaches the `finally` that passes it on.
    old = signal.signal(signal.SIGTERM, _raise_terminated)
    proc.start()
    try:
        proc.join()
    finally:
        if proc.is_alive():  # we were interrupted: the child records its run as aborted on SIGTERM
            proc.terminate()
            proc.join()
        signal.signal(signal.SIGTERM, old)
    if proc.exitcode == 128 + signal.SIGTERM:  # the run was told to stop, so is the sweep
        raise Terminated(signal.SIGTERM)
    if proc.exitcode != 0:
        raise RuntimeError(f"{recipe.name}: run process exited with code {proc.exitcode}")


def sweep(plan: list[Planned], *, results_path: Path, reports_dir: Optional[Path], data: Optional[str],
          data_dir: Optional[Path], say: Callable[[str], None] = print, run: Callable = run_in_fresh_process
          ) -> list[tuple[str, str]]:
    """Run what the plan says; returns (recipe, error) for recipes whose runs failed."""
    failures: list[tuple[str, str]] = []
    per_run_s: list[float] = []  # mean seconds per run of each finished recipe
    start = time.perf_counter()
    n = len(plan)
    for i, p in enumerate(plan, 1):
        tag = f"[{i}/{n}] {p.recipe.name}"
        if p.todo == 0:
            say(f"{tag}: skipped, {p.done} matching run{'s' * (p.done != 1)} already in {results_path}")
            continue
        left = sum(q.todo for q in plan[i - 1:])
        eta = (f", about {_duration(sum(per_run_s) / len(per_run_s) * left)} left"
               if per_run_s else "")
        say(f"{tag}: {p.todo} run{'s' * (p.todo != 1)} (elapsed {_duration(time.perf_counter() - start)}{eta})")
        t0 = time.perf_counter()
        try:
            run(p.recipe, tag, data=data, data_dir=data_dir, results_path=results_path, runs=p.todo,
                reports_dir=reports_dir, first_run=p.done)
        except Exception as exc:  # the run has recorded its aborted row; the other recipes still deserve theirs
            failures.append((p.recipe.name, f"{type(exc).__name__}: {exc}"))
            say(f"{tag}: failed: {type(exc).__name__}: {exc}")
            continue
        per_run_s.append((time.perf_counter() - t0) / p.todo)
    say(f"sweep finished in {_duration(time.perf_counter() - start)}: "
        f"{sum(1 for p in plan if p.todo)} recipe(s) run, {sum(1 for p in plan if not p.todo)} skipped, "
        f"{len(failures)} failed")
    return failures


# ---------------------------------------------------------------- after the sweep


def sweep_rows(plan: list[Planned], results_path: Path, ident: Identity):
    """The table rows this sweep stands on: exactly those the skip rule counts."""
    from bench.core.results import read_table

    df = read_table(results_path)
    mask = None
    for p in plan:
        m = matching_rows(df, p.recipe.hash, p.fingerprint, ident)
        mask = m if mask is None else mask | m
    return df[mask] if mask is not None else df.iloc[0:0]


def report(plan: list[Planned], df, plot_dir: Path, say: Callable[[str], None] = print) -> None:
    """Comparison table and Pareto plot (bench.report.compare, as `bench compare` prints them), and the
    time-per-epoch plot."""
    from bench.report import compare

    plot_dir.mkdir(parents=True, exist_ok=True)
    rows = compare.compare_table(df, target=None, recipes=[p.recipe.name for p in plan])
    if rows:
        compare.print_table(rows, "comparison", say=say)
        compare.pareto_plot(rows, plot_dir / "pareto.png")
        say(f"wrote {plot_dir / 'pareto.png'}")
    path = time_per_epoch_plot(plan, df, plot_dir / "time_per_epoch.png")
    if path:
        say(f"wrote {path}")


def _per_recipe(plan: list[Planned], df) -> list[dict]:
    from bench.models import build_model, count_parameters

    points = []
    for p in plan:
        rows = df[df["recipe_hash"] == p.recipe.hash]
        if "epoch_s_mean" not in rows or rows["epoch_s_mean"].dropna().empty:
            continue
        flops = rows["flops_per_image_train"].dropna() if "flops_per_image_train" in rows else rows.iloc[0:0]
        params = count_parameters(build_model(p.recipe.model.arch, p.recipe.model.params,
                                                   source=p.recipe.model.source))
        points.append({"name": p.recipe.name, "epoch_s": float(rows["epoch_s_mean"].mean()), "params": params,
                       "flops": float(flops.mean()) if len(flops) else None, "runs": len(rows)})
    return points


def time_per_epoch_plot(plan: list[Planned], df, path: Path) -> Optional[Path]:
    """Seconds per training epoch against parameters and against training FLOPs per image: the seed's
    point is that neither predicts time well, so both are drawn, each point named."""
    points = _per_recipe(plan, df)
    if not points:
        return None
    from matplotlib.ticker import EngFormatter

    from bench.report.plots import default_style, figure, save

    with default_style():
        fig = figure((11, 4.5))
        axes = fig.subplots(1, 2, sharey=True)
        for ax, key, label in ((axes[0], "params", "parameters"),
                               (axes[1], "flops", "training FLOPs per image (forward + backward)")):
            pts = [q for q in points if q[key]]
            ax.scatter([q[key] for q in pts], [q["epoch_s"] for q in pts], color="tab:blue")
            for q in pts:
                ax.annotate(q["name"], (q[key], q["epoch_s"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(EngFormatter())  # 10M, 400M: readable where 1e7 is not
            ax.xaxis.set_minor_formatter(EngFormatter())
            ax.set_xlabel(label)
            ax.grid(True, which="both", alpha=0.3)
        axes[0].set_ylabel("seconds per epoch (mean over runs)")
        device = df["device_name"].dropna().iloc[0] if "device_name" in df and df["device_name"].notna().any() else ""
        fig.suptitle(f"time per epoch vs model size — {device}")
        save(fig, path)
    return path


# ---------------------------------------------------------------- command


def _slug(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", spec.strip("/")).strip("_") or "sweep"


def run_sweep(args) -> int:
    from bench.system import dist
    from bench.system.envinfo import git_state
    from bench.system.machine import detect_machine
    from bench.recipe import family_files

    if args.runs is not None and args.runs < 1:
        raise BenchError(f"--runs {args.runs}: allowed: >= 1")
    files = family_files(args.family)
    ident = Identity(git_state().get("commit"), detect_machine().device_name)
    plan = make_plan(files, args.set, args.runs, args.force, args.results, args.data, args.data_dir, ident)
    main = dist.detect().is_main
    say = (lambda line: print(line, flush=True)) if main else (lambda line: None)
    say(f"sweep {args.family}: {len(plan)} recipes, {sum(p.todo for p in plan)} runs to do "
        f"(code {(ident.git_commit or 'no git')[:12]}, {ident.device_name})")
    failures = sweep(plan, results_path=args.results, reports_dir=args.reports, data=args.data,
                     data_dir=args.data_dir, say=say)
    if main:
        report(plan, sweep_rows(plan, args.results, ident), args.plot_dir or Path("results/sweeps") / _slug(args.family),
               say)
    for name, error in failures:
        say(f"failed: {name}: {error}")
    return 1 if failures else 0
