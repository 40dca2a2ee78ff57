"""Everything one run leaves behind, owned by one object that finalises it however the run ends.

`RunRecords` holds the run's results row, its MLPerf event log, its telemetry sampler and its folder in the
report bundle. Used as a context manager around the run, it always finishes them: `finish(result)` on a
reached, missed or failed run; on Ctrl-C, SIGTERM, a crash or a dead peer, leaving the block finishes the
run as `aborted` with the error, and the exception goes on. Only bad input found before the run was ready
(a BenchError before init ends) leaves no row: nothing ran. Rank 0 writes; other ranks keep rows in memory.
"""
from __future__ import annotations

import signal
import threading
from typing import Optional

from bench.core import mllog
from bench.core.clock import Clock
from bench.core.errors import BenchError, Pruned
from bench.core.targets import reaches
from bench.data.types import Dataset
from bench.run import rows
from bench.run.context import RunContext
from bench.system import dist
from bench.system.telemetry import Sampler, write_csv
from bench.train.loop import EpochRecord, FitResult


class RunRecords:
    def __init__(self, ctx: RunContext, ds: Dataset, run_id: str, seed: int, clock: Clock):
        self.ctx, self.clock = ctx, clock
        self.row = rows.row_base(ctx, run_id, seed, ds)
        self.epochs: list[EpochRecord] = []  # finished so far: an interrupted run still reports them
        self.run_dir = ctx.bundle.run_dir(run_id) if ctx.bundle else None
        self.log = mllog.MLLogger(self.run_dir / "mllog.txt", namespace=ctx.recipe.name) if self.run_dir else None
        self.sampler = Sampler(interval_s=1.0,
                               device_indices=[ctx.device.index or 0] if ctx.device.type == "cuda" else None)
        self.finished = False

    # ------------------------------------------------------------------ during the run

    def header(self, ds: Dataset, seed: int) -> None:
        """init_start and the disclosure lines MLPerf's checker wants, before anything is built."""
        if self.log is None:
            return
        r, d = self.ctx.recipe, self.ctx.dctx
        self.log.start(mllog.INIT_START)
        mllog.log_header(
            self.log, benchmark="cifar10_time_to_accuracy" if r.kind == "classifier" else "gan_time_to_quality",
            org=self.ctx.env.get("submission_org") or "unknown",
            platform=f"{d.world_size}x{self.ctx.mach.device_name}", seed=seed,
            rank_seeds=[dist.rank_seed(seed, k) for k in range(d.world_size)],
            global_batch_size=r.data.batch_size * d.world_size, micro_batch_size=r.data.batch_size,
            train_samples=len(ds.train), eval_samples=len(ds.test), precision=r.precision,
            config_filename=f"{r.name}.yaml", base_lr=r.gan.lr if r.kind == "gan" else r.optim.lr,
            target=r.target.value)

    def event(self, key: str, meta: dict) -> None:
        """The training loop's event sink (fit's on_event)."""
        if self.log is not None:
            self.log.relay(key, meta, stacklevel=2)

    def epoch(self, record: EpochRecord) -> None:
        self.epochs.append(record)
        self.ctx.say(rows.epoch_line(record, self.ctx.dctx.world_size, self.ctx.recipe.target.metric))
        deadline, t = self.ctx.deadline_s, self.ctx.recipe.target
        at_target = record.metric_value is not None and reaches(record.metric_value, t.value, t.mode)
        if deadline is not None and record.elapsed_s > deadline and not at_target:
            raise Pruned(f"pruned at {record.elapsed_s:.1f}s after epoch {record.epoch}: past {deadline:.1f}s, "
                         f"its study's best time to target so far, so it cannot win the study")

    def start_run(self) -> None:
        self.sampler.start()
        self.event(mllog.RUN_START, {})

    # ------------------------------------------------------------------ the end, whichever it is

    def finish(self, result: FitResult) -> dict:
        return self._finish(result.status, result.reason or None, result)

    def __enter__(self) -> "RunRecords":
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None or self.finished:
            return False
        if isinstance(exc, BenchError) and self.clock.ready_at is None:
            self._close_quietly()  # bad input found while setting up: nothing ran, nothing to record
            return False
        error = f"{type(exc).__name__}: {exc}".strip()
        dead = dist.dead_local_peers(self.ctx.dctx)
        if dead:
            error = f"rank {', '.join(map(str, dead))} died; here: {error}"
        # The run is already ending: a SIGTERM that lands now (torchrun signals the survivors of a dead rank,
        # SLURM every task) must not cut the aborted row short. The exception in flight still ends the run.
        held = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN) if held else None
        try:
            self._finish("aborted", error[:500], None)
        finally:
            if held:
                signal.signal(signal.SIGTERM, previous)
        return False  # the exception goes on: the caller decides the exit status

    def _finish(self, status: str, error: Optional[str], result: Optional[FitResult]) -> dict:
        self.finished = True
        row, ctx = self.row, self.ctx
        wall = self.clock.wall()
        samples = self.sampler.stop() if self.sampler.started else []
        row.update(status=status, error=error, wall_s=wall, init_s=self.clock.init_s)
        row.update(rows.epoch_fields(ctx, self.epochs, failed=status == "failed"))
        if result is not None:
            row["time_to_target_s"] = result.time_to_target_s
        row["energy_j"], row["energy_method"] = self.sampler.energy(samples)
        row.update(rows.costs(ctx, wall))
        if self.log is not None:
            self.log.end(mllog.RUN_STOP, metadata={
                "status": mllog.SUCCESS if status == "reached" else mllog.ABORTED, "bench_status": status,
                "wall_s": wall, "epochs": row.get("epochs"), "time_to_target_s": row.get("time_to_target_s")})
            self.log.close()
        if self.run_dir is not None:
            ctx.bundle.write_epochs(row["run_id"], self.epochs)
            write_csv(samples, self.run_dir / "telemetry.csv")
        if ctx.is_main:
            self._record()
        return row

    def _record(self) -> None:
        ctx, row = self.ctx, self.row
        rows.land(row, ctx.bundle, ctx.results_path, ctx.say, rows.summary_line(row))

    def _close_quietly(self) -> None:
        if self.sampler.started:
            self.sampler.stop()
        if self.log is not None:
            self.log.close()
