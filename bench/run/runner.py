"""One benchmark run, end to end: recipe -> data -> model -> fit -> one results row.

Data flows one way. Rank 0 alone writes; a run that is interrupted or crashes still lands a row
(status `aborted`, with the error), because a benchmark that silently drops its failures lies."""
from __future__ import annotations

import signal
import sys
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

import torch

from bench.system import dist

from bench.system import machine

from bench.core import mllog
from bench.run.bundle import BundleWriter
from bench.core.clock import Clock, device_sync
from bench.data.types import Dataset
from bench.core.errors import BenchError
from bench.core.progress import StepBar
from bench.recipe import Recipe
from bench.train.loop import AMP_DTYPES, EpochRecord, FitResult, data_wait_fraction, evaluate, fit, warm_up



class Interrupted(BaseException):
    """SIGTERM (a scheduler, torchrun tearing down the group) handled like Ctrl-C so the row lands."""


def _on_sigterm(signum, frame):
    # Only the first: slurmstepd and torchrun's agent both signal a worker on scancel, and a second
    # Interrupted raised while the aborted row is being recorded would lose the row.
    signal.signal(signum, signal.SIG_IGN)
    raise Interrupted(f"terminated by signal {signum}")


@dataclass
class RunContext:
    recipe: Recipe
    data_source: str
    data_dir: Optional[Path]
    results_path: Path
    device: torch.device
    mach: machine.Machine
    dctx: dist.DistContext
    threads: int
    env: dict  # envinfo.capture(), with the command line that started the run set
    bundle: Optional["BundleWriter"] = None  # rank 0 only
    flops: Optional[dict] = None
    first_run: int = 0  # runs before this set (a resumed sweep): seeds continue after them
    say: Callable[[str], None] = print


def load_data(recipe: Recipe, source: str, data_dir: Optional[Path]) -> Dataset:
    from bench.core.paths import data_base_dir
    from bench.data.sources import load_dataset

    ds = load_dataset(source, data_dir=data_dir, base_dir=data_base_dir())
    return Dataset(ds.train.subset(recipe.data.train_subset), ds.test.subset(recipe.data.test_subset),
                   ds.identity)


def _loaders(recipe: Recipe, ds: Dataset, device: torch.device, seed: int, dctx: dist.DistContext):
    from bench.data.augment import Augment
    from bench.data.loaders import make_loader

    a = recipe.data.augment
    aug = Augment(flip=a.flip, pad=a.pad, pad_mode=a.pad_mode)
    # The loader hands over inputs already in the compute dtype; fp32 runs get fp32.
    dtype = AMP_DTYPES[recipe.precision] or torch.float32
    common = dict(device=device, dtype=dtype, channels_last=recipe.memory_format == "channels_last",
                  augment=aug, seed=seed, rank=dctx.rank, world=dctx.world_size, workers=recipe.data.workers)
    train = make_loader(recipe.data.loader, ds.train, train=True, batch_size=recipe.data.batch_size, **common)
    # Evaluation always reads the real test set: a synthetic *training* source must not fake accuracy.
    test_kind = "device" if recipe.data.loader == "synthetic" else recipe.data.loader
    test = make_loader(test_kind, ds.test, train=False, batch_size=recipe.data.eval_batch_size, **common)
    return train, test


def build(recipe: Recipe, device: torch.device, dctx: dist.DistContext) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Returns (module to train, module to evaluate): DDP wraps the first; evaluation uses the bare module
    because ranks may hold different numbers of test batches and DDP's forward would wait for peers."""
    from bench.models import build_model

    model = build_model(recipe.model.arch, recipe.model.params)
    if recipe.hardware.sync_bn and dctx.grouped:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device)
    if recipe.memory_format == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    bare = model
    if dctx.grouped:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=ids)
    if recipe.compile:
        model = torch.compile(model)  # after DDP, so the compiler sees its gradient buckets
    return model, bare


