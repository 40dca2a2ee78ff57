"""One `bench run` invocation: settle the recipe on this machine, load the data, then train it `runs` times.

Each run: build its parts, warm up (init), fit to the target (timed), and leave its records (RunRecords:
row, event log, telemetry, bundle files) however it ends. Rank 0 alone writes. Data flows one way:
recipe -> context -> parts -> fit -> records."""
from __future__ import annotations

import os
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional

import torch

from bench.core import mllog
from bench.core.clock import Clock, device_sync
from bench.core.errors import BenchError, Terminated
from bench.core.progress import StepBar
from bench.core.results import check_table, new_run_id
from bench.data.targets import target_warning
from bench.data.types import Dataset
from bench.recipe import Recipe
from bench.run import parts
from bench.run.bundle import BundleWriter
from bench.run.context import RunContext
from bench.run.records import RunRecords
from bench.system import dist, machine
from bench.train.groups import build_optimizer
from bench.train.loop import evaluate, fit, warm_up


def _on_sigterm(signum, frame):
    # Only the first: slurmstepd and torchrun's agent both signal a worker on scancel (and a sweep passes on
    # the one SLURM sent to every process); a second Terminated raised while the aborted row is being
    # recorded would lose the row.
    signal.signal(signum, signal.SIG_IGN)
    raise Terminated(signum)


def run_once(ctx: RunContext, ds: Dataset, index: int, clock: Clock) -> dict:
    """Train once to the target and return the results row (also recorded, on rank 0)."""
    recipe, dctx = ctx.recipe, ctx.dctx
    if recipe.kind == "gan":  # the same records, clock and loop; other parts (bench.run.gan)
        from bench.run import gan

        return gan.run_once(ctx, ds, index, clock)
    run_id = new_run_id() if dctx.is_main else "rank%d" % dctx.rank
    seed = recipe.seed + index  # distinct per run; each rank adds its rank on top
    with RunRecords(ctx, ds, run_id, seed, clock) as records:
        records.header(ds, seed)
        torch.manual_seed(dist.rank_seed(seed, dctx.rank))
        train, test = parts.loaders(recipe, ds, ctx.device, seed, dctx)
        model, bare = parts.model(recipe, ctx.device, dctx)
        parts.init_whitening(recipe, bare, ds, ctx.device)
        opt = build_optimizer(bare, recipe.optim, total_steps=len(train) * recipe.optim.epochs,
                              steps_per_epoch=len(train), bf16=machine.native_bf16(ctx.device.type))
        reduce = parts.eval_reduce(dctx, ctx.device)
        train_batches, eval_batches = parts.warmup_batches(recipe, ds, train, test, ctx.device)
        warm_up(model, bare, opt.optimizer, steps=recipe.warmup_steps, train_batches=train_batches,
                eval_batches=eval_batches, device_type=ctx.device.type, precision=recipe.precision,
                tta=recipe.target.tta)
        init_s = clock.ready()
        records.event(mllog.INIT_STOP, {"init_s": init_s})
        ctx.say(f"run {index + 1 - ctx.first_run}/{recipe.runs}  seed {seed}  init {init_s:.1f}s  "
                f"{len(train)} steps/epoch x {recipe.optim.epochs} epochs  target {recipe.target.value:.2%}"
                + (f"  muon: {opt.muon_impl}" if getattr(opt, "muon_impl", None) else ""))
        bar = StepBar(enabled=None if dctx.is_main else False,
                      images_per_step=recipe.data.batch_size * dctx.world_size)
        records.start_run()
        try:
            result = fit(
                model, opt, train, lambda: evaluate(bare, test.epoch(0), ctx.device.type, recipe.precision, reduce,
                                                 recipe.target.tta),
                epochs=recipe.optim.epochs, eval_every=recipe.target.eval_every, target=recipe.target.value,
                clock=clock, device_type=ctx.device.type, precision=recipe.precision,
                label_smoothing=recipe.optim.label_smoothing, target_counts=not getattr(train, "synthetic", False),
                on_epoch=records.epoch, on_event=records.event, on_step=bar.step)
        finally:
            bar.close()
        row = records.finish(result)
        if ctx.save_model is not None and dctx.is_main:
            from bench.run.checkpoint import save_model

            save_model(ctx.save_model, bare, recipe, row, ds, ctx.env.get("argv"))
        return row


def _run_external(recipe: Recipe, **options) -> tuple[list[dict], Optional[Path]]:
    from bench.run import external  # no data, model or loop of ours: the command's output is the result

    return external.run_recipe(recipe, **options)


def run_recipe(recipe: Recipe, **options) -> tuple[list[dict], Optional[Path]]:
    """`bench run` (and sweep, SLURM jobs, verify --rerun) for a recipe of any kind: one runner per kind of run
    (DESIGN, third wave). classifier and gan train here (train_recipe); external referees a command
    (bench.run.external). Options as train_recipe's; returns the rows and the bundle directory."""
    return RUNNERS[recipe.kind](recipe, **options)


