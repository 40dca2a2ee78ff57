"""The report of a kind: external run set: its runs recomputed from the stamped output, summary fields, report.md.

The raw truth of such a bundle is `children/<id>/output.jsonl`, every line the command printed with the time the
referee received it (bench.core.referee). `runs` replays it: every figure in summary.json and results.csv, and
each run's event log `runs/<id>/mllog.txt` (`event_logs`), follow from it and from the recipe's parse settings and
the pipe latency recorded in env.json. Nothing the command says about its own time becomes a result: it is shown
beside the referee's, flagged when it is faster by more than the tolerance.
"""
from __future__ import annotations

from pathlib import Path

from bench.core import referee
from bench.core.errors import BenchError
from bench.report import markdown as md

TIMING_RULES = {
    "clock": "the referee's: the harness stamps every line the command prints on arrival (bench.core.clock, "
             "anchored when the command is started). The command's own times are evidence, never the result.",
    "init": "from the run's begin (the command's start, or the end of the previous run it printed) to its start: "
            "its run_start line, or the begin when it prints none (`timed_from` says which).",
    "time_to_target": "from the run's start to the arrival of the first evaluation at or above the target; "
                      "everything the command does on the way counts.",
    "wall": "from the run's begin to its end; the last run of a command also takes the time until the command "
            "exits, so the runs of one command share its whole wall time. Device-hours = devices x wall hours.",
    "own_time": "the command's own figure for the evaluation that decided the run (MLLOG time_ms since its "
                "run_start, DAWNBench hours, the regex's `time`), flagged when it is below the referee's by more "
                "than the tolerance: twice the largest pipe latency measured, plus the printed figure's resolution.",
}


def children(bundle: Path) -> list[str]:
    d = Path(bundle) / "children"
    if not d.is_dir():
        raise BenchError("children/: missing, so there is no stamped output to referee")
    return sorted(p.name for p in d.iterdir() if p.is_dir())


def latency(env: dict) -> dict:
    return (env.get("external") or {}).get("pipe_latency") or {}


def replay_all(raw) -> list[tuple[str, list[dict], dict]]:
    """(child id, its records, its figures) for every command the bundle started."""
    settings = referee.settings(raw.recipe, latency(raw.env).get("samples_s"))
    out = []
    for cid in children(raw.dir):
        rel = f"children/{cid}/output.jsonl"
        records = referee.read_records(Path(raw.dir) / rel, label=rel)
        out.append((cid, records, referee.replay(records, settings)))
    return out


def runs(raw) -> list[dict]:
    out = []
    for cid, _, facts in replay_all(raw):
        for k, run in enumerate(facts["runs"], start=1):
            out.append({"run_id": referee.run_id(cid, k), "seed": None, **run, "train_samples": None,
                        "eval_samples": None, "log_problems": [], "child": cid,
                        "child_wall_s": facts["child_wall_s"]})
    return out


def finish(out: dict, raw) -> None:
    ext_recipe = raw.recipe.get("external") or {}
    ext_env = raw.env.get("external") or {}
    lat = latency(raw.env)
    samples = [s for s in lat.get("samples_s") or [] if isinstance(s, (int, float))]
    out["kind"] = "external"
    out["recipe"]["model"] = "external command"
    out.update(precision=None, memory_format=None, loader=None, compile=None)
    out["timing_rules"] = TIMING_RULES
    out["conventions"] = dict(out["conventions"], own_time=TIMING_RULES["own_time"])
    kids = []
    for cid, records, facts in replay_all(raw):
        start = next((r for r in records if "start" in r), {})
        kids.append({"id": cid, "epoch0": start.get("epoch"), "exit": facts["exit"], "stopped": facts["stopped"],
                     "wall_s": facts["child_wall_s"], "lines": facts["lines"], "runs": len(facts["runs"]),
                     "warmup_runs": facts["warmup_runs"], "refused": facts["refused"],
                     "n_refused": facts["n_refused"], "cut_lines": facts["cut_lines"],
                     "bad_utf8_lines": facts["bad_utf8_lines"]})
    out["external"] = {
        "command": ext_env.get("command"), "cwd": ext_env.get("cwd"), "code_sha256": ext_recipe.get("code_sha256"),
        "command_git": raw.env.get("command_git"), "parse": ext_recipe.get("parse"),
        "metric": ext_recipe.get("metric"), "run_start": ext_recipe.get("run_start"),
        "run_end": ext_recipe.get("run_end"), "warmup_runs": ext_recipe.get("warmup_runs"),
        "stop_at_target": ext_recipe.get("stop_at_target"), "timeout_s": ext_recipe.get("timeout_s"),
        "gpus": ext_recipe.get("gpus"),
        "tolerance_s": referee.tolerance(samples),
        "pipe_latency": {"method": lat.get("method"), "n": len(samples), "max_s": max(samples) if samples else None},
        "children": kids,
    }


def event_logs(summary: dict) -> dict[str, str]:
    epoch0 = {c["id"]: c["epoch0"] or 0.0 for c in summary["external"]["children"]}
    return {f"runs/{run['run_id']}/mllog.txt": referee.event_log(run, epoch0.get(run["child"], 0.0), summary["target"])
            for run in summary["runs"]}


# ------------------------------------------------------------------------------------------ report.md