def _row_base(ctx: RunContext, run_id: str, seed: int, ds: Dataset) -> dict:
    r, env = ctx.recipe, ctx.env
    git = env.get("git") or {}
    return {
        "run_id": run_id,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recipe": r.name, "recipe_hash": r.hash,
        "dataset": ds.identity.name, "dataset_fingerprint": ds.identity.fingerprint,
        "train_images": len(ds.train), "test_images": len(ds.test),
        "seed": seed, "target": r.target.value,
        "precision": r.precision, "memory_format": r.memory_format, "loader": r.data.loader,
        "model": r.model.arch, "compile": r.compile,
        "device": ctx.device.type, "device_name": ctx.mach.device_name,
        "device_count": ctx.dctx.world_size if ctx.device.type == "cuda" else 1,
        "world_size": ctx.dctx.world_size, "nodes": ctx.dctx.nodes, "procs_per_node": ctx.dctx.local_world_size,
        "backend": dist.backend_name(ctx.device.type) if ctx.dctx.grouped else None,
        "global_batch_size": r.data.batch_size * ctx.dctx.world_size,
        "threads": ctx.threads,
        "torch": torch.__version__, "git_commit": git.get("commit"), "git_dirty": git.get("dirty"),
        "host": env.get("host"),
    }


def _costs(ctx: RunContext, wall_s: float) -> dict:
    from bench.core.results import cost_fields

    return cost_fields(ctx.mach.device_name, ctx.device.type, ctx.dctx.world_size, wall_s,
                       ctx.recipe.price.usd_per_gpu_hour, ctx.recipe.price.source)


def _epoch_line(r: EpochRecord, world_size: int = 1) -> str:
    """Rank 0's epoch; images/s is scaled to all ranks (each trains an equal shard at the same pace)."""
    acc = f"{r.test_acc * 100:6.2f}%" if r.test_acc is not None else "   -   "
    return (f"  epoch {r.epoch:3d}  {r.elapsed_s:8.1f}s  loss {r.train_loss:.4f}  test {acc}  "
            f"lr {r.lr:.4f}  {r.images_per_s * world_size:8.0f} img/s  data wait {r.data_wait_s:.1f}s")


def _batch_sizes(samples: int, batch_size: int) -> list[int]:
    """The distinct batch sizes of an epoch: the full one and the last partial one, if any."""
    return sorted({min(batch_size, samples), samples % batch_size} - {0}, reverse=True)


def _random_batch(recipe: Recipe, ds: Dataset, batch_size: int, device: torch.device):
    """Inputs shaped, typed and laid out like the loader's, for warm-up."""
    h, w = ds.train.images.shape[1:3]
    fmt = torch.channels_last if recipe.memory_format == "channels_last" else torch.contiguous_format
    x = torch.randn(batch_size, 3, h, w, device=device).to(AMP_DTYPES[recipe.precision] or torch.float32)
    y = torch.randint(0, len(ds.identity.classes), (batch_size,), device=device)
    return x.contiguous(memory_format=fmt), y


def _event_sink(log: Optional[mllog.MLLogger]):
    """fit() reports MLPerf keys; epoch/eval keys bracket intervals, eval_accuracy is a point."""
    def on_event(key: str, meta: dict) -> None:
        if log is None:
            return
        meta = dict(meta)
        if key.endswith("_start"):
            log.start(key, metadata=meta)
        elif key.endswith("_stop"):
            log.end(key, metadata=meta)
        else:
            log.event(key, meta.pop("value", None), metadata=meta)
    return on_event


def _count_flops(ctx: RunContext, bare: torch.nn.Module) -> None:
    """FLOPs per image, once per run set, during init: counting runs the model, so it stays off the clock."""
    from bench.system.flops import flops_per_image

    try:
        ctx.flops = flops_per_image(bare, device=ctx.device)
    except Exception as exc:  # a model the counter cannot trace must not cost the run its row
        ctx.flops = {"error": f"{type(exc).__name__}: {exc}"}


def _model_cost(ctx: RunContext, images_per_s: Optional[float]) -> dict:
    from bench.system.flops import mfu, peak_flops

    flops = ctx.flops or {}
    peak, _ = peak_flops(ctx.mach.device_name, ctx.recipe.precision) if ctx.device.type == "cuda" else (None, "")
    per_device = images_per_s / ctx.dctx.world_size if images_per_s else None
    return {"flops_per_image_fwd": flops.get("forward"), "flops_per_image_train": flops.get("train_step"),
            "mfu": mfu(flops.get("train_step"), per_device, peak)}


