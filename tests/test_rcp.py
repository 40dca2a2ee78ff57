"""Reference convergence points (issue #30): bench.core.rcp's arithmetic by hand and against MLPerf's own checker
(mlperf_logging.rcp_checker) on the same numbers, the reference file, `bench rcp`, the convergence line of
`bench verify` and `bench submit`, the selection check (every run the command made, seeds consecutive), a planted
cherry-picked bundle caught and a fair one passing, and the site's mark. Hand-made bundles (tests/bundles.py):
no training, except the one slow test of `bench rcp make RECIPE --runs N`."""
from __future__ import annotations

import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from bundles import bench, make_bundle
from bench.core import rcp
from bench.core.errors import BenchError

REPO = Path(__file__).resolve().parent.parent
LEAGUE = REPO / "results" / "cpu_league" / "reports"


# ------------------------------------------------------------------------------------------ hand numbers

def test_olympic_mean_drops_the_fastest_and_the_slowest_and_counts_a_miss_as_slowest():
    assert rcp.olympic([9, 7, 8]) == (8.0, None)
    assert rcp.olympic([10, 8, 9, 12, 11]) == (10.0, None)
    assert rcp.olympic([7, None, 9, 8]) == (8.5, None)  # the miss is the slowest, dropped; 7 is the fastest
    mean, why = rcp.olympic([7, None, 9, None])
    assert mean is None and "2 of 4 runs did not converge" in why and "insufficient convergence" in why
    mean, why = rcp.olympic([7, 8])
    assert mean is None and "at least 3 runs, got 2" in why


def test_spread_is_numpys_population_std_of_the_converged_runs():
    assert rcp.spread([9, 7, 8]) == pytest.approx(math.sqrt(2 / 3))
    assert rcp.spread([9, None, 9]) == 0.0
    assert rcp.spread([None]) == 0.0


def test_p_faster_is_small_for_a_faster_mean_and_large_for_a_slower_one():
    # two-sample, equal variances, one-sided "less": by hand from the t distribution
    t = (8.0 - 10.0) / (1.0 * math.sqrt(1 / 3 + 1 / 8))
    assert rcp.p_faster(8.0, 10.0, 1.0, 3, 8) == pytest.approx(sps.t.cdf(t, 9), rel=1e-12)
    assert rcp.p_faster(8.0, 10.0, 1.0, 3, 8) < 0.01
    assert rcp.p_faster(12.0, 10.0, 1.0, 3, 8) > 0.99
    assert rcp.p_faster(8.0, 10.0, 0.0, 3, 8) is None  # no spread: undefined
    assert rcp.p_faster(8.0, 10.0, 1.0, 1, 1) is None  # no degrees of freedom


@pytest.mark.parametrize("n_ref,n_subm", [(8, 3), (18, 8), (4, 1)])
def test_the_lowest_acceptable_mean_is_the_t_tests_bar_within_the_search_tolerance(n_ref, n_subm):
    mean, s = 10.125, 0.872
    want = mean - sps.t.ppf(0.95, n_ref + n_subm - 2) * s * math.sqrt(1 / n_ref + 1 / n_subm)
    got = rcp.lowest_acceptable_mean(mean, s, n_ref, n_subm)
    assert abs(got - want) <= rcp.TOLERANCE and got < mean
    assert rcp.p_faster(got + 2 * rcp.TOLERANCE, mean, s, n_subm, n_ref) > 0.05 > \
        rcp.p_faster(got - 2 * rcp.TOLERANCE, mean, s, n_subm, n_ref)


def test_without_spread_or_degrees_of_freedom_any_faster_mean_fails():
    assert rcp.lowest_acceptable_mean(9.0, 0.0, 1, 1) == 9.0
    assert 9.0 - rcp.TOLERANCE < rcp.lowest_acceptable_mean(9.0, 0.5, 1, 1) < 9.0


def pt(bs, mean, stdev=1.0, n=8):
    return rcp.Point(bs, mean, stdev, n, runs=n + 2)


def test_pruning_keeps_the_fastest_convergence_as_a_function_of_batch_size():
    points = [pt(128, 11.0), pt(256, 10.0), pt(512, 12.0), pt(768, 17.0), pt(1024, 17.0)]
    # 128 lies below the fastest point (256): dropped; 768 is slower than the line from 512 to 1024: dropped
    assert [p.batch_size for p in rcp.prune(points)] == [256, 512, 1024]


