"""The site's tuned boards: results of `bench tune`, apart from single-setting rows and never ranked with them.

    out/tuned/<tuned bundle>/index.html             its report.md, its files, a link to every trial's bundle
    out/tuned/<tuned bundle>/trials/<bundle>/       a copy of each trial's report bundle, linked by its report.md
                                                    (dozens per tune: files to read, not pages of their own)
    out/tuned/profile.png                           the performance profile, where recipes are tuned on 2+ boards

The index lists one table per board and budget (bench.report.tuned_board), each recipe linking to its page.
"""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

from bench.report import tuned, tuned_board
from bench.site import render

DEFAULT = Path("results/tuning")


def _trial_bundles(tuned_dir: Path) -> dict[str, Path]:
    """{run id: the trial's report bundle} from the tune folder the tuned bundle sits in (<dir>/trials)."""
    trials = tuned_dir.parent.parent / "trials"
    out = {}
    if trials.is_dir():
        for run in trials.glob("*/runs/*"):
            out[run.name] = run.parent.parent
    return out


def write(out: Path, dirs: list[Path]) -> list[dict]:
    """Write every tuned bundle's page under out/tuned/; returns the index's boards (title, rows)."""
    entries = [e for e in (tuned_board.entry(b) for b in tuned_board.find(dirs)) if e is not None]
    for e in entries:
        src, dest = e["bundle"], out / "tuned" / e["bundle"].name
        shutil.copytree(src, dest)
        problems = tuned.verify(src)
        by_run = _trial_bundles(src)
        with open(src / "trials.csv", newline="", encoding="utf-8") as f:
            trials = list(csv.DictReader(f))
        for t in trials:
            b = by_run.get(t.get("run_id") or "")
            if b is not None and not (dest / "trials" / b.name).exists():
                shutil.copytree(b, dest / "trials" / b.name)
            t["href"] = f"trials/{b.name}/report.md" if b is not None and (b / "report.md").is_file() else None
        files = [{"name": p.name, "href": p.name} for p in sorted(dest.iterdir()) if p.is_file()]
        text = (src / "report.md").read_text(encoding="utf-8")
        render.page("tuned.html", dest / "index.html", root="../../", title=f"{e['recipe']}: tuned",
                    name=e["bundle"].name, body_html=render.markdown(text), verified=not problems,
                    problems=problems, files=files, trials=trials)
        e["href"] = f"tuned/{e['bundle'].name}/index.html"
        e["verified"] = not problems
    boards = [{"title": tuned_board.board_title(key), "rows": list(zip(members, tuned_board.cells(members)))}
              for key, members in tuned_board.boards(entries).items()]
    prof = tuned_board.profiles(entries)
    if prof is not None:
        (out / "tuned").mkdir(parents=True, exist_ok=True)
        tuned_board.profile_plot(prof, out / "tuned" / "profile.png")
    return boards


def default_dirs() -> list[Path]:
    return [DEFAULT] if DEFAULT.is_dir() else []