def run_once(ctx: RunContext, ds: Dataset, index: int, clock: Clock) -> dict:
    """Train once and return the results row. When interrupted or crashed, the `aborted` row rides on the
    exception as `exc.bench_row` so the caller can still record it."""
    from bench.core.results import new_run_id
    from bench.system.telemetry import Sampler

    recipe, dctx = ctx.recipe, ctx.dctx
    run_id = new_run_id() if dctx.is_main else "rank%d" % dctx.rank
    seed = recipe.seed + index  # distinct per run; each rank adds its rank on top
    row = _row_base(ctx, run_id, seed, ds)
    run_dir = ctx.bundle.run_dir(run_id) if ctx.bundle else None
    log = mllog.MLLogger(run_dir / "mllog.txt", namespace=recipe.name) if run_dir else None
    on_event = _event_sink(log)
    result: Optional[FitResult] = None
    done: list[EpochRecord] = []  # epochs finished so far: an interrupted run still reports them
    bar = None
    sampler = Sampler(interval_s=1.0, device_indices=[ctx.device.index or 0] if ctx.device.type == "cuda" else None)
    try:
        on_event(mllog.INIT_START, {})
        if log:
            log.event(mllog.SUBMISSION_BENCHMARK, "cifar10_time_to_accuracy")
            log.event(mllog.SEED, seed, metadata={"rank_seeds": [dist.rank_seed(seed, r) for r in range(dctx.world_size)]})
            log.event(mllog.GLOBAL_BATCH_SIZE, recipe.data.batch_size * dctx.world_size)
            log.event(mllog.TRAIN_SAMPLES, len(ds.train))
            log.event(mllog.EVAL_SAMPLES, len(ds.test))
            log.event("target_accuracy", recipe.target.value)
        torch.manual_seed(dist.rank_seed(seed, dctx.rank))
        train, test = _loaders(recipe, ds, ctx.device, seed, dctx)
        model, bare = build(recipe, ctx.device, dctx)
        from bench.train.optim import Scheduled

        opt = Scheduled(model, recipe.optim, total_steps=len(train) * recipe.optim.epochs)
        reduce = (lambda v: dist.all_reduce_sum(v, ctx.device)) if dctx.grouped else (lambda v: v)
        if dctx.is_main and ctx.flops is None:
            _count_flops(ctx, bare)
        warm_up(model, bare, opt.optimizer, steps=recipe.warmup_steps,
                train_batches=[_random_batch(recipe, ds, n, ctx.device)
                               for n in _batch_sizes(train.samples_per_epoch, recipe.data.batch_size)],
                eval_batches=[_random_batch(recipe, ds, n, ctx.device)[0]
                              for n in _batch_sizes(test.samples_per_epoch, recipe.data.eval_batch_size)],
                device_type=ctx.device.type, precision=recipe.precision)
        init_s = clock.ready()
        on_event(mllog.INIT_STOP, {"init_s": init_s})
        if dctx.is_main:
            ctx.say(f"run {index + 1 - ctx.first_run}/{recipe.runs}  seed {seed}  init {init_s:.1f}s  "
                    f"{len(train)} steps/epoch x {recipe.optim.epochs} epochs  target {recipe.target.value:.2%}")
        bar = StepBar(enabled=None if dctx.is_main else False)
        sampler.start()
        on_event(mllog.RUN_START, {})
        result = fit(
            model, opt, train, lambda: evaluate(bare, test.epoch(0), ctx.device.type, recipe.precision, reduce),
            epochs=recipe.optim.epochs, eval_every=recipe.target.eval_every, target=recipe.target.value,
            clock=clock, device_type=ctx.device.type, precision=recipe.precision,
            label_smoothing=recipe.optim.label_smoothing, target_counts=not getattr(train, "synthetic", False),
            on_epoch=lambda r: (done.append(r), ctx.say(_epoch_line(r, dctx.world_size))),
            on_event=on_event, on_step=bar.step,
        )
        bar.close()
        row.update(status=result.status, error=result.reason or None)
    except (KeyboardInterrupt, Interrupted, Exception) as exc:
        if bar is not None:
            bar.close()
        if isinstance(exc, BenchError) and clock.ready_at is None:
            raise  # bad input found while setting up: nothing ran, nothing to record
        error = f"{type(exc).__name__}: {exc}".strip()
        dead = dist.dead_local_peers(dctx)
        if dead:
            error = f"rank {', '.join(map(str, dead))} died; here: {error}"
        row.update(status="aborted", error=error[:500])
        row.update(_finish(ctx, clock, row, result, done, sampler, log, run_dir))
        exc.bench_row = row  # type: ignore[attr-defined]
        raise
    row.update(_finish(ctx, clock, row, result, done, sampler, log, run_dir))
    return row