def test_find_exact_interpolated_below_and_above():
    points = [pt(256, 10.0, 1.0), pt(1024, 16.0, 2.0)]
    p, how = rcp.find(points, 256)
    assert how == "exact" and p.mean == 10.0
    p, how = rcp.find(points, 512)
    assert how == "interpolated" and p.interpolated and p.n is None
    assert (p.mean, p.stdev) == pytest.approx((12.0, 1 + 1 / 3))
    assert p.n_ref(5) == 10  # MLPerf's interpolated record counts twice the submission's runs
    p, how = rcp.find(points, 128)
    assert how == "below" and p.batch_size == 256
    assert rcp.find(points, 2048) == (None, "above")
    assert rcp.find([], 256) == (None, "none")


def test_judge_each_verdict():
    points = [pt(256, 10.0, 1.0), pt(1024, 16.0, 2.0)]
    v = rcp.judge([10, 11, 10, 9, 12], points, 256)
    assert v.state == rcp.PASS and v.factor == 1.0 and not v.failed
    v = rcp.judge([9, 10, 9, 10, 9], points, 256)  # olympic 9.33: faster than 10, not significantly
    assert v.state == rcp.PASS and v.factor == pytest.approx(10 / (28 / 3))
    v = rcp.judge([7, 8, 8, 7, 8], points, 256)  # olympic 7.67
    assert v.state == rcp.FASTER and v.failed and v.p < 0.05 and v.mean < v.threshold
    assert rcp.judge([7, 8, 8, 7, 8], points, 2048).state == rcp.NO_REFERENCE
    assert rcp.judge([11, 12, 11, 12, 13], points, 128).state == rcp.PASS  # below every point, not faster
    v = rcp.judge([7, 8, 8, 7, 8], points, 128)
    assert v.state == rcp.NO_REFERENCE and "make references at batch size 128" in v.reason
    v = rcp.judge([7, None, None, 8, 8], points, 256)
    assert v.state == rcp.INSUFFICIENT and not v.failed
    v = rcp.judge([7, 8], points, 256)
    assert v.state == rcp.NOT_CHECKED and "at least 3 runs" in v.reason


# ------------------------------------------------------------------------------------------ against MLPerf's checker

REFS = {256: [8, 9, 9, 10, 10, 10, 11, 12, 9, 10], 512: [10, 11, 11, 12, 12, 13, 12, 11, 12, 14],
        768: [16, 17, 18, 17, 16, 18, 17, 19, 17, 18], 1024: [16, 17, 18, 17, 16, 18, 17, 19, 17, 18],
        2048: [30, 31, 29, 30, 32, 31]}
SUBMISSIONS = [[8, 8, 9, 9, 9], [9, 10, 10, 11, 12], [12, 12, 13, 13, 14], [7, 8, 8, 8, None],
               [16, 16, 16, 16, 16], [9, 9, 10, 10, 10, 11, 12, 9, 11, 10], [10, 11, 12]]


@pytest.fixture
def mlperf(monkeypatch):
    """MLPerf's checker on REFS, for a benchmark of our own with `runs` submission runs."""
    from mlperf_logging.rcp_checker import rcp_checker as M

    def make(runs: int, refs=REFS):
        monkeypatch.setitem(M.submission_runs["training"], "bench_test", runs)
        raw = {f"ref_{bs}": {"Benchmark": "bench_test", "BS": bs, "Hyperparams": {}, "Epochs to converge": list(e)}
               for bs, e in refs.items()}
        return M.RCP_Checker("training", "5.0.0", "bench_test", False, io.StringIO(json.dumps(raw)))
    return make


def mine(refs=REFS) -> list[rcp.Point]:
    out = []
    for bs, e in refs.items():
        st = rcp.point_stats(e)
        out.append(rcp.Point(bs, st["olympic_mean"], st["stdev"], st["n_runs"] - 2, runs=st["n_runs"]))
    return out


@pytest.mark.parametrize("runs", [3, 5, 10])
def test_points_and_their_bars_equal_mlperfs(mlperf, runs):
    checker = mlperf(runs)
    by_bs = {p.batch_size: p for p in mine()}
    for record in checker.rcp_data.values():
        p = by_bs[record["BS"]]
        assert (p.mean, p.stdev) == (record["RCP Mean"], record["RCP Stdev"])
        assert rcp.lowest_acceptable_mean(p.mean, p.stdev, p.n, runs - 2) == record["Min Epochs"]
    assert sorted(r["BS"] for r in checker.pruned_rcp_data.values()) == [p.batch_size for p in rcp.prune(mine())]


