"""Reference convergence points (RCPs): does a set of runs converge faster than the recipe's reference runs?

Epochs to converge, not seconds: a faster machine makes a run quicker, but only a changed recipe, a lucky pick of
seeds or a data leak makes it reach the target in fewer epochs. This module holds the arithmetic and the reference
file; reading bundles is bench.report.convergence's. No torch.

It follows MLPerf Training's RCP checker (mlcommons/logging, `mlperf_logging/rcp_checker/rcp_checker.py`, as
read in mlperf-logging 4.1.68) and the RCP rules of training_policies' `training_rules.adoc`, written anew:

- **Olympic mean**: the runs' epochs sorted, the fastest and the slowest dropped, the rest averaged (numpy's mean).
  A run that did not converge counts as infinitely slow (MLPerf writes 1e9), so one such run is the one dropped;
  more than one leaves no mean ("insufficient convergence" in MLPerf's words).
- **Reference spread**: numpy's std (ddof 0) over the reference epochs, every run, the dropped ones included, as
  MLPerf computes "RCP Stdev". MLPerf's reference files hold converged runs only; a reference run that did not
  converge is kept here (it counts in the olympic mean as above) and left out of the spread (an infinite epoch
  count has no spread).
- **The lowest acceptable mean** (MLPerf's "Min Epochs"): a bisection on [0, reference mean], to 1e-4 epochs, for
  the lowest submission mean that a one-sided two-sample t-test does not call faster at alpha 0.05. The test is
  scipy.stats.ttest_ind_from_stats with equal variances, both sides given the reference spread (a submission's
  own spread is not used), one-sided ("less"). The reference side counts its olympic runs (runs - 2); the
  submission side counts its runs - 2. With no spread the lowest acceptable mean is the reference mean itself.
- **The verdict**: the submission's olympic mean must be at least reference mean / (reference mean / lowest
  acceptable mean) (MLPerf compares with "RCP Mean / Max Speedup"; written the same way so the float is the same).
- **Normalisation**: a submission that passes with a mean below the reference mean has its score multiplied by
  reference mean / submission mean (never below 1): converging faster is never rewarded.
- **Batch sizes**: one reference point per global batch size. Before a check the points are pruned as MLPerf
  prunes them: every point at a batch size below the fastest-converging point's goes, then, walking up the
  batch sizes, a point slower than the interpolation of its two neighbours goes. A batch size with a point is
  checked against it; one between two points against their linear interpolation (mean and spread; the reference
  side of the test then counts 2 x the submission's runs, as MLPerf's interpolated record does); one below every
  point against the smallest batch size's point, passing only if not faster ("no reference at this batch size"
  otherwise); one above every point is not checked ("no reference at this batch size").

Where this departs from MLPerf: MLPerf fixes each benchmark's number of submission runs (resnet 5, bert 10); here
it is the number of runs the checked set holds. A set needs at least 3 runs on each side, since the olympic mean
drops two (MLPerf's code would average nothing for 2).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from scipy import stats as sps

from bench.core.errors import BenchError

ALPHA = 0.05
TOLERANCE = 1e-4  # epochs: where the bisection for the lowest acceptable mean stops (MLPerf's tolerance)
DROPPED = 1  # runs dropped at each end by the olympic mean
MIN_RUNS = 2 * DROPPED + 1  # an olympic mean needs something left after dropping
SCHEMA = "bench-rcp/1"


# ------------------------------------------------------------------------------------------ one set of runs

def olympic(epochs: Sequence[Optional[float]]) -> tuple[Optional[float], Optional[str]]:
    """(olympic mean, None), or (None, why) when there is none: fewer than 3 runs, or more than one run that did
    not converge (None)."""
    n = len(epochs)
    missed = sum(e is None for e in epochs)
    if n < MIN_RUNS:
        return None, f"an olympic mean needs at least {MIN_RUNS} runs, got {n}"
    if missed > DROPPED:
        return None, (f"{missed} of {n} runs did not converge; the olympic mean drops one "
                      f"(MLPerf: insufficient convergence)")
    ordered = sorted(float(e) for e in epochs if e is not None) + [math.inf] * missed
    return float(np.mean(ordered[DROPPED:n - DROPPED])), None


def spread(epochs: Sequence[Optional[float]]) -> float:
    """numpy's std (ddof 0) of the runs that converged: MLPerf's "RCP Stdev"."""
    done = sorted(float(e) for e in epochs if e is not None)  # sorted, as MLPerf sorts before np.std
    return float(np.std(done)) if done else 0.0


def _p_less(subm_mean: float, ref_mean: float, stdev: float, n_subm: int, n_ref: int) -> float:
    """The test itself; nan where it has no degrees of freedom (as scipy gives, without its warning)."""
    if n_subm + n_ref - 2 < 1:
        return math.nan
    res = sps.ttest_ind_from_stats(subm_mean, stdev, n_subm, ref_mean, stdev, n_ref, equal_var=True,
                                   alternative="less")
    return float(res.pvalue)


def p_faster(subm_mean: float, ref_mean: float, stdev: float, n_subm: int, n_ref: int) -> Optional[float]:
    """One-sided p of "the submission converges faster": a two-sample t-test with equal variances, both sides
    given the reference spread; None where it is undefined (no spread, or no degrees of freedom: n_subm + n_ref
    must be at least 3)."""
    if stdev == 0:
        return None
    p = _p_less(subm_mean, ref_mean, stdev, n_subm, n_ref)
    return None if math.isnan(p) else p


def degrees_of_freedom(n_subm: int, n_ref: int) -> int:
    return n_subm + n_ref - 2


def lowest_acceptable_mean(ref_mean: float, stdev: float, n_ref: int, n_subm: int, alpha: float = ALPHA,
                           tolerance: float = TOLERANCE) -> float:
    """The lowest submission mean the t-test does not call faster than `ref_mean` at `alpha`, found by bisection
    on [0, ref_mean] to `tolerance`; `ref_mean` itself when the references have no spread. `n_ref` and `n_subm`
    are the runs each side's mean is over (olympic: runs - 2)."""
    if stdev == 0:
        return ref_mean
    low, high = 0.0, ref_mean
    mid = (low + high) / 2
    while high - low > tolerance:
        # nan (no degrees of freedom) is never > alpha: the bar rises to the reference mean, as in MLPerf's code
        if _p_less(mid, ref_mean, stdev, n_subm, n_ref) > alpha:
            high = mid  # not significantly faster: the bar is lower still
        else:
            low = mid
        mid = (low + high) / 2
    return mid


