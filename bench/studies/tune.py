"""`bench tune RECIPE|FAMILY`: every recipe tuned on the same declared budget, and the tuning counted.

AlgoPerf's external-tuning rule (bench.core.tuning) applied to architectures: for each recipe, `studies`
independent studies of `trials` trials each, drawn from the recipe's search space (bench.recipe.space) by
Optuna (quasi-random by default). A trial is an ordinary run of the recipe with the drawn values as `--set`
overrides, in a process of its own (bench.studies.sweep.run_in_fresh_process): one results row, one report
bundle, the usual clock, with `tune_id`, `tune_study` and `tune_trial` in its row.

Everything a tune leaves is under results/tuning/<name>/ by default:

    journal.log      the Optuna storage (bench.studies.tune_storage): what is done, what is running
    results.csv      one row per trial (kept apart from single-setting rows: a trial is a random setting)
    trials/          each trial's report bundle
    tuned/<recipe>-<id>/   the tuned result of each recipe once its studies are complete (bench.report.tuned)

Cut short (Ctrl-C, SIGTERM, a killed node), the same command finishes it: finished trials are kept, the one
interrupted is recorded as aborted (its time counts in the cost) and run again with the same values.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from bench.core.errors import BenchError, Terminated
from bench.core.tuning import counted
from bench.studies import tune_storage as ts

SAMPLERS = ("qmc", "tpe", "random")


@dataclass(frozen=True)
class Budget:
    trials: int = 5  # per study (AlgoPerf: 5)
    studies: int = 3  # per recipe (AlgoPerf: 3)
    sampler: str = "qmc"
    seed: int = 0
    prune: bool = False


@dataclass(frozen=True)
class Target:
    """One recipe to tune: its file, the recipe as --set leaves it, its search space, and its identity."""
    path: Path
    recipe: object  # bench.recipe.Recipe
    space: object  # bench.recipe.space.SearchSpace
    overrides: tuple[str, ...]
    identity: dict

    @property
    def tune_id(self) -> str:
        text = json.dumps(self.identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def study_name(self, k: int) -> str:
        return f"{self.recipe.name}/study{k}"


def check_budget(b: Budget) -> None:
    for flag, value in (("--trials", b.trials), ("--studies", b.studies)):
        if value < 1:
            raise BenchError(f"{flag} {value}: allowed: >= 1 (AlgoPerf's budget is --trials 5 --studies 3)")
    if b.sampler not in SAMPLERS:
        raise BenchError(f"--sampler {b.sampler!r}: allowed: {', '.join(SAMPLERS)}")


def slug(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(spec)).stem if str(spec).endswith((".yaml", ".yml"))
                  else str(spec).strip("/")).strip("_") or "tune"


def targets(spec: str, overrides: list[str], budget: Budget, data: Optional[str]) -> list[Target]:
    """The recipes of RECIPE or FAMILY, each with its checked space; every problem of every recipe at once."""
    from bench import recipe as recipes
    from bench.recipe.space import load_space

    try:
        files = [recipes.resolve_path(spec)]
    except BenchError:
        files = recipes.family_files(spec)
    out, problems = [], []
    for f in files:
        try:
            r = recipes.load(f, overrides)
            space = load_space(f, overrides)
        except BenchError as exc:
            problems.append(str(exc))
            continue
        if space is None:
            problems.append(f"{f}: declares no search space: add a `tune:` section (e.g. tune: {{optim.lr: "
                            f"{{log_uniform: [0.05, 3.0]}}}}) or a tune.yaml beside the family's recipes")
            continue
        if r.kind == "external":
            problems.append(f"{f}: kind: external runs a command of its own, whose settings --set cannot reach; "
                            f"tune its script's options in the script")
            continue
        identity = {"recipe": r.name, "recipe_hash": r.hash, "space_hash": space.hash, "sampler": budget.sampler,
                    "seed": budget.seed, "trials": budget.trials, "studies": budget.studies, "prune": budget.prune,
                    "data": data or r.data.source}
        out.append(Target(Path(f), r, space, tuple(overrides), identity))
    if problems:
        raise BenchError("cannot tune:\n  " + "\n  ".join(p.replace("\n", "\n  ") for p in problems))
    names = [t.recipe.name for t in out]
    twins = sorted({n for n in names if names.count(n) > 1})
    if twins:
        raise BenchError(f"recipes {', '.join(twins)} appear twice (same name in several files); give each its own "
                         f"name: studies are named after their recipe")
    return out


# ---------------------------------------------------------------- one trial


@dataclass(frozen=True)
class Where:
    """Where trials write: their rows, their bundles, and the data they read."""
    results: Path
    reports: Optional[Path]
    data: Optional[str] = None
    data_dir: Optional[Path] = None


def _row(results: Path, tags: dict) -> Optional[dict]:
    from bench.core.results import read_table

    if not Path(results).exists():
        return None
    df = read_table(results)
    if "tune_id" not in df:
        return None
    mask = (df["tune_id"].astype(str) == tags["tune_id"]) & (df["tune_study"].astype(str) == str(tags["tune_study"]))
    mask &= df["tune_trial"].astype(str) == str(tags["tune_trial"])
    found = df[mask]
    return None if found.empty else {k: (None if _na(v) else v) for k, v in found.iloc[-1].to_dict().items()}


def _na(v) -> bool:
    import pandas as pd

    return not isinstance(v, (list, dict)) and bool(pd.isna(v))


def trial_record(row: Optional[dict], values: dict, wall_s: float, world: int, error: Optional[str],
                 interrupted: bool) -> dict:
    """How the tune counts a trial, from its row (or, where its process died before writing one, from the
    time the tune measured around it)."""
    rec = {"values": values, "run_id": None, "status": None, "time_to_target_s": None, "wall_s": wall_s,
           "device_hours": world * wall_s / 3600.0, "cost_usd": None, "error": error}
    if row is not None:
        rec.update(run_id=row.get("run_id"), status=row.get("status"), time_to_target_s=row.get("time_to_target_s"),
                   wall_s=row.get("wall_s"), device_hours=row.get("gpu_hours"), cost_usd=row.get("cost_usd"),
                   error=row.get("error") or error)
    pruned = bool(rec["error"]) and str(rec["error"]).startswith("Pruned:")
    if interrupted:
        rec["state"] = "aborted"
    elif pruned:
        rec["state"] = "pruned"
    else:
        rec["state"] = "complete"
        if rec["status"] in (None, "aborted"):  # it crashed: a trial that failed, one of the study's
            rec["status"] = "failed"
    return rec


def run_trial(study, trial, target: Target, k: int, where: Where, deadline_s: Optional[float], run: Callable,
              say: Callable[[str], None]) -> dict:
    """Run one asked trial to its end and store its record; Ctrl-C / SIGTERM record it as aborted and go on up."""
    from bench import recipe as recipes
    from bench.recipe.space import as_overrides

    values = ts.values_of(target.space, trial.params)
    study._storage.set_trial_user_attr(trial._trial_id, "values", values)
    recipe = recipes.load(target.path, [*target.overrides, *as_overrides(values)])
    tags = {"tune_id": target.tune_id, "tune_study": k, "tune_trial": trial.number}
    shown = ", ".join(f"{p}={v:.4g}" if isinstance(v, float) else f"{p}={v}" for p, v in values.items())
    tag = f"[{target.recipe.name} study {k + 1}/{target.identity['studies']} trial {trial.number}]"
    say(f"{tag} {shown}" + (f"  (pruned past {deadline_s:.1f}s)" if deadline_s is not None else ""))
    error, interrupted, t0 = None, False, time.perf_counter()
    with ts.heartbeat(study, trial):
        try:
            run(recipe, tag, data=where.data, data_dir=where.data_dir, results_path=where.results, runs=1,
                reports_dir=where.reports, first_run=_first_run(target, k, trial.number), tags=tags,
                deadline_s=deadline_s)
        except (KeyboardInterrupt, Terminated) as exc:
            interrupted, error = True, f"{type(exc).__name__}: {exc}"
            _finish(study, trial, recipe, where, tags, values, t0, error, True)
            raise
        except Exception as exc:  # its row says how it ended, if it lived to write one
            error = f"{type(exc).__name__}: {exc}"
    return _finish(study, trial, recipe, where, tags, values, t0, error, interrupted)


def _finish(study, trial, recipe, where, tags, values, t0, error, interrupted) -> dict:
    rec = trial_record(_row(where.results, tags), values, time.perf_counter() - t0, recipe.world_size, error,
                       interrupted)
    ts.finish(study, trial, rec)
    return rec


def _first_run(target: Target, k: int, number: int) -> int:
    """A distinct seed for every trial: recipe.seed + study * 1000 + trial number."""
    return k * 1000 + number


# ---------------------------------------------------------------- a study, a recipe


def run_study(storage, storage_label: str, target: Target, k: int, where: Where, say: Callable[[str], None],
              run: Callable) -> None:
    """Run study k of a target until it has its trials (shared safely with other processes on the storage)."""
    b = target.identity
    sampler = ts.make_sampler(b["sampler"], b["seed"] * 1000 + k)
    study = ts.open_study(storage, target.study_name(k), target.identity, sampler, storage_label)
    dists = ts.distributions(target.space)
    while True:
        ts.fail_stale(study, say)
        ts.requeue_aborted(study)
        done = ts.records(study)
        if counted(({**r, "study": k} for r in done), k) >= b["trials"]:
            return
        trial = study.ask(dists)
        why = ts.placed(study, trial, b["trials"])
        if why is not None:  # another process got there first: this trial is not one of the study's
            ts.finish(study, trial, {"state": "surplus", "error": why})
            if "has its" in why:
                return
            continue
        run_trial(study, trial, target, k, where, _deadline(done) if b["prune"] else None, run, say)


def _deadline(done: list[dict]) -> Optional[float]:
    times = [r["time_to_target_s"] for r in done if r.get("state") == "complete" and r.get("status") == "reached"
             and r.get("time_to_target_s") is not None]
    return min(times) if times else None


def study_records(storage, storage_label: str, target: Target) -> Optional[list[dict]]:
    """All trial records of the target (each with its study), or None while any study lacks its trials."""
    b, out = target.identity, []
    for k in range(b["studies"]):
        study = ts.open_study(storage, target.study_name(k), target.identity, None, storage_label)
        recs = [{**r, "study": k} for r in ts.records(study)]
        if counted(recs, k) < b["trials"]:
            return None
        out += recs
    return out


# ---------------------------------------------------------------- the tuned result


def tuned_bundle(storage, storage_label: str, target: Target, where: Where, out: Path) -> Optional[Path]:
    """Write the target's tuned bundle once every study has its trials; None while any lacks them."""
    from bench import recipe as recipes
    from bench.core.results import read_dicts
    from bench.recipe.space import as_overrides
    from bench.report import tuned

    recs = study_records(storage, storage_label, target)
    if recs is None:
        return None
    ids = {r["run_id"] for r in recs if r.get("run_id")}
    rows = [r for r in read_dicts(where.results) if r.get("run_id") in ids]
    lost = sorted(ids - {r["run_id"] for r in rows})
    if lost:  # a tuned bundle stands on its trials' rows: one without them would not verify
        raise BenchError(f"{where.results}: has no row for {len(lost)} trial run(s) of {target.recipe.name} (e.g. "
                         f"{lost[0]}): name the table the trials wrote with --results, or put back "
                         f"{Path(where.results).parent / 'parts'} (the SLURM tasks' tables) and run again")
    s = tuned.score_json(recs, target.identity["studies"])
    winner = None
    if s["winner"] is not None:
        won = next(r for r in recs if r["study"] == s["winner"]["study"] and r["trial"] == s["winner"]["trial"])
        winner = recipes.load(target.path, [*target.overrides, *as_overrides(won["values"])]).to_dict()
    tune = {**target.identity, "tune_id": target.tune_id, "space": target.space.to_dict(),
            "space_sources": list(target.space.sources), "storage": storage_label, "overrides": list(target.overrides)}
    return tuned.write(out / f"{target.recipe.name}-{target.tune_id}", tune, recs, rows, winner)


