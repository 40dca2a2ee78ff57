"""The official CIFAR-10 archive (cifar-10-python.tar.gz): download with resume and checksums, and reading.

Its batches are Python pickles. Unpickling untrusted data can run arbitrary code, so we load them only
after the checksum matched the official archive, or from a file the user named explicitly, and even then
through an unpickler that accepts nothing but numpy arrays, lists, dicts and strings."""
from __future__ import annotations

import hashlib
import http.client
import io
import os
import pickle
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np
from filelock import FileLock

from bench.data.types import Split
from bench.core.errors import BenchError

DEFAULT_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
OFFICIAL_SIZE = 170_498_071
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
OFFICIAL_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
BATCH_DIR = "cifar-10-batches-py"
_TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
_CHUNK = 1 << 16


def default_data_dir() -> Path:
    """BENCH_DATA if set, else $XDG_CACHE_HOME/bench/data, else ~/.cache/bench/data."""
    if os.environ.get("BENCH_DATA"):
        return Path(os.environ["BENCH_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "bench" / "data"


def file_digests(path: Path) -> tuple[str, str]:
    """(md5, sha256) in one read: the archive is 170 MB, reading it twice is noticeable."""
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            md5.update(block)
            sha.update(block)
    return md5.hexdigest(), sha.hexdigest()


class _Progress:
    """A rich bar on a terminal; in logs (CI, nohup) a plain line every ~10% so the log stays short."""

    def __init__(self, label: str, total: int | None, done: int, enabled: bool):
        self.label, self.total, self.done = label, total, done
        self.bar = None
        self.next_report = 0.0
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (BarColumn, DownloadColumn, Progress, TimeRemainingColumn,
                                       TransferSpeedColumn)

            # stderr, so that stdout carries only the command's result (the path, the JSON).
            self.bar = Progress("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                TimeRemainingColumn(), console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task(label, total=total, completed=done)
            self.bar.start()
        self.plain = enabled and self.bar is None
        self.last_print = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)
        elif self.plain:
            share = self.done / self.total if self.total else 0.0
            if share >= self.next_report or time.monotonic() - self.last_print > 30:
                self.next_report = share + 0.1
                self.last_print = time.monotonic()
                of = f" / {self.total / 1e6:.1f} MB ({share:.0%})" if self.total else " MB"
                print(f"{self.label}: {self.done / 1e6:.1f}{of}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _by_hand(url: str, target: Path, sha256: str) -> str:
    from bench.data.targets import offline_hint

    return (f"Download {url} on a machine with internet access (sha256 {sha256}), then either copy it to "
            f"{target} or point --data at the file (for example `bench run --data /path/to/{ARCHIVE_NAME}`).\n"
            f"{offline_hint()}")


def _download(url: str, part: Path, progress: bool) -> None:
    """Append the rest of `url` to `part`, resuming from its current size with an HTTP Range request."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not offset:
            raise
        # 416: nothing left after `offset`, so the .part is already whole; the checksum decides.
        return
    with response:
        content_range = response.headers.get("Content-Range", "")
        if response.status != 206 or not content_range.startswith(f"bytes {offset}-"):
            offset = 0  # The server ignored the Range header and sends the whole file: start over.
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length else None
        bar = _Progress(part.name.removesuffix(".part"), total, offset, progress)
        try:
            with open(part, "ab" if offset else "wb") as f:
                while block := response.read(_CHUNK):
                    f.write(block)
                    bar.update(len(block))
        finally:
            bar.close()


def _fetch_locked(target: Path, url: str, md5: str, sha256: str, progress: bool) -> Path:
    if target.exists():
        if file_digests(target) == (md5, sha256):
            return target
        print(f"{target} does not match the expected checksums; downloading it again.", file=sys.stderr)
        target.unlink()
    part = target.with_name(target.name + ".part")
    resumed = part.exists() and part.stat().st_size > 0
    try:
        _download(url, part, progress)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        reason = e if isinstance(e, urllib.error.HTTPError) else getattr(e, "reason", e)
        keep = " The partial download is kept; run the command again to resume it." if part.exists() else ""
        raise BenchError(f"Could not download {url}: {reason}.{keep}\n{_by_hand(url, target, sha256)}") from e
    actual = file_digests(part)
    if actual != (md5, sha256) and resumed:
        # The .part may be left over from a different file at that name: one clean try from zero.
        print(f"{part} did not check out after resuming; downloading from the start.", file=sys.stderr)
        part.unlink()
        return _fetch_locked(target, url, md5, sha256, progress)
    if actual != (md5, sha256):
        part.unlink()
        raise BenchError(
            f"Checksum mismatch for {url} (the bad download was deleted): expected md5 {md5} and sha256 "
            f"{sha256}, got md5 {actual[0]} and sha256 {actual[1]}. Try again later or from another "
            f"mirror (--url).\n{_by_hand(DEFAULT_URL, target, sha256)}")
    os.replace(part, target)
    return target


def fetch_cifar10(data_dir: Path, url: str = DEFAULT_URL, md5: str | None = None, sha256: str | None = None,
                  progress: bool = True) -> Path:
    """Path of a verified `<data_dir>/cifar-10-python.tar.gz`, downloaded only if it is not already there.

    md5/sha256 default to the official archive's values. Both are checked (md5 is what the CIFAR page
    publishes, sha256 is the one that resists forgery). A lock lets parallel runs share one download."""
    md5, sha256 = md5 or OFFICIAL_MD5, sha256 or OFFICIAL_SHA256
    data_dir = Path(data_dir)
    target = data_dir / ARCHIVE_NAME
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BenchError(f"Cannot create the data directory {data_dir}: {e.strerror}. "
                         "Choose another one with --data-dir or the BENCH_DATA environment variable.") from e
    with FileLock(str(target) + ".lock"):
        return _fetch_locked(target, url, md5, sha256, progress)


_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("_codecs", "encode"),  # how Python 3 writes bytes in protocol-2 pickles
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a CIFAR batch")
        try:  # numpy 2 renamed numpy.core to numpy._core and warns on the old name
            return super().find_class(module.replace("numpy.core.", "numpy._core."), name)
        except (ImportError, AttributeError):
            return super().find_class(module, name)


def _unpickle(raw: bytes) -> dict:
    return _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()


def _read_members(path: Path) -> dict[str, bytes]:
    """The batch files' bytes, in one pass over the gzip stream (looking members up by name would
    decompress it again for every one)."""
    wanted = {f"{BATCH_DIR}/{n}" for n in _TRAIN_BATCHES + ["test_batch", "batches.meta"]}
    found = {}
    with tarfile.open(path, "r:*") as tf:
        for member in tf:
            name = member.name.removeprefix("./")
            if name in wanted and member.isfile():
                found[name.rsplit("/", 1)[1]] = tf.extractfile(member).read()
    missing = sorted(n.rsplit("/", 1)[1] for n in wanted if n.rsplit("/", 1)[1] not in found)
    if missing:
        raise ValueError(f"missing {', '.join(missing)} under {BATCH_DIR}/")
    return found


def _batch(raw: bytes, n_classes: int) -> Split:
    d = _unpickle(raw)
    data = np.asarray(d[b"data"])
    labels = np.asarray(d[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(f"unexpected batch layout: data {data.dtype} {data.shape}, {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels outside 0..{n_classes - 1}")
    # Rows are channel-planar (1024 R, then G, then B, each 32x32 row-major); the harness wants HWC.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return Split(np.ascontiguousarray(images), labels)


def load_cifar10_archive(path: Path) -> tuple[Split, Split, list[str]]:
    """(train, test, class names) from an archive in the official layout, read in memory: nothing is
    extracted to disk, so a failure leaves nothing half-written behind."""
    path = Path(path)
    try:
        members = _read_members(path)
        classes = [c.decode() if isinstance(c, bytes) else str(c)
                   for c in _unpickle(members["batches.meta"])[b"label_names"]]
        batches = [_batch(members[n], len(classes)) for n in _TRAIN_BATCHES]
        test = _batch(members["test_batch"], len(classes))
    except (tarfile.TarError, EOFError, zlib.error, OSError, pickle.UnpicklingError, KeyError, ValueError,
            TypeError, AttributeError) as e:
        raise BenchError(f"{path} is truncated or corrupt, or not a CIFAR-10 python archive ({e}). Delete it "
                         f"and fetch it again (bench data fetch cifar10), or copy a good copy over it.") from e
    train = Split(np.concatenate([b.images for b in batches]), np.concatenate([b.labels for b in batches]))
    return train, test, classes
