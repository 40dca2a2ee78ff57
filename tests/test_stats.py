import json
import math

import pytest
from scipy import stats as sps

from bench.core.errors import BenchError
from bench.core.stats import describe, olympic_mean, summarize, ttest_above


def test_olympic_missed_run_is_the_slowest():
    assert olympic_mean([10, 12, 14, None]) == {"value": 13.0, "reason": None}


def test_olympic_drops_both_ends_without_misses():
    assert olympic_mean([14, 10, 20, 12])["value"] == 13.0


def test_olympic_refuses_two_misses_and_short_series():
    two_missed = olympic_mean([10, None, None])
    assert two_missed["value"] is None and "2 of 3" in two_missed["reason"]
    short = olympic_mean([10, 11])
    assert short["value"] is None and "at least 3" in short["reason"]


def test_ci_by_hand():
    d = describe([1, 2, 3, 4, 5])
    half = 2.7764451 * math.sqrt(2.5) / math.sqrt(5)
    assert d["mean"] == 3 and d["median"] == 3 and d["min"] == 1 and d["max"] == 5
    assert d["std"] == pytest.approx(math.sqrt(2.5))
    assert d["ci_low"] == pytest.approx(3 - half, abs=1e-6)
    assert d["ci_high"] == pytest.approx(3 + half, abs=1e-6)


def test_single_value_has_no_spread():
    d = describe([7.0])
    assert d["mean"] == 7.0 and d["std"] is None and d["ci_low"] is None


def test_ttest_by_hand():
    accs = [0.941, 0.943, 0.939, 0.945]
    mean = sum(accs) / 4
    sd = math.sqrt(sum((a - mean) ** 2 for a in accs) / 3)
    t = (mean - 0.94) / (sd / math.sqrt(4))
    res = ttest_above(accs, 0.94)
    assert res["t"] == pytest.approx(t)
    assert res["p"] == pytest.approx(1 - sps.t.cdf(t, 3))
    assert res["df"] == 3 and res["all_above_target"] is False


def test_ttest_zero_variance_says_which_side():
    above = ttest_above([0.95, 0.95], 0.94)
    assert above["t"] is None and above["all_above_target"] is True and "zero variance" in above["reason"]
    assert ttest_above([0.93, 0.93], 0.94)["all_above_target"] is False
    assert ttest_above([0.95], 0.94)["reason"].startswith("needs at least 2")


def test_ttest_for_a_min_metric_runs_the_other_way():
    """fd_judge-like scores: better lower, so H1 is mean < target, p from the lower tail, "below" the target."""
    scores = [240.0, 236.0, 251.0, 243.0]
    mean = sum(scores) / 4
    sd = math.sqrt(sum((v - mean) ** 2 for v in scores) / 3)
    t = (mean - 250.0) / (sd / math.sqrt(4))
    res = ttest_above(scores, 250.0, mode="min", what="fd_judge")
    assert res["t"] == pytest.approx(t) and res["p"] == pytest.approx(sps.t.cdf(t, 3))
    assert res["hypothesis"] == ("H0: mean fd_judge >= target; H1: mean fd_judge < target (one-sided)")
    assert res["all_above_target"] is False  # 251 is on the worse side
    assert ttest_above([240.0, 245.0], 250.0, mode="min")["all_above_target"] is True
    assert ttest_above([250.0, 240.0], 250.0, mode="min")["all_above_target"] is False  # at it is not below it
    flat = ttest_above([240.0, 240.0], 250.0, mode="min")
    assert flat["all_above_target"] is True and flat["reason"].endswith("which is below the target 250.0")
    worse = ttest_above([260.0, 260.0], 250.0, mode="min")
    assert worse["all_above_target"] is False and worse["reason"].endswith("which is not below the target 250.0")


def test_summarize_names_the_metric_in_its_hypothesis():
    s = summarize([10.0, 11.0], [240.0, 245.0], [True, True], target=250.0, mode="min", what="fd_judge")
    assert s["ttest"]["hypothesis"].startswith("H0: mean fd_judge >= target")


def test_summarize_is_json_ready():
    s = summarize([10.0, 12.0, 14.0, None], [0.941, 0.943, 0.945, 0.93],
                  [True, True, True, False], target=0.94)
    json.dumps(s, allow_nan=False)
    assert s["success_rate"] == 0.75 and s["n_reached"] == 3
    assert s["time"]["n"] == 3 and s["time"]["mean"] == 12.0
    assert s["accuracy"]["n"] == 4
    assert s["olympic_time"]["value"] == 13.0


def test_summarize_rejects_inconsistent_input():
    with pytest.raises(BenchError, match="run 1"):
        summarize([10.0, None], [0.95, 0.95], [True, True], target=0.94)
    with pytest.raises(BenchError, match="accs has 1"):
        summarize([10.0, 11.0], [0.95], [True, True], target=0.94)
    with pytest.raises(BenchError, match="no runs"):
        summarize([], [], [], target=0.94)


# ------------------------------------------------------------------ exact shapes and edges (mutation testing)

NONE_DESCRIBED = {"n": 0, "mean": None, "std": None, "min": None, "median": None, "max": None,
                  "ci_low": None, "ci_high": None}
HYPOTHESIS = "H0: mean accuracy <= target; H1: mean accuracy > target (one-sided)"


