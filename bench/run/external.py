"""kind: external: any training command, refereed (`bench external -- CMD`, or `bench run` on such a recipe).

What a classifier run gets from its own loop, an external run gets from the command's output: the harness starts
the command (bench.system.child: its own process group, unbuffered, every line stamped on arrival by the
referee's clock), hands every line to the referee (bench.core.referee) and, once the command has ended however it
ended, records one row per run it printed, exactly as `bench run` does: the results table, and a report bundle
whose raw files are the stamped output (`children/<id>/output.jsonl`), the environment (with the command, its
folder, the sha256 of every `code` file and the git state of that folder) and the telemetry of the whole group.
`bench verify` replays the stamped output and recomputes every figure from it.

Ctrl-C or SIGTERM to the harness stops the whole group (SIGTERM, SIGKILL after the grace period) and lands the
open run as `aborted` before the exception goes on; rows are never lost.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sys
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

from bench.core import referee
from bench.core.errors import BenchError, Terminated
from bench.core.results import check_table, cost_fields, new_run_id
from bench.recipe import Recipe
from bench.recipe.external import PYTHON, combined_sha256, with_code, workdir
from bench.run.bundle import BundleWriter
from bench.run.rows import land
from bench.system.child import Child, GroupSampler, pipe_latency
from bench.system.telemetry import energy_joules, write_csv

ECHO_CHARS = 300  # of each output line, echoed to the terminal
DECLARED = "declared:"  # a dataset the command names (recipe data.source) but the harness cannot check


def _on_sigterm(signum, frame):
    signal.signal(signum, signal.SIG_IGN)  # only the first: the aborted rows must not be cut short by another
    raise Terminated(signum)


@dataclass(frozen=True)
class ExternalContext:
    recipe: Recipe  # with external.code_sha256 filled in
    settings: referee.Settings
    command: list[str]  # as run: {python} replaced
    cwd: Path
    results_path: Path
    bundle: Optional[BundleWriter]
    env: dict  # env.json
    device_type: str
    device_name: str
    devices: int
    say: Callable[[str], None]
    spawn: Callable  # (argv, cwd=, env=) -> a Child-like object


def resolve_command(command: list[str]) -> list[str]:
    return [sys.executable if a == PYTHON else a for a in command]


def check_command(command: list[str], cwd: Path) -> None:
    exe = command[0]
    found = shutil.which(exe) if os.sep not in exe else (exe if (cwd / exe).exists() or Path(exe).exists() else None)
    if found is None:
        raise BenchError(f"external.command: {exe!r} is not a program on PATH or a file in {cwd}; name the "
                         f"interpreter first, e.g. ['{PYTHON}', 'train.py'] (the interpreter running bench)")


def _device(gpus: int) -> tuple[str, str]:
    """(device type, device name) for rows and prices: the GPUs the command says it uses, as this machine names
    them; a GPU the harness cannot see (the command runs elsewhere, e.g. through srun) is named as such."""
    from bench.system import machine

    m = machine.detect_machine()
    if gpus == 0:
        return "cpu", m.device_name
    return "cuda", m.device_name if m.device_type == "cuda" else "GPU not visible to the harness"


def run_recipe(recipe: Recipe, *, results_path: Path = Path("results/results.csv"), runs: Optional[int] = None,
               reports_dir: Optional[Path] = Path("results/reports"), argv: Optional[list[str]] = None,
               first_run: int = 0, say: Callable[[str], None] = print, data: Optional[str] = None,
               data_dir: Optional[Path] = None, save_model: Optional[Path] = None, spawn: Callable = Child,
               latency: Optional[dict] = None, env: Optional[dict] = None) -> tuple[list[dict], Optional[Path]]:
    """Start the recipe's command `runs` times, referee each, record every run. Returns the rows and the bundle.
    `spawn`, `latency` and `env` are for tests (a scripted child, latency samples, a captured environment)."""
    if (data is not None and data != recipe.data.source) or save_model is not None:
        raise BenchError(f"{'--data' if save_model is None else '--save-model'}: a recipe of kind: external runs a "
                         f"command that loads its own data and keeps its own weights; leave the option out")
    if runs is not None:
        recipe = replace(recipe, runs=runs)
    cwd = workdir(recipe)
    recipe = with_code(recipe, cwd)
    ext = recipe.external
    check_table(Path(results_path))
    command = resolve_command(ext.command)
    if spawn is Child:
        check_command(command, cwd)
    device_type, device_name = _device(ext.gpus)
    latency = latency if latency is not None else pipe_latency()
    if env is None:
        from bench.system import envinfo

        env = envinfo.capture(device_type)
        env["command_git"] = envinfo.git_state(cwd)
    devices = max(ext.gpus, 1)
    env = {**env, "argv": list(argv or sys.argv), "submission_org": os.environ.get("BENCH_ORG") or "unknown",
           "world_size": devices, "nodes": 1, "launcher": "external", "threads": None,
           "data_source": recipe.data.source, "data_dir": "",
           "external": {"command": command, "cwd": str(cwd), "code_sha256": dict(ext.code_sha256),
                        "gpus": ext.gpus, "pipe_latency": latency,
                        "tolerance_s": referee.tolerance(latency.get("samples_s"))}}
    settings = referee.settings(recipe.to_dict(), latency.get("samples_s"))
    old = signal.signal(signal.SIGTERM, _on_sigterm)
    bundle = None
    try:
        if reports_dir is not None:
            bundle = BundleWriter(reports_dir, recipe)
            bundle.write_json("env.json", env)
            bundle.write_json("dataset.json", {"name": DECLARED + recipe.data.source, "fingerprint": None,
                                               "declared_by": "the recipe (data.source); the harness did not read "
                                                              "the data the command trained on"})
        ctx = ExternalContext(recipe, settings, command, cwd, Path(results_path), bundle, env, device_type,
                              device_name, devices, say, spawn)
        say(f"{recipe.name}  [{recipe.hash}]  external: {shlex.join(command)}  (in {cwd})  parse {ext.parse}  "
            f"target {recipe.target.value:.2%}  on {device_type} x{devices}; the referee's clock owns the time "
            f"(tolerance for the command's own time {env['external']['tolerance_s'] * 1000:.2f} ms)")
        rows: list[dict] = []
        for i in range(recipe.runs):
            rows += run_child(ctx, i)
    finally:
        bundle_dir = bundle.publish(say) if bundle is not None else None
        signal.signal(signal.SIGTERM, old)
    if bundle_dir is not None:
        say(str(bundle_dir))
    return rows, bundle_dir


class _Output:
    """children/<id>/output.jsonl, one record per line, flushed as it arrives (a crash keeps what came)."""

    def __init__(self, path: Optional[Path]):
        self.f = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.f = open(path, "w", encoding="utf-8")

    def write(self, rec: dict) -> None:
        if self.f is not None:
            self.f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            self.f.flush()

    def close(self) -> None:
        if self.f is not None:
            self.f.close()


def run_child(ctx: ExternalContext, index: int) -> list[dict]:
    """One start of the command: referee it to its end, then record its runs. Ctrl-C and SIGTERM are acted on
    between two records (so a line is never half taken: written but unseen by the referee); they stop the whole
    group, and the interruption goes on once the rows have landed."""
    ext = ctx.recipe.external
    cid = new_run_id()
    ref = referee.Referee(ctx.settings)
    child = ctx.spawn(ctx.command, cwd=str(ctx.cwd), env=dict(ext.env))
    started = child.start()  # a command that cannot start is bad input: no row, nothing written
    out = _Output(ctx.bundle.dir / "children" / cid / "output.jsonl" if ctx.bundle else None)
    ctx.say(f"command {index + 1}/{ctx.recipe.runs}: {cid}")
    interrupted: Optional[BaseException] = None
    sampler = None

    def take(rec: dict) -> bool:
        out.write(rec)
        fired = ref.feed(rec)
        if "text" in rec:
            ctx.say(f"  | {rec['text'][:ECHO_CHARS]}")
        return fired

    with DeferredSignals() as signals:
        try:
            take(started)
            if child.pid is not None:
                sampler = GroupSampler(child.pid, interval_s=1.0, device_indices=None if ext.gpus else [])
                sampler.start()
            stopped = False
            for rec in child.events():
                signals.check()  # a safe point: the previous record is wholly taken, this one not yet
                fired = take(rec) if "tick" not in rec else False
                if "exit" in rec or stopped:
                    continue
                if fired and ext.stop_at_target:
                    stopped = True
                    take(child.stop("target", ext.grace_s))
                elif ext.timeout_s is not None and rec["t"] > ext.timeout_s:
                    stopped = True
                    take(child.stop("timeout", ext.grace_s))
        except BaseException as exc:
            interrupted = exc
            reason = ("SIGINT" if isinstance(exc, KeyboardInterrupt) else exc.signame if isinstance(exc, Terminated)
                      else "error")
            for rec in child.shutdown(reason, ext.grace_s):
                take(rec)
        finally:
            samples = sampler.stop() if sampler is not None and sampler.started else []
            out.close()
        facts = ref.finish()
        rows = record(ctx, cid, facts, getattr(child, "epoch0", None) or 0.0, samples)
    if interrupted is not None:
        raise interrupted
    signals.check()  # a signal that came while the rows were written: the run set ends here
    return rows


class DeferredSignals:
    """SIGINT and SIGTERM while a command is refereed and recorded: noted by the handler, raised by check()
    (KeyboardInterrupt, or Terminated as bench run raises it) at a point the caller chooses; the first only."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.pending: Optional[int] = None
        self.raised = False
        self.old: dict = {}

    def __enter__(self) -> "DeferredSignals":
        import threading

        if threading.current_thread() is threading.main_thread():
            self.old = {s: signal.signal(s, self._note) for s in self.SIGNALS}
        return self

    def _note(self, signum, frame) -> None:
        if self.pending is None:
            self.pending = signum

    def check(self) -> None:
        if self.pending is not None and not self.raised:
            self.raised = True
            raise KeyboardInterrupt() if self.pending == signal.SIGINT else Terminated(self.pending)

    def __exit__(self, *exc) -> None:
        for s, h in self.old.items():
            signal.signal(s, h)