# ------------------------------------------------------------------------------------------ points

@dataclass(frozen=True)
class Point:
    """One reference point: the references' olympic mean and spread of epochs to converge at one global batch
    size. `n` is the runs the mean is over (runs - 2); None for an interpolated point, whose test counts twice
    the submission's runs as MLPerf's interpolated records do."""
    batch_size: int
    mean: float
    stdev: float
    n: Optional[int]
    runs: int = 0
    interpolated: bool = False

    def n_ref(self, subm_runs: int) -> int:
        return 2 * subm_runs if self.n is None else self.n


def interpolate(batch_size: int, low: Point, high: Point) -> Point:
    """The point at `batch_size` on the straight line between two points (mean and spread), as MLPerf's
    interpolated record."""
    xs = [low.batch_size, high.batch_size]
    return Point(batch_size, float(np.interp(batch_size, xs, [low.mean, high.mean])),
                 float(np.interp(batch_size, xs, [low.stdev, high.stdev])), None, interpolated=True)


def prune(points: Sequence[Point]) -> list[Point]:
    """MLPerf's pruning, the points sorted by batch size: drop every point below the fastest-converging point's
    batch size, then walk up and drop each point slower than the interpolation of its neighbours."""
    if not points:
        return []
    pts = sorted(points, key=lambda p: p.batch_size)
    fastest = min(pts, key=lambda p: p.mean)
    pts = [p for p in pts if p.batch_size >= fastest.batch_size]
    i = 1
    while i < len(pts) - 1:
        if pts[i].mean > interpolate(pts[i].batch_size, pts[i - 1], pts[i + 1]).mean:
            del pts[i]
            i -= 1
        i += 1
    return pts


def find(points: Sequence[Point], batch_size: int) -> tuple[Optional[Point], str]:
    """The reference for `batch_size` among the pruned `points`, and how it was found: exact, interpolated,
    below (smaller than every reference batch size: the smallest one's point), above (larger than all: None),
    none (no points)."""
    pts = prune(points)
    if not pts:
        return None, "none"
    for p in pts:
        if p.batch_size == batch_size:
            return p, "exact"
    lower = [p for p in pts if p.batch_size < batch_size]
    upper = [p for p in pts if p.batch_size > batch_size]
    if lower and upper:
        return interpolate(batch_size, lower[-1], upper[0]), "interpolated"
    if upper:
        return upper[0], "below"
    return None, "above"