@pytest.mark.parametrize("runs", [3, 5, 10])
@pytest.mark.parametrize("bs", [128, 256, 384, 512, 600, 768, 1024, 1500, 2048, 4096])
def test_verdicts_and_normalisation_equal_mlperfs(mlperf, runs, bs):
    """MLPerf's own lookup (check_directory's, on the pruned points) and _eval_submission_record, fed the same
    epochs; a run that did not converge is MLPerf's 1e9."""
    checker = mlperf(runs)
    for subm in [s for s in SUBMISSIONS if len(s) == runs]:
        record = checker._find_rcp(bs, "pruned_rcps")
        how = "exact"
        if record is None:
            low, high = checker._find_top_min_rcp(bs, "pruned_rcps"), checker._find_bottom_max_rcp(bs, "pruned_rcps")
            if low and high:
                _, record = checker._create_interp_rcp(bs, low, high)
                how = "interpolated"
            elif high:
                record, how = checker._find_min_rcp("pruned_rcps"), "below"
            else:
                how = "above"
        v = rcp.judge(subm, mine(), bs)
        assert v.how == how, (bs, subm)
        if record is None:
            assert v.state == rcp.NO_REFERENCE
            continue
        ok, factor = checker._eval_submission_record(dict(record), [1e9 if e is None else e for e in subm], "")
        assert v.lowest == record["Min Epochs"] and v.max_speedup == record["Max Speedup"]
        assert v.factor == factor, (bs, subm)
        want = {("exact", True): rcp.PASS, ("exact", False): rcp.FASTER, ("interpolated", True): rcp.PASS,
                ("interpolated", False): rcp.FASTER, ("below", True): rcp.PASS, ("below", False): rcp.NO_REFERENCE}
        assert v.state == want[how, ok], (bs, subm, v)


def test_mlperfs_reader_gives_our_epochs_and_batch_size_on_committed_logs():
    """get_submission_epochs reads the committed runs' own event logs (MLPerf format) as we do."""
    from mlperf_logging.rcp_checker.rcp_checker import get_submission_epochs

    from bench.report import convergence

    for name in ("league_record-20261205T095056Z-513d0c", "league_wrn_entry_date-20261205T095801Z-1f5b6c"):
        b = LEAGUE / name
        rs = convergence.run_set(b)
        files = [str(b / "runs" / r["run_id"] / "mllog.txt") for r in rs.runs]
        bs, epochs, bench_name = get_submission_epochs(files, "5.0.0", False)
        assert bench_name == "cifar10_time_to_accuracy" and bs == rs.batch_size
        assert epochs == [1e9 if e is None else e for e in rs.epochs]
    assert convergence.run_set(LEAGUE / "league_wrn_entry_date-20261205T095801Z-1f5b6c").epochs == [9, None, 9]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # MLPerf's own t-test with no degrees of freedom
def test_mlperfs_check_directory_agrees_on_a_committed_bundle(tmp_path, monkeypatch):
    """The whole of MLPerf's check (its reader, RCP file, pruning and verdict) on the committed league_record runs
    as result_*.txt, against a reference file written in MLPerf's format from our reference points."""
    from mlperf_logging.rcp_checker import rcp_checker as M

    from bench.report import convergence

    b = LEAGUE / "league_record-20261205T095056Z-513d0c"
    doc = rcp.read(REPO / "results" / "rcp" / "league_record.json")
    rs = convergence.run_set(b)
    for i, r in enumerate(rs.runs):
        shutil.copyfile(b / "runs" / r["run_id"] / "mllog.txt", tmp_path / f"result_{i}.txt")
    theirs = {f"ref_{p['batch_size']}": {"Benchmark": "cifar10_time_to_accuracy", "BS": p["batch_size"],
                                          "Hyperparams": {}, "Epochs to converge": [r["epochs"] for r in p["runs"]]}
              for p in doc["points"]}
    monkeypatch.setitem(M.submission_runs["training"], "cifar10_time_to_accuracy", len(rs.runs))
    ok, msg, factor = M.check_directory(str(tmp_path), "training", "5.0.0", False, False,
                                        rcp_file=io.StringIO(json.dumps(theirs)), rcp_pass="pruned_rcps")
    c = convergence.check(b, REPO / "results" / "rcp" / "league_record.json")
    assert (ok, msg) == (True, "RCP found") and c.verdict.state == rcp.PASS and c.verdict.factor == factor == 1.0


