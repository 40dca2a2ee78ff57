"""`bench data info` and `bench data fetch`."""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from bench.core.paths import data_base_dir
from bench.data import cifar
from bench.data.sources import default_data_dir, describe, load_dataset



def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="inspect and download data sets")
    sub = data.add_subparsers(dest="data_command", metavar="{info,fetch}", required=True)

    info = sub.add_parser("info", help="print a data set's identity: fingerprint, classes, counts")
    info.add_argument("source", metavar="PATH",
                      help="'cifar10' (official, downloaded if missing), an image folder, or an archive")
    info.add_argument("--json", type=Path, metavar="OUT", help="also write the identity as JSON to OUT")
    info.add_argument("--data-dir", type=Path, metavar="D",
                      help="download and decode cache (default: $BENCH_DATA or ~/.cache/bench/data)")
    info.set_defaults(func=run_info)

    fetch = sub.add_parser("fetch", help="download and verify the official CIFAR-10 archive")
    fetch.add_argument("name", choices=["cifar10"])
    fetch.add_argument("--data-dir", type=Path, metavar="D",
                       help="where to put it (default: $BENCH_DATA or ~/.cache/bench/data)")
    fetch.add_argument("--url", default=cifar.DEFAULT_URL, help="a mirror; checksums are still the official ones")
    fetch.set_defaults(func=run_fetch)


def _write_json_atomic(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def run_info(args: argparse.Namespace) -> int:
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
        _write_json_atomic(args.json, info)
        print(f"wrote {args.json}")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    data_dir = args.data_dir if args.data_dir is not None else default_data_dir()
    path = cifar.fetch_cifar10(data_dir, url=args.url)
    print(f"{path} (verified: md5 {cifar.OFFICIAL_MD5}, sha256 {cifar.OFFICIAL_SHA256})")
    return 0