def _finish(ctx: RunContext, clock: Clock, row: dict, result: Optional[FitResult], done: list[EpochRecord],
            sampler, log: Optional[mllog.MLLogger], run_dir: Optional[Path]) -> dict:
    from bench.system.telemetry import energy_joules, write_csv

    wall = clock.wall()
    samples = sampler.stop() if sampler.started else []
    out = {"wall_s": wall, "init_s": clock.init_s}
    if done:
        accs = [r.test_acc for r in done if r.test_acc is not None]
        train_s = sum(r.epoch_s for r in done)
        images_per_s = sum(r.images_per_s * r.epoch_s for r in done) / train_s if train_s else None
        out.update(epochs=len(done), best_acc=max(accs) if accs else None, final_acc=accs[-1] if accs else None,
                   data_wait_fraction=data_wait_fraction(done),
                   images_per_s=images_per_s * ctx.dctx.world_size if images_per_s else None,
                   epoch_s_mean=train_s / len(done))
        if ctx.dctx.is_main:
            out.update(_model_cost(ctx, out["images_per_s"]))
    if result is not None:
        out.update(time_to_target_s=result.time_to_target_s)
    energy = [j for j in energy_joules(samples).values() if j is not None] if samples else []
    out["energy_j"] = sum(energy) if energy else None
    out.update(_costs(ctx, wall))
    if log is not None:
        log.end(mllog.RUN_STOP, metadata={
            "status": mllog.SUCCESS if row.get("status") == "reached" else mllog.ABORTED,
            "bench_status": row.get("status"), "wall_s": wall, "epochs": out.get("epochs"),
            "time_to_target_s": out.get("time_to_target_s")})
        log.close()
    if run_dir is not None:
        ctx.bundle.write_epochs(row["run_id"], done)
        write_csv(samples, run_dir / "telemetry.csv")
    return out