# ------------------------------------------------------------------------------------------ the verdict

PASS, FASTER, NO_REFERENCE, INSUFFICIENT, NOT_CHECKED = "pass", "faster", "no_reference", "insufficient", "not_checked"


@dataclass
class Verdict:
    """What the check found. `state`: pass | faster (not accepted without review) | no_reference (this batch
    size has none) | insufficient (more than one run did not converge) | not_checked (see `reason`)."""
    state: str
    batch_size: Optional[int] = None
    how: Optional[str] = None               # exact | interpolated | below | above | none
    reference: Optional[Point] = None
    runs: int = 0                           # the checked set's runs
    converged: int = 0
    mean: Optional[float] = None            # the checked set's olympic mean of epochs
    lowest: Optional[float] = None          # the lowest acceptable mean
    threshold: Optional[float] = None       # reference mean / max speedup: what the mean is compared with
    max_speedup: Optional[float] = None
    p: Optional[float] = None               # one-sided p of "faster" for this mean (None: no spread)
    factor: float = 1.0                     # the score's normalisation factor (>= 1)
    reason: Optional[str] = None

    @property
    def failed(self) -> bool:
        return self.state == FASTER


def judge(epochs: Sequence[Optional[float]], points: Sequence[Point], batch_size: int,
          alpha: float = ALPHA) -> Verdict:
    """Check one set's epochs to converge (None: did not converge) against the reference points at its global
    batch size."""
    runs = len(epochs)
    v = Verdict(NOT_CHECKED, batch_size=batch_size, runs=runs, converged=sum(e is not None for e in epochs))
    mean, why = olympic(epochs)
    if mean is None:
        v.state = INSUFFICIENT if runs >= MIN_RUNS else NOT_CHECKED
        v.reason = why
        return v
    v.mean = mean
    ref, how = find(points, batch_size)
    v.how = how
    if ref is None:
        v.state = NO_REFERENCE
        sizes = sorted(p.batch_size for p in prune(points))
        v.reason = (f"no reference at batch size {batch_size}: the largest reference batch size is {sizes[-1]}"
                    if sizes else "no reference points")
        return v
    v.reference = ref
    v.lowest = lowest_acceptable_mean(ref.mean, ref.stdev, ref.n_ref(runs), runs - 2 * DROPPED, alpha)
    v.max_speedup = ref.mean / v.lowest
    v.threshold = ref.mean / v.max_speedup
    v.p = p_faster(mean, ref.mean, ref.stdev, runs - 2 * DROPPED, ref.n_ref(runs))
    factor = ref.mean / mean
    v.factor = 1.0 if factor < 1 else factor
    ok = mean >= v.threshold
    if how == "below":
        v.state = PASS if ok else NO_REFERENCE
        v.reason = (f"no reference at batch size {batch_size}; compared with the smallest reference batch size, "
                    f"{ref.batch_size}, " + ("and converges no faster than its references" if ok else
                                              "and converges faster than its references: make references at "
                                              f"batch size {batch_size}"))
        return v
    v.state = PASS if ok else FASTER
    return v


# ------------------------------------------------------------------------------------------ the reference file

def _fail(where: str, what: str, value, fix: str):
    raise BenchError(f"{where}: {what} is {value!r}; {fix}")


REMAKE = "remake the file with `bench rcp make` (it is written from bundles, never by hand)"