# ------------------------------------------------------------------------------------------ bundles

def run(epochs, target=0.9):
    """A run that reaches `target` at epoch `epochs` (None: misses it over 12 epochs); 10 s an epoch."""
    if epochs is None:
        return {"status": "missed", "evals": [(10.0 * k, target - 0.2) for k in range(1, 13)]}
    evals = [(10.0 * k, target - 0.2) for k in range(1, epochs)] + [(10.0 * epochs, target + 0.02)]
    return {"status": "reached", "evals": evals, "ttt": 10.0 * epochs}


REFERENCE = [10, 9, 11, 10, 10, 12, 9, 10, 11, 10]  # olympic mean 10.125, spread 0.872
LARGER = [10, 11, 9, 10, 12, 8, 10, 11, 9, 10, 8, 11, 10, 9, 10]  # the same recipe, 15 runs
FASTEST = sorted(range(len(LARGER)), key=lambda i: (LARGER[i], i))[:5]  # the seeds of its 5 fastest runs


_DAYS = iter(range(1, 10000))


def bundle(tmp_path, name, epochs, seeds=None, runs=None, sets=(), **kw) -> Path:
    """A bundle of runs reaching the target at these epochs; its run ids are its own (another day each)."""
    return make_bundle(tmp_path / name, [run(e) for e in epochs], seeds=seeds,
                       sets=(f"runs={runs or len(epochs)}", *sets), day=f"2027{next(_DAYS):04d}", **kw)


@pytest.fixture
def references(tmp_path) -> Path:
    """A reference file of 10 runs at batch size 512 (cpu_quick's), made by `bench rcp make --from-bundles`."""
    ref = bundle(tmp_path, "ref", REFERENCE)
    out = tmp_path / "rcp" / "cpu_quick.json"
    assert bench("rcp", "make", "--from-bundles", ref, "--out", out) == 0
    return out


def verify_out(capsys, b, rcp_path, code=0) -> str:
    assert bench("verify", b, "--rcp", rcp_path) == code
    cap = capsys.readouterr()
    return cap.out + cap.err


def test_a_reference_file_holds_runs_and_figures_anyone_can_rederive(references, capsys):
    doc = json.loads(references.read_text())
    [p] = doc["points"]
    assert (p["batch_size"], p["n_runs"], p["olympic_mean"]) == (512, 10, 10.125)
    assert p["stdev"] == pytest.approx(float(np.std(REFERENCE)))
    assert [r["epochs"] for r in p["runs"]] == REFERENCE and [r["seed"] for r in p["runs"]] == list(range(10))
    assert doc["dataset"]["fingerprint"] == "f" * 64 and doc["target"] == {"metric": "test_acc", "value": 0.9,
                                                                          "mode": "max"}
    assert "enough" in p["note"] and "up to 5 runs" in p["note"]
    capsys.readouterr()
    assert bench("rcp", "verify", references) == 0
    assert "re-derived from 1 bundle" in capsys.readouterr().out
    assert bench("rcp", "show", references) == 0
    assert "a set of 5 runs needs an olympic mean of at least 9.04" in capsys.readouterr().out


def test_a_fair_bundle_passes(tmp_path, references, capsys):
    fair = bundle(tmp_path, "fair", LARGER[:5])  # the first 5 runs of the larger set: seeds 0-4, all of them
    out = verify_out(capsys, fair, references)
    assert "convergence: converges as the references do" in out
    assert "10, 11, 9, 10, 12; olympic mean 10.33 over 5 runs (5 converged)" in out
    assert "p = 0.634 for this bundle's mean" in out and "normalised 103.33 s (x1.0000" in out
    assert "note:" not in out  # 10 other runs, twice as many: nothing to warn about


def test_a_fair_bundle_faster_than_the_references_is_normalised_never_rewarded(tmp_path, references, capsys):
    quick = bundle(tmp_path, "quick", [9, 10, 10, 9, 11])  # olympic 9.67: faster, not significantly
    out = verify_out(capsys, quick, references)
    assert "converges as the references do" in out
    factor = 10.125 / (29 / 3)
    assert f"x{factor:.4f}" in out and f"normalised {96.6667 * factor:.2f} s" in out


