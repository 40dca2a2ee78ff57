"""Per-run facts and the run-set summary, recomputed from a bundle's raw files alone.

Nothing here trusts a number that a run *reported about itself* when the event log can give it:
time-to-target is the `elapsed_s` of the first `eval_accuracy` at or above the target, best and final
accuracy are the evaluated values, epochs is the count of `epoch_stop` events. What the log cannot give
(init and wall time, the run's own status on a crash or divergence) is read from `init_stop` / `run_stop`.

Statistics conventions (stated again in every summary.json and report.md):
- runs that ended `reached` or `missed` are *included*; `aborted` (interrupted, crashed) and `failed`
  (diverged) runs are listed but left out of the statistics, as `bench compare` does;
- time-to-target statistics cover the included runs that reached the target;
- accuracy statistics use each included run's *final* accuracy (its last evaluation). A run stops at the
  first evaluation that reaches the target, so for those runs final is the accuracy that crossed the line.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bench.core import mllog
from bench.core.errors import BenchError
from bench.core.results import atomic_write, cost, device_hours, read_records
from bench.core.prices import LEGACY_CPU_SOURCE
from bench.core.targets import best, reaches

# metadata of an eval_score event that is not one of the evaluation's figures
_EVAL_META = ("file", "lineno", mllog.EPOCH_NUM, "elapsed_s")

SCHEMA = "bench-summary/1"
RAW_TOP = ("recipe.yaml", "env.json", "dataset.json", "results.csv")
OFFICIAL_DATASET = "cifar10"

TIMING_RULES = {
    "init": "process start (for the first run) or the end of the previous run, to ready: model built, data "
            "staged, compile and warm-up done. Recorded and reported; not part of time-to-target.",
    "time_to_target": "from run_start, before the first training batch is drawn, to the end of the first "
                      "evaluation whose test accuracy reaches the target. Training, data loading, augmentation "
                      "and every evaluation on the way count; device work is synchronised before the clock is read.",
    "wall": "the whole run including init, for device-hours and cost: device-hours = devices x wall hours; "
            "cost = device-hours x $/device-hour (on-demand price; its source is recorded per run).",
}
CONVENTIONS = {
    "included_runs": "runs with status reached or missed; aborted and failed runs are listed but excluded "
                     "from the statistics",
    "time": "time-to-target statistics over the included runs that reached the target",
    "accuracy": "accuracy statistics over the final accuracy (last evaluation) of every included run",
    "std": "sample standard deviation (ddof=1); confidence intervals are Student t intervals on the mean",
    "olympic_time": "MLPerf score: mean after dropping the fastest and the slowest run, a miss counting as slowest",
    "ttest": "one-sided one-sample t-test of the included runs' final accuracy against the target",
}
INCLUDED = ("reached", "missed")
REL_TOL = 1e-9  # floats agree within this: a JSON or CSV round trip of a repr'd float always does


@dataclass
class Raw:
    """A bundle's raw files, parsed. `logs[run_id]` is the list of MLLOG records (record i is line i+1)."""
    dir: Path
    recipe: dict
    recipe_hash: str | None
    env: dict
    dataset: dict
    rows: list[dict]
    logs: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def target(self) -> float:
        return float(self.recipe["target"]["value"])

    @property
    def metric(self) -> str:
        return (self.recipe.get("target") or {}).get("metric") or "test_acc"

    @property
    def mode(self) -> str:
        return (self.recipe.get("target") or {}).get("mode") or "max"

    @property
    def target_counts(self) -> bool:
        # bench.train.loop: accuracy on synthetic training data never counts towards the target
        return (self.recipe.get("data") or {}).get("loader") != "synthetic"

    def row_for(self, run_id: str) -> dict | None:
        return next((r for r in self.rows if r.get("run_id") == run_id), None)


def log_path(run_id: str) -> str:
    return f"runs/{run_id}/mllog.txt"


def require_dir(bundle: Path) -> Path:
    bundle = Path(bundle)
    if not bundle.is_dir():
        raise BenchError(f"{bundle}: no such bundle directory")
    return bundle


