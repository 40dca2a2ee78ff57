"""A GAN recipe through the whole harness: `bench run` -> results row -> report bundle -> `bench verify`.

Tiny on purpose (a 2-core CI box): a folder of 320 small made-up images, widths 8, a few generator steps,
and a judge made here (random weights, saved by the same code `bench run --save-model` uses): the point is
the wiring - the clock, the row, the event log, the baselines, the grids, verify - not sample quality.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.cli import main
from bench.core import mllog
from bench.core.results import read_table
from bench.report import verify

TINY = ["precision=fp32", "model.params.ngf=8", "model.params.ndf=8", "model.params.nz=16", "data.batch_size=16",
        "optim.epochs=3", "gan.gen_iters_per_epoch=2", "gan.warm_gen_iters=1", "gan.warm_critic=3",
        "gan.eval_samples=48", "warmup_steps=1", "target.value=0.000001", "data.test_subset=null",
        "gan.collapse_spread=0"]  # a random judge sees every sample alike: no collapse verdict from it


def make_images(folder: Path, n: int = 320, size: int = 32) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(n):
        colour = rng.integers(0, 255, 3)
        img = np.clip(colour + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{i:04d}.png")
    return folder


def make_judge(path: Path) -> Path:
    """A resnet9 judge with random weights, in the checkpoint format bench.run.checkpoint writes."""
    from bench.data.identity import make_identity
    from bench.data.types import Dataset, Split
    from bench.models import build_model
    from bench.recipe import load
    from bench.run.checkpoint import save_model

    torch.manual_seed(0)
    r = load("judge", ["model.params.widths=[4,8,8,8]"])
    net = build_model(r.model.arch, r.model.params)
    split = Split(np.zeros((10, 32, 32, 3), np.uint8), np.arange(10))
    ds = Dataset(split, split, make_identity("made-up", [str(i) for i in range(10)], split, split))
    return save_model(path, net, r, {"final_acc": 0.1, "status": "missed"}, ds, ["bench", "run", "judge"])


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gan")
    images = make_images(tmp / "bedrooms")
    judge = make_judge(tmp / "judge.pt")
    sets = [a for s in TINY + [f"gan.judge={judge}"] for a in ("--set", s)]
    code = main(["run", "wgan_cpu", "--data", str(images), "--results", str(tmp / "results.csv"),
                 "--reports", str(tmp / "reports"), *sets])
    bundle = next((tmp / "reports").iterdir())
    return code, tmp, bundle


@pytest.mark.slow
def test_gan_run_lands_a_scored_row_and_a_bundle_that_verifies(gan_run):
    code, tmp, bundle = gan_run
    assert code == 0 and not bundle.name.endswith(".partial")
    df = read_table(tmp / "results.csv")
    row = df.iloc[0]
    assert row["metric"] == "fd_judge" and row["status"] == "missed" and row["epochs"] == 3
    assert np.isnan(row["best_acc"]) and row["best_metric"] > 0 and row["final_metric"] > 0
    out = verify.check(bundle)
    assert out.problems == [] and out.figures > 10
    s = json.loads((bundle / "summary.json").read_text())
    run = s["runs"][0]
    assert s["kind"] == "gan" and len(run["evals"]) == 3
    assert run["best_metric"] == min(e["value"] for e in run["evals"])
    first = run["evals"][0]
    for key in ("fd_judge", "is_judge", "wasserstein", "class_entropy", "top_class_share", "nn_ratio", "samples"):
        assert key in first, key
    # generator iterations 1 (with 3 critic steps: the warm rule), then 5 critic steps each
    assert [e["generator_iters"] for e in run["evals"]] == [2, 4, 6]
    assert [e["critic_iters"] for e in run["evals"]] == [3 + 5, 8 + 10, 18 + 10]
    c = s["target_check"]
    assert c["untrained"] > c["real"] >= 0 and c["at_least_halfway"] is True  # 1e-6: far past halfway
    rid = run["run_id"]
    for name in ("eval_0001.png", "eval_0003.png", "untrained.png", "real.png"):
        assert (bundle / "runs" / rid / "samples" / name).is_file(), name
    report = (bundle / "report.md").read_text()
    assert "fd_judge" in report and "not comparable" in report.lower() and f"{c['untrained']:.4g}" in report
    assert "| FID" not in report and "| IS " not in report and "not FID or IS" in report  # named for what they are
    for png in ("quality_vs_time.png", "wasserstein.png", "is_judge_vs_time.png", "telemetry.png"):
        assert (bundle / "plots" / png).is_file()
    # `bench report` rebuilds every derived file byte for byte from the raw ones
    before = {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    assert main(["report", str(bundle)]) == 0
    assert {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()} == before


@pytest.mark.slow
def test_race_plot_of_gan_bundles(gan_run, tmp_path, capsys):
    _, _, bundle = gan_run
    assert main(["race", str(bundle), str(bundle), "--out", str(tmp_path / "race.png")]) == 0
    assert (tmp_path / "race.png").stat().st_size > 1000


@pytest.mark.slow
def test_verify_catches_an_edited_score(gan_run, tmp_path):
    _, _, bundle = gan_run
    copy = tmp_path / bundle.name
    shutil.copytree(bundle, copy)
    log = next((copy / "runs").glob("*/mllog.txt"))
    lines = log.read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if f'"{mllog.EVAL_SCORE}"' in line)
    rec = json.loads(lines[i][len(mllog.PREFIX):])
    rec["value"] = rec["value"] / 2
    lines[i] = mllog.PREFIX + json.dumps(rec)
    log.write_text("\n".join(lines) + "\n")
    problems = verify.check(copy).problems
    assert any("mllog.txt" in p for p in problems)  # the MANIFEST
    assert any("summary.json" in p and "final_metric" in p or "best_metric" in p for p in problems), problems


def test_gan_refuses_what_it_does_not_support(tmp_path):
    from bench import recipe
    from bench.core.errors import BenchError
    from bench.run import gan

    with pytest.raises(BenchError, match="one process"):
        gan.check(recipe.load("wgan_cpu", ["hardware.procs_per_node=2"]), 2)
    with pytest.raises(BenchError, match="precision=bf16"):
        gan.check(recipe.load("wgan_cpu", ["precision=fp16"]), 1)


def test_save_model_writes_a_loadable_judge_with_its_provenance(tmp_path):
    from bench.train.quality import load_judge

    path = make_judge(tmp_path / "j.pt")
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["command"] == "python -m bench run judge" and meta["test_acc"] == 0.1
    assert len(meta["dataset_fingerprint"]) == 64 and len(meta["recipe_hash"]) == 16
    judge = load_judge(path)
    feats, logits = judge.embed(torch.zeros(2, 3, 32, 32))
    assert feats.shape == (2, 8) and logits.shape == (2, 10)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="not a judge checkpoint"):
        load_judge(path)


def test_the_committed_judge_is_what_its_json_and_recipe_say():
    """results/judges/judge.pt loads, and judge.json names the recipe as it stands (an edit of
    recipes/judge.yaml without rebuilding the judge fails here) and the data it was trained on."""
    from bench import recipe
    from bench.core.paths import REPO_ROOT
    from bench.train.quality import load_judge

    judge = load_judge(REPO_ROOT / "results" / "judges" / "judge.pt")
    meta, r = judge.meta, recipe.load("judge")
    assert meta["recipe_hash"] == r.hash and meta["params"] == r.model.params and meta["precision"] == "fp32"
    assert meta["dataset"] == "imagefolder:cifar10-jpeg-q75" and 0.7 < meta["test_acc"] < 1
    assert meta["command"].startswith("python -m bench run judge --save-model results/judges/judge.pt")
    feats, logits = judge.embed(torch.zeros(2, 3, 32, 32))
    assert feats.shape == (2, r.model.params["widths"][-1]) and logits.shape == (2, 10)


def test_a_run_fails_for_collapse_only_once_the_generator_has_moved():
    """A fresh DCGAN's samples are near-grey and look collapsed; only a generator that scores better than it
    did untrained, and then collapses, fails the run."""
    from types import SimpleNamespace

    from bench.run.gan import Evaluation

    ev = SimpleNamespace(untrained=600.0, r=SimpleNamespace(target=SimpleNamespace(mode="min")))
    assert not Evaluation.moved(ev, 629.0) and Evaluation.moved(ev, 300.0)
    ev.r.target.mode, ev.untrained = "max", 1.0
    assert not Evaluation.moved(ev, 1.0) and Evaluation.moved(ev, 1.4)


# ------------------------------------------------------------------------------------------ verify --rerun

@pytest.fixture(scope="module")
def reached_gan_bundle(gan_run):
    """Two tiny runs that reach a target every generator meets (fd_judge <= 1e9) at the first evaluation: a
    distribution of two times and two best scores to test a rerun against."""
    _, tmp, _ = gan_run
    sets = [s for s in TINY if not s.startswith("target.value")] + [
        "target.value=1000000000", f"gan.judge={tmp / 'judge.pt'}", "runs=2"]
    args = [a for s in sets for a in ("--set", s)]
    out = tmp / "reached"
    assert main(["run", "wgan_cpu", "--data", str(tmp / "bedrooms"), "--results", str(out / "results.csv"),
                 "--reports", str(out / "reports"), *args]) == 0
    return next((out / "reports").iterdir())


@pytest.mark.slow
def test_verify_rerun_of_a_gan_bundle_tests_its_times_and_its_scores(reached_gan_bundle, capsys):
    bundle = reached_gan_bundle
    before = {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    rc = main(["verify", str(bundle), "--rerun", "--runs", "2"])
    out = capsys.readouterr().out
    assert "95% prediction interval mean ± t(0.975, n-1)·s·sqrt(1+1/n)" in out      # the times, as a classifier's
    assert "score: each run's best fd_judge (lower is better; target <= 1e+09)" in out
    assert "Welch's one-sided t-test, H0: the new mean best fd_judge is no worse than the reported" in out
    assert "H0: mean fd_judge >= target; H1: mean fd_judge < target (one-sided)" in out
    # the same seeds on the same machine: the same scores (the times of 0.2 s runs may well fall outside)
    assert "-> no significant loss" in out and "new runs reached the target" in out
    assert (rc == 0) == ("and no score is significantly worse: reproduced (2/2" in out) != ("NOT reproduced" in out)
    assert {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()} == before  # only read


def test_a_rerun_score_check_follows_the_metric_direction():
    from bench.studies.rerun_scores import score_verdict

    reported = [250.0, 251.0, 249.0]
    ok, lines = score_verdict("fd_judge", "min", 300.0, reported, [300.0, 302.0, 299.0])  # higher: worse
    assert not ok and "SIGNIFICANTLY WORSE" in "\n".join(lines)
    ok, _ = score_verdict("fd_judge", "min", 300.0, reported, [200.0, 201.0, 199.0])      # lower: better
    assert ok
    ok, lines = score_verdict("is_judge", "max", 2.0, [3.0, 3.1, 2.9], [2.0, 2.1, 1.9])  # lower is_judge: worse
    assert not ok and "(lower)" in lines[3]
    ok, lines = score_verdict("fd_judge", "min", 300.0, reported, [900.0])  # one new run: not computed, stated
    assert ok and "not computed (needs at least 2 values on each side, got 3 and 1)" in lines[3]
    assert "not deciding" in lines[-1]


def test_the_epoch_line_prints_a_gans_small_lr_in_significant_digits():
    """The lesson's second phase runs at lr 1e-5: four decimals printed it as 0.0000."""
    from bench.run.rows import epoch_line
    from bench.train.loop import EpochRecord

    def line(lr, metric="fd_judge"):
        return epoch_line(EpochRecord(1, 10.0, 0.5, None, lr, 100.0, 0.1, 10.0, 1.0, 230.5), metric=metric)

    assert "lr 1e-05 " in line(1e-5) and "lr 5e-05 " in line(5e-5) and "lr 0.0001 " in line(1e-4)
    assert "lr 0.198 " in line(0.198, "test_acc") and "lr 1.5 " in line(1.5, "test_acc")


