"""`bench verify DIR --rerun`: train a bundle's recipe again here and test the new times against the reported
ones. The bundle is verified first (bench.report.verify): a bundle that does not check out has no
distribution worth reproducing."""
from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

from bench.core.errors import BenchError
from bench.report import summary as summ
from bench.report.verify import verify
from bench.studies import rerun_scores


def prediction_interval(times: list[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """Student t prediction interval for one more draw: mean ± t(1-a/2, n-1)·s·sqrt(1+1/n); n >= 2."""
    import statistics

    from scipy import stats as sps

    n = len(times)
    if n < 2:
        return None
    mean, s = statistics.fmean(times), statistics.stdev(times)
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * s * math.sqrt(1 + 1 / n)
    return mean - half, mean + half


def rerun_verdict(reported: list[float], new: list[float | None]) -> tuple[bool, list[str]]:
    """(every new run inside?, lines that state the test and each result). `new` holds None for a miss."""
    from scipy import stats as sps

    n, k = len(reported), len(new)
    lines = []
    pi = prediction_interval(reported)
    if pi is None:
        lines.append(f"reported: {n} time(s)-to-target: no distribution to compare against (needs >= 2); "
                     f"only checking that each new run reaches the target")
    else:
        lines.append(f"reported: n={n} times-to-target, mean {sum(reported) / n:.3f} s")
        lines.append(f"test: each new run must fall inside the 95% prediction interval "
                     f"mean ± t(0.975, n-1)·s·sqrt(1+1/n) = [{pi[0]:.3f}, {pi[1]:.3f}] s")
    ok = True
    for i, t in enumerate(new, start=1):
        if t is None:
            ok = False
            lines.append(f"  new run {i}: missed the target -> outside")
        elif pi is None:
            lines.append(f"  new run {i}: {t:.3f} s (reached)")
        else:
            inside = pi[0] <= t <= pi[1]
            ok &= inside
            lines.append(f"  new run {i}: {t:.3f} s -> {'inside' if inside else 'OUTSIDE'}")
    hits = [t for t in new if t is not None]
    if k >= 2 and n >= 2 and len(hits) >= 2:
        res = sps.ttest_ind(reported, hits, equal_var=False)
        lines.append(f"Welch's t-test, H0: equal mean time-to-target (two-sided): t = {float(res.statistic):.3f}, "
                     f"p = {float(res.pvalue):.4g}")
    elif k >= 2:
        lines.append("Welch's t-test: not computed (needs >= 2 reported and >= 2 new times)")
    return ok, lines


def _machine_warnings(old_env: dict, old_rows: list[dict], new_bundle: Path) -> list[str]:
    new_env = summ.read_json(new_bundle, "env.json")
    new_rows = summ.read_rows(new_bundle)
    out = []
    old_dev = next((r.get("device_name") for r in old_rows if r.get("device_name")), None)
    new_dev = next((r.get("device_name") for r in new_rows if r.get("device_name")), None)
    if old_dev != new_dev:
        out.append(f"warning: the device differs: bundle {old_dev!r}, this machine {new_dev!r}")
    if old_env.get("torch") != new_env.get("torch"):
        out.append(f"warning: torch differs: bundle {old_env.get('torch')}, this machine {new_env.get('torch')}")
    return out


def rerun(bundle: Path, runs: int = 1, say=print) -> int:
    """Train the bundle's recipe `runs` times here (tables and bundles in a temporary directory) and test
    the new times against the reported ones. 0 when every new run falls inside, else 1."""
    import yaml

    from bench.models.user import anchor
    from bench.recipe import from_dict
    from bench.run.runner import run_recipe

    if runs < 1:
        raise BenchError(f"--runs {runs}: allowed: >= 1")
    verify(bundle)  # a bundle that does not check out has no distribution worth reproducing
    raw = summ.load(bundle)
    # a user's model file is the bundle's copy, named relative to recipe.yaml (bench.run.model_copy)
    recipe = from_dict(anchor(yaml.safe_load((bundle / "recipe.yaml").read_text(encoding="utf-8")), bundle),
                       str(bundle / "recipe.yaml"))
    facts = summ.compute(raw)
    reported = [r["time_to_target_s"] for r in facts["runs"] if r["time_to_target_s"] is not None]
    data_dir = raw.env.get("data_dir") or None
    say(f"rerun: {runs} new run(s) of {recipe.name} [{recipe.hash}] with the bundle's seeds, data "
        f"{raw.env.get('data_source')}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-rerun-"))
    try:
        rows, new_bundle = run_recipe(recipe, data=raw.env.get("data_source"),
                                      data_dir=Path(data_dir) if data_dir else None,
                                      results_path=tmp / "results.csv", runs=runs, reports_dir=tmp / "reports",
                                      argv=["bench", "verify", str(bundle), "--rerun"],
                                      say=lambda text: [say(f"  rerun | {line}") for line in text.splitlines()])
        warnings = _machine_warnings(raw.env, raw.rows, new_bundle) if new_bundle else []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for w in warnings:
        say(w)
    new = [r["time_to_target_s"] if r["status"] == "reached" else None for r in rows]
    ok, lines = rerun_verdict(reported, new)
    scored = rerun_scores.for_bundle(facts, rows)  # a GAN bundle: its score too, in the metric's direction
    if scored is not None:
        ok &= scored[0]
        lines += scored[1]
    for line in lines:
        say(line)
    inside = "every new run is inside" + (" and no score is significantly worse" if scored is not None else "")
    say(f"result: {inside + ': reproduced' if ok else 'NOT reproduced'} "
        f"({sum(t is not None for t in new)}/{len(new)} new runs reached the target)")
    return 0 if ok else 1