# ------------------------------------------------------------------------------------------ records

def row_for(ctx: ExternalContext, rid: str, run: dict, facts: dict, epoch0: float) -> dict:
    ext, env = ctx.recipe.external, ctx.env
    git, cgit = env.get("git") or {}, env.get("command_git") or {}
    wall = run["wall_s"] if run["wall_s"] is not None else 0.0
    row = {
        "run_id": rid,
        "timestamp": datetime.fromtimestamp(epoch0 + run["begin_s"], timezone.utc).isoformat(timespec="seconds"),
        "recipe": ctx.recipe.name, "recipe_hash": ctx.recipe.hash,
        "dataset": DECLARED + ctx.recipe.data.source, "dataset_fingerprint": None,
        "seed": None, "status": run["status"], "time_to_target_s": run["time_to_target_s"], "wall_s": run["wall_s"],
        "init_s": run["init_s"], "epochs": run["epochs"], "best_acc": run["best_acc"], "final_acc": run["final_acc"],
        "target": ctx.recipe.target.value, "metric": ctx.recipe.target.metric,
        "best_metric": run["best_acc"], "final_metric": run["final_acc"],
        "device": ctx.device_type, "device_name": ctx.device_name, "device_count": ctx.devices,
        "world_size": ctx.devices, "nodes": 1,
        **cost_fields(ctx.device_name, ctx.device_type, ctx.devices, wall, ctx.recipe.price.usd_per_gpu_hour,
                      ctx.recipe.price.source),
        "git_commit": git.get("commit"), "git_dirty": git.get("dirty"), "host": env.get("host"),
        "error": run["error"],
        "kind": "external", "child": rid.rsplit("-r", 1)[0], "timed_from": run["timed_from"],
        "own_time_s": run["own_time_s"], "own_gap_s": run["own_gap_s"], "own_tolerance_s": run["own_tolerance_s"],
        "own_time_flag": run["own_time_flag"], "child_wall_s": facts["child_wall_s"], "exit": facts["exit"],
        "command": shlex.join(ctx.command), "code_sha256": combined_sha256(ext.code_sha256),
        "command_git_commit": cgit.get("commit"), "command_git_dirty": cgit.get("dirty"),
    }
    return row


