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
