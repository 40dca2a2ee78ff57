"""The raw files of a report bundle: what one `bench run` invocation (a run set) leaves behind.

    <reports>/<recipe>-<YYYYmmddTHHMMSSZ>-<6 hex>/
      recipe.yaml          the resolved recipe (every field), with its hash in a comment
      model/<file>.py      a copy of a user's model code (bench.run.model_copy), if the recipe names one
      env.json             bench.system.envinfo.capture() plus threads, world size, launcher
      dataset.json         bench.data.sources.describe(identity)
      results.csv          this set's rows, the same columns as the results table
      runs/<run_id>/mllog.txt      ':::MLLOG {...}' event lines (the raw truth for `bench verify`)
      runs/<run_id>/epochs.csv     per-epoch records (bench.train.loop.EpochRecord fields)
      runs/<run_id>/telemetry.csv  bench.system.telemetry samples
    and, written from those by bench.report: summary.json, dawnbench.tsv/json, report.md, plots/, MANIFEST.

While the set runs the directory is named `<name>.partial`; it gets its final name only once every file
is written, so a reader never mistakes a half-written bundle for a finished one.
"""
from __future__ import annotations

import dataclasses
import json
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import yaml

from bench.recipe import Recipe
from bench.report import finalize
from bench.run.model_copy import bundle_recipe
from bench.core.results import atomic_write, write_csv


def bundle_name(recipe: Recipe) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{recipe.name}-{stamp}-{secrets.token_hex(3)}"


class BundleWriter:
    def __init__(self, reports_dir: Path, recipe: Recipe):
        self.final = Path(reports_dir) / bundle_name(recipe)
        self.dir = self.final.with_name(self.final.name + ".partial")
        self.dir.mkdir(parents=True, exist_ok=False)
        self.rows: list[dict] = []
        resolved = bundle_recipe(recipe, self.dir)  # a user's model file is copied to model/ and named there
        text = f"# resolved recipe {recipe.name}, hash {recipe.hash}\n" + yaml.safe_dump(resolved, sort_keys=False)
        atomic_write(self.dir / "recipe.yaml", lambda f: f.write(text))

    def run_dir(self, run_id: str) -> Path:
        d = self.dir / "runs" / run_id
        d.mkdir(parents=True, exist_ok=True)
        return d

    def write_json(self, name: str, obj) -> None:
        atomic_write(self.dir / name, lambda f: json.dump(obj, f, indent=2, sort_keys=True, default=str))

    def write_epochs(self, run_id: str, records: Iterable) -> None:
        rows = [dataclasses.asdict(r) for r in records]
        write_csv(self.run_dir(run_id) / "epochs.csv", rows)

    def add_row(self, row: dict) -> None:
        self.rows.append(row)
        columns = list(dict.fromkeys(k for r in self.rows for k in r))
        write_csv(self.dir / "results.csv", self.rows, columns)

    def finish(self) -> Path:
        """Derive summary, report and MANIFEST from the raw files, then publish under the final name."""
        finalize(self.dir)
        self.dir.rename(self.final)
        return self.final

    def publish(self, say=print) -> Path | None:
        """finish(), except that a report that fails must not hide the rows, which are already safe in the
        table: say so and keep the .partial directory."""
        try:
            return self.finish()
        except Exception as exc:
            say(f"warning: report bundle left unfinished at {self.dir}: {type(exc).__name__}: {exc}")
            return None

