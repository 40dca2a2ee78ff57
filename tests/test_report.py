"""Report bundles: finalize, report, verify (and --rerun), compare, submit.

One tiny real bundle (cpu_quick, 2000/1000 images, 2 epochs, target lowered to 12%) is trained once per
module and copied per test before any edit; the statistics wiring is checked on hand-made event logs.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from scipy import stats as sps

from bench.core.errors import BenchError
from bench.report import manifest
from bench.cli import build_parser

TINY = ["data.train_subset=2000", "data.test_subset=1000", "optim.epochs=2", "target.value=0.12"]


def bench(*argv) -> int:
    """What bench.cli.main does: parse, run, map errors to codes (but errors stay readable in the test)."""
    args = build_parser().parse_args([str(a) for a in argv])
    try:
        return int(args.func(args) or 0)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return exc.exit_code


def tree_hashes(d: Path) -> dict[str, str]:
    return {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def real_bundle(tmp_path_factory) -> Path:
    from bench import recipe
    from bench.run.runner import run_recipe

    tmp = tmp_path_factory.mktemp("real")
    r = recipe.load("cpu_quick", TINY)
    rows, bundle = run_recipe(r, results_path=tmp / "results.csv", runs=3, reports_dir=tmp / "reports",
                              say=lambda s: None)
    assert bundle is not None and not bundle.name.endswith(".partial")
    assert any(row["status"] == "reached" for row in rows), "the lowered target should be reached"
    return bundle


@pytest.fixture
def bundle(real_bundle, tmp_path) -> Path:
    dest = tmp_path / real_bundle.name
    shutil.copytree(real_bundle, dest)
    return dest


def first_log(b: Path) -> Path:
    return sorted((b / "runs").glob("*/mllog.txt"))[0]


# ------------------------------------------------------------------------------------------ real bundle

@pytest.mark.slow
def test_bundle_has_every_file_and_manifest_covers_them(bundle):
    for rel in ("recipe.yaml", "env.json", "dataset.json", "results.csv", "summary.json", "report.md",
                *manifest.PLOTS):
        assert (bundle / rel).is_file(), rel
    runs = sorted((bundle / "runs").iterdir())
    assert len(runs) == 3
    for run in runs:
        for name in ("mllog.txt", "epochs.csv", "telemetry.csv", "dawnbench.tsv", "dawnbench.json"):
            assert (run / name).is_file(), run / name
        tsv = (run / "dawnbench.tsv").read_text().splitlines()
        assert tsv[0] == "epoch\thours\ttop1Accuracy" and len(tsv) >= 2
        doc = json.loads((run / "dawnbench.json").read_text())
        # a bundle knows no author and (on a CPU) no price: those fields are left out, never empty or null
        assert set(doc) == {"version", "framework", "model", "hardware", "timestamp", "misc"}
        assert doc["misc"]["log"] == "mllog.txt" and doc["timestamp"].replace("-", "") == doc["misc"]["run_id"][:8]
    lines = (bundle / "MANIFEST").read_text().splitlines()
    listed = [line.split("  ", 1)[1] for line in lines]
    assert listed == sorted(listed)
    assert listed == manifest.bundle_files(bundle)
    for line in lines:
        digest, rel = line.split("  ", 1)
        assert hashlib.sha256((bundle / rel).read_bytes()).hexdigest() == digest


@pytest.mark.slow
def test_verify_passes_and_reads_only(bundle, capsys):
    before = tree_hashes(bundle)
    assert bench("verify", bundle) == 0
    out = capsys.readouterr().out
    assert out.startswith("verified: 3 runs, ") and "figures" in out
    assert tree_hashes(bundle) == before


@pytest.mark.slow
def test_verify_names_an_edited_summary_number(bundle, capsys):
    s = json.loads((bundle / "summary.json").read_text())
    s["runs"][0]["wall_s"] *= 1.01
    (bundle / "summary.json").write_text(json.dumps(s, indent=2, sort_keys=True) + "\n")
    before = tree_hashes(bundle)
    assert bench("verify", bundle) == 1
    err = capsys.readouterr().err
    run_id = s["runs"][0]["run_id"]
    assert f"summary.json: runs[{run_id}].wall_s: file has" in err
    assert "summary.json: changed" in err
    assert tree_hashes(bundle) == before


@pytest.mark.slow
def test_verify_names_an_edited_event_log(bundle, capsys):
    log = first_log(bundle)
    lines = log.read_text().splitlines(keepends=True)
    i = next(k for k, line in enumerate(lines) if '"eval_accuracy"' in line)
    rec = json.loads(lines[i][len(":::MLLOG "):])
    rec["value"] = round(rec["value"] + 0.05, 6)
    lines[i] = ":::MLLOG " + json.dumps(rec) + "\n"
    log.write_text("".join(lines))
    assert bench("verify", bundle) == 1
    err = capsys.readouterr().err
    rel = log.relative_to(bundle).as_posix()
    assert f"{rel}: changed (its sha256 differs from the one in MANIFEST)" in err
    assert "best_acc: file has" in err and "results.csv:" in err  # the recomputed figures disagree too


@pytest.mark.slow
def test_verify_names_missing_and_extra_files(bundle, capsys):
    (bundle / "dataset.json").unlink()
    (bundle / "runs" / "notes.txt").write_text("hand-added\n")
    assert bench("verify", bundle) == 1
    err = capsys.readouterr().err
    assert "dataset.json: missing (listed in MANIFEST" in err
    assert "runs/notes.txt: extra file (not listed in MANIFEST)" in err


@pytest.mark.slow
def test_truncated_event_log_names_file_and_line(bundle, capsys):
    log = first_log(bundle)
    data = log.read_bytes()
    log.write_bytes(data[:-30])  # a writer killed mid-line
    n_lines = data[:-30].count(b"\n") + 1
    before = tree_hashes(bundle)
    assert bench("verify", bundle) == 1
    err = capsys.readouterr().err
    assert f"{log.relative_to(bundle).as_posix()}:{n_lines}: not an MLPerf log line" in err
    assert "Traceback" not in err
    assert tree_hashes(bundle) == before


@pytest.mark.slow
def test_malformed_results_csv_names_the_line(bundle, capsys):
    with open(bundle / "results.csv", "a") as f:
        f.write("half,a,row\n")
    assert bench("verify", bundle) == 1
    err = capsys.readouterr().err
    assert "results.csv:5: malformed row" in err


def test_verify_missing_dir_is_bad_input(tmp_path, capsys):
    assert bench("verify", tmp_path / "nope") == 2
    assert "no such bundle directory" in capsys.readouterr().err


@pytest.mark.slow
def test_report_regenerates_identical_bytes(bundle, capsys):
    derived = ["report.md", "summary.json", *manifest.PLOTS]
    before = {rel: (bundle / rel).read_bytes() for rel in derived}
    before_manifest = (bundle / "MANIFEST").read_bytes()
    for rel in derived:
        (bundle / rel).unlink()
    assert bench("report", bundle) == 0
    for rel in derived:
        assert (bundle / rel).read_bytes() == before[rel], rel
    assert (bundle / "MANIFEST").read_bytes() == before_manifest
    assert bench("verify", bundle) == 0


@pytest.mark.slow
def test_report_refuses_after_a_log_edit(bundle, capsys):
    log = first_log(bundle)
    log.write_text(log.read_text().replace('"seed", "value": ', '"seed", "value": 1', 1))
    report_before = (bundle / "report.md").read_bytes()
    assert bench("report", bundle) == 1
    err = capsys.readouterr().err
    assert "refusing to regenerate" in err and log.relative_to(bundle).as_posix() in err
    assert (bundle / "report.md").read_bytes() == report_before


@pytest.mark.slow
def test_report_without_manifest_needs_the_flag(bundle, capsys):
    (bundle / "MANIFEST").unlink()
    assert bench("report", bundle) == 1
    assert "--no-manifest" in capsys.readouterr().err
    assert bench("report", bundle, "--no-manifest") == 0
    assert bench("verify", bundle) == 0


@pytest.mark.slow
def test_report_md_content(bundle):
    text = (bundle / "report.md").read_text()
    assert "**This is NOT official CIFAR-10" in text
    for needle in ("## Timing rules", "`time_to_target`", "olympic mean", "95% CI", "H0: mean accuracy <= target",
                   "](plots/accuracy_vs_time.png)", "](plots/time_to_target.png)", "](plots/telemetry.png)",
                   "## Anchors", "git commit"):
        assert needle in text, needle


@pytest.mark.slow
def test_verify_rerun_states_the_test(bundle, capsys):
    before = tree_hashes(bundle)
    rc = bench("verify", bundle, "--rerun", "--runs", "1")
    out = capsys.readouterr().out
    assert "new run 1:" in out
    reached = json.loads((bundle / "summary.json").read_text())["stats"]["n_reached"]
    if reached >= 2:
        assert "95% prediction interval mean ± t(0.975, n-1)·s·sqrt(1+1/n)" in out
    else:
        assert "no distribution to compare against" in out
    assert (rc == 0) == ("reproduced" in out and "NOT reproduced" not in out)
    assert tree_hashes(bundle) == before


def test_rerun_verdict():
    from bench.studies.rerun import prediction_interval, rerun_verdict

    lo, hi = prediction_interval([10.0, 12.0])
    # mean 11, s = sqrt(2), t(0.975, 1) = 12.706..., sqrt(1 + 1/2)
    assert hi - 11.0 == pytest.approx(12.7062047 * 2 ** 0.5 * 1.5 ** 0.5, rel=1e-6)
    ok, lines = rerun_verdict([10.0, 12.0, 11.0], [11.5])
    assert ok and any("inside" in line for line in lines)
    ok, lines = rerun_verdict([10.0, 10.1, 9.9], [20.0, 10.0])
    assert not ok and any("OUTSIDE" in line for line in lines) and any("Welch" in line and "p = " in line
                                                                        for line in lines)
    ok, lines = rerun_verdict([10.0, 10.1, 9.9], [None])
    assert not ok and "missed" in lines[-1]
    ok, lines = rerun_verdict([10.0], [30.0])
    assert ok and "no distribution to compare against" in lines[0]


# ------------------------------------------------------------------------------------------ submit

@pytest.mark.slow
def test_submit_tree(bundle, tmp_path):
    out = tmp_path / "subs"
    assert bench("submit", bundle, "--out", out) == 0
    env = json.loads((bundle / "env.json").read_text())
    system = f"cpu-{env['cpu']['logical_cores']}c-{env['host']}"
    dest = out / system / "cpu_quick"
    assert json.loads((dest / "systems" / f"{system}.json").read_text())["host_processor_model_name"]
    results = sorted((dest / "results" / system / "cpu_quick").iterdir())
    assert [p.name for p in results] == ["result_0.txt", "result_1.txt", "result_2.txt"]
    assert results[0].read_bytes() == first_log(bundle).read_bytes()
    for rel in ("summary.json", "report.md", "bundle.MANIFEST", "MANIFEST", "dawnbench/result_0.tsv",
                "dawnbench/result_2.json", *manifest.PLOTS):
        assert (dest / rel).is_file(), rel
    assert manifest.check(dest) == []
    doc = json.loads((dest / "dawnbench" / "result_0.json").read_text())
    assert "author" not in doc and "logFilename" not in doc
    assert bench("submit", bundle, "--out", out) == 2  # exists: refuse without --force
    assert bench("submit", bundle, "--out", out, "--force", "--system", "my box/1") == 0
    assert (out / "my_box_1" / "cpu_quick" / "systems" / "my_box_1.json").is_file()
    assert bench("submit", bundle, "--out", out, "--force", "--author", "Ada", "--email", "ada@example.org",
                 "--code-url", "https://example.org/bench", "--log-url", "https://example.org/subs/") == 0
    doc = json.loads((dest / "dawnbench" / "result_1.json").read_text())
    assert (doc["author"], doc["authorEmail"], doc["codeURL"]) == ("Ada", "ada@example.org", "https://example.org/bench")
    assert doc["logFilename"] == f"https://example.org/subs/results/{system}/cpu_quick/result_1.txt"
    assert manifest.check(dest) == []


def test_submitter_file_and_options(tmp_path):
    from bench.report.exports import for_submission, missing_for_dawnbench, submitter

    path = tmp_path / "submitter.yaml"
    path.write_text("author: From File\nemail: f@example.org\n")
    who = submitter({"author": "Option", "email": None}, path)
    assert who == {"author": "Option", "email": "f@example.org"}
    doc = for_submission({"version": "v1.0"}, who, None)
    assert doc == {"version": "v1.0", "author": "Option", "authorEmail": "f@example.org"}
    summary = {"dataset": {"name": "imagefolder:x", "fingerprint": "ab" * 32}, "target": 0.8}
    needs = "\n".join(missing_for_dawnbench(doc, summary))
    assert "authorEmail" not in needs and "codeURL" in needs and "official CIFAR-10" in needs and "94%" in needs
    path.write_text("auther: typo\n")
    with pytest.raises(BenchError, match="auther"):
        submitter({}, path)


@pytest.mark.slow
def test_submit_refuses_a_bundle_that_fails_verify(bundle, tmp_path, capsys):
    (bundle / "report.md").write_text("nothing to see\n")
    assert bench("submit", bundle, "--out", tmp_path / "subs") == 1
    assert "report.md" in capsys.readouterr().err
    assert not (tmp_path / "subs").exists()


# ------------------------------------------------------------------------------------------ hand-made logs

def make_bundle(tmp_path: Path, runs: list[dict], target: float = 0.9, recipe_name: str = "cpu_quick") -> Path:
    """A bundle written through the real BundleWriter and MLLogger, from scripted evaluations (of a score such
    as fd_judge, logged as eval_score, when the recipe's target metric is not test accuracy).

    The three PNGs are left out: drawing them is 95% of the time it takes to make a bundle (which the
    mutation runs pay once per mutant), verify only hashes them through the MANIFEST and summary never
    reads them. The real bundle's tests (marked slow) draw them."""
    from unittest import mock

    from bench.core import mllog
    from bench import recipe
    from bench.run.bundle import BundleWriter
    from bench.core.results import device_hours
    from bench.system.telemetry import write_csv

    r = recipe.load(recipe_name, [f"target.value={target}"])
    score = r.target.metric != "test_acc"
    best, final = ("best_metric", "final_metric") if score else ("best_acc", "final_acc")
    w = BundleWriter(tmp_path / "reports", r)
    env = {"device": "cpu", "world_size": 1, "nodes": 1, "torch": "2.x", "host": "testhost", "threads": 1,
           "cpu": {"model": "Test CPU", "logical_cores": 2, "physical_cores": 2}, "cuda": {"version": None},
           "git": {"commit": "abc", "dirty": False}, "gpus": [], "launcher": "none", "data_source": "x",
           "data_dir": ""}
    w.write_json("env.json", env)
    w.write_json("dataset.json", {"name": "cifar10", "fingerprint": "f" * 64, "counts": {"train": 50000,
                                                                                          "test": 10000}})
    for i, spec in enumerate(runs):
        run_id = f"20260101T00000{i}.000000Z-00000{i}"
        now = [1000.0 * (i + 1)]
        log = mllog.MLLogger(w.run_dir(run_id) / "mllog.txt", namespace=r.name, clock=lambda: now[0])
        log.start("init_start")
        log.event("seed", i)
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
                   "seed": i, "target": target, "status": status, "time_to_target_s": ttt,
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


def test_summary_figures_match_hand_computation(tmp_path):
    b = make_bundle(tmp_path, RUNS)
    s = json.loads((b / "summary.json").read_text())
    runs = {r["seed"]: r for r in s["runs"]}
    assert runs[2]["best_acc"] == 0.89 and runs[2]["final_acc"] == 0.88 and runs[2]["status"] == "missed"
    assert runs[3]["time_to_target_s"] == 11.0 and runs[0]["epochs"] == 2
    assert runs[4]["status"] == "aborted" and runs[4]["best_acc"] is None
    assert s["excluded_runs"] == [{"run_id": runs[4]["run_id"], "status": "aborted"}]
    st = s["stats"]
    assert st["n_runs"] == 4 and st["n_reached"] == 3 and st["success_rate"] == 0.75
    assert st["time"]["mean"] == pytest.approx((20 + 12 + 11) / 3)
    assert st["time"]["median"] == 12.0
    # olympic: the miss is the slowest and 11 s the fastest; 12 and 20 remain
    assert st["olympic_time"]["value"] == pytest.approx(16.0)
    assert st["accuracy"]["mean"] == pytest.approx((0.91 + 0.92 + 0.88 + 0.90) / 4)  # final, not best
    finals = [0.91, 0.92, 0.88, 0.90]
    want = sps.ttest_1samp(finals, 0.9, alternative="greater")
    assert st["ttest"]["t"] == pytest.approx(float(want.statistic), rel=1e-12)
    assert st["ttest"]["p"] == pytest.approx(float(want.pvalue), rel=1e-12) and st["ttest"]["df"] == 3
    assert st["ttest"]["all_above_target"] is False  # 0.88 is below
    assert st["ttest"]["hypothesis"] == "H0: mean accuracy <= target; H1: mean accuracy > target (one-sided)"
    assert s["dataset"]["official_cifar10"] is True
    assert "NOT official" not in (b / "report.md").read_text()
    assert bench("verify", b) == 0


def test_no_run_reached_still_reports(tmp_path):
    b = make_bundle(tmp_path, [{"status": "missed", "evals": [(5.0, 0.3)]},
                               {"status": "missed", "evals": [(5.0, 0.4)]}])
    s = json.loads((b / "summary.json").read_text())
    assert s["stats"]["n_reached"] == 0 and s["stats"]["time"]["mean"] is None
    assert "No run reached the target" in (b / "report.md").read_text()
    assert bench("verify", b) == 0


def test_killed_run_is_listed_as_aborted(tmp_path):
    b = make_bundle(tmp_path, [{"status": "killed", "evals": [(5.0, 0.3)]}])
    s = json.loads((b / "summary.json").read_text())
    assert s["runs"][0]["status"] == "aborted" and s["stats"] is None and "nothing to summarise" in s["stats_note"]
    assert (b / "runs" / s["runs"][0]["run_id"] / "dawnbench.tsv").is_file()
    assert bench("verify", b) == 0


def test_log_that_contradicts_itself_fails_verify(tmp_path, capsys):
    b = make_bundle(tmp_path, [{"status": "missed", "evals": [(5.0, 0.95)]}])  # 95% >= 90% yet "missed"
    assert bench("verify", b) == 1
    err = capsys.readouterr().err
    assert "run_stop says bench_status 'missed' but the evaluations make it 'reached'" in err
    assert "results.csv:2" in err and "status" in err


# ------------------------------------------------------------------------------------------ compare

def write_table(path: Path) -> None:
    from bench.core.results import append_row

    base = {"recipe_hash": "h", "device_name": "GPU A", "device_count": 1, "world_size": 1, "precision": "bf16",
            "target": 0.94, "wall_s": 100.0, "gpu_hours": 100 / 3600, "cost_usd": 0.1, "data_wait_fraction": 0.01}
    rows = [
        ("fast", "fp1", "reached", 10.0, 0.941), ("fast", "fp1", "reached", 12.0, 0.945),
        ("fast", "fp1", "missed", None, 0.93), ("fast", "fp1", "aborted", None, None),
        ("slow", "fp1", "reached", 30.0, 0.95), ("slow", "fp1", "reached", 34.0, 0.952),
        ("fast", "fp2", "reached", 8.0, 0.94),
        ("never", "fp1", "missed", None, 0.90), ("never", "fp1", "failed", None, None),
    ]
    for i, (recipe, fp, status, t, acc) in enumerate(rows):
        append_row(path, {**base, "run_id": f"r{i}", "recipe": recipe, "dataset_fingerprint": fp, "status": status,
                          "time_to_target_s": t, "final_acc": acc, "best_acc": acc, "mfu": 0.3})


def test_compare_ranks_groups_and_counts(tmp_path):
    from bench.report.compare import compare_table, pareto_plot, table_warnings
    from bench.core.results import read_table

    write_table(tmp_path / "t.csv")
    df = read_table(tmp_path / "t.csv")
    rows = compare_table(df)
    names = [(r["rank"], r["recipe"], r["dataset_fingerprint"]) for r in rows]
    assert names == [(1, "fast", "fp2"), (2, "fast", "fp1"), (3, "slow", "fp1"), (None, "never", "fp1")]
    fast1 = rows[1]
    assert fast1["runs"] == 3 and fast1["reached"] == 2 and fast1["excluded"] == 1
    assert fast1["success_rate"] == pytest.approx(2 / 3) and fast1["time_mean"] == 11.0
    assert fast1["differs"] == ["dataset_fingerprint"] and rows[2]["differs"] == []
    assert fast1["mfu_mean"] == pytest.approx(0.3)
    assert rows[3]["excluded"] == 1 and rows[3]["success_rate"] == 0.0
    assert [r["recipe"] for r in compare_table(df, recipes=["slow"])] == ["slow"]
    assert compare_table(df, target=0.5) == []
    warnings = table_warnings(df)
    assert len(warnings) == 1 and "2 dataset fingerprints" in warnings[0]
    out = pareto_plot(rows, tmp_path / "p.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_command_json_and_plot(tmp_path, capsys):
    write_table(tmp_path / "t.csv")
    rc = bench("compare", "--results", tmp_path / "t.csv", "--target", "0.94", "--plot", tmp_path / "c.png",
               "--json", tmp_path / "c.json")
    assert rc == 0
    out = capsys.readouterr().out
    assert "warning: the table holds 2 dataset fingerprints" in out
    assert "fast (dataset differs)" in out and "excluded" in out
    assert (tmp_path / "c.png").is_file()
    doc = json.loads((tmp_path / "c.json").read_text())
    assert set(doc) == {"results", "target", "recipes", "group_keys", "warnings", "rows"}
    assert doc["target"] == 0.94 and len(doc["rows"]) == 4
    for key in ("rank", "recipe", "recipe_hash", "dataset_fingerprint", "device_name", "device_count", "world_size",
                "precision", "target", "runs", "reached", "success_rate", "excluded", "time_mean", "time_ci_low",
                "time_ci_high", "final_acc_best", "final_acc_mean", "best_acc_mean", "gpu_hours_mean", "cost_mean",
                "mfu_mean", "data_wait_fraction_mean", "dataset", "differs"):
        assert key in doc["rows"][0], key
    assert bench("compare", "--results", tmp_path / "missing.csv") == 2


def test_pareto_front():
    from bench.report.compare import pareto_front

    pts = [(10, 90), (12, 95), (11, 89), (30, 96), (31, 95)]
    assert pareto_front(pts) == [0, 1, 3]


# ------------------------------------------------------------------------------------------ verify's other checks

def verify_errors(b: Path, capsys) -> str:
    assert bench("verify", b) == 1
    return capsys.readouterr().err


def test_verify_names_a_recipe_whose_contents_do_not_match_its_hash(tmp_path, capsys):
    b = make_bundle(tmp_path, RUNS[:2])
    text = (b / "recipe.yaml").read_text()
    (b / "recipe.yaml").write_text(text.replace("lr: 0.4", "lr: 0.5", 1))
    err = verify_errors(b, capsys)
    stated = text.splitlines()[0].rsplit("hash", 1)[1].strip()
    assert f"recipe.yaml: its header says hash '{stated}' but its contents hash to '" in err, err
    assert "recipe.yaml: changed" in err


def test_verify_names_a_duplicated_and_a_missing_row(tmp_path, capsys):
    b = make_bundle(tmp_path, RUNS[:3])
    lines = (b / "results.csv").read_text().splitlines(keepends=True)
    header, first, second, third = lines
    (b / "results.csv").write_text(header + first + second + first)  # the third run's row replaced by a copy
    err = verify_errors(b, capsys)
    ids = sorted(p.name for p in (b / "runs").iterdir())
    assert f"results.csv:4: run {ids[0]} appears twice" in err, err
    assert f"results.csv: run {ids[2]} has an event log with run_stop but no row" in err, err


def test_verify_names_a_row_without_an_event_log(tmp_path, capsys):
    b = make_bundle(tmp_path, RUNS[:1])
    lines = (b / "results.csv").read_text().splitlines(keepends=True)
    stranger = "20260101T000009.000000Z-000009"
    (b / "results.csv").write_text("".join(lines) + lines[1].replace(lines[1].split(",")[0], stranger, 1))
    err = verify_errors(b, capsys)
    assert f"results.csv:3: run {stranger} has no event log (runs/{stranger}/mllog.txt)" in err, err


def test_verify_names_an_edited_dawnbench_tsv(tmp_path, capsys):
    b = make_bundle(tmp_path, RUNS[:1])
    run_id = next((b / "runs").iterdir()).name
    tsv = b / "runs" / run_id / "dawnbench.tsv"
    lines = tsv.read_text().splitlines(keepends=True)
    epoch, hours, acc = lines[-1].rstrip("\n").split("\t")
    lines[-1] = f"{epoch}\t{float(hours) / 2!r}\t{acc}\n"  # half the time: a faster entry than the logs hold
    tsv.write_text("".join(lines))
    err = verify_errors(b, capsys)
    assert f"runs/{run_id}/dawnbench.tsv: differs from what the raw files give" in err, err
    assert f"runs/{run_id}/dawnbench.tsv: changed" in err


ROW_EDITS = {"status": "missed", "time_to_target_s": "21.0", "best_acc": "0.95", "final_acc": "0.95", "epochs": "3",
             "init_s": "2.5", "wall_s": "22.5", "gpu_hours": "1.0", "cost_usd": "5.0", "seed": "7", "world_size": "2",
             "target": "0.8", "recipe": "other", "recipe_hash": "0" * 16, "dataset_fingerprint": "e" * 64}


@pytest.fixture(scope="module")
def hand_bundle(tmp_path_factory) -> Path:
    b = make_bundle(tmp_path_factory.mktemp("hand"), RUNS[:1])
    assert bench("verify", b) == 0  # unedited, it verifies: each problem below comes from its one edit
    return b


def edited_row(hand_bundle: Path, tmp_path: Path, field: str, value: str) -> tuple[Path, str]:
    import csv

    b = tmp_path / hand_bundle.name
    shutil.copytree(hand_bundle, b)
    with (b / "results.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    rows[1][rows[0].index(field)] = value
    with (b / "results.csv").open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return b, rows[1][rows[0].index("run_id")]


@pytest.mark.parametrize("field", ROW_EDITS)
def test_verify_names_each_edited_row_field(hand_bundle, tmp_path, capsys, field):
    """Every verifiable cell of results.csv is recomputed from the raw files: an edit is named by line, run and
    column, with the value the event logs give."""
    b, rid = edited_row(hand_bundle, tmp_path, field, ROW_EDITS[field])
    err = verify_errors(b, capsys)
    assert f"results.csv:2: run {rid}: {field}: file has " in err, err
    problems = [line for line in err.splitlines() if line.startswith("  - ")]
    assert len(problems) == 2 and "results.csv: changed" in err, err  # that cell, and the MANIFEST's hash


@pytest.mark.parametrize("field", ["wall_s", "cost_usd", "seed", "world_size", "target"])
def test_verify_names_a_cell_that_is_not_a_number(hand_bundle, tmp_path, capsys, field):
    b, rid = edited_row(hand_bundle, tmp_path, field, "n/a")
    err = verify_errors(b, capsys)
    assert f"results.csv:2: run {rid}: {field} is 'n/a', not a number" in err, err
    assert "does not verify (2 problems)" in err  # that cell, and the MANIFEST's hash


def test_summary_diff_names_every_difference():
    from bench.report.verify import _Diff

    # a run out of place comes first: the runs after it are still compared
    want = {"a": 1.0, "b": {"c": [1, 2]}, "runs": [{"run_id": "r2", "x": 1}, {"run_id": "r1", "x": 0.5}],
            "gone": 3, "s": "t", "n": None, 5: 2, "shape": {"x": 1}}
    got = {"a": 1.0 + 1e-12, "b": {"c": [1, 2, 3]}, "runs": [{"run_id": "r3", "x": 1}, {"run_id": "r1", "x": 0.6}],
           "extra": 4, "s": "u", "n": 0, 5: 2, "shape": [1]}
    d = _Diff("summary.json")
    d.walk(want, got, "")
    assert d.problems == [
        "summary.json: b.c: 3 entries, the event logs give 2",
        "summary.json: extra: unexpected field (value 4)",
        "summary.json: gone: missing (the event logs give 3)",
        "summary.json: n: file has 0, the raw files give None",
        "summary.json: runs[0]: run 'r3', expected 'r2'",
        "summary.json: runs[r1].x: file has 0.6, the event logs give 0.5",
        "summary.json: s: file has 'u', the raw files give 't'",
        "summary.json: shape: file has [1], the raw files give {'x': 1}",
    ]
    assert d.figures == 5  # a, b.c[0], b.c[1], runs[r1].x and key 5: numbers compared on both sides


def test_verify_compares_numbers_within_1e9_relative():
    from bench.report.verify import _close, _is_num

    assert _close(0.5, 0.5 * (1 + 1e-10)) and not _close(0.5, 0.5 * (1 + 1e-8)) and not _close(0.5, 0.6)
    assert _close(0.0, 1e-13) and not _close(0.0, 1e-11)
    assert _is_num(1) and _is_num(1.5) and not _is_num(True) and not _is_num("1") and not _is_num(None)


# ------------------------------------------------------------------------------------------ verify, branch by branch

def problems_of(b: Path) -> list[str]:
    from bench.report import verify

    return verify.check(b).problems


def run_ids_of(b: Path) -> list[str]:
    return sorted(p.name for p in (b / "runs").iterdir())


ROW_NUMBERS = ("time_to_target_s", "best_acc", "final_acc", "epochs", "init_s", "wall_s", "gpu_hours", "cost_usd",
               "seed", "world_size", "target")


def test_verify_counts_its_runs_and_every_figure_it_compared(tmp_path, capsys):
    """`verified: N runs, M figures`: M is every number in summary.json plus every filled numeric cell of
    results.csv that verify recomputes, counted here from the files themselves."""
    import csv

    b = make_bundle(tmp_path, RUNS)

    def numbers(x) -> int:
        if isinstance(x, dict):
            return sum(numbers(v) for v in x.values())
        if isinstance(x, list):
            return sum(numbers(v) for v in x)
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    with (b / "results.csv").open(newline="") as f:
        cells = sum(bool(row[k]) for row in csv.DictReader(f) for k in ROW_NUMBERS)
    want = numbers(json.loads((b / "summary.json").read_text())) + cells
    assert cells == 5 * 11 - 1 - 4  # the miss has no time-to-target; the aborted run no time, best, final, epochs
    assert bench("verify", b) == 0
    assert capsys.readouterr().out.strip() == f"verified: 5 runs, {want} figures"


def test_verify_lists_every_unreadable_raw_file_then_stops(tmp_path):
    b = make_bundle(tmp_path, RUNS[:2])
    first, second = run_ids_of(b)
    (b / "env.json").write_text("{")
    with (b / "runs" / second / "mllog.txt").open("a") as f:
        f.write(":::MLLOG {not json}\n:::MLLOG {}\n")
    problems = problems_of(b)
    assert problems[:2] == ["env.json: changed (its sha256 differs from the one in MANIFEST)",
                            f"runs/{second}/mllog.txt: changed (its sha256 differs from the one in MANIFEST)"]
    assert problems[2].startswith("env.json:1: not valid JSON ("), problems
    assert problems[3].startswith(f"runs/{second}/mllog.txt:"), problems
    assert problems[4:] == ["summary.json, results.csv: not recomputed, because the raw files above could not be read"]


def test_verify_recomputes_nothing_when_only_one_event_log_is_unreadable(tmp_path):
    b = make_bundle(tmp_path, RUNS[:2])
    log = b / "runs" / run_ids_of(b)[1] / "mllog.txt"
    log.write_text(log.read_text() + ":::MLLOG {not json}\n:::MLLOG {}\n")
    assert problems_of(b)[-1] == ("summary.json, results.csv: not recomputed, because the raw files above could "
                                  "not be read")


def test_verify_without_a_runs_folder_names_it(tmp_path):
    from bench.report import verify

    b = make_bundle(tmp_path, RUNS[:1])
    shutil.rmtree(b / "runs")
    out = verify.check(b)
    assert "runs/: missing, so there are no event logs to read" in out.problems
    assert out.problems[-1].startswith("summary.json, results.csv: not recomputed") and out.runs == 0


def test_verify_names_a_log_it_cannot_summarise_and_keeps_the_other_problems(tmp_path):
    from bench.report import verify

    b = make_bundle(tmp_path, RUNS[:1])
    rid = run_ids_of(b)[0]
    log = b / "runs" / rid / "mllog.txt"
    lines = log.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if '"eval_accuracy"' in line)
    record = json.loads(lines[at].split(" ", 1)[1])
    record["value"] = "high"
    lines[at] = ":::MLLOG " + json.dumps(record) + "\n"
    log.write_text("".join(lines))
    out = verify.check(b)
    assert out.problems == [
        f"runs/{rid}/mllog.txt: changed (its sha256 differs from the one in MANIFEST)",
        f"runs/{rid}/mllog.txt:{at + 1}: eval_accuracy value is 'high', expected a finite number",
        "summary.json: not recomputed, because of the problem above"]
    assert out.runs == 1


def test_verify_names_an_unreadable_summary_json(hand_bundle, tmp_path):
    b = tmp_path / "b"
    shutil.copytree(hand_bundle, b)
    (b / "summary.json").write_text('{"schema": ')
    problems = problems_of(b)
    assert problems[0] == "summary.json: changed (its sha256 differs from the one in MANIFEST)"
    assert problems[1].startswith("summary.json:1: not valid JSON ("), problems
    assert len(problems) == 2


def test_verify_names_an_edited_summary_figure_by_its_path(hand_bundle, tmp_path):
    b = tmp_path / "b"
    shutil.copytree(hand_bundle, b)
    s = json.loads((b / "summary.json").read_text())
    s["stats"]["n_runs"] = 4
    (b / "summary.json").write_text(json.dumps(s))
    assert problems_of(b) == ["summary.json: changed (its sha256 differs from the one in MANIFEST)",
                              "summary.json: stats.n_runs: file has 4, the event logs give 1"]


def test_verify_names_a_blank_cell_the_logs_fill(hand_bundle, tmp_path):
    b, rid = edited_row(hand_bundle, tmp_path, "time_to_target_s", "")
    assert problems_of(b) == [
        "results.csv: changed (its sha256 differs from the one in MANIFEST)",
        f"results.csv:2: run {rid}: time_to_target_s: file has None, the event logs give 20.0"]


def test_verify_accepts_a_row_number_within_1e9_relative(hand_bundle, tmp_path):
    b, _ = edited_row(hand_bundle, tmp_path, "wall_s", repr(21.5 * (1 + 1e-12)))
    assert problems_of(b) == ["results.csv: changed (its sha256 differs from the one in MANIFEST)"]


def test_verify_checks_the_rows_after_a_row_without_an_event_log(hand_bundle, tmp_path):
    b = tmp_path / "b"
    shutil.copytree(hand_bundle, b)
    header, row = (b / "results.csv").read_text().splitlines(keepends=True)
    rid = row.split(",")[0]
    stranger = "20260101T000009.000000Z-000009"
    (b / "results.csv").write_text(header + row.replace(rid, stranger, 1) + row.replace(",21.5,", ",22.5,"))
    assert problems_of(b) == [
        "results.csv: changed (its sha256 differs from the one in MANIFEST)",
        f"results.csv:2: run {stranger} has no event log (runs/{stranger}/mllog.txt)",
        f"results.csv:3: run {rid}: wall_s: file has 22.5, the event logs give 21.5"]


def test_verify_names_a_missing_export_and_reads_any_bytes(hand_bundle, tmp_path, capsys):
    b = tmp_path / "b"
    shutil.copytree(hand_bundle, b)
    rid = run_ids_of(b)[0]
    (b / "runs" / rid / "dawnbench.tsv").unlink()
    with (b / "report.md").open("ab") as f:
        f.write(b"\xff\xfe not UTF-8\n")
    assert problems_of(b) == [
        f"runs/{rid}/dawnbench.tsv: missing (listed in MANIFEST, not in the bundle)",
        "report.md: changed (its sha256 differs from the one in MANIFEST)",
        "report.md: differs from what the raw files give (edited, or built by another version)",
        f"runs/{rid}/dawnbench.tsv: missing (bench report DIR rebuilds it)"]


def test_verify_counts_one_problem_as_one(hand_bundle, tmp_path, capsys):
    b = tmp_path / "b"
    shutil.copytree(hand_bundle, b)
    (b / "notes.txt").write_text("mine\n")
    err = verify_errors(b, capsys)
    assert "does not verify (1 problem):\n  - notes.txt: extra file (not listed in MANIFEST)" in err, err


GAN_RUNS = [{"status": "reached", "evals": [(10.0, 300.0), (20.0, 240.0)], "ttt": 20.0},
            {"status": "missed", "evals": [(10.0, 400.0), (21.0, 260.0)]}]


def test_a_score_bundle_verifies_and_its_metric_columns_are_checked(tmp_path):
    """A GAN run set (kind: gan, fd_judge, lower is better): best_metric / final_metric are the recomputed
    columns, and it has no DAWNBench exports to re-render."""
    b = make_bundle(tmp_path, GAN_RUNS, target=250.0, recipe_name="wgan_cpu")
    s = json.loads((b / "summary.json").read_text())
    assert s["kind"] == "gan" and [r["best_metric"] for r in s["runs"]] == [240.0, 260.0]
    # an eval_score's other figures ride along; the baselines come without the logger's file and line
    assert s["runs"][0]["evals"][1] == {"epoch": 2, "elapsed_s": 20.0, "value": 240.0, "is_judge": 1.5}
    assert s["runs"][1]["baselines"] == {"untrained": {"fd_judge": 400.0}, "real": {"fd_judge": 50.0}}
    assert s["stats"]["ttest"]["hypothesis"] == ("H0: mean fd_judge >= target; H1: mean fd_judge < target "
                                                 "(one-sided)")
    assert s["target_check"] == {"untrained": 400.0, "real": 50.0, "target": 250.0, "halfway": 225.0,
                                 "share_of_the_way": pytest.approx(150 / 350), "at_least_halfway": False}
    assert problems_of(b) == []
    assert not list(b.glob("runs/*/dawnbench.*"))
    c, rid = edited_row(b, tmp_path, "best_metric", "230.0")
    assert problems_of(c) == ["results.csv: changed (its sha256 differs from the one in MANIFEST)",
                              f"results.csv:2: run {rid}: best_metric: file has 230.0, the event logs give 240.0"]


# ------------------------------------------------------------------------------------------ summary's raw-file readers

def copy_of(hand_bundle: Path, tmp_path: Path) -> Path:
    b = tmp_path / "b"
    shutil.copytree(hand_bundle, b)
    return b


def load_error(b: Path) -> str:
    from bench.report import summary

    with pytest.raises(BenchError) as e:
        summary.load(b)
    return str(e.value)


RECIPE_EDITS = {  # the recipe.yaml written instead -> the error `bench report` / verify give
    "a: 1\nb: 2\nc: d: e\n": "recipe.yaml:3: not valid YAML (mapping values are not allowed here)",
    # an unclosed list: the parser finds out at the end of the text, on line 3
    "# resolved recipe x, hash 0\na: [\n": "recipe.yaml:3: not valid YAML (expected the node content, but found "
                                           "'<stream end>')",
    "a: \x07\n": "recipe.yaml: not valid YAML (unacceptable character #x0007: special characters are not allowed)",
    "": "recipe.yaml: not a resolved recipe (no target.value)",
    "- 1\n": "recipe.yaml: not a resolved recipe (no target.value)",
    "target: 5\n": "recipe.yaml: not a resolved recipe (no target.value)",
    "target: {metric: test_acc}\n": "recipe.yaml: not a resolved recipe (no target.value)",
}


@pytest.mark.parametrize("text", RECIPE_EDITS)
def test_an_unreadable_recipe_yaml_is_named_with_its_line(hand_bundle, tmp_path, text):
    b = copy_of(hand_bundle, tmp_path)
    (b / "recipe.yaml").write_text(text)
    assert load_error(b) == RECIPE_EDITS[text]


@pytest.mark.parametrize("header, stated", [
    ("# resolved recipe cpu_quick, hash 95e0", "95e0"),
    ("# resolved recipe hash_race, hash 95e0", "95e0"),  # the last "hash" on the line is the label
    ("# written by hand", None),
    ("name: hash_race", None),  # not a comment: no header at all
])
def test_the_recipe_header_gives_the_stated_hash(hand_bundle, tmp_path, header, stated):
    from bench.report import summary

    b = copy_of(hand_bundle, tmp_path)
    body = (b / "recipe.yaml").read_text().split("\n", 1)[1]
    (b / "recipe.yaml").write_text(f"{header}\n{body}")
    recipe, got = summary.read_recipe(b)
    assert got == stated and recipe["target"]["value"] == 0.9


def test_load_reads_every_raw_file(hand_bundle):
    from bench.report import summary

    raw = summary.load(hand_bundle)
    header = (hand_bundle / "recipe.yaml").read_text().splitlines()[0]
    assert raw.dir == hand_bundle and header.endswith(f"hash {raw.recipe_hash}") and raw.target == 0.9
    assert raw.env == json.loads((hand_bundle / "env.json").read_text())
    assert raw.dataset == json.loads((hand_bundle / "dataset.json").read_text())
    assert [r["run_id"] for r in raw.rows] == list(raw.logs) == run_ids_of(hand_bundle)
    assert raw.logs[run_ids_of(hand_bundle)[0]][0]["key"] == "init_start"


@pytest.mark.parametrize("content, error", [
    (b"[1, 2]", "env.json: expected a JSON object, got list"),
    (b'{"a": 1,\n', "env.json:2: not valid JSON (Expecting property name enclosed in double quotes)"),
    (b'{"host": "\xff"}', "env.json: cannot read it ('utf-8' codec can't decode byte 0xff in position 10: "
                          "invalid start byte)"),
    (None, "env.json: missing"),
])
def test_an_unreadable_json_file_is_named(hand_bundle, tmp_path, content, error):
    b = copy_of(hand_bundle, tmp_path)
    if content is None:
        (b / "env.json").unlink()
    else:
        (b / "env.json").write_bytes(content)
    assert load_error(b) == error


def test_a_cut_results_csv_is_named_with_its_line(hand_bundle, tmp_path):
    b = copy_of(hand_bundle, tmp_path)
    with (b / "results.csv").open("a") as f:
        f.write("20260101T000009.000000Z-000009,cpu_quick\n")
    assert load_error(b) == ("results.csv:3: malformed row: line 3 has 2 fields, the header has 21; probably cut "
                             "short by a crash or an edit. The bundle's raw files were edited or cut short: it does "
                             "not verify.")


def test_a_missing_or_cut_event_log_is_named_by_its_place_in_the_bundle(hand_bundle, tmp_path):
    b = copy_of(hand_bundle, tmp_path)
    rid = run_ids_of(b)[0]
    log = b / "runs" / rid / "mllog.txt"
    text = log.read_text()
    log.write_text(text[:-30])
    lines = text.count("\n")
    assert load_error(b).startswith(f"runs/{rid}/mllog.txt:{lines}: not an MLPerf log line: ")
    assert load_error(b).endswith("(the last line has no newline: the writer was probably killed mid-line)")
    assert str(b) not in load_error(b) and "allow_truncated_tail" not in load_error(b)
    log.unlink()
    assert load_error(b) == f"runs/{rid}/mllog.txt: missing"


# ------------------------------------------------------------------------------------------ a run's facts from its log

def log_events(run_id: str, evals, stop: dict | None, epochs: int | None = None, **init) -> list[dict]:
    """MLLOG records as summary reads them: init, one epoch_stop per evaluation, then run_stop."""
    ev = [{"key": "seed", "value": 3, "metadata": {}},
          {"key": "init_stop", "value": None, "metadata": {"init_s": 1.5, **init}}]
    for i, (t, acc) in enumerate(evals, start=1):
        ev.append({"key": "epoch_stop", "value": None, "metadata": {"epoch_num": i}})
        ev.append({"key": "eval_accuracy", "value": acc, "metadata": {"epoch_num": i, "elapsed_s": t}})
    if stop is not None:
        ev.append({"key": "run_stop", "value": None, "metadata": stop})
    return ev


def reached_stop(**over) -> dict:
    return {"status": "success", "bench_status": "reached", "wall_s": 22.0, "epochs": 2, "time_to_target_s": 20.0,
            **over}


def test_run_facts_read_a_reached_run():
    from bench.report.summary import run_facts

    f = run_facts("r", log_events("r", [(10.0, 0.85), (20.0, 0.91)], reached_stop()), 0.9, True, "max")
    assert (f["status"], f["time_to_target_s"], f["best_acc"], f["final_acc"], f["epochs"], f["seed"],
            f["init_s"], f["wall_s"]) == ("reached", 20.0, 0.91, 0.91, 2, 3, 1.5, 22.0)
    assert f["log_problems"] == []


@pytest.mark.parametrize("stop, problem", [
    (reached_stop(epochs=3), "runs/r/mllog.txt:7: run_stop epochs 3 but the events give 2"),
    (reached_stop(time_to_target_s=None), "runs/r/mllog.txt:7: run_stop time_to_target_s None but the events give 20.0"),
    (reached_stop(time_to_target_s=19.0), "runs/r/mllog.txt:7: run_stop time_to_target_s 19.0 but the events give 20.0"),
    (reached_stop(bench_status="missed", status="aborted"),
     "runs/r/mllog.txt:7: run_stop says bench_status 'missed' but the evaluations make it 'reached'"),
    (reached_stop(status="aborted"), "runs/r/mllog.txt:7: run_stop status 'aborted' does not match 'reached'"),
])
def test_run_facts_name_where_a_log_contradicts_itself(stop, problem):
    from bench.report.summary import run_facts

    f = run_facts("r", log_events("r", [(10.0, 0.85), (20.0, 0.91)], stop), 0.9, True, "max")
    assert problem in f["log_problems"], f["log_problems"]


@pytest.mark.parametrize("value, shown", [(True, "True"), (float("nan"), "nan"), (float("inf"), "inf"),
                                          ("high", "'high'"), (None, "None")])
def test_run_facts_refuse_an_evaluation_that_is_not_a_finite_number(value, shown):
    from bench.report.summary import run_facts

    with pytest.raises(BenchError, match=re.escape(f"runs/r/mllog.txt:4: eval_accuracy value is {shown}, "
                                                   "expected a finite number")):
        run_facts("r", log_events("r", [(10.0, value)], reached_stop()), 0.9, True, "max")
    events = log_events("r", [(10.0, 0.95)], reached_stop())
    del events[3]["metadata"]["elapsed_s"]
    with pytest.raises(BenchError, match="runs/r/mllog.txt:4: eval_accuracy elapsed_s is None, expected a finite"):
        run_facts("r", events, 0.9, True, "max")


def test_run_facts_keep_the_first_seed_and_the_sample_counts():
    from bench.report.summary import run_facts

    events = log_events("r", [(10.0, 0.95)], reached_stop(epochs=1, time_to_target_s=10.0))
    events[1:1] = [{"key": "seed", "value": 4, "metadata": {}},  # a second seed event does not replace the first
                   {"key": "train_samples", "value": 50000, "metadata": {}},
                   {"key": "eval_samples", "value": 10000, "metadata": {}}]
    f = run_facts("r", events, 0.9, True, "max")
    assert (f["seed"], f["train_samples"], f["eval_samples"]) == (3, 50000, 10000)


def test_run_facts_name_a_logged_target_that_is_not_the_recipes():
    from bench.report.summary import run_facts

    events = log_events("r", [(10.0, 0.95)], reached_stop(epochs=1, time_to_target_s=10.0))
    events.insert(1, {"key": "target_accuracy", "value": 0.8, "metadata": {}})
    assert run_facts("r", events, 0.9, True, "max")["log_problems"] == [
        "runs/r/mllog.txt: target_accuracy 0.8 differs from recipe.yaml's 0.9"]
    events[1]["value"] = 0.9 * (1 + 1e-12)  # a JSON round trip's difference is no difference
    assert run_facts("r", events, 0.9, True, "max")["log_problems"] == []


def test_run_facts_take_missing_init_and_wall_times_as_unknown():
    from bench.report.summary import run_facts

    events = log_events("r", [(10.0, 0.95)], reached_stop(epochs=1, time_to_target_s=10.0, wall_s=None))
    del events[1]["metadata"]["init_s"]
    f = run_facts("r", events, 0.9, True, "max")
    assert f["init_s"] is None and f["wall_s"] is None and f["status"] == "reached"


@pytest.mark.parametrize("where, what", [
    (2, "target_accuracy value"), (3, "init_stop metadata init_s"), (5, "eval_accuracy epoch_num"),
    (5, "eval_accuracy elapsed_s"), (5, "eval_accuracy value"), (6, "run_stop metadata wall_s")])
def test_run_facts_name_the_line_and_field_of_a_bad_number(where, what):
    from bench.report.summary import run_facts

    events = log_events("r", [(10.0, 0.95)], reached_stop(epochs=1, time_to_target_s=10.0))
    events.insert(1, {"key": "target_accuracy", "value": 0.9, "metadata": {}})
    ev = events[where - 1]
    field = what.rsplit(" ", 1)[1]
    if field == "value":
        ev["value"] = "x"
    else:
        ev["metadata"][field] = "x"
    with pytest.raises(BenchError) as e:
        run_facts("r", events, 0.9, True, "max")
    assert str(e.value) == f"runs/r/mllog.txt:{where}: {what} is 'x', expected a finite number"


# ------------------------------------------------------------------------------------------ the summary's fields

RICH_RECIPE = {"name": "wrn_test", "target": {"value": 0.9, "metric": "test_acc"},
               "model": {"arch": "wrn", "params": {"depth": 22, "width": 6}}, "provenance": {"source": "the seed"},
               "data": {"loader": "dali", "train_subset": 4000, "test_subset": 1000}, "precision": "auto",
               "memory_format": "channels_last", "compile": True}
RICH_ENV = {"device": "cuda", "world_size": 2, "nodes": 1, "torch": "2.11.0", "cuda": {"version": "13.0"},
            "cudnn": 91000, "nccl": "2.27.3", "dali": "2.4.0", "gpus": [{"driver": "580.65"}, {"driver": "x"}],
            "git": {"commit": "abc123", "dirty": True}, "host": "node7", "threads": 8,
            "cpu": {"model": "Test EPYC"}, "python": "3.11.2", "launcher": "torchrun"}
RICH_DATASET = {"name": "cifar10-jpeg-q75", "fingerprint": "e" * 64, "counts": {"train": 50000, "test": 10000}}


def rich_raw(rows: list[dict], logs: dict, env: dict = RICH_ENV):
    from bench.report import summary

    return summary.Raw(Path("bundle"), RICH_RECIPE, "0123abcd", dict(env), RICH_DATASET, rows, logs)


def samples_logged(events: list[dict], train: int, test: int) -> list[dict]:
    return events[:1] + [{"key": "train_samples", "value": train, "metadata": {}},
                         {"key": "eval_samples", "value": test, "metadata": {}}] + events[1:]


def test_summary_json_says_what_the_raw_files_say():
    """Every descriptive field of summary.json, from a hand-made Raw whose every input is distinct."""
    from bench.report import summary

    logs = {"r1": samples_logged(log_events("r1", [(10.0, 0.95)], reached_stop(epochs=1, time_to_target_s=10.0,
                                                                                wall_s=3600.0)), 4000, 1000),
            "r2": log_events("r2", [(10.0, 0.5)], {"status": "aborted", "bench_status": "aborted", "wall_s": 7200.0,
                                                   "epochs": None, "time_to_target_s": None})}
    rows = [{"run_id": "r1", "device_name": "NVIDIA H100", "device_count": "2", "precision": "",
             "price_usd_per_hour": "", "price_source": "", "_line": 2},
            {"run_id": "r2", "device_name": "other", "device_count": "4", "precision": "bf16",
             "price_usd_per_hour": "2.5", "price_source": "a price list", "_line": 3}]
    rows = [{k: (v or None) for k, v in r.items()} for r in rows]  # as read_rows gives them: '' is None
    s = summary.compute(rich_raw(rows, logs))
    assert s["schema"] == "bench-summary/1" and s["target"] == 0.9 and s["target_metric"] == "test_acc"
    assert s["recipe"] == {"name": "wrn_test", "hash": "0123abcd", "model": "wrn",
                           "model_params": {"depth": 22, "width": 6}, "provenance": {"source": "the seed"}}
    assert s["dataset"] == {"name": "cifar10-jpeg-q75", "fingerprint": "e" * 64, "official_cifar10": False,
                            "counts": {"train": 50000, "test": 10000}, "train_subset": 4000, "test_subset": 1000,
                            "train_images_used": 4000, "test_images_used": 1000}
    assert s["device"] == {"type": "cuda", "name": "NVIDIA H100", "count": 2, "world_size": 2, "nodes": 1}
    # what ran: the first row that names a precision, over the recipe's `auto`
    assert (s["precision"], s["memory_format"], s["loader"], s["compile"]) == ("bf16", "channels_last", "dali", True)
    assert s["environment"] == {"torch": "2.11.0", "cuda": "13.0", "cudnn": 91000, "nccl": "2.27.3", "dali": "2.4.0",
                                "driver": "580.65", "git_commit": "abc123", "git_dirty": True, "host": "node7",
                                "threads": 8, "cpu_model": "Test EPYC", "python": "3.11.2", "launcher": "torchrun"}
    assert s["price"] == {"usd_per_device_hour": 2.5, "source": "a price list"}
    assert s["timing_rules"] == summary.TIMING_RULES and s["conventions"] == summary.CONVENTIONS
    # device-hours are world_size x wall hours; r1 has no price (cost unknown), r2 is priced from its row
    runs = {r["run_id"]: r for r in s["runs"]}
    assert (runs["r1"]["device_hours"], runs["r1"]["cost_usd"]) == (2.0, None)
    assert (runs["r2"]["device_hours"], runs["r2"]["cost_usd"]) == (4.0, 10.0)
    assert s["totals"] == {"device_hours": 6.0, "cost_usd": None}  # one unknown cost makes the total unknown
    assert s["excluded_runs"] == [{"run_id": "r2", "status": "aborted"}]
    assert s["stats"]["n_runs"] == 1 and s["stats_note"] is None


def test_summary_prices_and_totals_without_a_world_size_or_any_price():
    from bench.core.prices import LEGACY_CPU_SOURCE
    from bench.report import summary

    env = {k: v for k, v in RICH_ENV.items() if k not in ("world_size", "cuda", "cpu", "git", "gpus")}
    stop = reached_stop(epochs=1, time_to_target_s=10.0, wall_s=1800.0)
    logs = {"r1": log_events("r1", [(10.0, 0.95)], stop), "r2": log_events("r2", [(10.0, 0.95)], stop),
            "r3": log_events("r3", [(10.0, 0.95)], None)}  # killed: no run_stop, no wall time, no device-hours
    rows = [{"run_id": "r1", "price_source": LEGACY_CPU_SOURCE, "device_count": "1.5", "_line": 2},
            {"run_id": "r2", "price_source": "n/a", "_line": 3}]
    s = summary.compute(rich_raw(rows, logs, env))
    runs = {r["run_id"]: r for r in s["runs"]}
    assert runs["r1"]["device_hours"] == 0.5 and runs["r1"]["cost_usd"] == 0.0  # rows written so were free
    assert runs["r2"]["cost_usd"] is None and runs["r3"]["device_hours"] is None and runs["r3"]["cost_usd"] is None
    assert s["totals"] == {"device_hours": 1.0, "cost_usd": None}
    assert s["device"]["count"] is None  # a device count that is not a whole number is no count
    assert s["environment"]["cuda"] is None and s["environment"]["driver"] is None
    assert s["environment"]["git_commit"] is None and s["environment"]["cpu_model"] is None
    assert s["price"] == {"usd_per_device_hour": None, "source": LEGACY_CPU_SOURCE}

    free = summary.compute(rich_raw(rows[:1], {"r1": logs["r1"]}, env))
    assert free["totals"] == {"device_hours": 0.5, "cost_usd": 0.0}
    none = summary.compute(rich_raw([], {"r3": logs["r3"]}, env))
    assert none["totals"] == {"device_hours": None, "cost_usd": None}
    assert none["device"] == {"type": "cuda", "name": None, "count": None, "world_size": None, "nodes": 1}
    assert none["precision"] == "auto" and none["dataset"]["train_images_used"] is None
    empty = summary.compute(rich_raw([], {}, env))  # a run set whose first run died before its log
    assert empty["runs"] == [] and empty["stats"] is None and empty["dataset"]["test_images_used"] is None


def test_a_run_counts_in_the_statistics_only_if_it_finished_with_an_evaluation():
    from bench.report import summary

    runs = [{"run_id": "a", "status": "reached", "final_acc": 0.95, "time_to_target_s": 10.0},
            {"run_id": "b", "status": "missed", "final_acc": 0.80, "time_to_target_s": 99.0},  # a miss has no time
            {"run_id": "c", "status": "missed", "final_acc": None, "time_to_target_s": None},  # no evaluation
            {"run_id": "d", "status": "failed", "final_acc": 0.1, "time_to_target_s": None}]
    stats, note = summary.summarize_runs(runs, 0.9, "max", "accuracy")
    assert note is None and stats["n_runs"] == 2 and stats["n_reached"] == 1
    assert stats["time"]["mean"] == 10.0 and stats["accuracy"]["mean"] == pytest.approx(0.875)
    assert summary.summarize_runs(runs[2:], 0.9, "max", "accuracy") == (
        None, "no run finished (every run was aborted or failed), so there is nothing to summarise")


def test_summary_json_is_written_sorted_and_indented(tmp_path):
    text = (make_bundle(tmp_path, RUNS[:1]) / "summary.json").read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    assert text.startswith('{\n  "compile": false,\n  "conventions": {\n    "accuracy": ')


def test_summary_compares_with_a_relative_1e9_and_an_absolute_1e12():
    from bench.report.summary import _close

    assert _close(0.5, 0.5 * (1 + 1e-10)) and not _close(0.5, 0.5 * (1 + 1e-8))
    assert _close(0.0, 1e-13) and not _close(0.0, 1e-11)


def facts_of(evals, stop, target_counts=True):
    from bench.report.summary import run_facts

    return run_facts("r", log_events("r", evals, stop), 0.9, target_counts, "max")


def test_a_diverged_runs_last_evaluation_is_not_its_best():
    """bench.train.loop stops a diverged (failed) run on the epoch that diverged, before that epoch's
    evaluation can count as best; the final accuracy is still the last one evaluated."""
    failed = {"status": "aborted", "bench_status": "failed", "wall_s": 30.0, "epochs": 3, "time_to_target_s": None}
    f = facts_of([(10.0, 0.5), (20.0, 0.7), (30.0, 0.95)], failed)
    assert (f["status"], f["best_acc"], f["final_acc"], f["time_to_target_s"]) == ("failed", 0.7, 0.95, None)
    assert f["log_problems"] == []
    # a run that diverged in an epoch with no evaluation: every evaluation counts
    from bench.report.summary import run_facts

    events = log_events("r", [(10.0, 0.5), (20.0, 0.6)], failed)
    events.insert(-1, {"key": "epoch_stop", "value": None, "metadata": {"epoch_num": 3}})
    f = run_facts("r", events, 0.9, True, "max")
    assert (f["status"], f["best_acc"], f["final_acc"], f["log_problems"]) == ("failed", 0.6, 0.6, [])


def test_a_run_with_no_evaluation_or_on_synthetic_data_has_no_accuracy_or_time():
    missed = {"status": "aborted", "bench_status": "missed", "wall_s": 5.0, "epochs": 0, "time_to_target_s": None}
    f = facts_of([], missed)
    assert (f["status"], f["final_acc"], f["best_acc"], f["epochs"]) == ("missed", None, None, 0)
    # accuracy on synthetic data never counts towards the target: missed, with no time-to-target
    f = facts_of([(10.0, 0.95)], dict(missed, epochs=1), target_counts=False)
    assert (f["status"], f["best_acc"], f["time_to_target_s"]) == ("missed", 0.95, None)
    assert f["log_problems"] == []


def test_excluded_runs_are_the_failed_the_aborted_and_those_never_evaluated():
    from bench.report import summary

    stop = {"status": "aborted", "wall_s": 5.0, "epochs": 1, "time_to_target_s": None}
    logs = {"r1": log_events("r1", [(10.0, 0.5)], dict(stop, bench_status="failed")),
            "r2": log_events("r2", [], dict(stop, bench_status="missed", epochs=0)),
            "r3": log_events("r3", [(10.0, 0.5)], dict(stop, bench_status="missed")),
            "r4": log_events("r4", [(10.0, 0.5)], None)}
    s = summary.compute(rich_raw([], logs))
    assert s["excluded_runs"] == [{"run_id": "r1", "status": "failed"}, {"run_id": "r2", "status": "missed"},
                                  {"run_id": "r4", "status": "aborted"}]
    assert s["stats"]["n_runs"] == 1