def test_a_cherry_picked_bundle_is_caught_twice(tmp_path, references, capsys):
    """The fastest 5 runs of a 15-run set, kept as they were (their own seeds): verify names the missing runs;
    the same 5 with their seeds relabelled 0-4 (which the MANIFEST cannot show once it is rebuilt) verify, and
    the convergence check catches them."""
    picked = [LARGER[i] for i in FASTEST]
    assert picked == [8, 8, 9, 9, 9] and FASTEST == [5, 10, 2, 8, 13]
    kept = bundle(tmp_path, "kept", [LARGER[i] for i in sorted(FASTEST)], seeds=sorted(FASTEST), runs=15)
    out = verify_out(capsys, kept, references, code=1)
    assert "the first run has seed 2, but the recipe's seed is 0" in out and "seed 0-1 are missing" in out
    assert "seed 5 follows seed 2: the runs with seed 3-4 are missing" in out
    assert "recipe.yaml: runs: 15, but the bundle holds 5 runs and its last run ended reached, not interrupted" in out

    relabelled = bundle(tmp_path, "relabelled", picked)
    out = verify_out(capsys, relabelled, references, code=1)
    assert "verified: 5 runs" in out  # every figure follows from the raw files...
    assert "convergence: faster than the references at p < 0.05: not accepted without review" in out
    assert "olympic mean 8.667 over 5 runs" in out and "lowest acceptable olympic mean 9.04" in out
    assert "its figures verify, but convergence: faster than the references" in out
    assert bench("rcp", "check", relabelled, "--rcp", references) == 1


def test_a_changed_recipe_under_an_old_name_is_caught_and_its_changes_named(tmp_path, references, capsys):
    """The same recipe name with another learning rate (another hash): checked all the same, as MLPerf checks any
    hyperparameters at a batch size, and the fields that differ are named."""
    changed = bundle(tmp_path, "changed", [7, 8, 7, 8, 7], sets=("optim.lr=0.5",))
    out = verify_out(capsys, changed, references, code=1)
    assert "faster than the references at p < 0.05" in out
    assert "note: the references ran recipe hash" in out and "(fields that differ: optim.lr)" in out


def test_the_check_bites_when_its_test_side_is_flipped(monkeypatch, tmp_path, references):
    """A planted bug: the one-sided test asked the other way round ("greater") lets the cherry-pick through."""
    from bench.report import convergence

    relabelled = bundle(tmp_path, "relabelled", [LARGER[i] for i in FASTEST])
    assert convergence.check(relabelled, references).failed
    real = sps.ttest_ind_from_stats
    monkeypatch.setattr(rcp.sps, "ttest_ind_from_stats",
                        lambda *a, **k: real(*a, **{**k, "alternative": "greater"}))
    assert not convergence.check(relabelled, references).failed


def test_submit_refuses_a_faster_bundle_unless_bypassed_and_records_the_check(tmp_path, references, capsys):
    from bench.report import manifest

    quick = bundle(tmp_path, "quick", [9, 10, 10, 9, 11])
    picked = bundle(tmp_path, "picked", [LARGER[i] for i in FASTEST])
    for b in (quick, picked):  # the plots a real bundle has (submit copies them)
        for rel in manifest.PLOTS:
            (b / rel).parent.mkdir(exist_ok=True)
            (b / rel).write_bytes(b"png")
        manifest.write(b)
    subs = tmp_path / "subs"
    assert bench("submit", picked, "--out", subs, "--rcp", references) == 1
    assert "not accepted without review; pass --rcp-bypass" in capsys.readouterr().err
    assert not subs.exists()
    assert bench("submit", picked, "--out", subs, "--rcp", references, "--rcp-bypass") == 0
    [dest] = subs.glob("*/cpu_quick")
    record = json.loads((dest / "convergence.json").read_text())
    assert (record["state"], record["rcp_bypass"]) == ("faster", True)
    assert not list(dest.glob("results/*/*/scaling.json"))
    assert bench("submit", quick, "--out", subs, "--rcp", references, "--force") == 0
    record = json.loads((dest / "convergence.json").read_text())
    assert record["state"] == "pass" and record["normalisation_factor"] > 1 and not record["rcp_bypass"]
    [scaling] = dest.glob("results/*/*/scaling.json")
    assert json.loads(scaling.read_text()) == {"scaling_factor": record["normalisation_factor"]}
    assert manifest.check(dest) == []


