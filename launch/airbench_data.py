"""Write a data set in the cache format of KellerJordan/cifar10-airbench's scripts (cifar10/train.pt and
test.pt: uint8 images (N, 32, 32, 3), int64 labels, class names), so the public airbench94_muon.py trains on
the same JPEG copy as the harness, unmodified and offline (it reads these files when they exist).

    python launch/airbench_data.py data/cifar10-jpeg-q75.tar.xz path/to/airbench/cifar10
"""
import sys
from pathlib import Path

import torch

from bench.data.sources import load_dataset


def main(source: str, folder: str) -> None:
    ds = load_dataset(source)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name, split in (("train.pt", ds.train), ("test.pt", ds.test)):
        torch.save({"images": torch.from_numpy(split.images), "labels": torch.from_numpy(split.labels),
                    "classes": list(ds.identity.classes)}, out / name)
    print(f"{ds.identity.name} ({ds.identity.short}) -> {out}/train.pt, test.pt")


if __name__ == "__main__":
    main(*sys.argv[1:3])
