"""`bench data info|fetch` and `bench loaders`: data sets and the loaders that feed them."""
from __future__ import annotations

import argparse
import json
import typing
from pathlib import Path

from bench.cli import options
from bench.core.errors import BenchError
from bench.recipe.schema import Data

LOADERS = typing.get_args(typing.get_type_hints(Data)["loader"])


def cmd_info(args) -> int:
    from bench.core.paths import data_base_dir
    from bench.core.results import atomic_write
    from bench.data.sources import describe, load_dataset

    options.check_source("PATH", args.source)
    options.check_data_dir("--data-dir", args.data_dir)
    options.check_out_file("--json", args.json, what="JSON file")
    ds = load_dataset(args.source, data_dir=args.data_dir, base_dir=data_base_dir())
    info = describe(ds.identity)
    print(f"name:        {info['name']}")
    print(f"fingerprint: {info['fingerprint']}")
    print(f"images:      {ds.train.images.shape[2]}x{ds.train.images.shape[1]} RGB")
    print(f"train:       {info['counts']['train']}")
    print(f"test:        {info['counts']['test']}")
    width = max(len(c) for c in info["classes"])
    print(f"{'class':<{width}}  {'train':>7}  {'test':>7}")
    for c in info["classes"]:
        print(f"{c:<{width}}  {info['per_class']['train'][c]:>7}  {info['per_class']['test'][c]:>7}")
    if args.json is not None:
        atomic_write(args.json, lambda f: f.write(json.dumps(info, indent=2) + "\n"))
        print(f"wrote {args.json}")
    return 0


def cmd_fetch(args) -> int:
    from urllib.parse import urlparse

    from bench.core.paths import check_output
    from bench.data import cifar

    if args.url is not None and urlparse(args.url).scheme not in ("http", "https", "ftp", "file"):
        raise BenchError(f"--url {args.url!r}: not a download URL; give an http(s)://, ftp:// or file:// URL of "
                         f"a copy of cifar-10-python.tar.gz, or leave --url out for the official one")
    data_dir = args.data_dir if args.data_dir is not None else cifar.default_data_dir()
    check_output("--data-dir" if args.data_dir is not None else "data folder (the default of --data-dir)", data_dir,
                 folder=True, what="data folder")
    path = cifar.fetch_cifar10(data_dir, url=args.url or cifar.DEFAULT_URL)
    print(f"{path} (verified: md5 {cifar.OFFICIAL_MD5}, sha256 {cifar.OFFICIAL_SHA256})")
    return 0


def cmd_loaders(args) -> int:
    from bench.data.loader_bench import run_loaders

    options.check_count("--workers", args.workers, least=0)
    options.check_count("--images", args.images)
    options.check_source("--data", args.data)
    options.check_out_file("--json", args.json, what="JSON file")
    return run_loaders(args)


def register(sub) -> None:
    data = sub.add_parser("data", help="inspect and download data sets")
    dsub = data.add_subparsers(dest="data_command", metavar="{info,fetch}", required=True)

    info = dsub.add_parser("info", help="print a data set's identity: fingerprint, classes, counts")
    info.add_argument("source", metavar="PATH",
                      help="'cifar10' (official, downloaded if missing), an image folder, or an archive")
    info.add_argument("--json", type=Path, metavar="OUT", help="also write the identity as JSON to OUT")
    info.add_argument("--data-dir", type=Path, metavar="D",
                      help="download and decode cache (default: $BENCH_DATA or ~/.cache/bench/data)")
    info.set_defaults(func=cmd_info)

    fetch = dsub.add_parser("fetch", help="download and verify the official CIFAR-10 archive")
    fetch.add_argument("name", choices=["cifar10"])
    fetch.add_argument("--data-dir", type=Path, metavar="D",
                       help="where to put it (default: $BENCH_DATA or ~/.cache/bench/data)")
    fetch.add_argument("--url", default=None, help="a mirror (default: the official Toronto URL); checksums are still the official ones")
    fetch.set_defaults(func=cmd_fetch)

    p = sub.add_parser("loaders", help="measure the throughput of each data loader")
    p.add_argument("--loaders", default=",".join(LOADERS), help=f"comma-separated, from {', '.join(LOADERS)}")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--data", default=None, help="a dataset source (default: 50,000 random 32x32 images)")
    p.add_argument("--batches", type=int, default=50, help="timed batches per loader")
    p.add_argument("--dtype", choices=("bf16", "fp32", "fp16"), default="bf16")
    p.add_argument("--workers", type=int, default=2, help="worker processes of the torch loader")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    p.add_argument("--images", type=int, default=50_000, help=argparse.SUPPRESS)  # small sets for tests
    p.set_defaults(func=cmd_loaders)