def test_interpolation_between_batch_sizes_and_no_reference_beyond(tmp_path, capsys):
    out = tmp_path / "rcp.json"
    small = bundle(tmp_path, "b256", REFERENCE, sets=("data.batch_size=256",))
    large = bundle(tmp_path, "b1024", [e + 6 for e in REFERENCE], sets=("data.batch_size=1024",))
    assert bench("rcp", "make", "--from-bundles", small, "--out", out) == 0
    assert bench("rcp", "make", "--from-bundles", large, "--out", out) == 0  # a second batch size: merged
    assert bench("rcp", "make", "--from-bundles", large, "--out", out) == 2
    assert "already has a point (10 runs); pass --replace" in capsys.readouterr().err
    assert [p["batch_size"] for p in json.loads(out.read_text())["points"]] == [256, 1024]
    mid = bundle(tmp_path, "b512", [12, 13, 12, 14, 13])  # cpu_quick's own 512: halfway, mean 12.125
    text = verify_out(capsys, mid, out)
    assert "converges as the references do" in text
    assert "references (" in text and "batch size 512, interpolated): olympic mean 12.125 epochs" in text
    assert "interpolated between the points at 256 and 1024; its test counts 10 reference runs" in text
    beyond = bundle(tmp_path, "b2048", [12, 13, 12, 14, 13], sets=("data.batch_size=2048",))
    text = verify_out(capsys, beyond, out)
    assert "convergence: no reference at batch size 2048: the largest reference batch size is 1024: not checked" \
        in text


def test_the_committed_references_follow_from_the_committed_bundles(capsys):
    files = sorted((REPO / "results" / "rcp").glob("*.json"))
    names = {f.stem for f in files}
    assert {"league_record", "league_wrn_entry"} <= names
    for f in files:
        doc = rcp.read(f)
        assert doc["recipe"] == f.stem
        assert bench("rcp", "verify", f) == 0, f
        for p in doc["points"]:
            assert p["n_runs"] == 3 and "too few by MLPerf's rule" in p["note"]  # said, not pretended


def test_a_committed_bundle_checked_against_its_own_runs_says_so(capsys):
    b = LEAGUE / "league_record-20261205T095056Z-513d0c"
    assert bench("verify", b, "--rcp", REPO / "results" / "rcp") == 0
    out = capsys.readouterr().out
    assert "convergence: converges as the references do" in out
    assert "the references are this bundle's own 3 runs (the same run ids)" in out
    assert "fewer than twice this bundle's 3: too few by MLPerf's rule, which asks for at least 6" in out


# ------------------------------------------------------------------------------------------ selection

def test_a_resumed_sweeps_bundle_starts_at_its_recorded_first_run(tmp_path, capsys):
    from bundles import problems_of

    ok = bundle(tmp_path, "resumed", [10, 10, 10], seeds=[3, 4, 5], env_extra={"first_run": 3})
    assert problems_of(ok) == []
    old = bundle(tmp_path, "old", [10, 10, 10], seeds=[3, 4, 5])
    [p] = problems_of(old)
    assert "the first run has seed 3" in p and "env.json records no first_run" in p and "seed 0-2 are missing" in p


def test_one_run_taken_out_of_the_middle_is_named(tmp_path):
    from bundles import problems_of

    gap = bundle(tmp_path, "gap", [10, 11, 9, 10], seeds=[0, 1, 3, 4], runs=5)
    seeds, count = problems_of(gap)
    assert seeds.endswith("seed 3 follows seed 1: the run with seed 2 is missing; a bundle holds every run its "
                          "command made, in seed order")
    assert count.startswith("recipe.yaml: runs: 5, but the bundle holds 4 runs")


def test_a_repeated_or_reordered_seed_and_an_interrupted_set(tmp_path):
    from bundles import problems_of

    twice = bundle(tmp_path, "twice", [10, 10, 10, 10], seeds=[0, 1, 0, 1])
    assert any("seed 0 again" in p and "more than one set" in p for p in problems_of(twice))
    stopped = make_bundle(tmp_path / "stopped", [run(10), run(10), {"status": "aborted", "evals": [(9.0, 0.5)]}],
                          sets=("runs=5",))
    assert problems_of(stopped) == []  # Ctrl-C after 3 of 5 runs: the set ends early, nothing taken out