def _num(where: str, what: str, value, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or \
            (positive and value <= 0):
        _fail(where, what, value, f"expected a finite {'positive ' if positive else ''}number; {REMAKE}")
    return float(value)


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def point_stats(epochs: Sequence[Optional[float]], where: str = "reference runs") -> dict:
    """The figures a reference point stores, from its runs' epochs; BenchError when they make no point."""
    mean, why = olympic(epochs)
    if mean is None:
        raise BenchError(f"{where}: no reference point: {why}; a point needs at least {MIN_RUNS} runs, at most "
                         f"{DROPPED} of them not converging (MLPerf asks for twice a submission's runs)")
    return {"olympic_mean": mean, "stdev": spread(epochs), "n_runs": len(epochs),
            "n_converged": sum(e is not None for e in epochs)}


def validate(doc, where: str) -> dict:
    """A reference file's contents, checked: every field there and of the right type, every figure equal to what
    its runs give (so an edited mean is refused, not used). Returns `doc`."""
    if not isinstance(doc, dict):
        _fail(where, "the file", type(doc).__name__, f"expected a JSON object; {REMAKE}")
    if doc.get("schema") != SCHEMA:
        _fail(where, "schema", doc.get("schema"), f"expected {SCHEMA!r}; {REMAKE}")
    for key in ("recipe",):
        if not isinstance(doc.get(key), str) or not doc[key]:
            _fail(where, key, doc.get(key), f"expected the recipe's name; {REMAKE}")
    ds, tg = doc.get("dataset"), doc.get("target")
    if not isinstance(ds, dict) or not isinstance(ds.get("fingerprint"), str):
        _fail(where, "dataset", ds, f"expected {{name, fingerprint}}; {REMAKE}")
    if not isinstance(tg, dict) or tg.get("mode") not in ("max", "min") or not isinstance(tg.get("metric"), str):
        _fail(where, "target", tg, f"expected {{metric, value, mode: max|min}}; {REMAKE}")
    _num(where, "target.value", tg.get("value"))
    points = doc.get("points")
    if not isinstance(points, list) or not points:
        _fail(where, "points", points, f"expected a non-empty list of reference points; {REMAKE}")
    seen = set()
    for i, p in enumerate(points):
        at = f"{where}: points[{i}]"
        if not isinstance(p, dict):
            _fail(at, "the point", p, f"expected an object; {REMAKE}")
        bs = p.get("batch_size")
        if isinstance(bs, bool) or not isinstance(bs, int) or bs < 1:
            _fail(at, "batch_size", bs, f"expected a positive whole number; {REMAKE}")
        if bs in seen:
            _fail(at, "batch_size", bs, f"another point has this batch size; keep one; {REMAKE}")
        seen.add(bs)
        runs = p.get("runs")
        if not isinstance(runs, list):
            _fail(at, "runs", runs, f"expected the list of reference runs; {REMAKE}")
        epochs = []
        for j, r in enumerate(runs):
            if not isinstance(r, dict) or "epochs" not in r:
                _fail(f"{at}.runs[{j}]", "the run", r, f"expected an object with epochs; {REMAKE}")
            e = r["epochs"]
            epochs.append(None if e is None else _num(f"{at}.runs[{j}]", "epochs", e, positive=True))
        want = point_stats(epochs, at)
        for key, value in want.items():
            got = p.get(key)
            if isinstance(got, bool) or not isinstance(got, (int, float)) or not _same(float(got), float(value)):
                _fail(at, key, got, f"its runs give {value!r}: the file was edited; {REMAKE}")
    return doc


def points_of(doc: dict) -> list[Point]:
    return [Point(p["batch_size"], float(p["olympic_mean"]), float(p["stdev"]), int(p["n_runs"]) - 2 * DROPPED,
                  runs=int(p["n_runs"])) for p in doc["points"]]


def read(path: Path) -> dict:
    """A reference file, validated (BenchError naming the file, the field, the value and the fix)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BenchError(f"{path}: no such reference file; make one with `bench rcp make`") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BenchError(f"{path}: cannot read it ({e})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise BenchError(f"{path}:{e.lineno}: not valid JSON ({e.msg}); {REMAKE}") from None
    return validate(doc, str(path))


def dumps(doc: dict) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def identity_problems(doc: dict, recipe: str, dataset: dict, target: dict) -> list[str]:
    """Why a reference file is not for this set of runs (another recipe, data set or target): each problem names
    the field, the file's value and the runs' value. Empty: the file applies."""
    out = []
    if doc["recipe"] != recipe:
        out.append(f"recipe is {doc['recipe']!r}, the runs' is {recipe!r}")
    if doc["dataset"].get("fingerprint") != dataset.get("fingerprint"):
        out.append(f"dataset is {doc['dataset'].get('name')!r} ({str(doc['dataset'].get('fingerprint'))[:12]}), "
                   f"the runs' is {dataset.get('name')!r} ({str(dataset.get('fingerprint'))[:12]})")
    tg = doc["target"]
    if tg.get("metric") != target.get("metric") or tg.get("mode") != target.get("mode") or \
            not _same(float(tg["value"]), float(target.get("value"))):
        out.append(f"target is {tg.get('metric')} {tg.get('value')!r} ({tg.get('mode')}), the runs' is "
                   f"{target.get('metric')} {target.get('value')!r} ({target.get('mode')})")
    return out