def record(ctx: ExternalContext, cid: str, facts: dict, epoch0: float, samples: list[dict]) -> list[dict]:
    rows = []
    for k, run in enumerate(facts["runs"], start=1):
        rid = referee.run_id(cid, k)
        row = row_for(ctx, rid, run, facts, epoch0)
        lo = epoch0 + run["begin_s"]
        hi = lo + (run["wall_s"] or 0.0)
        window = [s for s in samples if lo <= s["t"] <= hi]
        energy = [j for j in energy_joules(window).values() if j is not None]
        row["energy_j"], row["energy_method"] = (sum(energy), "power_samples_trapezoid") if energy else (None, None)
        if ctx.bundle is not None:
            d = ctx.bundle.run_dir(rid)
            text = referee.event_log(run, epoch0, ctx.recipe.target.value)
            (d / "mllog.txt").write_text(text, encoding="utf-8")
            write_csv(window, d / "telemetry.csv")
        rows.append(row)
        _land(ctx, row)
    for r in facts["refused"][:3]:
        ctx.say(f"  refused at {r['t']:.3f} s: {r['why']}: {r['line'][:80]!r}")
    return rows


def summary_line(row: dict) -> str:
    if row["status"] == "reached":
        what = f"reached {row['target']:.2%} in {row['time_to_target_s']:.3f}s (referee, from {row['timed_from']})"
    else:
        best = row.get("best_acc")
        what = row["status"] + (f": best {best:.2%} < target {row['target']:.2%}" if best is not None else "")
    if row.get("error"):
        what += f" ({row['error']})"
    own = ""
    if row.get("own_time_s") is not None:
        own = (f"; the command's own time {row['own_time_s']:.3f}s"
               + ("  ** faster than the referee's by more than the tolerance **" if row["own_time_flag"] else ""))
    cost = f"${row['cost_usd']:.4f}" if row.get("cost_usd") is not None else "cost unknown"
    return (f"{what}  (init {row['init_s']:.3f}s, wall {row['wall_s']:.3f}s, {row['gpu_hours']:.5f} "
            f"{'GPU' if row['device'] == 'cuda' else 'device'}-hours, {cost}{own})")


def _land(ctx: ExternalContext, row: dict) -> None:
    land(row, ctx.bundle, ctx.results_path, ctx.say, summary_line(row))


__all__ = ["run_recipe", "run_child", "row_for", "summary_line"]