def test_every_committed_bundle_still_verifies_with_the_selection_check():
    from bench.report import verify

    for b in sorted(REPO.glob("results/**/reports/*/MANIFEST")):
        assert verify.check(b.parent).problems == [], b.parent


# ------------------------------------------------------------------------------------------ bad input

def test_a_reference_from_another_recipe_data_set_or_target_is_refused_not_compared(tmp_path, references, capsys):
    other_target = bundle(tmp_path, "t80", [10, 10, 11], target=0.8)
    assert bench("verify", other_target, "--rcp", references) == 2
    err = capsys.readouterr().err
    assert f"--rcp {references}: not a reference for these runs" in err
    assert "target is test_acc 0.9 (max), the runs' is test_acc 0.8 (max)" in err and "refused, not compared" in err
    # found in a folder, not named: not compared, and the line says why
    assert bench("verify", other_target, "--rcp", references.parent) == 0
    out = capsys.readouterr().out
    assert "convergence: not checked: no reference for these runs' data set and target" in out
    other_recipe = json.loads(references.read_text())
    other_recipe["recipe"] = "darknet"
    (tmp_path / "darknet.json").write_text(json.dumps(other_recipe))
    fair = bundle(tmp_path, "fair", [10, 11, 9])
    assert bench("rcp", "check", fair, "--rcp", tmp_path / "darknet.json") == 2
    assert "recipe is 'darknet', the runs' is 'cpu_quick'" in capsys.readouterr().err
    other_data = json.loads(references.read_text())
    other_data["dataset"]["fingerprint"] = "9" * 64
    (tmp_path / "data.json").write_text(json.dumps(other_data))
    assert bench("rcp", "check", fair, "--rcp", tmp_path / "data.json") == 2
    assert "dataset is 'cifar10' (999999999999), the runs' is 'cifar10' (ffffffffffff)" in capsys.readouterr().err


def test_an_edited_reference_file_is_refused_with_the_field_the_value_and_the_fix(tmp_path, references, capsys):
    doc = json.loads(references.read_text())
    doc["points"][0]["olympic_mean"] = 12.0
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(doc))
    with pytest.raises(BenchError) as e:
        rcp.read(edited)
    assert "points[0]: olympic_mean is 12.0; its runs give 10.125: the file was edited; remake the file with " \
           "`bench rcp make`" in str(e.value)
    doc = json.loads(references.read_text())
    doc["points"][0]["runs"] = doc["points"][0]["runs"][:2]
    edited.write_text(json.dumps(doc))
    with pytest.raises(BenchError, match=r"points\[0\]: no reference point: an olympic mean needs at least 3 runs"):
        rcp.read(edited)
    doc = json.loads(references.read_text())
    doc["points"][0]["runs"][0]["epochs"] = 12  # an epoch changed and the figures made to fit it
    doc["points"][0].update(rcp.point_stats([r["epochs"] for r in doc["points"][0]["runs"]]))
    edited.write_text(json.dumps(doc))
    assert rcp.read(edited)  # consistent in itself, but not with its bundle:
    assert bench("rcp", "verify", edited) == 1
    assert "runs: the file has" in capsys.readouterr().err
    edited.write_text("{not json")
    with pytest.raises(BenchError, match=r"edited.json:1: not valid JSON"):
        rcp.read(edited)


def test_too_few_runs_on_either_side(tmp_path, references, capsys):
    two = bundle(tmp_path, "two", [10, 10])
    assert bench("rcp", "make", "--from-bundles", two, "--out", tmp_path / "x.json") == 2
    assert "no reference point: an olympic mean needs at least 3 runs, got 2" in capsys.readouterr().err
    out = verify_out(capsys, two, references)
    assert "convergence: not checked: an olympic mean needs at least 3 runs, got 2" in out


def test_runs_that_never_converged_count_as_mlperf_counts_them(tmp_path, references, capsys):
    one_miss = bundle(tmp_path, "one", [10, None, 11, 10, 9])
    out = verify_out(capsys, one_miss, references)
    assert "10, did not converge, 11, 10, 9; olympic mean 10.33 over 5 runs (4 converged)" in out
    two_misses = bundle(tmp_path, "two", [10, None, 11, None, 9])
    out = verify_out(capsys, two_misses, references)
    assert "convergence: insufficient convergence: 2 of 5 runs did not converge" in out
    refs_with_a_miss = bundle(tmp_path, "refmiss", [9, None, 10, 10])
    assert bench("rcp", "make", "--from-bundles", refs_with_a_miss, "--out", tmp_path / "m.json") == 0
    p = json.loads((tmp_path / "m.json").read_text())["points"][0]
    assert (p["olympic_mean"], p["n_converged"], p["stdev"]) == (10.0, 3, pytest.approx(float(np.std([9, 10, 10]))))


