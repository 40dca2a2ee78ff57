"""What a data set *is*, by content: results name the pixels they were trained on, not a file name."""
from __future__ import annotations

import hashlib

import numpy as np

from bench.data.types import DatasetIdentity, Split

# Bump if the hashed byte layout ever changes, so old and new fingerprints cannot collide.
_FORMAT = b"bench-dataset-fingerprint-v1"


def fingerprint(train: Split, test: Split) -> str:
    """sha256 hex over the decoded pixels and labels of both splits.

    The shapes go into a header first so that the same bytes cut into differently sized images
    (or moved between train and test) cannot give the same fingerprint."""
    h = hashlib.sha256(_FORMAT)
    h.update(f" train={train.images.shape} test={test.images.shape}\n".encode())
    for split in (train, test):
        h.update(np.ascontiguousarray(split.images).data)
        # Fixed width and byte order: the same labels must hash the same on every platform.
        h.update(split.labels.astype("<i8").tobytes())
    return h.hexdigest()


def _per_class(split: Split, n_classes: int) -> tuple[int, ...]:
    return tuple(int(c) for c in np.bincount(split.labels, minlength=n_classes))


def make_identity(name: str, classes, train: Split, test: Split, fp: str | None = None) -> DatasetIdentity:
    """`fp` lets a caller that already knows the fingerprint (from a cache) skip rehashing."""
    classes = tuple(classes)
    return DatasetIdentity(
        name=name,
        fingerprint=fp or fingerprint(train, test),
        classes=classes,
        train_count=len(train),
        test_count=len(test),
        train_per_class=_per_class(train, len(classes)),
        test_per_class=_per_class(test, len(classes)),
    )