def train_recipe(recipe: Recipe, *, data: Optional[str] = None, data_dir: Optional[Path] = None,
                 results_path: Path = Path("results/results.csv"), runs: Optional[int] = None,
                 reports_dir: Optional[Path] = Path("results/reports"), argv: Optional[list[str]] = None,
                 first_run: int = 0, say: Callable[[str], None] = print,
                 save_model: Optional[Path] = None, tags: Optional[dict] = None,
                 deadline_s: Optional[float] = None) -> tuple[list[dict], Optional[Path]]:
    """Run `runs` times (default: the recipe's), append one row per run to the table and write the report
    bundle (rank 0). Returns the rows and the bundle directory. Run i uses seed recipe.seed + first_run + i,
    so a resumed set (bench sweep topping up) continues with new seeds. `tags` are extra row fields (bench tune:
    which trial of which study); `deadline_s` stops a run that passes it without reaching the target
    (bench tune --prune), recorded as aborted with the reason."""
    from bench.system import envinfo

    first_clock = Clock()  # anchored to process start: the first run's init includes interpreter start-up
    if runs is not None:
        recipe = replace(recipe, runs=runs)
    mach = machine.detect_machine()
    dctx = dist.detect()
    say = say if dctx.is_main else (lambda s: None)
    device_type = machine.check(recipe, mach, launched=dctx.launcher != "none")
    if recipe.world_size != dctx.world_size and dctx.launcher != "none":
        raise BenchError(f"hardware: the recipe asks for {recipe.world_size} processes but the launcher started "
                         f"{dctx.world_size}; use --set hardware.procs_per_node=... / hardware.nodes=... to match")
    asked, recipe = recipe, machine.settle(recipe, device_type, say=say)  # rows and bundle keep `asked`
    if recipe.kind == "gan":
        from bench.run import gan

        gan.check(recipe, dctx.world_size)
    if dctx.is_main:
        check_table(Path(results_path))  # a table that cannot take the row is refused before anything trains
    if dctx.grouped:
        dist.init(dctx, device_type)
    device = machine.pick_device(device_type, dist.local_device_index(dctx) if device_type == "cuda" else None)
    if device_type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    threads = machine.set_threads(recipe, dctx.local_world_size)
    old = signal.signal(signal.SIGTERM, _on_sigterm)
    bundle = None
    try:
        env = {**envinfo.capture(device_type), "argv": list(argv or sys.argv),
               "submission_org": os.environ.get("BENCH_ORG") or "unknown"}
        source = data or recipe.data.source
        if recipe.kind == "gan":
            from bench.run import gan

            ds, flops = gan.load_data(recipe, source, data_dir), {}
        else:
            ds = parts.load_data(recipe, source, data_dir)
            flops = parts.count_flops(recipe, device) if dctx.is_main else {}
        if dctx.is_main and reports_dir is not None:
            from bench.data.sources import describe

            bundle = BundleWriter(reports_dir, asked)
            bundle.write_json("env.json", {**env, "threads": threads, "world_size": dctx.world_size,
                                           "nodes": dctx.nodes, "launcher": dctx.launcher, "data_source": source,
                                           "data_dir": str(data_dir or ""),
                                           "first_run": first_run})  # seeds start at recipe.seed + first_run
            bundle.write_json("dataset.json", describe(ds.identity))
        ctx = RunContext(recipe, asked.hash, source, data_dir, Path(results_path), device, mach, dctx, threads, env,
                         bundle, flops, first_run, say, save_model, dict(tags or {}), deadline_s)
        warning = target_warning(recipe.data.source, recipe.target.value, ds.identity)
        if warning and recipe.kind == "classifier":
            say(warning)
        say(f"{recipe.name}  [{asked.hash}]  data {ds.identity.name} ({ds.identity.short})  "
            f"{len(ds.train)} train / {len(ds.test)} test  on {device_type} x{dctx.world_size}  "
            f"{recipe.precision} {recipe.memory_format} loader={recipe.data.loader} threads={threads}")
        rows = []
        for i in range(recipe.runs):
            # Later runs in the same process have no process start of their own: their init starts here.
            clock = first_clock if i == 0 else Clock(since_process_start=0.0)
            clock.sync = device_sync(device)
            rows.append(run_once(ctx, ds, first_run + i, clock))
    finally:
        bundle_dir = bundle.publish(say) if bundle is not None else None
        signal.signal(signal.SIGTERM, old)
        if dctx.grouped:
            dist.shutdown()
    if bundle_dir is not None:
        say(str(bundle_dir))  # the last line: scripts read the bundle's path from it
    return rows, bundle_dir


RUNNERS = {"classifier": train_recipe, "gan": train_recipe, "external": _run_external}
