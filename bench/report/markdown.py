"""report.md: a person's view of summary.json. Every number in it comes from the summary, and the text
depends on nothing else (no clock, no paths), so regenerating it from the same raw files gives the same bytes.
"""
from __future__ import annotations

import json
from pathlib import Path

from bench.core.prices import CPU_SOURCE, LEGACY_CPU_SOURCE
from bench.core.results import atomic_write

# From /work/shared/ANCHORS.md ("CIFAR-10 time-to-94%"): official CIFAR-10, test top-1, GPU systems.
ANCHORS = [
    ("hiverge cifar10-speedrun", "94.01% mean", "2.015 s mean", "1x A100", "2,000"),
    ("airbench94_muon", "94.01% mean", "2.59 s", "1x A100", "200"),
    ("airbench94 (compiled)", "94.01% mean", "3.09 s", "1x A100", "1,000"),
    ("hlb-CIFAR10 v0.7.0", "94%", "< 6.3 s", "1x A100", "25"),
    ("Page ResNet-9 (bag of tricks)", "94.1% (TTA)", "26 s", "1x V100", "50"),
    ("DAWNBench best: Apple ResNet-9", "94.20%", "9.4 s", "8x V100", "1"),
    ("DAWNBench: Page ResNet-9", "94.08%", "74 s, $0.063", "1x V100", "1"),
    ("fast.ai WRN-22 (DAWNBench)", "94.03%", "174 s, $1.18", "8x V100", "1"),
    ("fast.ai WRN-22, one GPU", "94.04%", "404 s, $0.26", "1x V100", "1"),
]
ANCHOR_NOTE = ("Each anchor times a different span (see ANCHORS.md, 'what the clock includes'); several exclude "
               "compile and warm-up as `init` does here, DAWNBench entries are single runs.")


def _num(x, fmt: str = ".3f", unit: str = "") -> str:
    return "–" if x is None else f"{x:{fmt}}{unit}"


def _pct(x) -> str:
    return "–" if x is None else f"{x * 100:.2f}%"


def _v(x) -> str:
    return "–" if x is None else str(x)


def _ci(lo, hi, fmt) -> str:
    return "–" if lo is None else f"[{fmt(lo)}, {fmt(hi)}]"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table's lines."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


_table = table  # the name the older report modules use


def _headline(s: dict) -> str:
    st = s.get("stats")
    if st is None:
        return f"**No statistics:** {s['stats_note']}"
    t = st["time"]
    if not t["n"]:
        return (f"**No run reached the target.** {st['n_runs']} included run(s); best final accuracy "
                f"{_pct(st['accuracy']['max'])}.")
    ci = f" (95% CI {_ci(t['ci_low'], t['ci_high'], lambda v: f'{v:.3f}')} s)" if t["ci_low"] is not None else ""
    return (f"**{t['mean']:.3f} s** mean time to {_pct(s['target'])} over {t['n']} run(s) that reached it{ci}; "
            f"{st['n_reached']} of {st['n_runs']} included runs reached the target.")


def _recipe(s: dict) -> list[str]:
    r = s["recipe"]
    prov = r.get("provenance") or {}
    return ["## Recipe", "",
            f"- name: `{r['name']}`, hash `{r['hash']}` (the resolved recipe: [recipe.yaml](recipe.yaml))",
            f"- model: `{r['model']}` {json.dumps(r.get('model_params') or {}, sort_keys=True)}",
            f"- precision `{s['precision']}`, memory format `{s['memory_format']}`, loader `{s['loader']}`, "
            f"compile `{s['compile']}`",
            f"- target: {s['target_metric']} >= {_pct(s['target'])}",
            f"- provenance: {prov.get('source') or '–'}",
            f"- expected result: {prov.get('reported') or '–'}", ""]


def _dataset(s: dict) -> list[str]:
    d = s["dataset"]
    counts = d.get("counts") or {}
    out = ["## Dataset", "",
           f"- name `{d['name']}`, content fingerprint `{d['fingerprint']}`",
           f"- images: {counts.get('train')} train / {counts.get('test')} test in the data set; this run set "
           f"trained on {d['train_images_used']} and evaluated on {d['test_images_used']}", ""]
    if not d["official_cifar10"]:
        out += [f"**This is NOT official CIFAR-10 (`{d['name']}`): results are not comparable with "
                f"CIFAR-10 records.**", ""]
    if d["train_subset"] is not None or d["test_subset"] is not None:
        out += [f"**Subsets in use (train {d['train_subset']}, test {d['test_subset']}): accuracies and times "
                f"are not comparable with full-data-set results.**", ""]
    return out


def _environment(s: dict) -> list[str]:
    dev, env = s["device"], s["environment"]
    dirty = {True: " (**dirty**: uncommitted changes)", False: " (clean)"}.get(env["git_dirty"], " (state unknown)")
    return ["## Environment", "",
            f"- device: {dev['type']} `{dev['name']}` x{dev['count']}; world size {dev['world_size']} "
            f"on {dev['nodes']} node(s), launcher {env['launcher']}",
            f"- torch {_v(env['torch'])}, CUDA {_v(env['cuda'])}, cuDNN {_v(env['cudnn'])}, NCCL {_v(env['nccl'])}, "
            f"DALI {_v(env['dali'])}, driver {_v(env['driver'])}, Python {_v(env['python'])}",
            f"- git commit `{env['git_commit']}`{dirty}",
            f"- host `{env['host']}`, CPU {env['cpu_model']}, {env['threads']} thread(s) per process",
            f"- price: {_price(s['price'])}", ""]


