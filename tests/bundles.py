"""Hand-made report bundles for the report, verify and summary tests: written through the real BundleWriter
and MLLogger from scripted evaluations, in a fraction of a second each (no training, no plots)."""
from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

from bench.cli import build_parser
from bench.core.errors import BenchError


def bench(*argv) -> int:
    """What bench.cli.main does: parse, run, map errors to codes (but errors stay readable in the test)."""
    args = build_parser().parse_args([str(a) for a in argv])
    try:
        return int(args.func(args) or 0)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return exc.exit_code


def make_bundle(tmp_path: Path, runs: list[dict], target: float = 0.9, recipe_name: str = "cpu_quick",
                sets: tuple = (), seeds: list[int] | None = None, env_extra: dict | None = None,
                day: str = "20260101") -> Path:
    """A bundle written through the real BundleWriter and MLLogger, from scripted evaluations (of a score such
    as fd_judge, logged as eval_score, when the recipe's target metric is not test accuracy). `sets`: more
    --set overrides of the recipe (runs=5, data.batch_size=256); `seeds`: each run's seed (default 0, 1, ...);
    `env_extra`: more env.json fields (first_run); `day`: the date in the run ids (bundles of distinct runs).

    The three PNGs are left out: drawing them is 95% of the time it takes to make a bundle (which the
    mutation runs pay once per mutant), verify only hashes them through the MANIFEST and summary never
    reads them. The real bundle's tests (marked slow) draw them."""
    from unittest import mock

    from bench.core import mllog
    from bench import recipe
    from bench.run.bundle import BundleWriter
    from bench.core.results import device_hours
    from bench.system.telemetry import write_csv

    r = recipe.load(recipe_name, [f"target.value={target}", *sets])
    score = r.target.metric != "test_acc"
    best, final = ("best_metric", "final_metric") if score else ("best_acc", "final_acc")
    w = BundleWriter(tmp_path / "reports", r)
    env = {"device": "cpu", "world_size": 1, "nodes": 1, "torch": "2.x", "host": "testhost", "threads": 1,
           "cpu": {"model": "Test CPU", "logical_cores": 2, "physical_cores": 2}, "cuda": {"version": None},
           "git": {"commit": "abc", "dirty": False}, "gpus": [], "launcher": "none", "data_source": "x",
           "data_dir": "", **(env_extra or {})}
    w.write_json("env.json", env)
    w.write_json("dataset.json", {"name": "cifar10", "fingerprint": "f" * 64, "counts": {"train": 50000,
                                                                                          "test": 10000}})
    for i, spec in enumerate(runs):
        run_id = f"{day}T{i:06d}.000000Z-{i:06d}"  # start order is name order, past 9 runs too
        now = [1000.0 * (i + 1)]
        log = mllog.MLLogger(w.run_dir(run_id) / "mllog.txt", namespace=r.name, clock=lambda: now[0])
        log.start("init_start")
        seed = i if seeds is None else seeds[i]
        log.event("seed", seed)
        log.event("train_samples", 50000)
        log.event("eval_samples", 10000)
        log.event("target_accuracy", target)
        if score:  # the untrained generator's and the real images' scores, as bench.run logs them in init
            log.event(mllog.GAN_BASELINES, metadata={"untrained": {"fd_judge": 400.0}, "real": {"fd_judge": 50.0}})
        log.end("init_stop", metadata={"init_s": 1.5})
        log.start("run_start")
        for epoch, (t, acc) in enumerate(spec["evals"], start=1):
            log.start("epoch_start", metadata={"epoch_num": epoch})
            now[0] += t
            log.end("epoch_stop", metadata={"epoch_num": epoch})
            if score:
                log.event(mllog.EVAL_SCORE, acc, metadata={"epoch_num": epoch, "elapsed_s": t, "is_judge": 1.5})
            else:
                log.event("eval_accuracy", acc, metadata={"epoch_num": epoch, "elapsed_s": t})
        status, ttt = spec["status"], spec.get("ttt")
        if status == "killed":  # the process died: no run_stop, no row, no telemetry
            log.close()
            continue
        epochs = len(spec["evals"]) if status != "aborted" else None
        wall = 1.5 + (spec["evals"][-1][0] if spec["evals"] else 0.0)
        log.end("run_stop", metadata={"status": "success" if status == "reached" else "aborted",
                                      "bench_status": status, "wall_s": wall, "epochs": epochs,
                                      "time_to_target_s": ttt})
        log.close()
        accs = [a for _, a in spec["evals"]]
        fit = status != "aborted"
        w.add_row({"run_id": run_id, "recipe": r.name, "recipe_hash": r.hash, "dataset_fingerprint": "f" * 64,
                   "seed": seed, "target": target, "status": status, "time_to_target_s": ttt,
                   best: (min if r.target.mode == "min" else max)(accs) if fit else None,
                   final: accs[-1] if fit else None,
                   "epochs": epochs, "init_s": 1.5, "wall_s": wall, "world_size": 1, "device_name": "Test CPU",
                   "device_count": 1, "gpu_hours": device_hours(1, wall), "cost_usd": 0.0,
                   "price_usd_per_hour": None, "price_source": "n/a (CPU)", "timestamp": "2026-01-01T00:00:00"})
        gpus = [{"gpu": 0, "util_gpu_pct": 90.0, "power_w": 300.0, "mem_used_mb": 1000.0}] if i == 0 else []
        write_csv([{"t": now[0] - 2, "cpu_percent": 50.0, "proc_rss_mb": 900.0, "proc_cpu_percent": 100.0,
                    "gpus": gpus},
                   {"t": now[0] - 1, "cpu_percent": 55.0, "proc_rss_mb": 950.0, "proc_cpu_percent": 99.0,
                    "gpus": gpus}], w.run_dir(run_id) / "telemetry.csv")
    with mock.patch("bench.report.plots.write", return_value=[]), \
            mock.patch("bench.report.gan_plots.write", return_value=[]):
        return w.finish()


RUNS = [
    {"status": "reached", "evals": [(10.0, 0.85), (20.0, 0.91)], "ttt": 20.0},
    {"status": "reached", "evals": [(12.0, 0.92)], "ttt": 12.0},
    {"status": "missed", "evals": [(10.0, 0.89), (21.0, 0.88)]},
    {"status": "reached", "evals": [(11.0, 0.90)], "ttt": 11.0},  # exactly at the target counts
    {"status": "aborted", "evals": [(9.0, 0.5)]},
]


def verify_errors(b: Path, capsys) -> str:
    assert bench("verify", b) == 1
    return capsys.readouterr().err


def edited_row(hand_bundle: Path, tmp_path: Path, field: str, value: str) -> tuple[Path, str]:
    b = copy_of(hand_bundle, tmp_path)
    with (b / "results.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    rows[1][rows[0].index(field)] = value
    with (b / "results.csv").open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return b, rows[1][rows[0].index("run_id")]


def problems_of(b: Path) -> list[str]:
    from bench.report import verify

    return verify.check(b).problems


def run_ids_of(b: Path) -> list[str]:
    return sorted(p.name for p in (b / "runs").iterdir())


def copy_of(hand_bundle: Path, tmp_path: Path) -> Path:
    b = tmp_path / "b"
    shutil.copytree(hand_bundle, b)
    return b
