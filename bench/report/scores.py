"""A results row's target metric and the direction that is better, for readers of tables (compare, history,
the site): one rule, so a lower-is-better score (fd_judge) never sorts as if higher were better.

Rows written before targets named their metric carry no `metric`: they are classifiers (test_acc). A score's
direction comes from the schema's METRICS (bench.recipe.schema), the same table recipes are validated by.
"""
from __future__ import annotations

from bench.recipe.schema import METRICS

DEFAULT = "test_acc"


def metric_of(row: dict) -> str:
    """The row's target metric: its `metric` column, test_acc when the row predates the column."""
    return row.get("metric") or DEFAULT


def mode_of(metric: str) -> str:
    """'max' when higher is better (test_acc, is_judge), 'min' when lower is (fd_judge, kid_judge)."""
    return METRICS.get(metric, ("max",))[0]


def best_score(row: dict):
    """The best value a run reached on its target metric: best_acc for test_acc, else best_metric."""
    metric = metric_of(row)
    return row.get("best_acc") if metric == DEFAULT else row.get("best_metric")


def best_of(values, mode: str):
    """The best of `values` (None left out) in the metric's direction; None when there is none."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return max(vals) if mode == "max" else min(vals)


def better_first(value, mode: str) -> tuple:
    """A sort key that puts the better score first whatever the direction, unknown scores last."""
    if value is None:
        return (1, 0.0)
    return (0, -value if mode == "max" else value)


def target_text(metric: str, target) -> str:
    """'time to 94.00%' for accuracy, 'time to fd_judge ≤ 250' for a score."""
    if target is None:
        return "no target"
    if metric == DEFAULT:
        return f"time to {target:.2%}"
    return f"time to {metric} {'≥' if mode_of(metric) == 'max' else '≤'} {target:g}"


def score_text(metric: str, value) -> str:
    if value is None:
        return "–"
    return f"{value:.2%}" if metric == DEFAULT else f"{value:.4g}"
