"""`bench` / `python -m bench`: the command line.

Each module here declares a group of subcommands (argparse) and hands plain values to the library below.
Nothing here imports torch until a command runs, so `bench --help` and `bench validate` stay quick and
work on machines without a GPU stack (tests/test_cli.py checks it)."""
from __future__ import annotations

import argparse
import os
import sys

from bench.cli import data, external, imports, reports, runs, site, studies, tune
from bench.cli import rcp  # bench rcp: reference convergence points (MLPerf's RCP check)
from bench.core.errors import BenchError, Terminated

GROUPS = (runs, external, data, reports, studies, tune, site, imports, rcp)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench", description="Time-to-accuracy benchmarks for deep-learning training.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:  # the run's aborted row has landed; shells and SLURM read 128 + signal
        print(f"bench: {exc}", file=sys.stderr)
        return 128 + exc.signum
    except BrokenPipeError:  # `bench ... | head` closed our output: not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
