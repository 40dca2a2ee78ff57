"""DAWNBench-shaped files for each run: `runs/<id>/dawnbench.tsv` and `runs/<id>/dawnbench.json`.

The TSV has DAWNBench's header `epoch\\thours\\ttop1Accuracy`, one row per evaluated epoch: hours since
run_start (the time-to-target clock, not wall time) and test top-1 in percent. Epochs are numbered as in
the event log, from 1. DAWNBench reads the time as the first row at or above the target.

The JSON follows DAWNBench's submission fields (stanford-futuredata/dawn-bench-entries README). A bundle knows
no author: `author`, `authorEmail`, `codeURL` and `logFilename` (a URL) are filled in by `bench submit`
from its options or the submitter file (`submitter()`); `costPerHour` is left out when the price is unknown,
as DAWNBench asks. `misc.log` names the run's event log inside the bundle.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from bench.core.errors import BenchError
from bench.core.results import atomic_write

DAWNBENCH_VERSION = "v1.0"


def dawnbench_tsv(run: dict) -> str:
    lines = ["epoch\thours\ttop1Accuracy"]
    lines += [f"{e['epoch']}\t{e['elapsed_s'] / 3600!r}\t{e['acc'] * 100!r}" for e in run["evals"]]
    return "\n".join(lines) + "\n"


def hardware_text(summary: dict) -> str:
    d, env = summary["device"], summary["environment"]
    if d["type"] == "cuda":
        return f"{d['world_size']} * {d['name']}"
    return f"{d['name'] or env.get('cpu_model')} (CPU, {env.get('threads')} threads per process)"


SUBMITTER_FIELDS = {"author": "author", "authorEmail": "email", "codeURL": "code_url"}
REQUIRED = ("author", "authorEmail")  # DAWNBench's required fields a bundle cannot know


def dawnbench_json(summary: dict, run: dict, row: dict | None) -> dict:
    env, price = summary["environment"], summary["price"]
    per_hour = price["usd_per_device_hour"]
    world = summary["device"]["world_size"] or 1
    when = (row or {}).get("timestamp") or ""
    doc = {
        "version": DAWNBENCH_VERSION,
        "framework": f"PyTorch {env['torch']}" if env.get("torch") else "PyTorch",
        "model": f"{summary['recipe']['model']} ({summary['recipe']['name']})",
        "hardware": hardware_text(summary),
        "timestamp": when[:10],
        "misc": {
            "run_id": run["run_id"], "seed": run["seed"], "status": run["status"],
            "target_top1": summary["target"] * 100, "time_to_target_s": run["time_to_target_s"],
            "best_top1": run["best_acc"] * 100 if run["best_acc"] is not None else None,
            "epochs": run["epochs"], "init_s": run["init_s"], "wall_s": run["wall_s"],
            "cost_usd": run["cost_usd"], "price_source": price["source"],
            "recipe_hash": summary["recipe"]["hash"], "dataset": summary["dataset"]["name"],
            "dataset_fingerprint": summary["dataset"]["fingerprint"],
            "precision": summary["precision"], "loader": summary["loader"],
            "git_commit": env.get("git_commit"), "git_dirty": env.get("git_dirty"), "host": env.get("host"),
            "timing": summary["timing_rules"]["time_to_target"],
            "tsv": "dawnbench.tsv", "log": "mllog.txt",
        },
    }
    if per_hour is not None:
        doc["costPerHour"] = per_hour * world
    return doc


def submitter(options: dict, path: Path | None = None) -> dict:
    """Who submits: `bench submit` options first, then the submitter file ($BENCH_SUBMITTER or
    ~/.config/bench/submitter.yaml: author, email, code_url, log_url), else nothing."""
    path = Path(path or os.environ.get("BENCH_SUBMITTER") or Path.home() / ".config" / "bench" / "submitter.yaml")
    stored = {}
    if path.is_file():
        try:
            stored = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise BenchError(f"{path}: not valid YAML ({getattr(exc, 'problem', exc)}); fix it or pass --author, "
                             f"--email, --code-url and --log-url instead") from None
        unknown = sorted(set(stored) - {"author", "email", "code_url", "log_url"})
        if not isinstance(stored, dict) or unknown:
            raise BenchError(f"{path}: expected a mapping with author, email, code_url, log_url; "
                             f"unknown: {', '.join(unknown) or type(stored).__name__}")
    return {k: v for k, v in {**stored, **{k: v for k, v in options.items() if v}}.items() if v}


def for_submission(doc: dict, who: dict, log_url: str | None) -> dict:
    """A bundle's DAWNBench JSON completed with the submitter's fields (left out when unknown)."""
    out = {k: v for k, v in doc.items()}
    for field, key in SUBMITTER_FIELDS.items():
        if who.get(key):
            out[field] = who[key]
    if log_url:
        out["logFilename"] = log_url
    return out


def missing_for_dawnbench(doc: dict, summary: dict) -> list[str]:
    """What a pull request to DAWNBench's CIFAR10/train still needs, in words."""
    missing = [f"`{f}` (required; --{SUBMITTER_FIELDS[f].replace('_', '-')} or the submitter file)"
               for f in REQUIRED if not doc.get(f)]
    for field, hint in (("codeURL", "--code-url"), ("logFilename", "--log-url: where the event logs will be"),
                        ("costPerHour", "a price for this hardware (recipe price or bench/core/prices.yaml)")):
        if not doc.get(field):
            missing.append(f"`{field}` (optional; {hint})")
    if summary["dataset"]["name"] != "cifar10":
        missing.append(f"official CIFAR-10: this run used {summary['dataset']['name']} "
                       f"({(summary['dataset']['fingerprint'] or '')[:12]}); DAWNBench ranks official CIFAR-10 only")
    if summary["target"] < 0.94:
        missing.append(f"the 94% target: this run raced to {summary['target']:.2%}")
    return missing


def write(bundle: Path, summary: dict, rows_by_id: dict[str, dict]) -> list[str]:
    """Write both files for every run that has a directory; returns the relative paths written."""
    if summary.get("kind") == "gan":
        return []  # DAWNBench's format is test top-1 against time: a GAN run has no accuracy to export
    written = []
    for run in summary["runs"]:
        d = Path(bundle) / "runs" / run["run_id"]
        tsv = dawnbench_tsv(run)
        doc = json.dumps(dawnbench_json(summary, run, rows_by_id.get(run["run_id"])), indent=2, sort_keys=True)
        atomic_write(d / "dawnbench.tsv", lambda f: f.write(tsv))
        atomic_write(d / "dawnbench.json", lambda f: f.write(doc + "\n"))
        written += [f"runs/{run['run_id']}/dawnbench.tsv", f"runs/{run['run_id']}/dawnbench.json"]
    return written
