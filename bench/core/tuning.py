"""The score of a tuned recipe and what the tuning cost: AlgoPerf's external-tuning rule on plain records.

    study score   the fastest trial of the study that reached the target; a study none reached is infinite
    recipe score  the median over studies (an infinite study counts in the median: "not reached" when the
                  median itself is infinite)
    winner        the fastest trial of the median study (the upper one of two for an even count): the setting
                  the score stands for, written out as a recipe
    cost          device-hours (and dollars, where every trial is priced) of every trial that ran: reached,
                  missed, failed, pruned, and aborted ones (which are run again) included

A trial record is a plain mapping (bench.studies.tune writes them, the tuned bundle keeps them as trials.csv):
study, trial, state, status, time_to_target_s, device_hours, cost_usd. `state` is how the tune counts it:

    complete  the run ended (reached, missed or failed): one of the study's trials
    pruned    stopped by --prune once it could no longer win its study: one of the study's trials
    aborted   interrupted (Ctrl-C, SIGTERM, a dead process): not counted, run again with the same values
"""
from __future__ import annotations

import math
import statistics
from typing import Iterable, Optional

STATES = ("complete", "pruned", "aborted")
COUNTED = ("complete", "pruned")  # states that use up one of a study's trials


def _time(record: dict) -> float:
    t = record.get("time_to_target_s")
    ok = record.get("state") == "complete" and record.get("status") == "reached" and t is not None
    return float(t) if ok and math.isfinite(float(t)) else math.inf


def study_best(records: Iterable[dict]) -> tuple[float, Optional[dict]]:
    """(fastest time to target, its trial) among one study's trials; (inf, None) when none reached."""
    best, which = math.inf, None
    for r in sorted(records, key=lambda r: int(r["trial"])):  # a tie goes to the earlier trial
        t = _time(r)
        if t < best:
            best, which = t, r
    return best, which


def score(records: list[dict], studies: int) -> dict:
    """The tuned result of one recipe from all its trial records (any order)."""
    per_study = []
    for k in range(studies):
        best, trial = study_best(r for r in records if int(r["study"]) == k)
        per_study.append({"study": k, "best_s": best, "trial": None if trial is None else int(trial["trial"])})
    times = [s["best_s"] for s in per_study]
    median = statistics.median(times) if times else math.inf
    order = sorted(per_study, key=lambda s: (s["best_s"], s["study"]))
    middle = order[len(order) // 2] if order else None  # the upper median for an even count
    winner = None
    if middle is not None and math.isfinite(middle["best_s"]):
        winner = next(r for r in records if int(r["study"]) == middle["study"] and int(r["trial"]) == middle["trial"])
    return {"score_s": median, "reached": math.isfinite(median), "studies": per_study,
            "winner": None if winner is None else {"study": int(winner["study"]), "trial": int(winner["trial"])},
            **cost(records)}


def cost(records: list[dict]) -> dict:
    """Device-hours and dollars of every trial that ran. Dollars only where each trial has a price: one
    unknown price makes the total unknown, never a smaller number."""
    hours = sum(float(r.get("device_hours") or 0.0) for r in records)
    dollars = [r.get("cost_usd") for r in records]
    priced = all(d is not None and not (isinstance(d, float) and math.isnan(d)) for d in dollars)
    return {"trials_run": len(records), "device_hours": hours,
            "cost_usd": sum(float(d) for d in dollars) if priced and dollars else None}


def counted(records: Iterable[dict], study: int) -> int:
    return sum(1 for r in records if int(r["study"]) == study and r.get("state") in COUNTED)


def performance_profile(boards: dict[str, dict[str, float]], taus: Iterable[float]) -> dict[str, list[float]]:
    """AlgoPerf's performance profile: for each recipe, the share of boards on which its score is within a
    factor tau of the board's best. `boards` maps a board to {recipe: score_s} (inf where not reached); a
    board nobody reached says nothing and is left out. Returns {recipe: [share at each tau]}."""
    taus = list(taus)
    recipes = sorted({name for scores in boards.values() for name in scores})
    usable = {b: s for b, s in boards.items() if any(math.isfinite(v) for v in s.values())}
    out = {}
    for name in recipes:
        ratios = []
        for scores in usable.values():
            best = min(v for v in scores.values() if math.isfinite(v))
            ratios.append(scores.get(name, math.inf) / best)
        out[name] = [sum(r <= tau for r in ratios) / len(ratios) if ratios else 0.0 for tau in taus]
    return out