def run_recipe(recipe: Recipe, *, data: Optional[str] = None, data_dir: Optional[Path] = None,
               results_path: Path = Path("results/results.csv"), runs: Optional[int] = None,
               reports_dir: Optional[Path] = Path("results/reports"), argv: Optional[list[str]] = None,
               first_run: int = 0, say: Callable[[str], None] = print) -> tuple[list[dict], Optional[Path]]:
    """Run `runs` times (default: the recipe's), append one row per run to the table and write the report
    bundle (rank 0). Returns the rows and the bundle directory. Run i uses seed recipe.seed + first_run + i,
    so a resumed set (bench sweep topping up) continues with new seeds."""
    from bench.system import envinfo

    first_clock = Clock()  # anchored to process start: the first run's init includes interpreter start-up
    if runs is not None:
        recipe = replace(recipe, runs=runs)
    mach = machine.detect_machine()
    dctx = dist.detect()
    device_type = machine.check(recipe, mach, launched=dctx.launcher != "none")
    if recipe.world_size != dctx.world_size and dctx.launcher != "none":
        raise BenchError(f"hardware: the recipe asks for {recipe.world_size} processes but the launcher started "
                         f"{dctx.world_size}; use --set hardware.procs_per_node=... / hardware.nodes=... to match")
    if dctx.grouped:
        dist.init(dctx, device_type)
    device = torch.device(f"cuda:{dist.local_device_index(dctx)}" if device_type == "cuda" else "cpu")
    if device_type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    threads = machine.set_threads(recipe, dctx.local_world_size)
    old = signal.signal(signal.SIGTERM, _on_sigterm)
    env = {**envinfo.capture(device_type), "argv": list(argv or sys.argv)}
    ctx = RunContext(recipe, data or recipe.data.source, data_dir, Path(results_path), device, mach, dctx,
                     threads, env, first_run=first_run, say=say if dctx.is_main else (lambda s: None))
    rows: list[dict] = []
    bundle_dir = None
    try:
        ds = load_data(recipe, ctx.data_source, data_dir)
        if dctx.is_main and reports_dir is not None:
            from bench.data.sources import describe

            ctx.bundle = BundleWriter(reports_dir, recipe)
            ctx.bundle.write_json("env.json", {**ctx.env, "threads": threads, "world_size": dctx.world_size,
                                               "nodes": dctx.nodes, "launcher": dctx.launcher,
                                               "data_source": ctx.data_source, "data_dir": str(data_dir or "")})
            ctx.bundle.write_json("dataset.json", describe(ds.identity))
        if dctx.is_main:
            say(f"{recipe.name}  [{recipe.hash}]  data {ds.identity.name} ({ds.identity.short})  "
                f"{len(ds.train)} train / {len(ds.test)} test  on {device_type} x{dctx.world_size}  "
                f"{recipe.precision} {recipe.memory_format} loader={recipe.data.loader} threads={threads}")
        for i in range(recipe.runs):
            # Later runs in the same process have no process start of their own: their init starts here.
            clock = first_clock if i == 0 else Clock(since_process_start=0.0)
            clock.sync = device_sync(device)
            try:
                row = run_once(ctx, ds, first_run + i, clock)
            except BaseException as exc:
                row = getattr(exc, "bench_row", None)
                if row is not None and dctx.is_main:
                    _record(ctx, row)
                    say(f"run {i + 1} aborted ({row['error']}); row {row['run_id']} written to {ctx.results_path}")
                raise
            if dctx.is_main:
                _record(ctx, row)
                say(summary_line(row, ctx.results_path))
            rows.append(row)
    finally:
        if ctx.bundle is not None:
            bundle_dir = _publish(ctx)
        signal.signal(signal.SIGTERM, old)
        if dctx.grouped:
            dist.shutdown()
    if bundle_dir is not None:
        say(str(bundle_dir))  # the last line: scripts read the bundle's path from it
    return rows, bundle_dir


def _record(ctx: RunContext, row: dict) -> None:
    """Table first (the record users query), then the bundle's copy. A table that cannot take the row
    (e.g. a hand-edited malformed line) must not lose it: the bundle still has it, and we say where."""
    from bench.core.results import append_row

    if ctx.bundle is not None:
        ctx.bundle.add_row(row)
    try:
        append_row(ctx.results_path, row)
    except BenchError as exc:
        where = ctx.bundle.final / "results.csv" if ctx.bundle else "(no bundle)"
        ctx.say(f"warning: could not append to {ctx.results_path}: {exc}\nthe row is kept in {where}")


def _publish(ctx: RunContext) -> Optional[Path]:
    try:
        return ctx.bundle.finish()
    except Exception as exc:  # the rows are already safe in the table; a report failure must not hide them
        ctx.say(f"warning: report bundle left unfinished at {ctx.bundle.dir}: {type(exc).__name__}: {exc}")
        return None


def summary_line(row: dict, path: Path) -> str:
    if row["status"] == "reached":
        what = f"reached {row['target']:.2%} in {row['time_to_target_s']:.1f}s"
    else:
        best = row.get("best_acc")
        what = f"{row['status']}: best {best:.2%} < target {row['target']:.2%}" if best is not None else row["status"]
    cost = row.get("cost_usd")
    cost_txt = f"${cost:.4f}" if cost is not None else "cost n/a"
    return (f"{what}  (init {row['init_s']:.1f}s, wall {row['wall_s']:.1f}s, {row['gpu_hours']:.4f} "
            f"{'GPU' if row['device'] == 'cuda' else 'device'}-hours, {cost_txt}; price: {row['price_source']})\n"
            f"row {row['run_id']} appended to {path}")