def summary_line(bundle: Path) -> str:
    s = json.loads((bundle / "score.json").read_text())
    tune = json.loads((bundle / "tune.json").read_text())
    what = f"{s['score_s']:.1f} s to target" if s["reached"] else "not reached"
    return (f"{tune['recipe']}: {what} at {tune['trials']} trials x {tune['studies']} studies; tuning cost "
            f"{s['device_hours']:.4f} device-hours over {s['trials_run']} trial runs -> {bundle}")


# ---------------------------------------------------------------- the command


def default_folder(spec: str) -> Path:
    return Path("results/tuning") / slug(spec)


def folder_of(args) -> Path:
    """Where the tune keeps everything: --dir, else results/tuning/<recipe or family>."""
    return Path(args.dir) if args.dir else default_folder(args.target)


def run_tune(args, say: Callable[[str], None] = lambda line: print(line, flush=True), run: Optional[Callable] = None
             ) -> int:
    """`bench tune`: run what is missing of every study here, then write each recipe's tuned bundle."""
    from bench.studies.sweep import run_in_fresh_process

    budget = Budget(args.trials, args.studies, args.sampler, args.seed, args.prune)
    check_budget(budget)
    folder = folder_of(args)
    spec = args.storage or str(folder / "journal.log")
    where = Where(Path(args.results) if args.results else folder / "results.csv",
                  Path(args.reports) if args.reports else folder / "trials", args.data, args.data_dir)
    tgts = targets(args.target, list(args.set), budget, args.data)
    storage, label = ts.open_storage(spec), ts.describe(spec)
    studies = range(budget.studies) if args.study is None else [args.study]
    say(f"tune {args.target}: {len(tgts)} recipe(s) x {budget.studies} studies x {budget.trials} trials, sampler "
        f"{budget.sampler}, seed {budget.seed}{', pruning' if budget.prune else ''}; storage {label}")
    for t in tgts:
        say(f"{t.recipe.name}: space {t.space.hash} ({'; '.join(d.describe() for d in t.space.dims)}), "
            f"tune id {t.tune_id}")
        for k in studies:
            run_study(storage, label, t, k, where, say, run or run_in_fresh_process)
    if args.study is not None:  # one worker of several (a SLURM array task): the others may still be running
        return 0
    return finish_tune(args, say, tgts, storage)


