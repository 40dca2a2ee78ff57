"""Data sources on tiny data built here: the official-format archive (served over local HTTP to test
download, resume and checksums), image folders as directories and archives, the decode cache, and
`bench data info` / `fetch` with their error messages."""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.data import cifar, folder
from bench.data.cifar import default_data_dir, fetch_cifar10, load_cifar10_archive
from bench.cli import build_parser
from bench.data.sources import describe, load_dataset
from bench.core.errors import BenchError

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_BATCH = 20


# ---------------------------------------------------------------- official format


def _add(tf: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tf.addfile(info, io.BytesIO(payload))


def _batch(planar: np.ndarray, labels: np.ndarray, **extra) -> bytes:
    # Protocol 2 with bytes keys, as close as Python 3 gets to the official Python 2 pickles.
    return pickle.dumps({b"batch_label": b"test", b"labels": labels.tolist(), b"data": planar, **extra},
                        protocol=2)


def build_cifar_archive(path: Path, seed: int = 0, test_batch: bytes | None = None) -> dict:
    """The official layout with 5 x PER_BATCH train and PER_BATCH test images; returns the planar rows."""
    rng = np.random.default_rng(seed)
    rows = {n: rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8)
            for n in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]}
    labels = {n: rng.integers(0, 10, PER_BATCH) for n in rows}
    with tarfile.open(path, "w:gz") as tf:
        d = tarfile.TarInfo("cifar-10-batches-py")
        d.type = tarfile.DIRTYPE
        tf.addfile(d)
        meta = {b"label_names": [c.encode() for c in CIFAR_CLASSES], b"num_cases_per_batch": PER_BATCH}
        _add(tf, "cifar-10-batches-py/batches.meta", pickle.dumps(meta, protocol=2))
        for n in rows:
            payload = test_batch if (n == "test_batch" and test_batch) else _batch(rows[n], labels[n])
            _add(tf, f"cifar-10-batches-py/{n}", payload)
    return {"rows": rows, "labels": labels}


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    path = tmp_path_factory.mktemp("cifar") / "cifar-10-python.tar.gz"
    built = build_cifar_archive(path)
    raw = path.read_bytes()
    return {"path": path, "bytes": raw, "md5": hashlib.md5(raw).hexdigest(),
            "sha256": hashlib.sha256(raw).hexdigest(), **built}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        srv, body = self.server, self.server.body
        rng = self.headers.get("Range")
        srv.ranges.append(rng)
        start = int(rng.removeprefix("bytes=").split("-")[0]) if rng and srv.honour_range else None
        if start is None:
            self.send_response(200)
        elif start >= len(body):
            self.send_response(416)
            self.end_headers()
            return
        else:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            body = body[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(archive):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.body, srv.ranges, srv.honour_range = archive["bytes"], [], True
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/cifar-10-python.tar.gz"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def _fetch(archive, server, data_dir, **kw):
    return fetch_cifar10(data_dir, url=server.url, md5=archive["md5"], sha256=archive["sha256"], **kw)


def test_fetch_downloads_verifies_and_keeps(archive, server, tmp_path, capsys):
    path = _fetch(archive, server, tmp_path / "data", progress=True)
    assert path == tmp_path / "data" / "cifar-10-python.tar.gz"
    assert path.read_bytes() == archive["bytes"]
    assert not path.with_name(path.name + ".part").exists()
    assert "MB" in capsys.readouterr().err  # plain progress lines, stderr is not a terminal here
    _fetch(archive, server, tmp_path / "data", progress=False)
    assert server.ranges == [None]  # the valid archive was not downloaded again


def test_fetch_resumes_partial_download(archive, server, tmp_path):
    half = len(archive["bytes"]) // 2
    (tmp_path / "cifar-10-python.tar.gz.part").write_bytes(archive["bytes"][:half])
    path = _fetch(archive, server, tmp_path, progress=False)
    assert server.ranges == [f"bytes={half}-"]
    assert path.read_bytes() == archive["bytes"]


def test_fetch_restarts_when_server_ignores_range(archive, server, tmp_path):
    server.honour_range = False
    # Garbage, so that appending the full body to it could not pass the checksum.
    (tmp_path / "cifar-10-python.tar.gz.part").write_bytes(b"x" * 1000)
    path = _fetch(archive, server, tmp_path, progress=False)
    assert server.ranges == ["bytes=1000-"]
    assert path.read_bytes() == archive["bytes"]


@pytest.mark.parametrize("left_over", ["bad archive", "complete part", "foreign part"])
def test_fetch_recovers_from_left_overs(archive, server, tmp_path, left_over):
    body, half = archive["bytes"], len(archive["bytes"]) // 2
    if left_over == "bad archive":
        (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"y" * 10)
        expected = [None]
    elif left_over == "complete part":  # e.g. killed between download and rename: the server answers 416
        (tmp_path / "cifar-10-python.tar.gz.part").write_bytes(body)
        expected = [f"bytes={len(body)}-"]
    else:  # a .part of some other file: resuming fails the checksum, so one clean download follows
        (tmp_path / "cifar-10-python.tar.gz.part").write_bytes(b"z" * half)
        expected = [f"bytes={half}-", None]
    assert _fetch(archive, server, tmp_path, progress=False).read_bytes() == body
    assert server.ranges == expected


def test_fetch_checksum_mismatch_leaves_nothing(archive, server, tmp_path):
    with pytest.raises(BenchError) as e:
        fetch_cifar10(tmp_path, url=server.url, md5="0" * 32, sha256=archive["sha256"], progress=False)
    assert "0" * 32 in str(e.value) and archive["md5"] in str(e.value)
    assert not (tmp_path / "cifar-10-python.tar.gz").exists()
    assert not (tmp_path / "cifar-10-python.tar.gz.part").exists()


def test_fetch_without_network_explains_manual_placement(tmp_path):
    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BenchError) as e:
        fetch_cifar10(tmp_path, url=f"http://127.0.0.1:{port}/x.tar.gz", progress=False)
    msg = str(e.value)
    assert str(tmp_path / "cifar-10-python.tar.gz") in msg and "--data" in msg
    assert cifar.OFFICIAL_SHA256 in msg
    # the offline alternative shipped in the repository, and the target that fits it
    assert "--data data/cifar10-jpeg-q75.tar.xz --set target.value=0.907" in msg


