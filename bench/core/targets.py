"""What reaching a target means, whatever the metric: one rule for the loop, the summary and verify.

A target names its metric and the direction that is better: `max` (test accuracy, is_judge) is reached at
or above the value, `min` (fd_judge, kid_judge) at or below it. Torch-free, so readers of bundles share it."""
from __future__ import annotations

from typing import Optional


def reaches(value: float, target: float, mode: str = "max") -> bool:
    return value >= target if mode == "max" else value <= target


def best(values, mode: str = "max") -> Optional[float]:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return max(values) if mode == "max" else min(values)


def relation(mode: str) -> str:
    return ">=" if mode == "max" else "<="