def finish_tune(args, say: Callable[[str], None], tgts: Optional[list[Target]] = None, storage=None) -> int:
    """Merge the rows SLURM tasks wrote (bench.studies.tune_slurm), then write every complete recipe's tuned
    bundle; 1 while any recipe's studies are not complete."""
    from bench.core.results import COLUMNS, append_rows, read_dicts

    folder = folder_of(args)
    spec = args.storage or str(folder / "journal.log")
    where = Where(Path(args.results) if args.results else folder / "results.csv", None)
    if tgts is None:
        tgts = targets(args.target, list(args.set), Budget(args.trials, args.studies, args.sampler, args.seed,
                                                          args.prune), args.data)
    storage, label = storage or ts.open_storage(spec), ts.describe(spec)
    parts = [r for part in sorted((folder / "parts").glob("*.csv")) for r in read_dicts(part) if r.get("run_id")]
    if parts:
        append_rows(where.results, parts, leading=COLUMNS, key="run_id")  # again adds nothing
    missing = 0
    for t in tgts:
        bundle = tuned_bundle(storage, label, t, where, folder / "tuned")
        if bundle is None:
            missing += 1
            say(f"{t.recipe.name}: studies not complete yet (another process may be running them)")
        else:
            say(summary_line(bundle))
    return 1 if missing else 0
