"""Targets meant for official CIFAR-10 are flagged, with the calibrated `--set`, when a run uses other data."""
import pytest

from bench.data.targets import TABLE, calibrations, equivalent, target_warning
from bench.data.types import DatasetIdentity

JPEG_FINGERPRINT = "9aeb3f367b77129a46cbcc6322f73b0d9a9590222c0574394b7a3bccd8fc75ba"


def identity(name, fingerprint):
    return DatasetIdentity(name, fingerprint, tuple("abcdefghij"), 50000, 10000)


def test_table_rows_carry_a_source_and_a_lower_target():
    rows = calibrations()
    assert rows, TABLE
    for row in rows:
        assert row["source"].strip() and len(row["fingerprint"]) == 64
        assert 0 < row["equivalent"] < row["official_target"] <= 1


def test_jpeg_copy_gets_the_calibrated_set():
    jpeg = identity("imagefolder:cifar10-jpeg-q75", JPEG_FINGERPRINT)
    line = target_warning("cifar10", 0.94, jpeg)
    assert "--set target.value=0.907" in line and "official CIFAR-10" in line and "94.00%" in line
    assert equivalent(jpeg, 0.94)["equivalent"] == pytest.approx(0.907)


def test_matching_is_by_fingerprint_not_name():
    renamed = identity("imagefolder:cifar10-jpeg-q75", "0" * 64)
    line = target_warning("cifar10", 0.94, renamed)
    assert "no calibration" in line and "--set target.value" in line


def test_no_warning_on_official_data_or_for_recipes_written_for_other_data():
    official = identity("cifar10", "1" * 64)
    assert target_warning("cifar10", 0.94, official) is None
    jpeg = identity("imagefolder:cifar10-jpeg-q75", JPEG_FINGERPRINT)
    assert target_warning("data/cifar10-jpeg-q75.tar.xz", 0.80, jpeg) is None