def _s(x, fmt=".3f") -> str:
    return "–" if x is None else f"{x:{fmt}}"


def _command(s: dict) -> list[str]:
    e, r = s["external"], s["recipe"]
    git = e.get("command_git") or {}
    prov = r.get("provenance") or {}
    code = e.get("code_sha256") or {}
    out = ["## The command", "",
           f"- recipe `{r['name']}`, hash `{r['hash']}` (the resolved recipe: [recipe.yaml](recipe.yaml)); "
           f"kind: external",
           f"- command: `{' '.join(e.get('command') or [])}`",
           f"- in `{e.get('cwd')}`; git commit `{git.get('commit')}`"
           + {True: " (**dirty**: uncommitted changes, diff sha256 " + f"`{git.get('diff_sha256')}`)",
              False: " (clean)"}.get(git.get("dirty"), " (not a git checkout, or state unknown)"),
           f"- evaluations recognised by: `{e.get('parse')}`"
           + (f" (MLLOG key `{e.get('metric')}`)" if e.get("parse") == "mllog" else "")
           + (f"; runs start at `{e['run_start']}`" if e.get("run_start") else "")
           + (f"; runs end at `{e['run_end']}`" if e.get("run_end") else "")
           + (f"; the first {e['warmup_runs']} run(s) are the command's warm-up" if e.get("warmup_runs") else ""),
           f"- target: {s['target_metric']} >= {md._pct(s['target'])}; stop at target: {e.get('stop_at_target')}; "
           f"timeout: {e.get('timeout_s') or 'none'}; GPUs: {e.get('gpus')}",
           f"- provenance: {prov.get('source') or '–'}; expected result: {prov.get('reported') or '–'}", ""]
    if code:
        out += ["Code the result depends on (sha256):", ""] + [f"- `{k}`: `{v}`" for k, v in sorted(code.items())] + [""]
    lat = e["pipe_latency"]
    out += [f"Tolerance for the command's own time: {e['tolerance_s'] * 1000:.3f} ms (twice the largest of "
            f"{lat['n']} pipe latency samples, {_s(lat['max_s'] and lat['max_s'] * 1000)} ms; {lat.get('method')}), "
            f"plus the resolution of the printed figure.", ""]
    return out


def _dataset(s: dict) -> list[str]:
    return ["## Dataset", "", f"- `{s['dataset']['name']}`: named by the recipe; the harness did not read the data the "
            f"command trained on, so no content fingerprint is recorded and the result is **not** placed beside "
            f"runs on checked data.", ""]


def _runs(s: dict) -> list[str]:
    rows = []
    for r in s["runs"]:
        own = "–" if r["own_time_s"] is None else (f"{r['own_time_s']:.3f}" + (" **faster**" if r["own_time_flag"] else ""))
        rows.append([f"`{r['run_id']}`", r["status"], _s(r["time_to_target_s"]), r["timed_from"], own,
                     _s(r["own_gap_s"]), md._pct(r["best_acc"]), md._pct(r["final_acc"]), str(r["epochs"]),
                     _s(r["init_s"]), _s(r["wall_s"]), _s(r["device_hours"], ".5f"), _s(r["cost_usd"], ".4f")])
    out = ["## Runs", ""]
    out += md._table(["run", "status", "time to target (s)", "timed from", "own time (s)", "referee - own (s)",
                      "best acc", "final acc", "evaluations", "init (s)", "wall (s)", "device-hours", "cost ($)"], rows)
    out += ["", "Times are the referee's. Per run: the referee's event log `runs/<run>/mllog.txt` and the "
                "DAWNBench-shaped `dawnbench.tsv` / `dawnbench.json`; the stamped output: `children/<command>/output.jsonl`."]
    out += [f"- `{r['run_id']}`: {r['error']}" for r in s["runs"] if r.get("error")]
    return out + md._run_notes(s)


def _output(s: dict) -> list[str]:
    out = ["## The command's output", ""]
    for c in s["external"]["children"]:
        out.append(f"- `{c['id']}`: {c['lines']} lines, {c['runs']} run(s) recorded, {c['warmup_runs']} warm-up "
                   f"run(s); ended with {c['exit']} after {_s(c['wall_s'])} s"
                   + (f", stopped by the referee ({c['stopped']})" if c["stopped"] else "")
                   + f"; {c['n_refused']} line(s) refused, {c['cut_lines']} cut for length, "
                     f"{c['bad_utf8_lines']} not UTF-8")
        for r in c["refused"]:
            out.append(f"  - refused at {r['t']:.3f} s: {r['why']} (`{r['line'][:80]}`)")
    return out + [""]


def render(s: dict) -> str:
    lines = [f"# {s['recipe']['name']}: time to {md._pct(s['target'])} test accuracy, refereed", "", md._headline(s), ""]
    lines += _command(s) + _dataset(s) + md._environment(s) + md._timing(s) + _runs(s) + _output(s) + md._stats(s)
    lines += md._plots()
    lines += ["## Checking this bundle", "",
              "`MANIFEST` holds the sha256 of every file. `bench verify DIR` rechecks it, replays the stamped output "
              "through the referee and recomputes every figure in summary.json, results.csv and the event logs; "
              "`bench verify DIR --rerun` runs the same command again.", ""]
    return "\n".join(lines)
