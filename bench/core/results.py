"""The results table: one CSV row per run, appended atomically under a file lock.

Every append rewrites the whole file to a temp file and renames it over the table, so a crash at any
point leaves either the old table or the new one, never a torn line. Readers need no lock.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import numbers
import os
import secrets
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, TextIO

from filelock import FileLock, Timeout

from bench.core.errors import BenchError

COLUMNS = [
    "run_id", "timestamp", "recipe", "recipe_hash", "dataset", "dataset_fingerprint", "seed", "status",
    "time_to_target_s", "wall_s", "init_s", "epochs", "best_acc", "final_acc", "target",
    "metric", "best_metric", "final_metric",
    "precision", "memory_format", "loader", "data_wait_fraction",
    "device", "device_name", "device_count", "world_size", "nodes", "procs_per_node", "backend",
    "global_batch_size", "gpu_hours", "cost_usd", "price_usd_per_hour", "price_source",
    "torch", "git_commit", "git_dirty", "host", "error",
]
STATUSES = ("reached", "missed", "aborted", "failed")

# Read-back types. Anything not listed (known or extra) is text, except extra columns that parse as numbers.
_INT_COLUMNS = {"seed", "device_count", "world_size", "nodes", "procs_per_node", "global_batch_size"}
_FLOAT_COLUMNS = {
    "time_to_target_s", "wall_s", "init_s", "epochs", "best_acc", "final_acc", "target",
    "best_metric", "final_metric", "data_wait_fraction", "gpu_hours", "cost_usd", "price_usd_per_hour",
}
_BOOL_COLUMNS = {"git_dirty"}
_BOOLS = {"true": True, "false": False, "1": True, "0": False}

# Long enough for any honest writer (a rewrite takes milliseconds); a hang past it means something is wrong.
LOCK_TIMEOUT_S = 120


def new_run_id() -> str:
    """UTC time to the microsecond, so ids sort by start time, plus a random tail so two hosts never clash."""
    now = _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S.%fZ") + "-" + secrets.token_hex(3)


def device_hours(device_count: int, wall_s: float) -> float:
    return device_count * wall_s / 3600.0


def cost(device_hours: float, price) -> float | None:
    """USD for `device_hours` at `price` ($/device-hour as a float, or a prices.Price).

    An unknown price (a CPU run without a price of its own, a GPU missing from the table) gives None: the cost
    is unknown, never a guess and never zero."""
    if price is not None and not isinstance(price, numbers.Real):
        price = price.usd_per_hour
    return None if price is None else device_hours * float(price)


def cost_fields(device_name: str, device_type: str, device_count: int, wall_s: float,
                recipe_price: float | None = None, recipe_price_source: str | None = None) -> dict:
    """The four cost columns of a row, priced from the recipe or bench/core/prices.yaml."""
    from bench.core.prices import resolve_price

    price = resolve_price(device_name, device_type, recipe_price, recipe_price_source)
    hours = device_hours(device_count, wall_s)  # CPU runs too: device-hours are recorded, the cost stays unknown
    return {"gpu_hours": hours, "cost_usd": cost(hours, price),
            "price_usd_per_hour": price.usd_per_hour, "price_source": price.source}


def format_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        # repr round-trips exactly; str() of a numpy scalar would not
        return repr(float(value))
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def atomic_write(path: str | os.PathLike, write: Callable[[TextIO], None]) -> None:
    """Write via a temp file in the same directory (so the rename cannot cross filesystems), fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes 0600 files; keep the table as readable as it was
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # makes the rename itself survive a power cut; not all platforms allow opening a directory
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


TABLE_HINT = "Remove that line (or name another table with --results) and rerun."


