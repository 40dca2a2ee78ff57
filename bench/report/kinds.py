"""One object per kind of run, for everything that reads a bundle (DESIGN, third wave: three kinds, one record).

summary.compute, finalize and verify ask the bundle's kind (its recipe's `kind`; a summary's `kind`, absent for
classifiers) instead of testing the kind themselves:

    runs(raw, from_logs)   each run's facts, recomputed from the bundle's raw truth: the event logs for runs this
                           harness trained (`from_logs`, bench.report.summary), the stamped output of the
                           command for kind: external
    finish(summary, raw)   what the kind adds to or renames in the common summary
    render(summary)        report.md
    plots(bundle, summary, logs)
    derived(summary, rows) the other files derived per run ({relative path: text}): DAWNBench exports, and for
                           kind: external the referee's event log
    row_floats             the numeric row fields verify recomputes
"""
from __future__ import annotations

import json

ROW_FLOATS = ("time_to_target_s", "best_acc", "final_acc", "epochs", "init_s", "wall_s")


class Classifier:
    name = "classifier"
    row_floats = ROW_FLOATS

    def runs(self, raw, from_logs) -> list[dict]:
        return from_logs(raw)

    def finish(self, summary: dict, raw) -> None:
        pass

    def render(self, summary: dict) -> str:
        from bench.report import markdown

        return markdown.render(summary)

    def plots(self, bundle, summary: dict, logs: dict) -> list[str]:
        from bench.report import plots

        return plots.write(bundle, summary, logs)

    def derived(self, summary: dict, rows_by_id: dict) -> dict[str, str]:
        from bench.report import exports

        out = {}
        for run in summary["runs"]:
            d = f"runs/{run['run_id']}/"
            out[d + "dawnbench.tsv"] = exports.dawnbench_tsv(run)
            out[d + "dawnbench.json"] = json.dumps(exports.dawnbench_json(summary, run, rows_by_id.get(run["run_id"])),
                                                   indent=2, sort_keys=True) + "\n"
        return out


class Gan(Classifier):
    name = "gan"
    row_floats = ("time_to_target_s", "best_metric", "final_metric", "epochs", "init_s", "wall_s")

    def finish(self, summary: dict, raw) -> None:
        from bench.report.gan import score_summary

        score_summary(summary, raw)

    def render(self, summary: dict) -> str:
        from bench.report import gan

        return gan.render(summary)

    def plots(self, bundle, summary: dict, logs: dict) -> list[str]:
        from bench.report import gan_plots

        return gan_plots.write(bundle, summary, logs)

    def derived(self, summary: dict, rows_by_id: dict) -> dict[str, str]:
        return {}  # DAWNBench's format is test top-1 against time: a GAN run has no accuracy to export


class External(Classifier):
    name = "external"
    row_floats = ROW_FLOATS + ("own_time_s", "own_gap_s", "child_wall_s")

    def runs(self, raw, from_logs) -> list[dict]:
        from bench.report import external

        return external.runs(raw)

    def finish(self, summary: dict, raw) -> None:
        from bench.report import external

        external.finish(summary, raw)

    def render(self, summary: dict) -> str:
        from bench.report import external

        return external.render(summary)

    def derived(self, summary: dict, rows_by_id: dict) -> dict[str, str]:
        from bench.report import external

        return {**super().derived(summary, rows_by_id), **external.event_logs(summary)}


KINDS = {k.name: k for k in (Classifier(), Gan(), External())}


def for_recipe(recipe: dict) -> Classifier:
    """The kind of a bundle, from its resolved recipe (bundles from before `kind` existed are classifiers)."""
    return KINDS.get((recipe or {}).get("kind") or "classifier", KINDS["classifier"])


def for_summary(summary: dict) -> Classifier:
    return KINDS.get(summary.get("kind") or "classifier", KINDS["classifier"])
