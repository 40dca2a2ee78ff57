"""Test helper run by torchrun or as a fake srun task: joins the group through bench.system.dist and
writes what this rank saw to OUTDIR/rank<N>.json.

    dist_worker.py OUTDIR [--fail-rank R | --hang-rank R] [--timeout S]

With --fail-rank, rank R dies with exit code 3 right after joining (noting the time in
rank<R>.died), while the others block in a collective that can never complete. With --hang-rank,
rank R stays alive but never joins the collective, so only the collective timeout can end the wait.
"""

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from bench.system import dist


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--fail-rank", type=int, default=-1)
    parser.add_argument("--hang-rank", type=int, default=-1)
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()

    ctx = dist.detect()
    backend = dist.init(ctx, "cpu", timeout_s=args.timeout)
    out = args.outdir / f"rank{ctx.rank}"
    out.with_suffix(".pid").write_text(str(os.getpid()))

    if ctx.rank == args.fail_rank:
        out.with_suffix(".died").write_text(repr(time.time()))
        os._exit(3)
    if ctx.rank == args.hang_rank:
        time.sleep(3 * args.timeout)
    try:
        sums = dist.all_reduce_sum([ctx.rank + 1, 0.5], "cpu")
    except Exception as exc:  # recorded so the fault test can show how the survivor ended
        out.with_suffix(".err").write_text(f"{type(exc).__name__}: {exc}")
        raise
    result = {
        "ctx": dataclasses.asdict(ctx),
        "backend": backend,
        "sums": sums,
        "seed": dist.rank_seed(1000, ctx.rank),
    }
    out.with_suffix(".json").write_text(json.dumps(result))
    dist.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