def read_records(path: Path, strict: bool = True, label: str | None = None,
                 hint: str = TABLE_HINT) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The one CSV reader (results tables, a bundle's results.csv, telemetry): the header, and each row as
    (its first line number, its fields as text). A row with the wrong field count raises (strict), naming
    `label` (default: the path) and the line, or is skipped with a warning. No file: no header, no rows."""
    path = Path(path)
    label = label or str(path)
    if not path.exists():
        return [], []
    header: list[str] = []
    rows: list[tuple[int, list[str]]] = []
    bad: list[int] = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            line = 1
            for record in reader:
                start, line = line, reader.line_num + 1
                if not record:
                    continue
                if not header:
                    header = record
                    _check_header(label, header, start)
                elif len(record) == len(header):
                    rows.append((start, record))
                elif strict:
                    raise BenchError(f"{label}:{start}: malformed row: line {start} has {len(record)} fields, the "
                                     f"header has {len(header)}; probably cut short by a crash or an edit. {hint}")
                else:
                    bad.append(start)
    except csv.Error as e:
        raise BenchError(f"{label}:{reader.line_num}: not valid CSV ({e}). Fix or remove that line.") from None
    except UnicodeDecodeError as e:
        raise BenchError(f"{label}: not UTF-8 text ({e.reason} at byte {e.start}): not a CSV table") from None
    if bad:
        warnings.warn(f"{label}: skipped malformed line(s) {', '.join(map(str, bad))}", stacklevel=3)
    return header, rows


def read_dicts(path: Path, strict: bool = True, label: str | None = None) -> list[dict]:
    """read_records' rows as {column: text} mappings (missing file: none)."""
    header, rows = read_records(Path(path), strict=strict, label=label)
    return [dict(zip(header, r)) for _, r in rows]


def write_csv(path: str | os.PathLike, rows: list[dict], columns: list[str] | None = None) -> None:
    """A whole CSV file of `rows` (each value as format_value writes it), atomically; `columns` default to the
    first row's keys. A bundle's files and a tuned bundle's tables; the results table appends with append_rows."""
    columns = columns or (list(rows[0]) if rows else [])

    def write(f):
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([format_value(r.get(c)) for c in columns])

    atomic_write(path, write)


def _check_header(label: str, header: list[str], line: int) -> None:
    seen = set()
    for name in header:
        if not name or name in seen:
            raise BenchError(f"{label}:{line}: header has an empty or repeated column {name!r}; "
                             f"fix the header line.")
        seen.add(name)


def check_table(path: str | os.PathLike, option: str = "--results", example: str = "results.csv") -> None:
    """Refuse, before anything trains, a results path that could not take a row: a directory, a folder that
    cannot be created or written (bench.core.paths.check_output), a table that is unreadable or malformed
    (the error names the line). `option` names the flag in the message (--results, --csv), `example`
    the file name suggested when the path is a folder."""
    from bench.core.paths import check_output

    path = check_output(option, path, what="CSV file", example=example)
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            raise BenchError(f"{option} {path}: cannot read and write it (permissions); fix them or name another table")
        read_records(path, strict=True)


def append_row(path: str | os.PathLike, row: dict) -> None:
    """Add one run to the table at `path`, creating it if needed. Safe against crashes and concurrent writers."""
    status = row.get("status")
    if status not in STATUSES:
        raise BenchError(f"results row status is {status!r}; must be one of {', '.join(STATUSES)}")
    append_rows(path, [row], leading=COLUMNS)


def append_rows(path: str | os.PathLike, rows: list[dict], leading: list[str] = (), key: str | None = None) -> int:
    """Append rows to any CSV table under a lock, rewriting it atomically: `leading` columns first, then
    the file's other columns, then new keys. Other bench tables (speed.csv) share this.

    With `key` (e.g. "run_id"), a row whose key the table already holds is left out, so appending the
    same rows again adds nothing (merging per-job tables). Returns the number of rows added."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S)
    try:
        with lock:
            _remove_stale_temps(path)
            old_header, old_rows = read_records(path, strict=True)
            records = [dict(zip(old_header, r)) for _, r in old_rows]
            new = [{k: format_value(v) for k, v in row.items()} for row in rows]
            if key is not None:  # checked under the lock, so two merges cannot both add a row
                seen, fresh = {r.get(key) for r in records}, []
                for r in new:  # a key twice among the new rows counts once too
                    if r.get(key) not in seen:
                        seen.add(r.get(key))
                        fresh.append(r)
                if not fresh:
                    return 0
                new = fresh
            header = list(leading)
            header += [c for c in old_header if c not in header]
            header += [k for row in new for k in row if k not in header]
            header = list(dict.fromkeys(header))
            atomic_write(path, lambda f: _write_rows(f, header, records + new))
            return len(new)
    except Timeout:
        raise BenchError(f"could not lock {lock.lock_file} within {LOCK_TIMEOUT_S} s: another bench process "
                         f"is writing {path}. If none is running, delete the lock file and retry.") from None


def _write_rows(f: TextIO, header: list[str], rows: list[dict]) -> None:
    writer = csv.DictWriter(f, fieldnames=header, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def _remove_stale_temps(path: Path) -> None:
    # Called under the lock, so any temp file left is from a writer that died before its rename.
    for tmp in path.parent.glob(path.name + ".*.tmp"):
        tmp.unlink(missing_ok=True)


def read_table(path: str | os.PathLike, strict: bool = True):
    """The table as a DataFrame: COLUMNS first (missing ones added as NA), then any extra columns."""
    import pandas as pd

    header, numbered = read_records(Path(path), strict)
    rows = [r for _, r in numbered]
    names = COLUMNS + [c for c in header if c not in COLUMNS]
    index = {c: i for i, c in enumerate(header)}
    data = {}
    for name in names:
        i = index.get(name)
        data[name] = _typed(pd, name, [r[i] if r[i] != "" else None for r in rows] if i is not None
                            else [None] * len(rows))
    return pd.DataFrame(data, columns=names)


def _typed(pd, name: str, values: list[str | None]):
    if name in _BOOL_COLUMNS:
        return pd.Series([None if v is None else _BOOLS.get(v.lower()) for v in values], dtype="boolean")
    if name in _INT_COLUMNS or name in _FLOAT_COLUMNS:
        # a hand-edited "n/a" becomes NA rather than failing the whole report
        nums = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").astype("float64")
        if name in _INT_COLUMNS and (nums.dropna() % 1 == 0).all():
            return nums.astype("Int64")
        return nums
    text = pd.Series(values, dtype=object)
    if name not in COLUMNS and any(v is not None for v in values):
        try:
            return pd.to_numeric(text)
        except (ValueError, TypeError):
            pass
    return text
