"""Which sample indices each rank reads in an epoch."""
from __future__ import annotations

import numpy as np


def _check(rank: int, world: int) -> None:
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in a world of {world}")


def epoch_indices(n: int, *, epoch: int, seed: int, rank: int, world: int, shuffle: bool = True) -> np.ndarray:
    """This rank's training indices for `epoch`.

    Every rank draws the same permutation from (seed, epoch), drops the n % world tail (so all ranks
    run the same number of steps: DDP hangs otherwise) and takes its own contiguous slice.
    """
    _check(rank, world)
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    per_rank = n // world
    return order[rank * per_rank:(rank + 1) * per_rank]


def eval_indices(n: int, *, rank: int, world: int) -> np.ndarray:
    """Every index exactly once across ranks, in order; shard sizes differ by at most one, which is
    fine because evaluation sums correct counts rather than averaging per-rank accuracies."""
    _check(rank, world)
    start, stop = (n * rank) // world, (n * (rank + 1)) // world
    return np.arange(start, stop)
