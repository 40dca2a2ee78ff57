"""DDP step equivalence on the CPU: two gloo ranks training for a few steps end with the same weights as
each other and as one process on the global batch; evaluation sums both ranks' counts.

The ranks (tests/ddp_step_worker.py) start from different weights (each seeds with its rank, as run_once
does), so only DDP's broadcast makes them agree, and only DDP's gradient averaging makes them follow the
global batch. BatchNorm is frozen (eval mode: running statistics, not per-rank batch statistics), which is
what makes two half-batches add up to one whole batch; everything else is the recipe's: ResNet-9, SGD with
nesterov, weight decay on the decay group, label smoothing and the linear warm-up schedule.

Tolerance: the ranks' weights are compared bit for bit (gloo hands every rank the same averaged gradient);
the reference differs only by float summation order (the gradient of a mean over 16 images computed as one
sum, or as two sums of 8 averaged): 9e-10 at most on the 2-core AMD EPYC VM, so TOL = 1e-6 leaves a wide
margin for other CPUs' kernels while staying 300 times below the smallest move of a conv or linear weight.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
GLOBAL_BATCH, STEPS, EVAL_IMAGES = 16, 4, 21  # 21 test images: the ranks' shards hold 10 and 11
TOL = 1e-6


def recipe():
    from bench import recipe as recipes

    return recipes.load("cpu_quick", ["precision=fp32", "model.params.widths=[4,8,8,8]", "optim.epochs=1",
                                      "memory_format=contiguous", "hardware.procs_per_node=2"])


def freeze_batchnorm(model: torch.nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def global_batches(steps: int):
    g = torch.Generator().manual_seed(123)
    return [(torch.randn(GLOBAL_BATCH, 3, 32, 32, generator=g), torch.randint(0, 10, (GLOBAL_BATCH,), generator=g))
            for _ in range(steps)]


def eval_split(rank: int, world: int):
    from bench.data.sharding import eval_indices

    g = torch.Generator().manual_seed(321)
    x, y = torch.randn(EVAL_IMAGES, 3, 32, 32, generator=g), torch.randint(0, 10, (EVAL_IMAGES,), generator=g)
    idx = torch.from_numpy(eval_indices(EVAL_IMAGES, rank=rank, world=world))
    return x[idx], y[idx]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reference(steps: int) -> tuple[dict, dict]:
    """One process, the global batch, rank 0's initial weights (the ones DDP broadcasts): (before, after)."""
    from bench.run import parts
    from bench.system.dist import DistContext, rank_seed
    from bench.train.loop import train_step
    from bench.train.optim import Scheduled

    r = recipe()
    torch.manual_seed(rank_seed(r.seed, 0))
    model, bare = parts.model(r, torch.device("cpu"), DistContext())
    assert model is bare  # alone: no wrapper
    freeze_batchnorm(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = Scheduled(model, r.optim, total_steps=steps)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=r.optim.label_smoothing)
    for x, y in global_batches(steps):
        opt.apply()
        train_step(model, opt.optimizer, criterion, None, x, y, "cpu", "fp32")
        opt.advance()
    return before, model.state_dict()


@pytest.mark.slow
def test_two_gloo_ranks_step_like_one_process_on_the_global_batch(tmp_path):
    port = free_port()
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, str(HERE / "ddp_step_worker.py"), str(tmp_path), str(STEPS)],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(outs)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert [r["wrapped"] for r in ranks] == ["DistributedDataParallel"] * 2

    # the same weights on both ranks, bit for bit, and those of one process on the global batch
    before, ref = reference(STEPS)
    worst = 0.0
    for name, value in ranks[0]["state"].items():
        assert torch.equal(value, ranks[1]["state"][name]), name
        assert torch.allclose(value, ref[name], rtol=0, atol=TOL), (name, (value - ref[name]).abs().max())
        worst = max(worst, float((value - ref[name]).abs().max()))
    # the steps moved every conv and linear weight by over ten times the tolerance (so agreeing is not just
    # keeping the initial weights) and the ranks agree with the reference far more closely than that
    moved = [float((ref[n] - before[n]).abs().max()) for n in ref if n.endswith("weight") and ref[n].ndim > 1]
    assert min(moved) > 10 * TOL, moved
    print(f"largest difference from the one-process reference: {worst:.2g}; smallest move: {min(moved):.2g}")

    # evaluation: each rank scores its shard, both report the pooled count
    counts = [(r["correct"], r["total"]) for r in ranks]
    assert [t for _, t in counts] == [10, 11]
    pooled = sum(c for c, _ in counts) / EVAL_IMAGES
    assert [r["reported_acc"] for r in ranks] == [pooled, pooled]
    assert [r["local_acc"] for r in ranks] == [c / t for c, t in counts]
    assert any(r["local_acc"] != pooled for r in ranks)  # (so a missing all-reduce could not pass)