def test_real_png_shows_a_random_sample_across_classes():
    """A class-sorted folder (all airplanes first): real.png shows a seeded random sample of the real images
    the baseline scores, across the classes, not the lowest indices (all one class)."""
    from types import SimpleNamespace

    from bench.data.identity import make_identity
    from bench.data.types import Dataset, Split
    from bench.run.gan import GRID, baselines

    labels = np.repeat(np.arange(10), 500)  # sorted by class, as an image folder lists them
    images = np.repeat((labels * 20).astype(np.uint8)[:, None, None, None], 4 * 4 * 3).reshape(-1, 4, 4, 3)
    train = Split(images, labels)
    ds = Dataset(train, train, make_identity("sorted", [str(i) for i in range(10)], train, train))
    grids, scored = {}, []

    def score(x):
        scored.append(x)
        return {"fd_judge": 1.0}

    recipe = SimpleNamespace(gan=SimpleNamespace(eval_samples=1000), target=SimpleNamespace(metric="fd_judge"))
    ev = SimpleNamespace(r=recipe, device=torch.device("cpu"), samples=lambda: torch.zeros(1000, 3, 4, 4), score=score,
                         save_grid=lambda x, name: grids.__setitem__(name, x[:GRID]),
                         ref=SimpleNamespace(test_images=torch.zeros(1)), judge=SimpleNamespace(meta={}, path="j"))

    def classes(x):  # pixel value c * 20 in [0, 255] -> [-1, 1]
        return ((x[:, 0, 0, 0] + 1) * 127.5 / 20).round().long().tolist()

    baselines(ev, ds)
    shown, real = classes(grids["real.png"]), classes(scored[1])
    assert len(shown) == GRID and len(set(shown)) >= 8, shown
    assert sorted(real) == real and len(real) == 1000  # the scored set is unchanged: the same baseline scores
    first = grids["real.png"]
    baselines(ev, ds)
    assert torch.equal(first, grids["real.png"])  # seeded