def _price(p: dict) -> str:
    if p["usd_per_device_hour"] is not None:
        return f"${p['usd_per_device_hour']:.2f} per device-hour ({p['source']})"
    if p["source"] == LEGACY_CPU_SOURCE:
        return "not applicable on a CPU: cost is recorded as $0, device-hours are still counted"
    if p["source"] == CPU_SOURCE:
        return "none for a CPU run: the cost is unknown, device-hours are still counted"
    return f"unknown ({_v(p['source'])}): no cost is computed"


def _timing(s: dict) -> list[str]:
    return ["## Timing rules", ""] + [f"- `{k}`: {v}" for k, v in s["timing_rules"].items()] + [""]


def _runs(s: dict) -> list[str]:
    rows = [[f"`{r['run_id']}`", str(r["seed"]), r["status"], _num(r["time_to_target_s"]), _pct(r["best_acc"]),
             _pct(r["final_acc"]), _num(r["epochs"], "d"), _num(r["init_s"]), _num(r["wall_s"]),
             _num(r["device_hours"], ".5f"), _num(r["cost_usd"], ".4f")] for r in s["runs"]]
    out = ["## Runs", ""]
    out += _table(["run", "seed", "status", "time to target (s)", "best acc", "final acc", "epochs", "init (s)",
                   "wall (s)", "device-hours", "cost ($)"], rows)
    out += ["", "Per-run event logs: `runs/<run>/mllog.txt`; DAWNBench-shaped exports: "
                "`runs/<run>/dawnbench.tsv` and `dawnbench.json`."]
    return out + _run_notes(s)


def _run_notes(s: dict) -> list[str]:
    """What follows a runs table in any report: each run's log inconsistencies and the excluded runs."""
    out = [f"- **log inconsistency:** {p}" for r in s["runs"] for p in r["log_problems"]]
    if s["excluded_runs"]:
        ex = ", ".join(f"`{e['run_id']}` ({e['status']})" for e in s["excluded_runs"])
        out += ["", f"Excluded from the statistics: {ex}."]
    return out + [""]


def _stats(s: dict) -> list[str]:
    st = s.get("stats")
    out = ["## Statistics", ""]
    if st is None:
        return out + [s["stats_note"], ""]
    t, a, o, tt = st["time"], st["accuracy"], st["olympic_time"], st["ttest"]
    rows = [["n", str(t["n"]), str(a["n"])]]
    for key in ("mean", "std", "min", "median", "max"):
        rows.append([key, _num(t[key]), _pct(a[key])])
    rows.append(["95% CI of the mean", _ci(t["ci_low"], t["ci_high"], _num), _ci(a["ci_low"], a["ci_high"], _pct)])
    out += _table(["", "time to target (s), runs that reached", "final accuracy, included runs"], rows)
    olympic = _num(o["value"], ".3f", " s") if o["value"] is not None else f"n/a ({o['reason']})"
    if tt["p"] is not None:
        test = f"t = {tt['t']:.3f}, df = {tt['df']}, **p = {tt['p']:.4g}**"
    else:
        test = f"not computed ({tt['reason']})"
    out += ["",
            f"- success rate: {st['n_reached']}/{st['n_runs']} = {st['success_rate']:.0%} of included runs "
            f"reached {_pct(s['target'])}",
            f"- olympic mean (MLPerf: drop fastest and slowest, a miss counts as slowest): {olympic}",
            f"- t-test of final accuracy against the target, {tt['hypothesis']}: {test}",
            f"- conventions: {s['conventions']['accuracy']}; {s['conventions']['std']}.", ""]
    return out


def _plots() -> list[str]:
    return ["## Plots", "",
            "![test accuracy against time since run_start](plots/accuracy_vs_time.png)", "",
            "![distribution of time to target](plots/time_to_target.png)", "",
            "![CPU, memory and GPU telemetry](plots/telemetry.png)", ""]


def _anchors(s: dict) -> list[str]:
    comparable = s["dataset"]["official_cifar10"] and abs(s["target"] - 0.94) < 1e-9 and \
        s["dataset"]["train_subset"] is None and s["dataset"]["test_subset"] is None
    out = ["## Anchors", "",
           "Published CIFAR-10 time-to-94% results (official CIFAR-10 test set, top-1):", ""]
    out += _table(["system", "accuracy", "time", "hardware", "runs"], [list(a) for a in ANCHORS])
    out += ["", ANCHOR_NOTE]
    if not comparable:
        out += ["", "**This run set is not directly comparable with them** (it needs official CIFAR-10, the full "
                    "data set and a 94% target)."]
    return out + [""]


def render(s: dict) -> str:
    lines = [f"# {s['recipe']['name']}: time to {_pct(s['target'])} test accuracy", "", _headline(s), ""]
    for part in (_recipe, _dataset, _environment, _timing, _runs, _stats):
        lines += part(s)
    lines += _plots() + _anchors(s)
    lines += ["## Checking this bundle", "",
              "`MANIFEST` holds the sha256 of every file. `bench verify DIR` rechecks it and recomputes every "
              "figure in summary.json and results.csv from the event logs; `bench verify DIR --rerun` runs the "
              "recipe again and tests whether the new time falls inside this distribution.", ""]
    return "\n".join(lines)


def write(bundle: Path, summary: dict) -> None:
    text = render(summary)
    atomic_write(Path(bundle) / "report.md", lambda f: f.write(text))
