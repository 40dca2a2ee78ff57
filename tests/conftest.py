"""Shared fixtures. Real-data tests use the lossy JPEG copy of CIFAR-10 that ships beside the repository
(../shared/data); it is never labelled official CIFAR-10 (its fingerprint differs)."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
JPEG_ARCHIVE = REPO.parent / "shared" / "data" / "cifar10-jpeg-q75.tar.xz"


@pytest.fixture(scope="session")
def jpeg_archive() -> Path:
    if not JPEG_ARCHIVE.is_file():
        pytest.skip(f"real-data test needs {JPEG_ARCHIVE}")
    return JPEG_ARCHIVE


@pytest.fixture(scope="session", autouse=True)
def shared_data_cache(tmp_path_factory):
    """One decoded-data cache for the whole session, so the 60k JPEGs are decoded once, not per test."""
    if "BENCH_DATA" not in os.environ:
        os.environ["BENCH_DATA"] = str(tmp_path_factory.mktemp("bench-data"))
    yield
