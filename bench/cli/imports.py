"""`bench import dawnbench DIR`: results others reported (DAWNBench entries), read by DAWNBench's own rule."""
from __future__ import annotations

import sys
from pathlib import Path


def cmd_dawnbench(args) -> int:
    from bench.cli.options import check_out_file
    from bench.core.tables import print_table
    from bench.report import dawnbench_import as dawn

    check_out_file("--out", args.out, what="CSV file")  # before reading: a bad --out ends in one line, no traceback
    entries, warnings = dawn.read_dir(args.dir)
    for w in warnings:
        print(f"bench: warning: {w}", file=sys.stderr)
    header, cells = dawn.table(entries)
    reached, n = sum(e.time_s is not None for e in entries), len(entries)
    ours = all(e.source.startswith("runs/") for e in entries)  # a report bundle's own exports
    print_table(f"DAWNBench CIFAR-10 training entries in {args.dir}"
                + (" (our runs' exports)" if ours else " (reported by their authors, not reproduced here)"),
                header, cells, left=5,
                note=f"{n} entr{'y' if n == 1 else 'ies'}, {reached} reach 94% (time = hours of the first TSV row "
                     f"with top1Accuracy >= 94, x 3600; cost = those hours x costPerHour); {len(warnings)} skipped")
    if args.out:
        dawn.write_csv(args.out, entries, args.source_prefix)
        print(f"wrote {args.out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("import", help="read results that others reported (DAWNBench entries) into a table")
    kinds = p.add_subparsers(dest="format", required=True, metavar="FORMAT")
    d = kinds.add_parser("dawnbench", help="time to 94%% and cost of DAWNBench CIFAR-10 training entries "
                                           "(<name>.json + <name>.tsv), by DAWNBench's rule")
    d.add_argument("dir", type=Path, help="a stanford-futuredata/dawn-bench-entries checkout (reads CIFAR10/train), "
                                          "a report bundle (reads runs/*/dawnbench.json), or a folder of entries")
    d.add_argument("--out", type=Path, default=None, metavar="CSV",
                   help="also write the table as CSV (sorted by time; entries that never reach 94%% last)")
    d.add_argument("--source-prefix", default="", metavar="TEXT",
                   help="put before each source path in the CSV, e.g. "
                        "'stanford-futuredata/dawn-bench-entries@fb27b82:'")
    d.set_defaults(func=cmd_dawnbench)
