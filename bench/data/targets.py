"""Calibrated targets: what an official-CIFAR-10 target (94%) means on another data set (bench/data/targets.yaml).

A recipe whose data source is the official set and that runs on other data (the embedded JPEG copy, say)
gets one warning before training: its target was meant for other data, and here is the `--set` that fits.
The target itself is never changed: the user decides."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Optional

import yaml

from bench.data.types import DatasetIdentity

TABLE = Path(__file__).with_name("targets.yaml")
OFFICIAL = "cifar10"
OFFLINE_COPY = "data/cifar10-jpeg-q75.tar.xz"


@lru_cache(maxsize=1)
def calibrations() -> list[dict]:
    return yaml.safe_load(TABLE.read_text(encoding="utf-8")) or []


def equivalent(identity: DatasetIdentity, official_target: float) -> Optional[dict]:
    """The calibration row for this data set and target, matched by content fingerprint (a name proves nothing)."""
    return next((c for c in calibrations() if c["fingerprint"] == identity.fingerprint
                 and abs(c["official_target"] - official_target) < 1e-9), None)


def offline_hint(official_target: float = 0.94) -> str:
    """What to do without network: the embedded copy and the target that fits it."""
    row = next((c for c in calibrations() if abs(c["official_target"] - official_target) < 1e-9), None)
    fit = f" --set target.value={row['equivalent']:g}" if row else ""
    return (f"Offline, the repository's own lossy JPEG copy of CIFAR-10 works instead (not official CIFAR-10: "
            f"lower targets): --data {OFFLINE_COPY}{fit}.")


def target_warning(recipe_source: str, target: float, identity: DatasetIdentity) -> Optional[str]:
    """One line when a recipe written for official CIFAR-10 runs on other data; None otherwise."""
    if recipe_source != OFFICIAL or identity.name == OFFICIAL:
        return None
    row = equivalent(identity, target)
    if row is None:
        return (f"warning: this recipe's target {target:.2%} was set for official CIFAR-10 but the run uses "
                f"{identity.name} ({identity.short}); no calibration for it in {TABLE.name}: choose a target "
                f"that fits with --set target.value=...")
    return (f"warning: this recipe's target {target:.2%} was set for official CIFAR-10 but the run uses "
            f"{identity.name} ({identity.short}), where the calibrated equivalent is {row['equivalent']:.2%} "
            f"(see {TABLE.name}); to race that: --set target.value={row['equivalent']:g}. The target stays "
            f"{target:.2%} unless you change it.")
