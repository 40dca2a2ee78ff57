"""The report of a GAN run set (kind: gan): summary fields and report.md, from the same raw files.

summary.compute builds the common summary; `score_summary` names its figures for what they are (the target
metric's best / final value, not accuracy), adds the baselines logged in init (untrained generator, real
images) and whether the target sits at least halfway between them on the metric's own scale. `render` is
report.md: the target's place on that scale, the runs, the statistics, the seed's two failure checks (mode
collapse, memorisation) at each run's last evaluation, the curves and the sample grids, and the WGAN-GP
paper's comparison (in another network's space: not comparable)."""
from __future__ import annotations

from bench.core.targets import relation
from bench.report import markdown as md

TIMING_RULES = {
    "init": "process start (first run) or the end of the previous run, to ready: networks built, data staged, "
            "judge loaded, reference features of the held-out and training images computed, baselines scored, "
            "warm-up done. Recorded and reported; not part of time-to-target.",
    "time_to_target": "from run_start, before the first real batch is drawn, to the end of the first evaluation "
                      "whose score reaches the target. Critic and generator steps, data loading and every "
                      "evaluation on the way (sampling, judge scores, failure checks, the sample grid) count; "
                      "device work is synchronised before the clock is read.",
    "epoch": "a fixed number of generator iterations (gan.gen_iters_per_epoch), each with its critic steps; "
             "evaluations come every target.eval_every epochs.",
    "wall": "the whole run including init, for device-hours and cost.",
}
# Gulrajani et al. 2017, "Improved Training of Wasserstein GANs" (ANCHORS.md, WGAN): Inception score, official
# CIFAR-10, the standard Inception network. Figure 3 plots it against generator iterations and wall-clock time.
ANCHORS = [
    ("DCGAN (Table 3, unsupervised CIFAR-10)", "6.16", "Inception score"),
    ("WGAN-GP, ResNet (Table 3)", "7.86", "Inception score"),
    ("WGAN clipping vs WGAN-GP vs DCGAN (Figure 3)", "curves", "Inception score against wall-clock time"),
]
KEYS = ("fd_judge", "is_judge", "kid_judge")


def score_summary(out: dict, raw) -> None:
    """Turn the common summary into a score summary in place (keys say metric, not accuracy)."""
    out["kind"] = "gan"
    out["target_mode"] = raw.mode
    out["timing_rules"] = TIMING_RULES
    out["conventions"] = dict(out["conventions"], accuracy="score statistics over the final score (last "
                              "evaluation) of every included run", ttest=f"one-sided one-sample t-test of the "
                              f"included runs' final {raw.metric} against the target ({raw.mode} is better)")
    for run in out["runs"]:
        run["best_metric"], run["final_metric"] = run.pop("best_acc"), run.pop("final_acc")
        run["evals"] = [{"epoch": e["epoch"], "elapsed_s": e["elapsed_s"], "value": e["acc"], **e.get("extras", {})}
                        for e in run["evals"]]
    if out["stats"] is not None:
        out["stats"]["score"] = out["stats"].pop("accuracy")
    base = next((r["baselines"] for r in out["runs"] if r.get("baselines")), None)
    out["target_check"] = target_check(base, raw.metric, raw.mode, raw.target)


def target_check(base: dict | None, metric: str, mode: str, target: float) -> dict | None:
    """Is the target at least halfway from the untrained generator's score to the real images' score?"""
    try:
        u, r = float(base["untrained"][metric]), float(base["real"][metric])
    except (TypeError, KeyError, ValueError):
        return None
    half = (u + r) / 2
    share = (u - target) / (u - r) if u != r else None  # 0: the untrained score, 1: the real images'
    ok = target <= half if mode == "min" else target >= half
    return {"untrained": u, "real": r, "target": target, "halfway": half, "share_of_the_way": share,
            "at_least_halfway": bool(ok)}


# ------------------------------------------------------------------------------------------ report.md

def _g(x, fmt=".4g") -> str:
    return "–" if x is None else (f"{x:{fmt}}" if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x))


def _headline(s: dict) -> str:
    st, m = s.get("stats"), s["target_metric"]
    want = f"{m} {relation(s['target_mode'])} {s['target']:g}"
    if st is None:
        return f"**No statistics:** {s['stats_note']}"
    t = st["time"]
    if not t["n"]:
        return f"**No run reached {want}.** {st['n_runs']} included run(s)."
    ci = f" (95% CI [{t['ci_low']:.1f}, {t['ci_high']:.1f}] s)" if t["ci_low"] is not None else ""
    return (f"**{t['mean']:.1f} s** mean time to {want} over {t['n']} run(s) that reached it{ci}; "
            f"{st['n_reached']} of {st['n_runs']} included runs reached the target.")


