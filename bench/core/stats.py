"""Summary statistics over N repeated runs of one recipe.

Conventions, so a report can state them:
- time-to-target statistics cover only the runs that reached the target;
- accuracy statistics cover every run; whether `accs` holds the final or the best
  evaluation is the caller's choice (this module only sees numbers), and the report
  must say which;
- std is the sample standard deviation (ddof=1), the CI a Student t interval on the mean;
- the olympic score follows MLPerf Training: drop the fastest and the slowest run, a
  run that missed the target counting as the slowest, so one miss is tolerated and two
  are not;
- the t-test is one-sided, one-sample: H0 mean accuracy <= target, H1 mean > target
  (the modded-nanogpt style "is the mean really above the bar" question).
"""

from __future__ import annotations

import math
import statistics

from scipy import stats as sps

from bench.core.errors import BenchError


def describe(values: list[float], confidence: float = 0.95) -> dict:
    """n, mean, std, min, median, max and a t confidence interval; None where undefined."""
    n = len(values)
    out = {"n": n, "mean": None, "std": None, "min": None, "median": None, "max": None,
           "ci_low": None, "ci_high": None}
    if n == 0:
        return out
    mean = statistics.fmean(values)
    out.update(mean=mean, min=min(values), median=statistics.median(values), max=max(values))
    if n >= 2:
        std = statistics.stdev(values)
        half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
        out.update(std=std, ci_low=mean - half, ci_high=mean + half)
    return out


def olympic_mean(times: list[float | None]) -> dict:
    """MLPerf's score: mean after dropping the fastest and the slowest run (a miss is slowest)."""
    n = len(times)
    missed = sum(t is None for t in times)
    if n < 3:
        return {"value": None, "reason": f"needs at least 3 runs, got {n}"}
    if missed > 1:
        return {"value": None,
                "reason": f"{missed} of {n} runs missed the target; MLPerf tolerates at most one"}
    ordered = sorted(t for t in times if t is not None)
    # With one miss the miss is the dropped slowest run, so only the fastest leaves `ordered`.
    kept = ordered[1:] if missed else ordered[1:-1]
    return {"value": statistics.fmean(kept), "reason": None}


def ttest_above(values: list[float], target: float, mode: str = "max", what: str = "accuracy") -> dict:
    """One-sided one-sample t-test, H0: mean <= target vs H1: mean > target; mode min (a score that is
    better lower, e.g. fd_judge) turns it round: H0: mean >= target vs H1: mean < target."""
    better, worse = (">", "<=") if mode == "max" else ("<", ">=")
    out = {"hypothesis": f"H0: mean {what} {worse} target; H1: mean {what} {better} target (one-sided)",
           "t": None, "p": None, "df": None, "reason": None, "all_above_target": None}
    n = len(values)
    if n < 2:
        out["reason"] = f"needs at least 2 runs, got {n}"
        return out
    out["df"] = n - 1
    side = "above" if mode == "max" else "below"
    beyond = (lambda v: v > target) if mode == "max" else (lambda v: v < target)
    if max(values) == min(values):  # every run scored the same: values[0] speaks for all of them
        above = beyond(values[0])
        out["all_above_target"] = above
        out["reason"] = (f"zero variance: every run scored {values[0]!r}, which is "
                         f"{side if above else 'not ' + side} the target {target!r}")
        return out
    res = sps.ttest_1samp(values, target, alternative="greater" if mode == "max" else "less")
    # all_above_target: every run on the better side of the target (below it, for a min metric)
    out.update(t=float(res.statistic), p=float(res.pvalue),
               all_above_target=all(beyond(v) for v in values))
    return out


def welch(a: list[float], b: list[float], alternative: str = "two-sided") -> dict:
    """Welch's two-sample t-test (unequal variances) of mean(b) against mean(a): H0 equal means; H1 mean(b) !=
    mean(a) (`two-sided`), > (`greater`) or < (`less`). t, p and the Welch-Satterthwaite df are None, with the
    reason, when either side has fewer than 2 values or both have no spread."""
    out = {"t": None, "p": None, "df": None, "reason": None, "alternative": alternative}
    if alternative not in ("two-sided", "greater", "less"):
        raise BenchError(f"welch: alternative {alternative!r}; allowed: two-sided, greater, less")
    if len(a) < 2 or len(b) < 2:
        out["reason"] = f"needs at least 2 values on each side, got {len(a)} and {len(b)}"
        return out
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if va + vb == 0:
        out["reason"] = "no spread on either side: the test is undefined"
        return out
    # by hand (scipy's ttest_ind gives the same, but warns of precision loss when one side has no spread)
    t = (statistics.fmean(b) - statistics.fmean(a)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    p = {"two-sided": 2 * sps.t.sf(abs(t), df), "greater": sps.t.sf(t, df), "less": sps.t.cdf(t, df)}[alternative]
    out.update(t=t, p=float(p), df=df)
    return out


def _check(name: str, values: list, n: int) -> None:
    if len(values) != n:
        raise BenchError(f"summarize: {name} has {len(values)} entries but times has {n}; "
                         "pass one entry per run")
    for i, v in enumerate(values):
        if v is not None and not math.isfinite(v):
            raise BenchError(f"summarize: {name}[{i}] is {v!r}; runs must report finite numbers")


def summarize(times: list[float | None], accs: list[float], reached: list[bool],
              target: float, confidence: float = 0.95, mode: str = "max", what: str = "accuracy") -> dict:
    """JSON-ready summary of N runs. times[i] is run i's time-to-target, None if it missed."""
    n = len(times)
    if n == 0:
        raise BenchError("summarize: no runs given")
    if not 0 < confidence < 1:
        raise BenchError(f"summarize: confidence {confidence!r} must lie strictly between 0 and 1")
    _check("accs", accs, n)
    _check("reached", reached, n)
    _check("times", times, n)
    for i, (t, r) in enumerate(zip(times, reached)):
        if (t is None) == bool(r):
            raise BenchError(f"summarize: run {i} has reached={r!r} but time={t!r}; a run that "
                             "reached the target needs a time, and one that missed must have None")
    if any(a is None for a in accs):
        raise BenchError("summarize: accs contains None; every run must report an accuracy")
    hit = [t for t in times if t is not None]
    return {
        "n_runs": n,
        "n_reached": len(hit),
        "success_rate": len(hit) / n,
        "target": target,
        "confidence": confidence,
        "time": describe(hit, confidence),
        "olympic_time": olympic_mean(times),
        "accuracy": describe(list(accs), confidence),
        "ttest": ttest_above(list(accs), target, mode, what),
    }
