"""Tuned results side by side: `bench compare --tuned` and the site's tuned boards.

A tuned result (bench.report.tuned) is ranked only against other tuned results on the same board (the device,
the data's fingerprint and the target its trials ran on) and at the same budget, never against single-setting
rows: "time to target at equal tuning budget (K trials x S studies)", with the tuning cost beside it. Where the
same recipes are tuned on more than one board, AlgoPerf's performance profile says on what share of boards each
recipe is within a factor tau of the best (bench.core.tuning.performance_profile).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, Optional

from bench.core.results import read_dicts
from bench.core.tuning import performance_profile

TAUS = [1 + 0.05 * i for i in range(61)]  # 1.00 to 4.00, as AlgoPerf plots them


def find(dirs: list[Path]) -> list[Path]:
    """Every finished tuned bundle under `dirs` (a folder holding tune.json; half-written ones are skipped)."""
    found = set()
    for d in dirs:
        for p in Path(d).rglob("tune.json"):
            if not p.parent.name.endswith(".partial"):
                found.add(p.parent)
    return sorted(found)


def entry(bundle: Path) -> Optional[dict]:
    """What a board shows of a tuned bundle; None for one that cannot be read."""
    try:
        tune = json.loads((bundle / "tune.json").read_text())
        s = json.loads((bundle / "score.json").read_text())
        rows = read_dicts(bundle / "rows.csv", strict=False)
    except (OSError, ValueError):
        return None
    first = rows[0] if rows else {}
    values = {}
    if s.get("winner") is not None:
        for t in read_dicts(bundle / "trials.csv", strict=False):
            if int(t["study"]) == s["winner"]["study"] and int(t["trial"]) == s["winner"]["trial"]:
                values = {k[len("value."):]: json.loads(v) for k, v in t.items() if k.startswith("value.")}
    board = (first.get("device_name") or "?", first.get("dataset") or "?", first.get("dataset_fingerprint") or "",
             first.get("target") or "?")
    return {"bundle": bundle, "recipe": tune["recipe"], "board": board, "budget": (tune["trials"], tune["studies"]),
            "sampler": tune["sampler"], "score_s": s["score_s"] if s.get("reached") else math.inf,
            "device_hours": s["device_hours"], "cost_usd": s.get("cost_usd"), "trials_run": s["trials_run"],
            "winner": values, "studies": s["studies"]}


def boards(entries: list[dict]) -> dict[tuple, list[dict]]:
    """Entries grouped by board and budget, each list fastest first (not reached last)."""
    out: dict[tuple, list[dict]] = {}
    for e in entries:
        out.setdefault((*e["board"], *e["budget"]), []).append(e)
    return {k: sorted(v, key=lambda e: (e["score_s"], e["recipe"])) for k, v in sorted(out.items(), key=str)}


def board_title(key: tuple) -> str:
    device, dataset, fingerprint, target, trials, studies = key
    t = f"{float(target):.2%}" if target not in ("?", None) else "?"
    return (f"time to {t} at equal tuning budget ({trials} trials x {studies} studies) — {dataset} "
            f"({fingerprint[:12]}), {device}")


def _winner(values: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(values.items())) or "–"


def cells(members: list[dict]) -> list[list[str]]:
    out = []
    for i, e in enumerate(members, 1):
        reached = math.isfinite(e["score_s"])
        out.append([str(i) if reached else "-", e["recipe"], f"{e['score_s']:.1f} s" if reached else "not reached",
                    " ".join("-" if s["best_s"] is None else f"{s['best_s']:.1f}" for s in e["studies"]),
                    f"{e['device_hours']:.3f}", "-" if e["cost_usd"] is None else f"${e['cost_usd']:.2f}",
                    str(e["trials_run"]), _winner(e["winner"])])
    return out


HEADER = ["rank", "recipe", "tuned time", "per study (s)", "tuning device-h", "tuning $", "trial runs", "winning setting"]


def profiles(entries: list[dict]) -> Optional[dict[str, list[float]]]:
    """The performance profile over boards, where some recipe is tuned on more than one; else None."""
    by_board: dict[str, dict[str, float]] = {}
    for key, members in boards(entries).items():
        by_board[board_title(key)] = {e["recipe"]: e["score_s"] for e in members}
    names = [n for scores in by_board.values() for n in scores]
    if len(by_board) < 2 or len(set(names)) == len(names):
        return None
    return performance_profile(by_board, TAUS)


def profile_plot(prof: dict[str, list[float]], path: Path) -> Path:
    from bench.report.plots import default_style, figure, save

    with default_style():
        fig = figure((7, 4.5))
        ax = fig.subplots()
        for name, shares in sorted(prof.items()):
            ax.step(TAUS, shares, where="post", label=name)
        ax.set_xlim(1, 4)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("tau: within this factor of the board's best tuned time")
        ax.set_ylabel("share of boards")
        ax.set_title("performance profile of tuned results (AlgoPerf's form)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
        save(fig, path)
    return path


def run(dirs: list[Path], plot: Optional[Path], say: Callable[[str], None] = print) -> int:
    """`bench compare --tuned`: a table per board, the profile where it applies."""
    from bench.core.tables import print_table

    entries = [e for e in (entry(b) for b in find(dirs)) if e is not None]
    if not entries:
        say(f"no tuned results under {', '.join(map(str, dirs))}: run `bench tune RECIPE|FAMILY` first")
        return 1
    for key, members in boards(entries).items():
        print_table(board_title(key), HEADER, cells(members), left=2, say=say,
                    note="tuned results only: never ranked with single-setting rows (bench compare without --tuned)")
    prof = profiles(entries)
    if prof is not None and plot is not None:
        say(f"wrote {profile_plot(prof, plot)}")
    return 0