def test_rcp_make_refuses_bad_requests_before_any_work(tmp_path, references, capsys):
    assert bench("rcp", "make") == 2
    assert "name a recipe to train (RECIPE --runs N) or the bundles to read" in capsys.readouterr().err
    assert bench("rcp", "make", "cpu_quick", "--runs", "2", "--out", tmp_path / "r.json") == 2
    assert "--runs 2: allowed: >= 3" in capsys.readouterr().err
    assert bench("rcp", "make", "--from-bundles", tmp_path / "nope") == 2
    assert "no such bundle directory" in capsys.readouterr().err
    mixed = bundle(tmp_path, "t80", [10, 10, 11], target=0.8)
    assert bench("rcp", "make", "--from-bundles", mixed, "--out", references) == 2
    assert "the reference file is for other runs" in capsys.readouterr().err
    assert bench("verify", mixed, "--rcp", tmp_path / "missing.json") == 2
    assert "--rcp" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ the site

def test_the_site_marks_a_result_that_failed_the_convergence_check(tmp_path, references, monkeypatch):
    from bench.report import convergence
    from bench.site.build import build

    reports = tmp_path / "picked" / "reports"
    bundle(tmp_path, "picked", [LARGER[i] for i in FASTEST])
    monkeypatch.setattr(convergence, "DEFAULT_DIR", references.parent)
    [b] = reports.iterdir()
    built = build(tmp_path / "site", [b / "results.csv"], [reports], [], [])
    [bun] = built.bundles
    assert bun.convergence["failed"] and bun.verified
    index = (tmp_path / "site" / "index.html").read_text()
    assert "FAILS convergence check" in index
    page = (tmp_path / "site" / "reports" / b.name / "index.html").read_text()
    assert "faster than the references at p &lt; 0.05" in page and 'id="convergence"' in page


# ------------------------------------------------------------------------------------------ training references

@pytest.mark.slow
def test_rcp_make_trains_the_runs_then_makes_their_point(tmp_path, tiny_images, capsys):
    out = tmp_path / "rcp" / "cpu_quick.json"
    code = bench("rcp", "make", "cpu_quick", "--runs", "3", "--data", tiny_images, "--data-dir", tmp_path / "cache",
                 "--results", tmp_path / "results.csv", "--reports", tmp_path / "reports", "--out", out,
                 "--set", "precision=fp32", "--set", "model.params.widths=[4,4,8,8]", "--set", "data.batch_size=16",
                 "--set", "data.eval_batch_size=16", "--set", "optim.epochs=2", "--set", "target.value=0.05",
                 "--set", "hardware.threads=1", "--set", "warmup_steps=1")
    assert code == 0
    doc = rcp.read(out)
    [p] = doc["points"]
    assert p["n_runs"] == 3 and [r["seed"] for r in p["runs"]] == [0, 1, 2] and p["batch_size"] == 16
    assert p["made_by"].startswith("bench rcp make cpu_quick --runs 3 --set precision=fp32")
    [b] = (tmp_path / "reports").iterdir()
    assert json.loads((b / "env.json").read_text())["first_run"] == 0
    assert bench("rcp", "verify", out) == 0


def test_references_that_include_the_checked_runs_say_so(tmp_path, capsys):
    a, b = bundle(tmp_path, "a", REFERENCE[:5]), bundle(tmp_path, "b", REFERENCE[5:])
    out = tmp_path / "rcp.json"
    assert bench("rcp", "make", "--from-bundles", a, b, "--out", out) == 0
    assert json.loads(out.read_text())["points"][0]["n_runs"] == 10
    text = verify_out(capsys, a, out)
    assert "the references include 5 of this bundle's 5 runs (the same run ids): the two sides are not " \
           "independent" in text
    assert bench("rcp", "make", "--from-bundles", a, a, "--out", tmp_path / "twice.json") == 2
    assert "is also in" in capsys.readouterr().err
