"""Report bundles: finalize, report, verify (and --rerun), compare, submit.

One tiny real bundle (cpu_quick, 2000/1000 images, 2 epochs, target lowered to 12%) is trained once per
module and copied per test before any edit; the statistics wiring is checked on hand-made bundles
(tests/bundles.py). verify's checks one by one are in test_verify.py, summary's readers and fields in
test_summary.py.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from scipy import stats as sps

from bench.core.errors import BenchError
from bench.report import manifest
from bundles import RUNS, bench, make_bundle

TINY = ["data.train_subset=2000", "data.test_subset=1000", "optim.epochs=2", "target.value=0.12"]

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


def test_compare_plot_goes_beside_the_table(tmp_path, monkeypatch, capsys):
    """Without --plot the Pareto plot lands beside the table it was drawn from, not in the working tree."""
    (tmp_path / "data").mkdir()
    (tmp_path / "cwd").mkdir()
    write_table(tmp_path / "data" / "t.csv")
    monkeypatch.chdir(tmp_path / "cwd")
    assert bench("compare", "--results", tmp_path / "data" / "t.csv") == 0
    assert (tmp_path / "data" / "compare.png").is_file()
    assert not (tmp_path / "cwd" / "results").exists() and list((tmp_path / "cwd").iterdir()) == []
    assert f"Pareto plot: {tmp_path / 'data' / 'compare.png'}" in capsys.readouterr().out
    assert bench("compare", "--results", tmp_path / "data" / "t.csv", "--plot", "mine.png") == 0  # --plot says
    assert (tmp_path / "cwd" / "mine.png").is_file()


def test_compare_shows_a_gan_groups_final_metric(tmp_path, capsys):
    """A GAN row has no final accuracy: its column shows the target metric's best (in its direction) and mean."""
    from bench.core.results import append_row

    base = {"recipe_hash": "g", "dataset_fingerprint": "fp", "device_name": "CPU", "device_count": 1,
            "world_size": 1, "precision": "fp32", "target": 250.0, "metric": "fd_judge", "wall_s": 300.0}
    for i, (status, t, final) in enumerate([("reached", 320.4, 242.1), ("missed", None, 260.5)]):
        append_row(tmp_path / "t.csv", {**base, "run_id": f"g{i}", "recipe": "wgan_gp_cpu", "status": status,
                                        "time_to_target_s": t, "final_metric": final, "best_metric": final})
    assert bench("compare", "--results", tmp_path / "t.csv", "--no-plot") == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "wgan_gp_cpu" in x)
    assert "fd_judge 242.1 / 251.3" in line, line


def _drawn_pareto(rows, monkeypatch):
    """The Pareto figure as pareto_plot draws it, laid out by matplotlib's Agg renderer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from bench.report import plots
    from bench.report.compare import pareto_plot

    figures = []
    monkeypatch.setattr(plots, "save", lambda fig, path: figures.append(fig))
    pareto_plot(rows, "unused.png")
    canvas = FigureCanvasAgg(figures[0])
    canvas.draw()
    return figures[0], canvas.get_renderer()


def _point_boxes(ax, fig):
    """Every drawn data point as a box of its marker's size, in display pixels."""
    from matplotlib.transforms import Bbox

    boxes = []
    for coll in ax.collections:
        r = (max(coll.get_sizes()) ** 0.5) / 2 * fig.dpi / 72
        boxes += [Bbox.from_bounds(x - r, y - r, 2 * r, 2 * r) for x, y in ax.transData.transform(coll.get_offsets())]
    for line in ax.get_lines():
        r = line.get_markersize() / 2 * fig.dpi / 72
        boxes += [Bbox.from_bounds(x - r, y - r, 2 * r, 2 * r) for x, y in ax.transData.transform(line.get_xydata())]
    return boxes


@pytest.mark.parametrize("case", ["wrn22_forms_cpu", "crowded"])
def test_pareto_legend_and_labels_hide_no_point(case, monkeypatch):
    """results/studies/wrn22_forms_cpu/pareto.png: the legend sat on wrn22_forms_entry_date's point. The legend
    is outside the data, and every label is inside the figure, clear of every point and of the other labels."""
    from bench.core.results import read_table
    from bench.report.compare import compare_table

    if case == "wrn22_forms_cpu":
        rows = compare_table(read_table(Path(__file__).parent.parent / "results/studies/wrn22_forms_cpu/results.csv"))
    else:  # close points with long names, at the corners and the middle of the data
        pts = [(10, 0.90), (10.5, 0.901), (11, 0.899), (30, 0.95), (30.2, 0.949), (20, 0.92), (12, 0.95), (29, 0.9)]
        rows = [{"recipe": f"a_rather_long_recipe_name_{i}", "time_mean": t, "best_acc_mean": a, "differs": []}
                for i, (t, a) in enumerate(pts)]
    fig, renderer = _drawn_pareto(rows, monkeypatch)
    [ax] = fig.axes
    points = _point_boxes(ax, fig)
    assert len(points) >= len(rows)
    legends = [lg for lg in [ax.get_legend(), *fig.legends] if lg is not None]
    assert len(legends) == 1
    legend = legends[0].get_window_extent(renderer)
    assert not any(legend.overlaps(p) for p in points), "the legend hides a point"
    assert not legend.overlaps(ax.get_window_extent(renderer)), "the legend sits on the data"
    labels = [t for t in ax.texts if t.get_text()]
    assert sorted(t.get_text() for t in labels) == sorted(r["recipe"] for r in rows)
    boxes = [t.get_window_extent(renderer) for t in labels]
    figure_box = fig.bbox
    for i, (text, box) in enumerate(zip(labels, boxes)):
        assert figure_box.contains(box.x0, box.y0) and figure_box.contains(box.x1, box.y1), text.get_text()
        assert not any(box.overlaps(p) for p in points), f"label {text.get_text()} covers a point"
        assert not any(box.overlaps(b) for b in boxes[:i]), f"label {text.get_text()} covers another label"
        assert not box.overlaps(legend)


def test_pareto_front():
    from bench.report.compare import pareto_front

    pts = [(10, 90), (12, 95), (11, 89), (30, 96), (31, 95)]
    assert pareto_front(pts) == [0, 1, 3]
