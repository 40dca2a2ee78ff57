"""Test helper: one rank of a two-process gloo group training a tiny ResNet-9 with the harness's own pieces
(bench.run.parts.model wraps it in DDP, bench.train.loop.train_step steps it, bench.train.loop.evaluate
with bench.run.parts.eval_reduce scores it), then writing what it ended with to OUTDIR/rank<R>.pt.

    ddp_step_worker.py OUTDIR STEPS        (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT in the environment)

The data and the model come from tests/test_ddp_steps.py (global_batches, eval_split, build) so that the
one-process reference there sees exactly what the ranks see.
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_ddp_steps as spec  # noqa: E402  (the shared definitions)
from bench.run import parts  # noqa: E402
from bench.system import dist  # noqa: E402
from bench.train.loop import evaluate, train_step  # noqa: E402
from bench.train.optim import Scheduled  # noqa: E402


def main() -> int:
    outdir, steps = Path(sys.argv[1]), int(sys.argv[2])
    ctx = dist.detect()
    dist.init(ctx, "cpu", timeout_s=60)
    cpu = torch.device("cpu")
    r = spec.recipe()
    torch.manual_seed(dist.rank_seed(r.seed, ctx.rank))  # as run_once does: ranks start from different weights
    model, bare = parts.model(r, cpu, ctx)
    spec.freeze_batchnorm(bare)
    opt = Scheduled(model, r.optim, total_steps=steps)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=r.optim.label_smoothing)
    per_rank = spec.GLOBAL_BATCH // ctx.world_size
    for x, y in spec.global_batches(steps):
        mine = slice(ctx.rank * per_rank, (ctx.rank + 1) * per_rank)
        opt.apply()
        train_step(model, opt.optimizer, criterion, None, x[mine], y[mine], "cpu", "fp32")
        opt.advance()
    x, y = spec.eval_split(ctx.rank, ctx.world_size)
    reported = evaluate(bare, [(x, y)], "cpu", "fp32", parts.eval_reduce(ctx, cpu))
    local = evaluate(bare, [(x, y)], "cpu", "fp32")
    correct = int((bare.eval()(x).argmax(1) == y).sum())
    torch.save({"state": bare.state_dict(), "reported_acc": reported, "local_acc": local,
                "correct": correct, "total": len(y), "wrapped": type(model).__name__}, outdir / f"rank{ctx.rank}.pt")
    dist.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
