"""`bench verify DIR --rerun` for a GAN bundle: what it checks beyond the times.

A GAN run races to a sample-quality target (fd_judge <= 250, ...). Its time to target is tested exactly as a
classifier's (bench.studies.rerun.rerun_verdict: each new run must reach the target, inside the 95% prediction
interval of the reported times when there are >= 2). The score is tested as well, in the metric's direction:

- the verdict: the new runs' best scores must not be significantly *worse* than the reported runs' best scores:
  Welch's one-sided t-test (bench.core.stats.welch), H0: the new mean is no worse; H1: it is worse (higher for
  a min metric such as fd_judge, lower for is_judge); NOT reproduced when p < ALPHA. It needs >= 2 best scores
  on each side; with fewer it is stated as not computed and does not decide;
- stated beside it, not deciding: the summary's one-sided one-sample t-test of the new best scores against the
  target (bench.core.stats.ttest_above, the test every report prints).
A run that reached the target stops there, so its best score sits just past the target: the score test matters
most for runs that missed, and for reruns on another machine that reach the target later with a worse score.
"""
from __future__ import annotations

ALPHA = 0.05


def _fmt(values) -> str:
    return ", ".join("-" if v is None else f"{v:.4g}" for v in values) or "none"


def score_verdict(metric: str, mode: str, target: float, reported: list, new: list) -> tuple[bool, list[str]]:
    """(no significantly worse score?, lines stating the tests). `reported`/`new`: each run's best score (None
    when a run logged no evaluation)."""
    from bench.core.stats import ttest_above, welch

    better = "lower" if mode == "min" else "higher"
    old = [v for v in reported if v is not None]
    got = [v for v in new if v is not None]
    lines = [f"score: each run's best {metric} ({better} is better; target {'<=' if mode == 'min' else '>='} "
             f"{target:g})", f"  reported: {_fmt(reported)}", f"  new:      {_fmt(new)}"]
    worse = "greater" if mode == "min" else "less"
    test = welch(old, got, alternative=worse)
    ok = True
    if test["p"] is None:
        lines.append(f"Welch's one-sided t-test, H1: the new mean best {metric} is worse than the reported: not "
                     f"computed ({test['reason']}); the score does not decide the verdict")
    else:
        ok = test["p"] >= ALPHA
        lines.append(f"Welch's one-sided t-test, H0: the new mean best {metric} is no worse than the reported; H1: it "
                     f"is worse ({'higher' if mode == 'min' else 'lower'}): t = {test['t']:.3f}, p = {test['p']:.4g} "
                     f"-> {'no significant loss' if ok else f'SIGNIFICANTLY WORSE (p < {ALPHA})'}")
    t = ttest_above(got, target, mode, metric)
    said = (f"t = {t['t']:.3f}, p = {t['p']:.4g}" if t["p"] is not None else f"not computed ({t['reason']})")
    lines.append(f"as in the report (stated, not deciding): {t['hypothesis']} for the new runs' best scores: {said}")
    return ok, lines


def for_bundle(facts: dict, rows: list[dict]) -> tuple[bool, list[str]] | None:
    """The score check of a GAN bundle's rerun, from its summary (`facts`) and the new rows; None for a bundle
    of another kind (a classifier's rerun tests its times only)."""
    if facts.get("kind") != "gan":
        return None
    metric, mode = facts["target_metric"], facts["target_mode"]
    reported = [r.get("best_metric") for r in facts["runs"]]
    new = [r.get("best_metric") for r in rows]
    return score_verdict(metric, mode, facts["target"], reported, new)
