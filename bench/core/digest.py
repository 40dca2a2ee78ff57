"""sha256 of a file, read in 1 MiB blocks: the one content hash behind MANIFESTs, the code files an external
run names, and cached archives."""
from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()
