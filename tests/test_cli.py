"""The command line stays light: `--help` and `validate` import no torch (nor pandas), so they answer at
once on any machine. Measured with the interpreter's own import log, not by reading our code."""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "pandas", "numpy", "jinja2", "matplotlib", "nvidia.dali")


def imported(*args) -> set[str]:
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "bench", *args], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    names = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    return {n for n in names if n.split(".")[0] in {h.split(".")[0] for h in HEAVY}}


@pytest.mark.parametrize("args", [("--help",), ("run", "--help"), ("sweep", "--help"),
                                  ("validate", "recipes/cpu_quick.yaml", "recipes/wrn22.yaml")])
def test_light_commands_import_nothing_heavy(args):
    assert imported(*args) == set()


def test_the_check_sees_a_heavy_import():
    assert "torch" in {n.split(".")[0] for n in imported("env", "--json", "-")}


def test_output_into_a_closed_pipe_is_not_a_traceback():
    """`bench show wrn22 | head -0`: the reader is gone before bench writes; bench exits quietly with 141."""
    import os

    proc = subprocess.Popen([sys.executable, "-m", "bench", "show", "wrn22"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    proc.stdout.close()  # before the interpreter has even started
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141 and "Traceback" not in err and "Exception" not in err, err


# ------------------------------------------------------------------ where report bundles go (issue #28)
# A bundle belongs beside the table it was written for: --reports defaults to a `reports` folder next to
# --results, which is results/reports for the default table.

def parsed(*argv):
    from bench.cli import build_parser

    return build_parser().parse_args([str(a) for a in argv])


@pytest.mark.parametrize("command", ["run", "sweep", "external"])
def test_reports_default_beside_the_results_table(command, monkeypatch):
    monkeypatch.delenv("BENCH_RESULTS", raising=False)
    first = ("cpu_quick",) if command == "sweep" else ()
    assert parsed(command, *first).reports == Path("results/reports")
    assert parsed(command, *first, "--results", "../mine.csv").reports == Path("../reports")
    assert parsed(command, *first, "--results", "/tmp/x/t.csv").reports == Path("/tmp/x/reports")
    # named explicitly, before or after --results, --reports wins
    assert parsed(command, *first, "--reports", "r", "--results", "/tmp/x/t.csv").reports == Path("r")
    assert parsed(command, *first, "--results", "/tmp/x/t.csv", "--reports", "r").reports == Path("r")


def test_reports_default_follows_bench_results(monkeypatch):
    monkeypatch.setenv("BENCH_RESULTS", "/tmp/elsewhere/table.csv")
    assert parsed("run").reports == Path("/tmp/elsewhere/reports")


def test_make_bench_passes_results_and_reports():
    """`make -n` prints the command without running it (setup's commands are printed too, not run)."""
    def command(*variables):
        out = subprocess.run(["make", "-n", "bench", *variables], cwd=REPO, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        return next(line for line in out.stdout.replace("\\\n", " ").splitlines() if "-m bench run" in line)

    assert "--reports" not in command("RESULTS=../mine.csv")  # bench run puts it beside ../mine.csv
    assert "--results ../mine.csv" in command("RESULTS=../mine.csv")
    assert "--reports /tmp/r" in command("REPORTS=/tmp/r")
