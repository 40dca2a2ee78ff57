"""A tuned result as a bundle of its own, and its check: what `bench tune` leaves for each recipe.

    <tuning>/tuned/<recipe>-<tune id>/
      tune.json     the identity: recipe and hash, the search space and its hash, sampler, seed, budget, data
      trials.csv    every trial that ran: study, trial, state, status, time to target, device-hours, dollars,
                    run id, error, and its drawn values (value.<path> columns, JSON)
      rows.csv      each trial's results row, as its run wrote it
      score.json    bench.core.tuning.score of trials.csv: per-study bests, the median, the winner, the cost
      winner.yaml   the winning trial's recipe, every field resolved: `bench run winner.yaml` runs it
      report.md     the same, for people
      MANIFEST      sha256 of every file (bench.report.manifest)

`verify` recomputes score.json from trials.csv, checks every trial against the space, the rows and the
budget, and the winner against winner.yaml; any edited file is named by the MANIFEST check.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import yaml

from bench.core.results import atomic_write, read_dicts, write_csv
from bench.core.tuning import COUNTED, score
from bench.report import manifest
from bench.report.markdown import table

TRIAL_COLUMNS = ["study", "trial", "state", "status", "time_to_target_s", "wall_s", "device_hours", "cost_usd",
                 "run_id", "error"]
ROW_CHECKS = (("status", "status"), ("time_to_target_s", "time_to_target_s"), ("device_hours", "gpu_hours"))


def _finite(x) -> Optional[float]:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def score_json(records: list[dict], studies: int) -> dict:
    """bench.core.tuning.score with infinities written as null (JSON has none) and `reached` saying so."""
    s = score(records, studies)
    return {**s, "score_s": _finite(s["score_s"]),
            "studies": [{**st, "best_s": _finite(st["best_s"])} for st in s["studies"]]}


def trial_rows(records: list[dict], paths: list[str]) -> list[dict]:
    out = []
    for r in sorted(records, key=lambda r: (int(r["study"]), int(r["trial"]))):
        values = r.get("values") or {}
        out.append({**{c: r.get(c) for c in TRIAL_COLUMNS},
                    **{f"value.{p}": json.dumps(values.get(p)) for p in paths}})
    return out


def read_trials(bundle: Path, paths: list[str]) -> list[dict]:
    """trials.csv back as records (numbers as numbers, values as values)."""
    out = []
    for r in read_dicts(bundle / "trials.csv"):
        rec = {c: (r.get(c) or None) for c in TRIAL_COLUMNS}
        for c in ("study", "trial"):
            rec[c] = int(rec[c])
        for c in ("time_to_target_s", "wall_s", "device_hours", "cost_usd"):
            rec[c] = None if rec[c] is None else float(rec[c])
        rec["values"] = {p: json.loads(r[f"value.{p}"]) for p in paths if f"value.{p}" in r}
        out.append(rec)
    return out


# ---------------------------------------------------------------- writing


def write(folder: Path, tune: dict, records: list[dict], rows: list[dict], winner_recipe: Optional[dict]) -> Path:
    """Write the bundle into `folder` (built beside it, then renamed into place) and return it."""
    import shutil

    paths = sorted(tune["space"])
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    atomic_write(tmp / "tune.json", lambda f: json.dump(tune, f, indent=2, sort_keys=True))
    write_csv(tmp / "trials.csv", trial_rows(records, paths), TRIAL_COLUMNS + [f"value.{p}" for p in paths])
    write_csv(tmp / "rows.csv", rows, list(dict.fromkeys(k for r in rows for k in r)))
    s = score_json(records, tune["studies"])
    atomic_write(tmp / "score.json", lambda f: json.dump(s, f, indent=2, sort_keys=True))
    if winner_recipe is not None:
        w = s["winner"]
        text = (f"# {tune['recipe']} tuned by bench tune ({tune['trials']} trials x {tune['studies']} studies, sampler "
                f"{tune['sampler']}, seed {tune['seed']}): study {w['study']} trial {w['trial']}, the median study's "
                f"fastest, {s['score_s']:.1f} s to target.\n" + yaml.safe_dump(winner_recipe, sort_keys=False))
        atomic_write(tmp / "winner.yaml", lambda f: f.write(text))
    text = render(tune, s, read_trials(tmp, paths))
    atomic_write(tmp / "report.md", lambda f: f.write(text))
    manifest.write(tmp)
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


def _s(x) -> str:
    return "–" if x is None else f"{x:.2f}" if x < 10 else f"{x:.1f}"


def budget_text(tune: dict) -> str:
    return f"{tune['trials']} trials x {tune['studies']} studies"


def render(tune: dict, s: dict, trials: list[dict]) -> str:
    paths = sorted(tune["space"])
    head = (f"**{_s(s['score_s'])} s** to target at equal tuning budget ({budget_text(tune)})" if s["reached"]
            else f"**not reached** at equal tuning budget ({budget_text(tune)}): the median study has no trial at "
                 f"the target")
    dollars = f", ${s['cost_usd']:.2f}" if s.get("cost_usd") is not None else " (dollars unknown: unpriced device)"
    lines = [f"# {tune['recipe']}: tuned", "", head + ".", "",
             f"Tuning cost: {s['device_hours']:.4f} device-hours over {s['trials_run']} trial runs{dollars}; "
             f"every trial counts, failed, pruned and aborted ones included.", "",
             "## The rule", "",
             "AlgoPerf's external tuning: each study draws its trials from the declared space; a study's time is "
             "its fastest trial that reached the target, the result is the median over studies, and a study with "
             "no trial at the target counts as infinite in that median.", "",
             "## Search space", "",
             *table(["field", "distribution"], [[p, json.dumps(tune["space"][p])] for p in paths]), "",
             f"Sampler `{tune['sampler']}`, seed {tune['seed']}, pruning {'on' if tune['prune'] else 'off'}; recipe "
             f"hash `{tune['recipe_hash']}`, space hash `{tune['space_hash']}`, data `{tune['data']}`.", "",
             "## Studies", "",
             *table(["study", "fastest at target (s)", "trial"],
                    [[str(st["study"]), _s(st["best_s"]) if st["best_s"] is not None else "not reached",
                      "–" if st["trial"] is None else str(st["trial"])] for st in s["studies"]]), "",
             "## Trials", "",
             *table(["study", "trial", "state", "status", "time to target (s)", "device-h", "run", *paths],
                    [[str(t["study"]), str(t["trial"]), t["state"] or "", t["status"] or "", _s(t["time_to_target_s"]),
                      f"{t['device_hours'] or 0:.4f}", t["run_id"] or "–",
                      *[f"{t['values'].get(p):.4g}" if isinstance(t["values"].get(p), float) else str(t["values"].get(p))
                        for p in paths]] for t in trials]), ""]
    if s["winner"] is not None:
        lines += ["## Winner", "", f"Study {s['winner']['study']}, trial {s['winner']['trial']}: `winner.yaml` is its "
                  f"recipe, every field resolved: `bench run <this folder>/winner.yaml` runs it.", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- checking


def is_tuned(bundle: Path) -> bool:
    return (Path(bundle) / "tune.json").is_file()


def verify(bundle: Path) -> list[str]:
    """Every problem with a tuned bundle, one line each (empty: it checks out)."""
    from bench.recipe.space import parse_space

    bundle = Path(bundle)
    problems = manifest.check(bundle)
    try:
        tune = json.loads((bundle / "tune.json").read_text())
        dims = parse_space(tune["space"], "tune.json", problems)
        trials = read_trials(bundle, sorted(tune["space"]))
        stored = json.loads((bundle / "score.json").read_text())
        rows = {r["run_id"]: r for r in read_dicts(bundle / "rows.csv") if r.get("run_id")}
    except (OSError, ValueError, KeyError) as exc:
        return problems + [f"cannot read the tuned bundle: {type(exc).__name__}: {exc}"]
    for k in range(tune["studies"]):
        n = sum(1 for t in trials if t["study"] == k and t["state"] in COUNTED)
        if n != tune["trials"]:
            problems.append(f"trials.csv: study {k} has {n} counted trials; the budget is {tune['trials']}")
    for t in trials:
        where = f"trials.csv: study {t['study']} trial {t['trial']}"
        for d in dims:
            v = t["values"].get(d.path)
            inside = v in d.choices if d.kind == "choice" else (v is not None and d.low <= v <= d.high)
            if not inside:
                problems.append(f"{where}: {d.path} = {v!r} lies outside the space ({d.describe()})")
        row = rows.get(t["run_id"]) if t["run_id"] else None
        if t["run_id"] and row is None:
            problems.append(f"{where}: run {t['run_id']} has no row in rows.csv")
        for mine, theirs in ROW_CHECKS if row else ():
            a, b = t[mine], row.get(theirs) or None
            b = float(b) if b is not None and mine != "status" else b
            same = (a == b) if mine == "status" else (a is None and b is None) or (
                a is not None and b is not None and math.isclose(float(a), b, rel_tol=1e-9))
            if not same and not (mine == "status" and a == "failed" and b == "aborted"):  # a crash counts as failed
                problems.append(f"{where}: {mine} {a!r} but its row says {b!r}")
    fresh = score_json(trials, tune["studies"])
    for key in ("score_s", "reached", "winner", "trials_run", "device_hours", "cost_usd", "studies"):
        if not _same(fresh.get(key), stored.get(key)):
            problems.append(f"score.json: {key} is {stored.get(key)!r}; trials.csv gives {fresh.get(key)!r}")
    problems += _check_winner(bundle, fresh, trials)
    return problems


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(float(a), float(b), rel_tol=1e-9)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _check_winner(bundle: Path, s: dict, trials: list[dict]) -> list[str]:
    path = bundle / "winner.yaml"
    if s["winner"] is None:
        return [f"winner.yaml: present, but no study reached the target"] if path.exists() else []
    if not path.exists():
        return ["winner.yaml: missing; the median study has a winner"]
    won = next(t for t in trials if t["study"] == s["winner"]["study"] and t["trial"] == s["winner"]["trial"])
    recipe = yaml.safe_load(path.read_text())
    out = []
    for p, v in won["values"].items():
        node = recipe
        for key in p.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if node != v:
            out.append(f"winner.yaml: {p} is {node!r}; the winning trial drew {v!r}")
    return out
