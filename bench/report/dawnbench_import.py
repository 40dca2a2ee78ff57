"""Read DAWNBench CIFAR-10 training entries (`<name>.json` + `<name>.tsv`) and derive what DAWNBench ranks.

The rule is the dawn-bench-entries README's: time to 94% is the `hours` of the first TSV row whose
`top1Accuracy` is at least 94, times 3600; cost is those hours times the entry's `costPerHour`, when it gives
one. The same reader takes our own exports (bench/report/exports.py writes `runs/<id>/dawnbench.json` + `.tsv`
into every report bundle), so a bundle can be checked against the rule DAWNBench would apply to it.

What real entries look like, and what is done about it:
- a UTF-8 byte-order mark, CRLF line ends, no final newline, blank trailing lines: decoded as utf-8-sig, split
  with str.splitlines, cells split on any whitespace, blank lines passed over;
- epochs numbered from 0 or from 1, and fractional epochs (TensorFlow runs: 1.00096, 2.00192, ...): the time
  never depends on the numbering; `epochs` is the count trained by the first row at 94% (the TSV's label,
  plus one when the TSV numbers from 0);
- float noise in the accuracy (94.02000000000001, or 93.99999999999999 for an exact 94): compared after
  rounding to PLACES decimals, so representation noise neither makes nor breaks a row, while 93.99999 misses.
The entry's `authorEmail` is never read into the output; an e-mail address inside `author` is left out and a
`name@Org` handle is written `Org`.
An entry that cannot be read is skipped with a warning naming its file and line; only a folder with no
readable entry at all is an error.
"""
from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from bench.core.errors import BenchError

TARGET = 94.0
PLACES = 6  # percent has 2 meaningful decimals on 10,000 test images; below 1e-6 is float representation
HEADER = ("epoch", "hours", "top1Accuracy")
# where the entries are, tried in order: a dawn-bench-entries checkout, a report bundle, a folder of entries
LAYOUTS = ("CIFAR10/train/*.json", "runs/*/dawnbench.json", "*.json")
COLUMNS = ("kind", "source", "team", "model", "hardware", "gpus", "framework", "date", "time_to_94_s", "epochs",
           "top1_at_94", "best_top1", "cost_per_hour_usd", "cost_usd", "note")


@dataclass(frozen=True)
class Entry:
    source: str  # the JSON's path, relative to the folder read
    team: str
    model: str
    hardware: str
    gpus: int | None
    framework: str
    date: str
    time_s: float | None  # None: no row reaches 94
    epochs: float | None
    from_zero: bool  # the TSV numbers its epochs from 0
    top1: float | None  # the accuracy of that row
    best_top1: float
    cost_per_hour: float | None
    cost_usd: float | None


class Skip(Exception):
    """One entry that cannot be read: the message names the file (and line) and why."""


# ------------------------------------------------------------------------------------------ the rule

def reaches(top1: float) -> bool:
    return round(top1, PLACES) >= TARGET


def first_at_target(rows: list[tuple[float, float, float]]) -> tuple[float, float, float] | None:
    """The first (epoch, hours, top1) row at or above 94%, or None."""
    return next((r for r in rows if reaches(r[2])), None)


# ------------------------------------------------------------------------------------------ reading

def read_tsv(path: Path) -> list[tuple[float, float, float]]:
    """(epoch, hours, top1Accuracy) rows, in file order."""
    lines = _text(path).splitlines()
    cells = lines[0].split() if lines else []
    if tuple(cells) != HEADER:
        if {"top5Accuracy", "f1Score"} & set(cells):
            raise Skip(f"{path}:1: columns {' '.join(cells)}: not a CIFAR-10 training entry")
        got = "an empty file" if not lines else "a data row" if cells and _number(cells[0]) is not None \
            else repr(lines[0])
        raise Skip(f"{path}:1: expected the header `epoch<TAB>hours<TAB>top1Accuracy`, got {got}")
    rows = []
    for n, line in enumerate(lines[1:], start=2):
        cells = line.split()
        if not cells:
            continue  # blank lines, at the end of many files
        if len(cells) != len(HEADER):
            raise Skip(f"{path}:{n}: {len(cells)} cells ({line.strip()!r}), expected 3: epoch, hours, top1Accuracy")
        values = [_number(c) for c in cells]
        for name, cell, value in zip(HEADER, cells, values):
            if value is None:
                raise Skip(f"{path}:{n}: {name} {cell!r} is not a number")
        rows.append(tuple(values))
    if not rows:
        raise Skip(f"{path}: no rows under the header")
    if max(r[2] for r in rows) <= 1.0:
        raise Skip(f"{path}: top1Accuracy is at most {max(r[2] for r in rows)!r}: a fraction, where DAWNBench "
                   f"asks for percent")
    return rows