def test_load_archive_converts_planar_rows_to_hwc(archive):
    train, test, classes = load_cifar10_archive(archive["path"])
    assert classes == CIFAR_CLASSES
    rows = np.concatenate([archive["rows"][f"data_batch_{i}"] for i in range(1, 6)])
    assert train.images.shape == (5 * PER_BATCH, 32, 32, 3) and test.images.shape == (PER_BATCH, 32, 32, 3)
    for c in range(3):  # channel c of every pixel is the c-th block of 1024 values, row-major
        assert np.array_equal(train.images[..., c].reshape(-1, 1024), rows[:, c * 1024:(c + 1) * 1024])
        assert np.array_equal(test.images[..., c].reshape(-1, 1024),
                              archive["rows"]["test_batch"][:, c * 1024:(c + 1) * 1024])
    assert train.images[0, 1, 2, 1] == rows[0, 1024 + 1 * 32 + 2]  # G at row 1, column 2
    assert np.array_equal(test.labels, archive["labels"]["test_batch"]) and test.labels.dtype == np.int64


def test_load_truncated_archive_says_refetch(archive, tmp_path):
    cut = tmp_path / "cifar-10-python.tar.gz"
    cut.write_bytes(archive["bytes"][: len(archive["bytes"]) // 2])
    with pytest.raises(BenchError, match="fetch it again") as e:
        load_cifar10_archive(cut)
    assert str(cut) in str(e.value)


class _RunsCode:
    def __reduce__(self):
        return os.getcwd, ()


def test_archive_pickle_cannot_call_arbitrary_functions(tmp_path):
    path = tmp_path / "evil.tar.gz"
    build_cifar_archive(path, test_batch=pickle.dumps({b"data": _RunsCode()}, protocol=2))
    with pytest.raises(BenchError, match="refusing to load"):
        load_cifar10_archive(path)


def test_sources_name_official_only_by_checksum(archive, tmp_path, monkeypatch):
    ds = load_dataset(str(archive["path"]), data_dir=tmp_path, progress=False)
    assert ds.identity.name == "cifar10-format:cifar-10-python.tar.gz"
    assert ds.identity.train_per_class and sum(ds.identity.train_per_class) == 5 * PER_BATCH
    monkeypatch.setattr(cifar, "OFFICIAL_SHA256", archive["sha256"])
    monkeypatch.setattr(cifar, "OFFICIAL_MD5", archive["md5"])
    assert load_dataset(str(archive["path"]), data_dir=tmp_path).identity.name == "cifar10"
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(archive["bytes"])  # placed by hand: no download
    official = load_dataset("cifar10", data_dir=tmp_path, progress=False)
    assert official.identity.name == "cifar10" and official.identity.fingerprint == ds.identity.fingerprint


def test_default_data_dir_env(monkeypatch, tmp_path):
    monkeypatch.delenv("BENCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "bench" / "data"
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "b"))
    assert default_data_dir() == tmp_path / "b"


# ---------------------------------------------------------------- image folders


def make_folder(root: Path, layout: dict, size=(8, 6), seed=0) -> dict:
    """PNG (lossless) images at root/<split>/<class>/<name>; returns {(split, class, name): HWC array}."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, classes in layout.items():
        for cls, names in classes.items():
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for name in names:
                a = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(a).save(root / split / cls / name)
                written[(split, cls, name)] = a
    return written


# Names written out of order: loading must sort them.
LAYOUT = {"train": {"dog": ["b.png", "a.png"], "cat": ["2.png", "1.png", "3.png"]},
          "test": {"cat": ["x.png"], "dog": ["y.png", "w.png"]}}


def _tar(src: Path, out: Path, wrap: str | None = None, mode="w:xz") -> Path:
    with tarfile.open(out, mode) as tf:
        for split in ("train", "test"):
            tf.add(src / split, arcname=f"{wrap}/{split}" if wrap else split)
    return out


def _cli(argv):
    args = build_parser().parse_args(argv)
    return args.func(args)


def test_folder_pixels_labels_and_order(tmp_path):
    written = make_folder(tmp_path / "imgs", LAYOUT)
    ds = load_dataset(str(tmp_path / "imgs"), data_dir=tmp_path / "d", progress=False)
    assert ds.identity.classes == ("cat", "dog") and ds.identity.name == "imagefolder:imgs"
    order = [("cat", "1.png"), ("cat", "2.png"), ("cat", "3.png"), ("dog", "a.png"), ("dog", "b.png")]
    assert np.array_equal(ds.train.images, np.stack([written[("train", *k)] for k in order]))
    assert ds.train.labels.tolist() == [0, 0, 0, 1, 1]
    assert np.array_equal(ds.test.images[1], written[("test", "dog", "w.png")])
    assert (ds.identity.train_per_class, ds.identity.test_per_class) == ((3, 2), (1, 2))


def test_archive_matches_directory_and_caches(tmp_path, monkeypatch):
    make_folder(tmp_path / "imgs", LAYOUT)
    direct = load_dataset(str(tmp_path / "imgs"), data_dir=tmp_path / "d", progress=False)
    packed = _tar(tmp_path / "imgs", tmp_path / "small-set.tar.xz", wrap="small-set")
    first = load_dataset(str(packed), data_dir=tmp_path / "d", progress=False)
    assert first.identity.name == "imagefolder:small-set"
    assert first.identity.fingerprint == direct.identity.fingerprint
    cache = tmp_path / "d" / "decoded" / f"{hashlib.sha256(packed.read_bytes()).hexdigest()}.npz"
    assert cache.exists() and not list(cache.parent.glob("*.tmp"))

    def no_decoding(name, raw):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(folder, "_decode", no_decoding)
    again = load_dataset(str(packed), data_dir=tmp_path / "d", progress=False)
    assert again.identity == first.identity and np.array_equal(again.train.images, first.train.images)

    cache.write_bytes(b"not an npz")  # a broken cache is rebuilt, not trusted
    monkeypatch.undo()
    rebuilt = load_dataset(str(packed), data_dir=tmp_path / "d", progress=False)
    assert rebuilt.identity == first.identity and folder._read_cache(cache) is not None


def test_relative_paths_try_cwd_then_base_dir(tmp_path, monkeypatch):
    make_folder(tmp_path / "repo" / "imgs", LAYOUT)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    ds = load_dataset("imgs", data_dir=tmp_path / "d", base_dir=tmp_path / "repo", progress=False)
    assert ds.identity.name == "imagefolder:imgs"
    with pytest.raises(BenchError) as e:
        load_dataset("nope", data_dir=tmp_path / "d", base_dir=tmp_path / "repo")
    assert "'nope'" in str(e.value) and str(tmp_path / "elsewhere" / "nope") in str(e.value)
    assert str(tmp_path / "repo" / "nope") in str(e.value)


def test_info_prints_and_writes_json(tmp_path, capsys):
    make_folder(tmp_path / "imgs", LAYOUT)
    out = tmp_path / "out" / "identity.json"
    assert _cli(["data", "info", str(tmp_path / "imgs"), "--json", str(out), "--data-dir", str(tmp_path / "d")]) == 0
    printed = capsys.readouterr().out
    info = json.loads(out.read_text())
    assert info == describe(load_dataset(str(tmp_path / "imgs"), data_dir=tmp_path / "d").identity)
    assert info["counts"] == {"train": 5, "test": 3} and info["per_class"]["train"] == {"cat": 3, "dog": 2}
    assert "imagefolder:imgs" in printed and info["fingerprint"] in printed
    assert any(line.split() == ["cat", "3", "1"] for line in printed.splitlines())


def test_fetch_command_prints_path(archive, server, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cifar, "OFFICIAL_SHA256", archive["sha256"])
    monkeypatch.setattr(cifar, "OFFICIAL_MD5", archive["md5"])
    assert _cli(["data", "fetch", "cifar10", "--data-dir", str(tmp_path), "--url", server.url]) == 0
    assert str(tmp_path / "cifar-10-python.tar.gz") in capsys.readouterr().out


@pytest.mark.parametrize("case, expected", [
    ("no images", "No images found"),
    ("class mismatch", "['cat', 'dog']"),
    ("unreadable", "broken.jpg"),
    ("sizes differ", "4x4"),
    ("truncated", "truncated or corrupt"),
])
def test_info_errors(tmp_path, case, expected):
    src = tmp_path / "imgs"
    if case == "no images":
        (src / "train" / "cat").mkdir(parents=True)
        (src / "test" / "cat").mkdir(parents=True)
        (src / "train" / "cat" / "notes.txt").write_text("not an image")
    elif case == "class mismatch":
        make_folder(src, {"train": {"cat": ["a.png"], "dog": ["b.png"]}, "test": {"cat": ["c.png"], "cow": ["d.png"]}})
    elif case == "unreadable":
        make_folder(src, LAYOUT)
        (src / "train" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8 garbage, not a JPEG")
    elif case == "sizes differ":
        make_folder(src, LAYOUT)
        make_folder(src, {"test": {"dog": ["z.png"]}}, size=(4, 4))
    else:
        make_folder(src, LAYOUT)
        whole = _tar(src, tmp_path / "whole.tar.xz").read_bytes()
        src = tmp_path / "cut.tar.xz"
        src.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(BenchError, match=None) as e:
        _cli(["data", "info", str(src), "--data-dir", str(tmp_path / "d")])
    assert expected in str(e.value)
    if case == "class mismatch":
        assert "['cat', 'cow']" in str(e.value)
    if case in ("unreadable", "truncated"):
        assert str(src) in str(e.value)


def test_terminal_progress_bar_goes_to_stderr(monkeypatch, capsys):
    monkeypatch.setattr(cifar.sys.stderr, "isatty", lambda: True)
    bar = cifar._Progress("x.tar.gz", 1000, 500, enabled=True)
    bar.update(500)
    bar.close()
    out = capsys.readouterr()
    assert bar.bar is not None and out.out == ""
    # the bar itself, in its final state (rich draws it once more as it stops, then clears it: transient)
    assert "x.tar.gz" in out.err and "1.0/1.0 kB" in out.err, out.err


def test_worker_processes_give_the_same_arrays_and_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(folder, "_BATCH", 2)  # so that these few images still go to worker processes
    make_folder(tmp_path / "imgs", LAYOUT)
    inline = folder.decode_image_folder(tmp_path / "imgs", workers=1)
    pooled = folder.decode_image_folder(tmp_path / "imgs", workers=2)
    assert np.array_equal(inline[0].images, pooled[0].images) and np.array_equal(inline[1].labels, pooled[1].labels)
    (tmp_path / "imgs" / "test" / "dog" / "bad.png").write_bytes(b"garbage")
    with pytest.raises(BenchError, match="bad.png"):
        folder.decode_image_folder(tmp_path / "imgs", workers=2)
