"""Shared fixtures. Real-data tests use the lossy JPEG copy of CIFAR-10 that ships inside the repository
(data/, see data/README.md); it is never labelled official CIFAR-10 (its fingerprint differs)."""
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
JPEG_ARCHIVE = REPO / "data" / "cifar10-jpeg-q75.tar.xz"


@pytest.fixture(scope="session")
def jpeg_archive() -> Path:
    # Shipped in the repository: a missing file is a broken checkout, never a reason to skip.
    assert JPEG_ARCHIVE.is_file(), f"{JPEG_ARCHIVE} is missing: the repository ships it (data/README.md)"
    return JPEG_ARCHIVE


@pytest.fixture(scope="session", autouse=True)
def shared_data_cache(tmp_path_factory):
    """One decoded-data cache for the whole session, so the 60k JPEGs are decoded once, not per test."""
    if "BENCH_DATA" not in os.environ:
        os.environ["BENCH_DATA"] = str(tmp_path_factory.mktemp("bench-data"))
    yield


@pytest.fixture(scope="session")
def decoded_jpeg(jpeg_archive, shared_data_cache) -> Path:
    """The JPEG archive, decoded once into the session's cache here, so that the ranks of a job started
    later read the cache instead of each decoding the 60k images at the same time."""
    from bench.core.paths import data_base_dir
    from bench.data.sources import load_dataset

    load_dataset(str(jpeg_archive), base_dir=data_base_dir(), progress=False)
    return jpeg_archive


@pytest.fixture(scope="session")
def slurm_session():
    """A one-node SLURM cluster of the session's own (tests/slurm_cluster.py), started on first use and
    stopped at the end, failed tests included; nothing it started is left running."""
    from slurm_cluster import SlurmCluster

    cluster = SlurmCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def slurm_cluster(slurm_session):
    """The session's cluster, with every job cancelled after the test: a failed test must not leave an
    endless job holding the node for the next one."""
    yield slurm_session
    slurm_session.cancel_all()


@pytest.fixture(scope="session")
def tiny_images(tmp_path_factory) -> Path:
    """An image folder of random 32x32 PNGs in two classes, 32 training and 16 test images: real data for
    tests that need a whole `bench run` but not learning (it decodes in well under a second)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("tiny-images")
    rng = np.random.default_rng(0)
    for split, n in (("train", 16), ("test", 8)):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / split / cls / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def hand_bundle(tmp_path_factory) -> Path:
    """A one-run hand-made bundle (tests/bundles.py) that verifies; tests copy it before any edit."""
    from bundles import RUNS, bench, make_bundle

    b = make_bundle(tmp_path_factory.mktemp("hand"), RUNS[:1])
    assert bench("verify", b) == 0  # unedited, it verifies: each problem a test finds comes from its one edit
    return b


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server of the session's own (tests/postgres_server.py), started on first use and stopped at
    the end, failed tests included: the SQLAlchemy URL of its fresh database (no password: trust auth)."""
    from postgres_server import PostgresServer

    server = PostgresServer()
    try:
        yield server.start().url
    finally:
        server.stop()