def read_entry(json_path: Path, root: Path) -> Entry:
    try:
        doc = json.loads(_text(json_path))
    except json.JSONDecodeError as exc:
        raise Skip(f"{json_path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(doc, dict):
        raise Skip(f"{json_path}: expected a JSON object, got {type(doc).__name__}")
    if "latency" in doc:
        raise Skip(f"{json_path}: an inference entry (latency), not training")
    tsv = json_path.with_suffix(".tsv")
    if not tsv.is_file():
        raise Skip(f"{json_path}: no {tsv.name} beside it (the per-epoch TSV that the time is read from)")
    price = doc.get("costPerHour")
    if price is not None and (isinstance(price, bool) or not isinstance(price, (int, float)) or price < 0):
        raise Skip(f"{json_path}: costPerHour {price!r} is not a price in USD per hour (a number >= 0)")
    rows = read_tsv(tsv)
    hit = first_at_target(rows)
    from_zero = rows[0][0] == 0
    hours = hit[1] if hit else None
    hardware = _text_field(doc, "hardware")
    return Entry(source=json_path.relative_to(root).as_posix(), team=_no_email(_text_field(doc, "author")),
                 model=_text_field(doc, "model"), hardware=hardware, gpus=gpu_count(hardware),
                 framework=_text_field(doc, "framework"), date=_text_field(doc, "timestamp"),
                 time_s=hours * 3600 if hit else None, epochs=hit[0] + (1 if from_zero else 0) if hit else None,
                 from_zero=from_zero, top1=hit[2] if hit else None, best_top1=max(r[2] for r in rows),
                 cost_per_hour=price, cost_usd=hours * price if hit and price is not None else None)


def read_dir(root: Path) -> tuple[list[Entry], list[str]]:
    """Every CIFAR-10 training entry under `root` (a dawn-bench-entries checkout, a report bundle or a folder of
    entries), sorted by time to 94% (those that never reach it last), and a warning per entry skipped."""
    root = Path(root)
    if not root.is_dir():
        raise BenchError(f"{root}: no such folder (give a dawn-bench-entries checkout, a report bundle, or a "
                         f"folder of <name>.json + <name>.tsv entries)")
    files = next((found for found in (sorted(root.glob(p)) for p in LAYOUTS) if found), [])
    if not files:
        raise BenchError(f"{root}: no DAWNBench entries (looked for {', '.join(LAYOUTS)})")
    entries, warnings = [], []
    for f in files:
        try:
            entries.append(read_entry(f, root))
        except Skip as exc:
            warnings.append(f"{exc}; entry skipped")
        except OSError as exc:
            warnings.append(f"{f}: cannot be read ({exc}); entry skipped")
    if not entries:
        raise BenchError(f"{root}: none of the {len(files)} entries could be read:\n"
                         + "\n".join(f"  - {w}" for w in warnings))
    entries.sort(key=lambda e: (e.time_s is None, e.time_s or 0.0, e.source))
    return entries, warnings


# ------------------------------------------------------------------------------------------ writing

def csv_row(e: Entry, source_prefix: str = "") -> dict[str, str]:
    return {"kind": "dawnbench", "source": source_prefix + e.source, "team": e.team, "model": e.model,
            "hardware": e.hardware, "gpus": "" if e.gpus is None else str(e.gpus), "framework": e.framework,
            "date": e.date, "time_to_94_s": _fixed(e.time_s, 2), "epochs": _short(e.epochs, 2),
            "top1_at_94": _short(e.top1, PLACES), "best_top1": _short(e.best_top1, PLACES),
            "cost_per_hour_usd": _short(e.cost_per_hour, 4),
            "cost_usd": _fixed(e.cost_usd, 4), "note": "TSV numbers epochs from 0" if e.from_zero else ""}


def write_csv(path: Path, entries: list[Entry], source_prefix: str = "") -> None:
    from bench.core.results import atomic_write

    def write(f):
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(csv_row(e, source_prefix) for e in entries)

    atomic_write(path, write)


def table(entries: list[Entry]) -> tuple[list[str], list[list[str]]]:
    """Header and cells for the terminal (bench.core.tables): long texts cut, full ones are in the CSV. top-1
    is the accuracy at 94%, or the best one for an entry that never gets there."""
    header = ["entry", "team", "model", "hardware", "date", "gpus", "time to 94 (s)", "cost ($)", "top-1",
              "epochs"]
    cells = [[Path(e.source).stem if e.source.startswith("CIFAR10/") else e.source, _cut(e.team), _cut(e.model),
              _cut(e.hardware), e.date, "?" if e.gpus is None else str(e.gpus),
              _fixed(e.time_s, 2) or "not reached", _fixed(e.cost_usd, 2) or "-",
              _short(e.top1 if e.top1 is not None else e.best_top1, PLACES), _short(e.epochs, 2) or "-"]
             for e in entries]
    return header, cells


# ------------------------------------------------------------------------------------------ helpers

_GPU = r"(?:[VPAH]100|K80|M60|P40|T4|A10G?|GTX\s*\d{3,4}(?:\s*Ti)?|RTX\s*\d{4}(?:\s*Ti)?)"
_MAKER = r"(?:(?:Nvidia|Tesla|GeForce)\s+)*"
_COUNTS = (rf"(\d+)\s*[x×*]\s*{_MAKER}{_GPU}",  # 8*V100, 4x GTX 1080 Ti, 4 * Nvidia Tesla V100
           rf"{_GPU}\s*[x×*]\s*(\d+)",  # V100 * 8 GPU, V100*1-16GB
           rf"(\d+)\s+(?:{_GPU}|GPUs?)\b")  # 1 GPU (...), 1 K80 / 61 GB
# AWS's published GPU counts for the instance types that entries name alone
_INSTANCES = {"p2.xlarge": 1, "p2.8xlarge": 8, "p2.16xlarge": 16, "p3.2xlarge": 1, "p3.8xlarge": 4,
              "p3.16xlarge": 8, "p3dn.24xlarge": 8, "g3.4xlarge": 1, "g3.8xlarge": 2, "g3.16xlarge": 4}


def gpu_count(hardware: str) -> int | None:
    """GPUs named by a free-text hardware field: `N x GPU`, `GPU x N`, `N GPU`, an AWS instance type, one for
    a GPU named without a count, 0 for CPUs only; None when the text does not say."""
    for pattern in _COUNTS:
        m = re.search(pattern, hardware, re.IGNORECASE)
        if m:
            return int(m.group(1))
    for instance, n in _INSTANCES.items():
        if re.search(rf"\b{re.escape(instance)}\b", hardware):
            return n
    if re.search(_GPU, hardware, re.IGNORECASE):
        return 1
    return 0 if re.search(r"\bCPUs?\b", hardware) else None


def _text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")  # a BOM, if any, is not part of the first cell
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise Skip(f"{path}:{line}: not UTF-8 text (byte {data[exc.start]:#04x})") from None


def _number(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _text_field(doc: dict, key: str) -> str:
    value = doc.get(key)
    return value.strip() if isinstance(value, str) else ""


def _no_email(text: str) -> str:
    """E-mail addresses left out; a `name@Org` handle cut to the organisation, which is what it names."""
    text = re.sub(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", "(e-mail left out)", text)
    return re.sub(r"[\w.+-]+@([\w-]+)", r"\1", text)


def _fixed(x: float | None, places: int) -> str:
    return "" if x is None else f"{x:.{places}f}"


def _short(x: float | None, places: int) -> str:
    return "" if x is None else f"{round(x, places):.{places}f}".rstrip("0").rstrip(".")


def _cut(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."
