"""`bench verify`: is a bundle what it says it is?

Four checks, every problem listed by file, run and field:
1. the MANIFEST: missing, extra and changed files;
2. the derived files: every figure in summary.json and the verifiable fields of each results.csv row are
   recomputed from the raw event logs (floats within a relative 1e-9, which a JSON or CSV round trip of a
   repr'd float always meets), and the DAWNBench exports and report.md are re-rendered and compared;
3. the selection: the runs are every run the command made, seeds consecutive (bench.report.selection);
4. with --rerun, the recipe is trained again here and each new time-to-target is tested against the
   reported distribution (bench.studies.rerun).

verify only reads: nothing in the bundle is written, not even a cache.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench.core.errors import BenchError, VerifyError
from bench.report import exports, manifest, render_markdown, summary as summ
from bench.report import model_copy, selection
from bench.report.kinds import for_summary  # each kind's row fields and derived files

ROW_FLOATS = ("time_to_target_s", "best_acc", "final_acc", "epochs", "init_s", "wall_s")
GAN_ROW_FLOATS = ("time_to_target_s", "best_metric", "final_metric", "epochs", "init_s", "wall_s")


@dataclass
class Outcome:
    problems: list[str]
    runs: int = 0
    figures: int = 0


def _is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


class _Diff:
    """Walks two JSON trees side by side, counting compared numbers and collecting differences."""

    def __init__(self, file: str):
        self.file, self.problems, self.figures = file, [], 0

    def walk(self, want, got, path: str) -> None:
        if isinstance(want, dict) and isinstance(got, dict):
            for k in sorted(set(want) | set(got), key=str):
                p = f"{path}.{k}" if path else str(k)
                if k not in got:
                    self.problems.append(f"{self.file}: {p}: missing (the event logs give {want[k]!r})")
                elif k not in want:
                    self.problems.append(f"{self.file}: {p}: unexpected field (value {got[k]!r})")
                else:
                    self.walk(want[k], got[k], p)
        elif isinstance(want, list) and isinstance(got, list):
            if len(want) != len(got):
                self.problems.append(f"{self.file}: {path}: {len(got)} entries, the event logs give {len(want)}")
            for i, (w, g) in enumerate(zip(want, got)):
                name = w.get("run_id") if isinstance(w, dict) and isinstance(w.get("run_id"), str) else i
                if isinstance(w, dict) and isinstance(g, dict) and w.get("run_id") != g.get("run_id"):
                    self.problems.append(f"{self.file}: {path}[{i}]: run {g.get('run_id')!r}, expected {name!r}")
                    continue
                self.walk(w, g, f"{path}[{name}]")
        elif _is_num(want) and _is_num(got):
            self.figures += 1
            if not summ.close(float(want), float(got)):
                self.problems.append(f"{self.file}: {path}: file has {got!r}, the event logs give {want!r}")
        elif want != got or type(want) is not type(got):
            self.problems.append(f"{self.file}: {path}: file has {got!r}, the raw files give {want!r}")


def _load_raw(bundle: Path, problems: list[str]) -> summ.Raw | None:
    """Parse each raw file on its own so that one bad file does not hide problems in the others."""
    parts = {}
    for name, read in (("recipe", lambda: summ.read_recipe(bundle)), ("env", lambda: summ.read_json(bundle, "env.json")),
                       ("dataset", lambda: summ.read_json(bundle, "dataset.json")),
                       ("rows", lambda: summ.read_rows(bundle)), ("ids", lambda: summ.run_ids(bundle))):
        try:
            parts[name] = read()
        except BenchError as e:
            problems.append(str(e))
    logs = {}
    for rid in parts.get("ids", []):
        try:
            logs[rid] = summ.read_log(bundle, rid)
        except BenchError as e:
            problems.append(str(e))
    if len(parts) < 5 or len(logs) < len(parts["ids"]):
        problems.append("summary.json, results.csv: not recomputed, because the raw files above could not be read")
        return None
    recipe, stated = parts["recipe"]
    return summ.Raw(bundle, recipe, stated, parts["env"], parts["dataset"], parts["rows"], logs)


def _check_recipe_hash(raw: summ.Raw, problems: list[str]) -> None:
    got = summ.recipe_hash(raw.recipe)  # a hash of the values as written: any mapping has one
    if got != raw.recipe_hash:
        problems.append(f"recipe.yaml: its header says hash {raw.recipe_hash!r} but its contents hash to {got!r}")


def _row_value(row: dict, field: str, kind, problems: list[str]):
    text = row.get(field)
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        problems.append(f"results.csv:{row['_line']}: run {row.get('run_id')}: {field} is {text!r}, not a number")
        return _Bad


class _Bad:
    """Marks a cell that did not parse (already reported)."""


def _check_rows(raw: summ.Raw, expected: dict, problems: list[str]) -> int:
    figures = 0
    facts = {r["run_id"]: r for r in expected["runs"]}
    seen = set()
    world = raw.env.get("world_size")

    def same(field, want, got, line, rid):
        nonlocal figures
        if got is _Bad:
            return
        figures += _is_num(want) or _is_num(got)
        ok = (want is None and got is None) or (
            want is not None and got is not None and
            (summ.close(float(want), float(got)) if _is_num(want) else want == got))
        if not ok:
            problems.append(f"results.csv:{line}: run {rid}: {field}: file has {got!r}, "
                            f"the event logs give {want!r}")

    for row in raw.rows:
        rid, line = row.get("run_id"), row["_line"]
        if rid in seen:
            problems.append(f"results.csv:{line}: run {rid} appears twice")
        seen.add(rid)
        f = facts.get(rid)
        if f is None:
            problems.append(f"results.csv:{line}: run {rid} has no event log ({summ.log_path(rid)})")
            continue
        same("status", f["status"], row.get("status"), line, rid)
        for field in for_summary(expected).row_floats + ("device_hours",):
            col = "gpu_hours" if field == "device_hours" else field
            same(col, f[field], _row_value(row, col, float, problems), line, rid)
        same("cost_usd", f["cost_usd"], _row_value(row, "cost_usd", float, problems), line, rid)
        same("seed", f["seed"], _row_value(row, "seed", int, problems), line, rid)
        same("world_size", world, _row_value(row, "world_size", int, problems), line, rid)
        same("target", raw.target, _row_value(row, "target", float, problems), line, rid)
        same("recipe", raw.recipe.get("name"), row.get("recipe"), line, rid)
        same("recipe_hash", raw.recipe_hash, row.get("recipe_hash"), line, rid)
        same("dataset_fingerprint", raw.dataset.get("fingerprint"), row.get("dataset_fingerprint"), line, rid)
    for rid, f in facts.items():
        ran = any(e["key"] == "run_stop" for e in raw.logs.get(rid, []))
        if rid not in seen and ran:
            problems.append(f"results.csv: run {rid} has an event log with run_stop but no row")
    return figures


def _check_rendered(raw: summ.Raw, expected: dict, problems: list[str]) -> None:
    """Derived text files must be exactly what the raw files render to."""
    rows = {r["run_id"]: r for r in raw.rows if r.get("run_id")}
    want = {"report.md": render_markdown(expected), **for_summary(expected).derived(expected, rows)}
    for rel, text in want.items():
        path = raw.dir / rel
        if not path.is_file():
            problems.append(f"{rel}: missing (bench report DIR rebuilds it)")
        elif path.read_text(encoding="utf-8", errors="replace") != text:
            problems.append(f"{rel}: differs from what the raw files give (edited, or built by another version)")


def check(bundle: Path) -> Outcome:
    """Every problem with the bundle; raises BenchError only when `bundle` is not a directory at all."""
    bundle = summ.require_dir(bundle)
    problems = manifest.check(bundle)
    raw = _load_raw(bundle, problems)
    if raw is None:
        return Outcome(problems)
    _check_recipe_hash(raw, problems)
    problems += model_copy.problems(bundle, raw.recipe)  # a user's model: the copy is the code the recipe states
    try:
        expected = summ.compute(raw)
    except BenchError as e:
        problems += [str(e), "summary.json: not recomputed, because of the problem above"]
        return Outcome(problems, len(raw.logs))
    for run in expected["runs"]:
        problems += run["log_problems"]
    problems += selection.problems(raw, expected["runs"])  # every run the command made: none taken out
    figures = 0
    try:
        stored = summ.read_json(bundle, "summary.json")
    except BenchError as e:
        problems.append(str(e))
    else:
        diff = _Diff("summary.json")
        diff.walk(json.loads(summ.dumps(expected)), stored, "")
        problems += diff.problems
        figures += diff.figures
    figures += _check_rows(raw, expected, problems)
    _check_rendered(raw, expected, problems)
    return Outcome(problems, len(expected["runs"]), figures)


def verify(bundle: Path) -> Outcome:
    """check(), raising VerifyError (exit 1) that lists every problem."""
    out = check(bundle)
    if out.problems:
        lines = "\n".join(f"  - {p}" for p in out.problems)
        raise VerifyError(f"{bundle}: does not verify ({len(out.problems)} problem"
                          f"{'s' * (len(out.problems) != 1)}):\n{lines}")
    return out