def _recipe(s: dict) -> list[str]:
    out = md._recipe(s)
    i = next(k for k, line in enumerate(out) if line.startswith("- target:"))
    out[i] = (f"- target: {s['target_metric']} {relation(s['target_mode'])} {s['target']:g} "
              f"(scored in the judge's feature space; see below)")
    return out


def _judge(s: dict) -> list[str]:
    base = next((r["baselines"] for r in s["runs"] if r.get("baselines")), None) or {}
    j = base.get("judge") or {}
    out = ["## The judge", "",
           "Scores are computed in the feature space of a small CIFAR-10 classifier this harness trained (the "
           "judge): `fd_judge` is the Frechet distance of its penultimate features, `kid_judge` the kernel "
           "distance, `is_judge` the inception-style score of its class probabilities (torchmetrics' FID, KID "
           "and IS with the judge as feature extractor). **They are not FID or IS and are not comparable with "
           "published numbers**; they compare this harness's runs with each other.", "",
           f"- checkpoint `{j.get('path', '–')}`: {j.get('arch', '–')} {j.get('params', '')}, test accuracy "
           f"{md._pct(j.get('test_acc'))} on `{j.get('dataset', '–')}` (fingerprint `{str(j.get('dataset_fingerprint'))[:12]}`), "
           f"recipe `{j.get('recipe', '–')}` hash `{j.get('recipe_hash', '–')}`",
           f"- rebuilt with: `{j.get('command', '–')}`",
           f"- reference: {_g(base.get('reference_images'))} held-out test images; baseline of real images: "
           f"{_g(base.get('real_images'))} training images", ""]
    return out


def _target(s: dict) -> list[str]:
    c, m = s.get("target_check"), s["target_metric"]
    out = ["## Where the target sits", ""]
    if c is None:
        return out + ["No baselines were logged (no run finished its init).", ""]
    base = next((r["baselines"] for r in s["runs"] if r.get("baselines")), {})
    rows = [[k, _g(base["untrained"].get(k)), _g(base["real"].get(k))] for k in KEYS + ("fid", "is")
            if k in base["untrained"]]
    out += md._table(["score", "untrained generator", "real images"], rows)
    verdict = "yes" if c["at_least_halfway"] else "**no: the target is closer to the untrained generator**"
    share = f"{c['share_of_the_way']:.0%}" if c["share_of_the_way"] is not None else "–"
    out += ["", f"- target {m} {relation(s['target_mode'])} {c['target']:g}: {share} of the way from the untrained "
                f"generator ({c['untrained']:.4g}) to real images ({c['real']:.4g}); halfway is {c['halfway']:.4g}. "
                f"At least halfway: {verdict}.", ""]
    return out


def _runs(s: dict) -> list[str]:
    m = s["target_metric"]
    rows = []
    for r in s["runs"]:
        last = r["evals"][-1] if r["evals"] else {}
        rows.append([f"`{r['run_id']}`", str(r["seed"]), r["status"], md._num(r["time_to_target_s"], ".1f"),
                     _g(r["best_metric"]), _g(r["final_metric"]), md._num(r["epochs"], "d"),
                     _g(last.get("generator_iters")), md._num(r["init_s"], ".1f"), md._num(r["wall_s"], ".1f"),
                     md._num(r["device_hours"], ".5f")])
    out = ["## Runs", ""]
    out += md._table(["run", "seed", "status", "time to target (s)", f"best {m}", f"final {m}", "epochs",
                      "generator iters", "init (s)", "wall (s)", "device-hours"], rows)
    return out + md._run_notes(s)


