"""The results row of one run, and the lines a run prints: which fields come from where.

    identity  row_base: recipe, data set, seed, machine, process group, software and git state
    training  epoch_fields: epochs, accuracies, throughput, data wait (from the epochs finished)
    cost      cost_fields (bench.core.results) and model_cost: FLOPs per image and MFU
The column order of the table is bench.core.results.COLUMNS; extra fields follow it.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import torch

from bench.core.results import cost_fields
from bench.core.targets import best
from bench.data.types import Dataset
from bench.models.user import label
from bench.run.context import RunContext
from bench.system.dist import backend_name
from bench.train.loop import EpochRecord, data_wait_fraction


def row_base(ctx: RunContext, run_id: str, seed: int, ds: Dataset) -> dict:
    r, env = ctx.recipe, ctx.env
    git = env.get("git") or {}
    return {
        "run_id": run_id,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recipe": r.name, "recipe_hash": ctx.recipe_hash,
        "dataset": ds.identity.name, "dataset_fingerprint": ds.identity.fingerprint,
        "train_images": len(ds.train), "test_images": len(ds.test),
        "seed": seed, "target": r.target.value, "metric": r.target.metric,
        "precision": r.precision, "memory_format": r.memory_format, "loader": r.data.loader,
        "model": label(r.model.arch), "compile": r.compile,  # a user's file without its folders
        "device": ctx.device.type, "device_name": ctx.mach.device_name,
        "device_count": ctx.dctx.world_size if ctx.device.type == "cuda" else 1,
        "world_size": ctx.dctx.world_size, "nodes": ctx.dctx.nodes, "procs_per_node": ctx.dctx.local_world_size,
        "backend": backend_name(ctx.device.type) if ctx.dctx.grouped else None,
        "global_batch_size": r.data.batch_size * ctx.dctx.world_size,
        "threads": ctx.threads,
        "torch": torch.__version__, "git_commit": git.get("commit"), "git_dirty": git.get("dirty"),
        "host": env.get("host"),
        **ctx.tags,
    }


def epoch_fields(ctx: RunContext, done: list[EpochRecord], failed: bool = False) -> dict:
    """What the finished epochs say; images/s is scaled to all ranks (each trains an equal shard).
    best_metric / final_metric: the target metric (accuracy for classifiers), best in its own direction;
    as in bench.report.summary, a failed run's last evaluation (the one that failed it) is not its best."""
    if not done:
        return {}
    values = [r.metric_value for r in done if r.metric_value is not None]
    counted = values[:-1] if failed and done[-1].metric_value is not None else values
    accs = [r.test_acc for r in done if r.test_acc is not None]
    train_s = sum(r.epoch_s for r in done)
    per_rank = sum(r.images_per_s * r.epoch_s for r in done) / train_s if train_s else None
    images_per_s = per_rank * ctx.dctx.world_size if per_rank else None
    out = {"epochs": len(done), "best_acc": max(accs) if accs else None, "final_acc": accs[-1] if accs else None,
           "data_wait_fraction": data_wait_fraction(done), "images_per_s": images_per_s,
           "epoch_s_mean": train_s / len(done),
           "best_metric": best(counted, ctx.recipe.target.mode), "final_metric": values[-1] if values else None}
    if ctx.is_main:
        out.update(model_cost(ctx, images_per_s))
    return out


def model_cost(ctx: RunContext, images_per_s: Optional[float]) -> dict:
    from bench.system.flops import mfu, peak_flops

    peak, _ = peak_flops(ctx.mach.device_name, ctx.recipe.precision) if ctx.device.type == "cuda" else (None, "")
    per_device = images_per_s / ctx.dctx.world_size if images_per_s else None
    return {"flops_per_image_fwd": ctx.flops.get("forward"), "flops_per_image_train": ctx.flops.get("train_step"),
            "mfu": mfu(ctx.flops.get("train_step"), per_device, peak)}


def costs(ctx: RunContext, wall_s: float) -> dict:
    return cost_fields(ctx.mach.device_name, ctx.device.type, ctx.dctx.world_size, wall_s,
                       ctx.recipe.price.usd_per_gpu_hour, ctx.recipe.price.source)


def epoch_line(r: EpochRecord, world_size: int = 1, metric: str = "test_acc") -> str:
    if metric == "test_acc":
        acc = "test " + (f"{r.test_acc * 100:6.2f}%" if r.test_acc is not None else "   -   ")
    else:
        acc = f"{metric} " + (f"{r.metric_value:8.4g}" if r.metric_value is not None else "   -    ")
    return (f"  epoch {r.epoch:3d}  {r.elapsed_s:8.1f}s  loss {r.train_loss:.4f}  {acc}  "
            f"lr {r.lr:<6.4g}  {r.images_per_s * world_size:8.0f} img/s  data wait {r.data_wait_s:.1f}s")


def summary_line(row: dict) -> str:
    metric = row.get("metric") or "test_acc"
    if metric != "test_acc":
        return _score_line(row, metric)
    if row["status"] == "reached":
        what = f"reached {row['target']:.2%} in {row['time_to_target_s']:.1f}s"
    else:
        best = row.get("best_acc")
        what = f"{row['status']}: best {best:.2%} < target {row['target']:.2%}" if best is not None else row["status"]
        if row["status"] == "aborted" and row.get("error"):
            what += f" ({row['error']})"
    cost = row.get("cost_usd")
    cost_txt = f"${cost:.4f}" if cost is not None else "cost unknown"
    return (f"{what}  (init {row['init_s']:.1f}s, wall {row['wall_s']:.1f}s, {row['gpu_hours']:.4f} "
            f"{'GPU' if row['device'] == 'cuda' else 'device'}-hours, {cost_txt}; price: {row['price_source']})")


def _score_line(row: dict, metric: str) -> str:
    """summary_line for a score target (fd_judge, ...): the same facts, the metric by name."""
    t = row["target"]
    if row["status"] == "reached":
        what = f"reached {metric} {t:g} in {row['time_to_target_s']:.1f}s"
    else:
        b = row.get("best_metric")
        what = f"{row['status']}: best {metric} {b:.4g}, target {t:g}" if b is not None else row["status"]
        if row["status"] in ("aborted", "failed") and row.get("error"):
            what += f" ({row['error']})"
    return f"{what}  (init {row['init_s']:.1f}s, wall {row['wall_s']:.1f}s, {row['gpu_hours']:.4f} " \
           f"{'GPU' if row['device'] == 'cuda' else 'device'}-hours)"


def recorded_line(row: dict, where: Path | str) -> str:
    return f"row {row['run_id']} appended to {where}"


def land(row: dict, bundle, results_path, say, summary: str) -> None:
    """Bundle first, then the table users query. A table that refuses the row (checked before the run, so
    only a table broken mid-run) must not lose it: the bundle has it, and we say so, never that it was
    appended. Every kind of run lands its rows here."""
    from bench.core.errors import BenchError
    from bench.core.results import append_row

    if bundle is not None:
        bundle.add_row(row)
    say(summary)
    try:
        append_row(results_path, row)
    except BenchError as exc:
        where = bundle.final / "results.csv" if bundle else "nowhere else"
        say(f"warning: the row was NOT appended to {results_path}: {exc}\nthe row is kept in {where}")
        return
    say(recorded_line(row, results_path))