def read_recipe(bundle: Path) -> tuple[dict, str | None]:
    """The resolved recipe and the hash it was written with (the `# resolved recipe NAME, hash H` line)."""
    path = bundle / "recipe.yaml"
    text = _read_text(path)
    first = text.splitlines()[0] if text else ""
    stated = first.rsplit("hash", 1)[1].strip() if first.startswith("#") and "hash" in first else None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)  # a reader error (a forbidden character) has no mark
        line = f":{mark.line + 1}" if mark is not None else ""
        why = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise BenchError(f"recipe.yaml{line}: not valid YAML ({why})") from None
    if not isinstance(data, dict) or not isinstance(data.get("target"), dict) or "value" not in data["target"]:
        raise BenchError("recipe.yaml: not a resolved recipe (no target.value)")
    return data, stated


def recipe_hash(recipe: dict) -> str:
    from bench.recipe.schema import resolved_hash

    return resolved_hash(recipe)


def read_json(bundle: Path, name: str) -> dict:
    text = _read_text(bundle / name)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise BenchError(f"{name}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise BenchError(f"{name}: expected a JSON object, got {type(data).__name__}")
    return data


def read_rows(bundle: Path, name: str = "results.csv") -> list[dict]:
    """Rows as text dicts ('' becomes None), each with its line number under '_line'.

    No file means no rows: a run set whose first run failed during setup never wrote one. A results.csv that
    should be there is caught by the MANIFEST and by the runs whose logs have run_stop but no row."""
    header, rows = read_records(bundle / name, strict=True, label=name,
                                hint="The bundle's raw files were edited or cut short: it does not verify.")
    out = []
    for line, record in rows:
        row = {k: (v if v != "" else None) for k, v in zip(header, record)}
        row["_line"] = line
        out.append(row)
    return out


def run_ids(bundle: Path) -> list[str]:
    runs = bundle / "runs"
    if not runs.is_dir():
        raise BenchError("runs/: missing, so there are no event logs to read")
    # run ids start with a UTC timestamp, so name order is start order
    return sorted(p.name for p in runs.iterdir() if p.is_dir())


def read_log(bundle: Path, run_id: str) -> list[dict]:
    path = bundle / log_path(run_id)
    if not path.is_file():
        raise BenchError(f"{log_path(run_id)}: missing")
    try:
        return mllog.parse_mllog(path)
    except BenchError as e:
        # parse_mllog names the absolute path and a Python-level hint; a CLI user needs neither
        msg = str(e).replace(str(path), log_path(run_id), 1).replace("; pass allow_truncated_tail=True to skip it", "")
        raise BenchError(msg) from None


def load(bundle: Path) -> Raw:
    """Every raw file, parsed; the first unreadable one raises BenchError naming it (and its line)."""
    bundle = require_dir(bundle)
    recipe, stated = read_recipe(bundle)
    raw = Raw(bundle, recipe, stated, read_json(bundle, "env.json"), read_json(bundle, "dataset.json"),
              read_rows(bundle))
    for rid in run_ids(bundle):
        raw.logs[rid] = read_log(bundle, rid)
    return raw


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BenchError(f"{path.name}: missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BenchError(f"{path.name}: cannot read it ({e})") from None


# ------------------------------------------------------------------------------------------ per run

def _number(value, where: str, what: str, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BenchError(f"{where}: {what} is {value!r}, expected a finite number")
    return value


def run_facts(run_id: str, events: list[dict], target: float, target_counts: bool, mode: str) -> dict:
    """What one run did, from its event log. `log_problems` lists where the log contradicts itself.
    Evaluations are eval_accuracy events (classifiers) or eval_score events (any other metric, bench.core.mllog;
    their other figures are kept under "extras"); `mode` says whether higher (max) or lower (min) is better."""
    where = log_path(run_id)
    seed = init_s = logged_target = train_samples = eval_samples = baselines = None
    evals: list[dict] = []
    epochs_stopped = 0
    stop = None
    for line, ev in enumerate(events, start=1):
        key, meta, at = ev["key"], ev["metadata"], f"{where}:{line}"
        if key == mllog.SEED and seed is None:
            seed = ev["value"]
        elif key == "target_accuracy":
            logged_target = _number(ev["value"], at, "target_accuracy value")
        elif key == mllog.TRAIN_SAMPLES:
            train_samples = ev["value"]
        elif key == mllog.EVAL_SAMPLES:
            eval_samples = ev["value"]
        elif key == mllog.INIT_STOP:
            init_s = _number(meta.get("init_s"), at, "init_stop metadata init_s", allow_none=True)
        elif key == mllog.EPOCH_STOP:
            epochs_stopped += 1
        elif key in (mllog.EVAL_ACCURACY, mllog.EVAL_SCORE):
            evals.append({"epoch": _number(meta.get(mllog.EPOCH_NUM), at, f"{key} epoch_num"),
                          "elapsed_s": _number(meta.get("elapsed_s"), at, f"{key} elapsed_s"),
                          "acc": _number(ev["value"], at, f"{key} value")})
            if key == mllog.EVAL_SCORE:
                evals[-1]["extras"] = {k: v for k, v in meta.items() if k not in _EVAL_META}
        elif key == mllog.GAN_BASELINES:
            baselines = {k: v for k, v in meta.items() if k not in ("file", "lineno")}
        elif key == mllog.RUN_STOP:
            stop = (line, meta)
    problems: list[str] = []
    if logged_target is not None and not close(logged_target, target):
        problems.append(f"{where}: target_accuracy {logged_target!r} differs from recipe.yaml's {target!r}")
    if stop is None:
        # setup failed or the process was killed: no row describes a finished fit
        status, fit_done, wall_s = "aborted", False, None
    else:
        line, meta = stop
        at = f"{where}:{line}"
        wall_s = _number(meta.get("wall_s"), at, "run_stop metadata wall_s", allow_none=True)
        said = meta.get("bench_status")
        fit_done = meta.get("epochs") is not None
        reached = target_counts and any(reaches(e["acc"], target, mode) for e in evals)
        status = said if said in ("aborted", "failed") else ("reached" if reached else "missed")
        if said != status:
            problems.append(f"{at}: run_stop says bench_status {said!r} but the evaluations make it {status!r}")
        if (meta.get(mllog.STATUS) == mllog.SUCCESS) != (status == "reached"):
            problems.append(f"{at}: run_stop status {meta.get(mllog.STATUS)!r} does not match {status!r}")
    facts = {"run_id": run_id, "seed": seed, "status": status, "time_to_target_s": None, "best_acc": None,
             "final_acc": None, "epochs": None, "init_s": init_s, "wall_s": wall_s,
             "train_samples": train_samples, "eval_samples": eval_samples, "evals": evals}
    if fit_done:
        counted = evals
        if status == "failed" and evals and evals[-1]["epoch"] == epochs_stopped:
            counted = evals[:-1]  # bench.train.loop stops on the diverged epoch before that eval counts as best
        facts.update(
            epochs=epochs_stopped,
            best_acc=best((e["acc"] for e in counted), mode),
            final_acc=evals[-1]["acc"] if evals else None,
            time_to_target_s=next((e["elapsed_s"] for e in evals if reaches(e["acc"], target, mode)), None)
            if status == "reached" else None)
        _check_stop(stop, facts, where, problems)
    facts["log_problems"] = problems
    if baselines is not None:
        facts["baselines"] = baselines
    return facts


def _check_stop(stop, facts: dict, where: str, problems: list[str]) -> None:
    line, meta = stop
    for key in ("epochs", "time_to_target_s"):
        said, got = meta.get(key), facts[key]
        if not _same(said, got):
            problems.append(f"{where}:{line}: run_stop {key} {said!r} but the events give {got!r}")


def close(a: float, b: float) -> bool:
    """The same number, as summary and verify compare recorded floats."""
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return close(float(a), float(b))


# ------------------------------------------------------------------------------------------ the set

def _float(text):
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def priced(raw: Raw, facts: dict) -> dict:
    """Device-hours and cost of one run: devices x wall hours, priced as its results row says."""
    world = int(raw.env.get("world_size") or 1)
    hours = device_hours(world, facts["wall_s"]) if facts["wall_s"] is not None else None
    row = raw.row_for(facts["run_id"]) or {}
    price = _float(row.get("price_usd_per_hour"))
    if hours is None:
        usd = None
    elif price is not None:
        usd = cost(hours, price)
    else:
        usd = 0.0 if row.get("price_source") == LEGACY_CPU_SOURCE else None  # as such rows were recorded
    return {"device_hours": hours, "cost_usd": usd}


def summarize_runs(runs: list[dict], target: float, mode: str, what: str) -> tuple[dict | None, str | None]:
    from bench.core.stats import summarize

    included = [r for r in runs if r["status"] in INCLUDED and r["final_acc"] is not None]
    if not included:
        return None, "no run finished (every run was aborted or failed), so there is nothing to summarise"
    times = [r["time_to_target_s"] if r["status"] == "reached" else None for r in included]
    return summarize(times, [r["final_acc"] for r in included], [t is not None for t in times], target,
                     mode=mode, what=what), None


def event_log_runs(raw: Raw) -> list[dict]:
    """Each run's facts from its event log: the raw truth of a run this harness trained (classifier, gan)."""
    return [run_facts(rid, events, raw.target, raw.target_counts, raw.mode) for rid, events in raw.logs.items()]


def compute(raw: Raw) -> dict:
    """The whole summary.json, as a JSON-ready dict; the same raw files always give the same dict."""
    from bench.report.kinds import for_recipe  # one object per kind of run: where its runs come from, and more

    r, env = raw.recipe, raw.env
    kind = for_recipe(r)
    runs = []
    for facts in kind.runs(raw, event_log_runs):
        facts.update(priced(raw, facts))
        runs.append(facts)
    stats, note = summarize_runs(runs, raw.target, raw.mode,
                                 "accuracy" if raw.metric == "test_acc" else raw.metric)
    first_row = raw.rows[0] if raw.rows else {}
    first_run = runs[0] if runs else {}
    data = r.get("data") or {}
    git = env.get("git") or {}
    price_row = next((row for row in raw.rows if row.get("price_source")), {})
    known = [x for x in runs if x["device_hours"] is not None]
    out = {
        "schema": SCHEMA,
        "recipe": {"name": r.get("name"), "hash": raw.recipe_hash, "model": (r.get("model") or {}).get("arch"),
                   "model_params": (r.get("model") or {}).get("params"), "provenance": r.get("provenance")},
        "target": raw.target,
        "target_metric": (r.get("target") or {}).get("metric"),
        "dataset": {"name": raw.dataset.get("name"), "fingerprint": raw.dataset.get("fingerprint"),
                    "official_cifar10": raw.dataset.get("name") == OFFICIAL_DATASET,
                    "counts": raw.dataset.get("counts"),
                    "train_subset": data.get("train_subset"), "test_subset": data.get("test_subset"),
                    "train_images_used": first_run.get("train_samples"),
                    "test_images_used": first_run.get("eval_samples")},
        "device": {"type": env.get("device"), "name": first_row.get("device_name"),
                   "count": _int(first_row.get("device_count")), "world_size": env.get("world_size"),
                   "nodes": env.get("nodes")},
        # what ran: a recipe may say `auto`, its rows say what this machine settled it to
        "precision": next((x["precision"] for x in raw.rows if x.get("precision")), r.get("precision")),
        "memory_format": r.get("memory_format"),
        "loader": data.get("loader"), "compile": r.get("compile"),
        "environment": {"torch": env.get("torch"), "cuda": (env.get("cuda") or {}).get("version"),
                        "cudnn": env.get("cudnn"), "nccl": env.get("nccl"), "dali": env.get("dali"),
                        "driver": ((env.get("gpus") or [{}])[0]).get("driver"),
                        "git_commit": git.get("commit"), "git_dirty": git.get("dirty"),
                        "host": env.get("host"), "threads": env.get("threads"),
                        "cpu_model": (env.get("cpu") or {}).get("model"), "python": env.get("python"),
                        "launcher": env.get("launcher")},
        "price": {"usd_per_device_hour": _float(price_row.get("price_usd_per_hour")),
                  "source": price_row.get("price_source")},
        "timing_rules": TIMING_RULES,
        "conventions": CONVENTIONS,
        "runs": runs,
        "excluded_runs": [{"run_id": x["run_id"], "status": x["status"]} for x in runs
                          if x["status"] not in INCLUDED or x["final_acc"] is None],
        "totals": {"device_hours": sum(x["device_hours"] for x in known) if known else None,
                   "cost_usd": (sum(x["cost_usd"] for x in known)
                                if known and all(x["cost_usd"] is not None for x in known) else None)},
        "stats": stats,
        "stats_note": note,
    }
    kind.finish(out, raw)  # kind: gan names its score, kind: external adds the command and its output
    return out


def _int(text):
    f = _float(text)
    return int(f) if f is not None and f == int(f) else None


def dumps(summary: dict) -> str:
    return json.dumps(summary, indent=2, sort_keys=True) + "\n"


def write(bundle: Path, summary: dict) -> None:
    text = dumps(summary)
    atomic_write(Path(bundle) / "summary.json", lambda f: f.write(text))