def _stats(s: dict) -> list[str]:
    st = s.get("stats")
    out = ["## Statistics", ""]
    if st is None:
        return out + [s["stats_note"], ""]
    t, a, o, tt = st["time"], st["score"], st["olympic_time"], st["ttest"]
    rows = [["n", str(t["n"]), str(a["n"])]]
    rows += [[k, md._num(t[k]), _g(a[k])] for k in ("mean", "std", "min", "median", "max")]
    rows.append(["95% CI of the mean", md._ci(t["ci_low"], t["ci_high"], md._num), md._ci(a["ci_low"], a["ci_high"], _g)])
    out += md._table(["", "time to target (s), runs that reached", f"final {s['target_metric']}, included runs"], rows)
    olympic = md._num(o["value"], ".3f", " s") if o["value"] is not None else f"n/a ({o['reason']})"
    test = f"t = {tt['t']:.3f}, df = {tt['df']}, **p = {tt['p']:.4g}**" if tt["p"] is not None else \
        f"not computed ({tt['reason']})"
    return out + ["", f"- success rate: {st['n_reached']}/{st['n_runs']} = {st['success_rate']:.0%}",
                  f"- olympic mean (MLPerf: drop fastest and slowest, a miss counts as slowest): {olympic}",
                  f"- t-test, {tt['hypothesis']}: {test}", ""]


def _checks(s: dict) -> list[str]:
    out = ["## Failure checks (the seed's worries)", "",
           "At every evaluation: **mode collapse** (the judge's class histogram of the samples: entropy as a "
           "fraction of uniform, the largest class's share, and the samples' spread in judge space as a fraction "
           "of real images'; a collapse - share and spread both past the recipe's limits, once the generator "
           "scores better than it did untrained - ends the run as failed) and **memorisation** (median distance from a sample to its nearest training image in judge "
           "space, over the same for held-out test images: near 0 means copies; `copies` counts samples closer to "
           "a training image than any test image is).", ""]
    rows = []
    for r in s["runs"]:
        for e in r["evals"][-1:]:
            rows.append([f"`{r['run_id']}`", str(e["epoch"]), _g(e.get("class_entropy"), ".3f"),
                         _g(e.get("top_class_share"), ".3f"), _g(e.get("spread_ratio"), ".3f"),
                         "**yes**" if e.get("collapsed") else "no", _g(e.get("nn_ratio"), ".3f"), _g(e.get("copies")),
                         "**yes**" if e.get("memorised") else "no"])
    out += md._table(["run", "last eval (epoch)", "class entropy", "top class share", "spread ratio", "collapsed",
                      "NN ratio", "copies", "memorised"], rows)
    return out + [""]


def _plots(s: dict) -> list[str]:
    out = ["## Curves", "",
           f"![{s['target_metric']} against time since run_start](plots/quality_vs_time.png)", "",
           "![the critic's Wasserstein estimate at each evaluation](plots/wasserstein.png)", "",
           "![is_judge against time: the WGAN-GP paper's figure 3, in judge space](plots/is_judge_vs_time.png)", "",
           "![CPU, memory and GPU telemetry](plots/telemetry.png)", "", "## Samples", "",
           "The same 64 noise vectors at every evaluation (`runs/<run>/samples/eval_NNNN.png`); `untrained.png` and "
           "`real.png` show the two ends of the scale.", ""]
    for r in s["runs"]:
        last = next((e for e in reversed(r["evals"]) if e.get("samples")), None)
        if last:
            out += [f"![run {r['run_id']}, epoch {last['epoch']}](runs/{r['run_id']}/{last['samples']})", ""]
    return out


def _anchors() -> list[str]:
    out = ["## Comparison", "", "Gulrajani et al. 2017 (Improved Training of Wasserstein GANs), official CIFAR-10, "
           "the standard Inception network:", ""]
    out += md._table(["system", "value", "what"], [list(a) for a in ANCHORS])
    return out + ["", "**Not comparable** with the judge-space scores above (another network's feature space, "
                      "another data set copy, other sample counts); `plots/is_judge_vs_time.png` draws the "
                      "paper's kind of plot for this harness's runs.", ""]


def render(s: dict) -> str:
    m = s["target_metric"]
    lines = [f"# {s['recipe']['name']}: time to {m} {relation(s['target_mode'])} {s['target']:g}", "",
             _headline(s), ""]
    lines += _recipe(s) + md._dataset(s) + _judge(s) + _target(s) + md._environment(s) + md._timing(s)
    lines += _runs(s) + _stats(s) + _checks(s) + _plots(s) + _anchors()
    lines += ["## Checking this bundle", "",
              "`MANIFEST` holds the sha256 of every file. `bench verify DIR` rechecks it and recomputes every "
              "figure in summary.json and results.csv from the event logs (scores, baselines and checks as "
              "logged at each evaluation; time to target and status from the target rule).", ""]
    return "\n".join(lines)
