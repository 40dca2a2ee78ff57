"""DAWNBench-shaped files for each run: `runs/<id>/dawnbench.tsv` and `runs/<id>/dawnbench.json`.

The TSV has DAWNBench's header `epoch\\thours\\ttop1Accuracy`, one row per evaluated epoch: hours since
run_start (the time-to-target clock, not wall time) and test top-1 in percent. Epochs are numbered as in
the event log, from 1. DAWNBench reads the time as the first row at or above the target.

The JSON follows DAWNBench's submission fields; author fields are left empty for the submitter.
"""
from __future__ import annotations

import json
from pathlib import Path

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


def dawnbench_json(summary: dict, run: dict, row: dict | None) -> dict:
    env, price = summary["environment"], summary["price"]
    per_hour = price["usd_per_device_hour"]
    world = summary["device"]["world_size"] or 1
    when = (row or {}).get("timestamp") or ""
    return {
        "version": DAWNBENCH_VERSION,
        "author": "",
        "authorEmail": "",
        "framework": f"PyTorch {env['torch']}" if env.get("torch") else "PyTorch",
        "codeURL": "",  # the remote is not recorded, only the commit (misc.git_commit)
        "model": f"{summary['recipe']['model']} ({summary['recipe']['name']})",
        "hardware": hardware_text(summary),
        "costPerHour": per_hour * world if per_hour is not None else None,
        "timestamp": when[:10],
        "logFilename": "mllog.txt",
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
            "tsv": "dawnbench.tsv",
        },
    }


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
