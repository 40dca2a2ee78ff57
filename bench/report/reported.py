"""What the field reported, beside what we measured: the reported tables (results/reported/*.csv, written by
`bench import dawnbench`, bench/report/dawnbench_import.py) and the links from measured recipes to them.

Reported rows are facts with sources (DESIGN, third wave): each names where it comes from, none was measured
here, and nothing ranks them with measured rows. The link from a measured recipe to its reported counterpart is
data, declared in reported_links.yaml beside this module (recipe name -> the reported row's `source`, its id),
so that the recipes' hashes and the results stay as they are.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from bench.core.errors import BenchError
from bench.core.results import read_records

DEFAULT_DIR = Path("results/reported")
LINKS = Path(__file__).resolve().with_name("reported_links.yaml")
NUMBERS = ("time_to_94_s", "epochs", "top1_at_94", "best_top1", "cost_per_hour_usd", "cost_usd")
KINDS = {"dawnbench": "DAWNBench CIFAR-10 training entries", "record": "later records, from their own repositories"}


@dataclass(frozen=True)
class Link:
    recipe: str
    source: str
    why: str


def anchor(source: str) -> str:
    """A stable HTML id for a reported row, from its source (the row's id)."""
    return "reported-" + hashlib.sha256(source.encode()).hexdigest()[:10]


def _number(text: str, where: str):
    text = (text or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise BenchError(f"{where}: {text!r} is not a number (an empty cell means unknown)") from None


def read_table(path: Path) -> list[dict]:
    """The rows of one reported table: text cells as written, NUMBERS as floats (None when empty), `gpus` an
    int, plus `id` (the source) and `anchor`. A table without a `source` column is refused."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: cannot read the reported table (no such file)")
    try:
        fields, rows = read_records(path, strict=True, hint="Fix that row of the reported table.")
    except OSError as e:
        raise BenchError(f"{path}: cannot read the reported table ({e})") from None
    if "source" not in fields:
        raise BenchError(f"{path}: not a reported table (no `source` column; `bench import dawnbench --out` "
                         f"writes one)")
    out = []
    for line, cells in rows:
        where = f"{path}:{line}"
        rec = {k: v.strip() for k, v in zip(fields, cells)}
        if not rec["source"]:
            raise BenchError(f"{where}: empty `source`: every reported row names where it comes from")
        for k in NUMBERS:
            if k in rec:
                rec[k] = _number(rec[k], f"{where} {k}")
        gpus = _number(rec.get("gpus", ""), f"{where} gpus")
        rec["gpus"] = None if gpus is None else int(gpus)
        rec["id"] = rec["source"]
        rec["anchor"] = anchor(rec["source"])
        rec["table"] = str(path)
        out.append(rec)
    return out


def find_tables(folder: Path = DEFAULT_DIR) -> list[Path]:
    return sorted(Path(folder).glob("*.csv")) if Path(folder).is_dir() else []


def read_tables(paths: list[Path]) -> list[dict]:
    """Every reported row of `paths`; a source seen twice is an error (it is the row's id)."""
    rows, seen = [], {}
    for p in paths:
        for r in read_table(p):
            if r["id"] in seen:
                raise BenchError(f"{p}: source {r['id']!r} is also in {seen[r['id']]}: a source is a row's id and "
                                 f"names one row")
            seen[r["id"]] = p
            rows.append(r)
    return rows


def read_links(path: Path = LINKS) -> list[Link]:
    """The declared links, each with recipe, source and why; a malformed entry is named with its index."""
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise BenchError(f"{path}: cannot read the links ({e})") from None
    entries = doc.get("links") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise BenchError(f"{path}: expected a mapping with `links:`, a list of {{recipe, source, why}}")
    out = []
    for i, e in enumerate(entries):
        missing = [k for k in ("recipe", "source") if not (isinstance(e, dict) and isinstance(e.get(k), str)
                                                          and e.get(k).strip())]
        if missing:
            raise BenchError(f"{path}: links[{i}]: missing {', '.join(missing)} (each link names a recipe and the "
                             f"reported row's source)")
        out.append(Link(e["recipe"].strip(), e["source"].strip(), str(e.get("why") or "").strip()))
    return out


def link_problems(links: list[Link], rows: list[dict]) -> list[str]:
    """Links whose source names no reported row, and recipes linked twice to one row."""
    ids = {r["id"] for r in rows}
    pairs = [(link.recipe, link.source) for link in links]
    problems = [f"{r}: source {s!r} is not in the reported table(s)" for r, s in dict.fromkeys(pairs) if s not in ids]
    problems += [f"{r}: linked to {s!r} more than once" for r, s in dict.fromkeys(pairs) if pairs.count((r, s)) > 1]
    return problems


def counterparts(links: list[Link], rows: list[dict]) -> dict[str, list[dict]]:
    """recipe -> the reported rows it links to (links to unknown sources are left out: link_problems names
    them), each row with the link's `why`."""
    by_id = {r["id"]: r for r in rows}
    out: dict[str, list[dict]] = {}
    for link in links:
        if link.source in by_id:
            out.setdefault(link.recipe, []).append({**by_id[link.source], "why": link.why})
    return out