def test_describe_nothing_and_two_values():
    assert describe([]) == NONE_DESCRIBED  # summary.json's keys when no run reached the target
    two = describe([1.0, 3.0])  # two values are enough for a spread and an interval
    half = float(sps.t.ppf(0.975, 1)) * math.sqrt(2) / math.sqrt(2)
    assert two == {"n": 2, "mean": 2.0, "std": math.sqrt(2), "min": 1.0, "median": 2.0, "max": 3.0,
                   "ci_low": pytest.approx(2 - half), "ci_high": pytest.approx(2 + half)}


def test_ttest_results_have_one_shape_whatever_the_case():
    short = ttest_above([0.95], 0.94)
    assert short == {"hypothesis": HYPOTHESIS, "t": None, "p": None, "df": None,
                     "reason": "needs at least 2 runs, got 1", "all_above_target": None}
    flat = ttest_above([0.95, 0.95], 0.94)
    assert flat == {"hypothesis": HYPOTHESIS, "t": None, "p": None, "df": 1, "all_above_target": True,
                    "reason": "zero variance: every run scored 0.95, which is above the target 0.94"}
    assert ttest_above([0.93, 0.93], 0.94)["reason"].endswith("which is not above the target 0.94")
    assert set(ttest_above([0.95, 0.96], 0.94)) == set(flat)


def test_exactly_at_the_target_is_not_above_it():
    """H1 is mean > target: runs that only equal the target are not above it."""
    assert ttest_above([0.94, 0.94], 0.94)["all_above_target"] is False
    assert ttest_above([0.94, 0.95], 0.94)["all_above_target"] is False


def test_summarize_keys_and_confidence_reach_every_interval():
    s = summarize([10.0, 12.0, None], [0.95, 0.96, 0.90], [True, True, False], target=0.94, confidence=0.9)
    assert set(s) == {"n_runs", "n_reached", "success_rate", "target", "confidence", "time", "olympic_time",
                      "accuracy", "ttest"}
    assert (s["n_runs"], s["target"], s["confidence"]) == (3, 0.94, 0.9)
    assert s["time"] == describe([10.0, 12.0], 0.9) != describe([10.0, 12.0])
    assert s["accuracy"] == describe([0.95, 0.96, 0.90], 0.9)
    assert s["ttest"] == ttest_above([0.95, 0.96, 0.90], 0.94)


@pytest.mark.parametrize("confidence", [0, 1, 1.5, -0.1])
def test_confidence_must_lie_strictly_between_0_and_1(confidence):
    with pytest.raises(BenchError, match=rf"summarize: confidence {confidence!r} must lie strictly between 0 and 1"):
        summarize([10.0], [0.95], [True], target=0.94, confidence=confidence)


def test_each_inconsistency_names_itself():
    with pytest.raises(BenchError, match=r"^summarize: reached has 1 entries but times has 2; pass one entry per run$"):
        summarize([10.0, 11.0], [0.95, 0.95], [True], target=0.94)
    with pytest.raises(BenchError, match=r"^summarize: times\[1\] is nan; runs must report finite numbers$"):
        summarize([10.0, float("nan")], [0.95, 0.95], [True, True], target=0.94)
    with pytest.raises(BenchError, match=r"^summarize: accs\[0\] is inf; runs must report finite numbers$"):
        summarize([10.0], [float("inf")], [True], target=0.94)
    with pytest.raises(BenchError, match=r"a run that reached the target needs a time, and one that missed must "
                                         r"have None$"):
        summarize([None], [0.95], [True], target=0.94)
    with pytest.raises(BenchError, match=r"^summarize: accs contains None; every run must report an accuracy$"):
        summarize([10.0], [None], [True], target=0.94)
    with pytest.raises(BenchError, match=r"^summarize: no runs given$"):
        summarize([], [], [], target=0.94)


def test_welch_by_hand_and_against_scipy():
    from bench.core.stats import welch

    a, b = [10.0, 11.0, 12.0], [14.0, 15.0, 17.0, 18.0]
    va, vb = 1.0 / 3, (10.0 / 3) / 4  # sample variances 1 and 10/3, over n
    t = (16.0 - 11.0) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3)
    res = welch(a, b)
    assert res["t"] == pytest.approx(t) and res["df"] == pytest.approx(df)
    assert res["p"] == pytest.approx(2 * sps.t.sf(t, df))
    assert res["p"] == pytest.approx(sps.ttest_ind(b, a, equal_var=False).pvalue)
    # one-sided: b slower than a is the question "did it get slower?"
    assert welch(a, b, "greater")["p"] == pytest.approx(sps.t.sf(t, df))
    assert welch(a, b, "less")["p"] == pytest.approx(sps.t.cdf(t, df))
    assert welch(b, a)["t"] == pytest.approx(-t)  # the order of the sides is b against a


def test_welch_states_why_it_cannot_run():
    from bench.core.stats import welch

    assert welch([1.0], [1.0, 2.0])["reason"].startswith("needs at least 2 values on each side, got 1 and 2")
    assert welch([1.0, 2.0], [3.0])["p"] is None
    flat = welch([1.0, 1.0], [2.0, 2.0])
    assert flat["p"] is None and "no spread" in flat["reason"]
    ok = welch([1.0, 1.0], [2.0, 3.0])  # one side flat is fine
    assert ok["p"] is not None and ok["reason"] is None
    with pytest.raises(BenchError, match="alternative"):
        welch([1.0, 2.0], [1.0, 2.0], "bigger")
