"""A real run's event log against mlperf-logging's own compliance checker (ruleset training 6.1.0).

CIFAR-10 is not one of MLPerf's benchmarks, so the rules that check the benchmark's name against MLPerf's
list, and the per-benchmark rule file the checker then looks for, cannot pass; every other rule must: no
required key missing, no check failed. Where the event lines point (metadata.file / lineno) is checked too."""
import inspect
import os
from pathlib import Path

import pytest

from bench.core import mllog
from bench.core.mllog import parse_mllog

TINY = ["precision=fp32", "data.train_subset=1000", "data.test_subset=500", "optim.epochs=2",
        "target.value=0.99", "model.params.widths=[8,8,16,16]"]


@pytest.fixture(scope="module")
def run_log(tmp_path_factory, jpeg_archive) -> Path:
    from bench import recipe
    from bench.run.runner import run_recipe

    tmp = tmp_path_factory.mktemp("mllog")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BENCH_ORG", "Test Org")  # submission_org comes from it ("unknown" without)
        _, bundle = run_recipe(recipe.load("cpu_quick", TINY), data=str(jpeg_archive), results_path=tmp / "r.csv",
                               reports_dir=tmp / "reports", say=lambda s: None)
    return next(bundle.glob("runs/*/mllog.txt"))


def checker_messages(path: Path) -> list[str]:
    from mlperf_logging.compliance_checker import mlp_compliance

    class Checker(mlp_compliance.ComplianceChecker):
        def configured_checks(self, loglines, config_file):
            # The checker enqueues `open_<benchmark>.yaml` for the benchmark's own rules and crashes when
            # MLPerf has none (it notes the missing file first): skip it, the note stays.
            if os.path.exists(config_file):
                super().configured_checks(loglines, config_file)

    checker = Checker("training", "6.1.0", quiet=False, werror=True)
    checker.check_file(str(path), "training_6.1.0/common.yaml")
    return [*checker.warnings.values(), *checker.overwritable.values(), *checker.not_overwritable]


def only_benchmark_list_rules(messages: list[str]) -> list[str]:
    """Messages that are NOT about MLPerf's benchmark list (which CIFAR-10 is not on)."""
    return [m for m in messages if "'submission_benchmark'" not in m
            and "open_cifar10_time_to_accuracy.yaml" not in m]


def test_real_log_passes_the_checker_but_for_the_benchmark_list(run_log):
    messages = checker_messages(run_log)
    assert any("submission_benchmark" in m for m in messages)  # the one rule we cannot meet
    assert only_benchmark_list_rules(messages) == [], "\n----\n".join(messages)


def test_the_checker_notices_a_missing_key(run_log, tmp_path):
    lines = [l for l in run_log.read_text().splitlines(keepends=True) if '"key": "micro_batch_size"' not in l]
    edited = tmp_path / "mllog.txt"
    edited.write_text("".join(lines))
    assert any("micro_batch_size" in m for m in only_benchmark_list_rules(checker_messages(edited)))


def test_lines_point_where_the_events_happened(run_log):
    """fit() emits the epoch and eval events; the run's records emit the header and run_stop."""
    from bench.run import records
    from bench.train import loop

    events = parse_mllog(run_log)
    by_key = {e["key"]: e["metadata"] for e in events}
    loop_file, records_file = inspect.getsourcefile(loop), inspect.getsourcefile(records)
    for key in ("epoch_start", "epoch_stop", "eval_start", "eval_stop", "eval_accuracy", "run_start"):
        want = loop_file if key != "run_start" else records_file
        assert by_key[key]["file"] == want, (key, by_key[key])
    source = Path(loop_file).read_text().splitlines()
    assert '"epoch_start"' in source[by_key["epoch_start"]["lineno"] - 1]
    assert "on_event(eval_key" in source[by_key["eval_accuracy"]["lineno"] - 1]
    for key in (mllog.SUBMISSION_ORG, mllog.RUN_STOP, mllog.INIT_START):
        assert by_key[key]["file"] == records_file, key
    assert not any(e["metadata"]["file"] == inspect.getsourcefile(mllog) for e in events)


def test_header_values_are_honest(run_log):
    values = {e["key"]: e["value"] for e in parse_mllog(run_log)}
    assert values["submission_division"] == "open" and values["submission_org"] == "Test Org"
    assert values["lowest_numerical_precision_in_linear"] == "fp32" and values["tensor_parallelism"] == 1
    assert values["micro_batch_size"] == 512 and values["global_batch_size"] == 512
    assert values["gradient_accumulation_steps"] == 1 and values["opt_base_learning_rate"] == 0.4
    assert values["config_filename"] == "cpu_quick.yaml" and values["target_accuracy"] == 0.99
