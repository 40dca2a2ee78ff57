"""Bad input is refused before anything trains: exit 2, one message naming the file or field and the fix,
no traceback, no row, no bundle. Every case drives the real command line."""
import os
import sys
from pathlib import Path

import pytest

from bench.cli import main
from processes import signal_when

REPO = Path(__file__).resolve().parent.parent


def run_bench(tmp_path, *args, capsys):
    code = main([*map(str, args)])
    return code, capsys.readouterr()


def nothing_written(tmp_path):
    leftovers = [p for p in tmp_path.rglob("*") if p.suffix in (".csv", ".partial") or p.name == "mllog.txt"]
    return not leftovers


def recipe_file(tmp_path, text: str | bytes, name="r.yaml") -> Path:
    p = tmp_path / name
    (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
    return p


def refuse(tmp_path, capsys, *args):
    code, out = run_bench(tmp_path, *args, capsys=capsys)
    assert code == 2, out
    assert "Traceback" not in out.err
    assert nothing_written(tmp_path / "out") if (tmp_path / "out").exists() else True
    return out.err


def run_args(tmp_path, recipe, *extra):
    out = tmp_path / "out"
    return ("run", recipe, "--results", out / "results.csv", "--reports", out / "reports", *extra)


def test_recipe_that_is_not_utf8_text(tmp_path, capsys):
    r = recipe_file(tmp_path, b"name: x\nmodel: {arch: resnet9}\n\xff\xfe\x00garbage")
    err = refuse(tmp_path, capsys, *run_args(tmp_path, r))
    assert str(r) in err and "UTF-8" in err


def test_empty_recipe_file(tmp_path, capsys):
    r = recipe_file(tmp_path, "# nothing but a comment\n")
    err = refuse(tmp_path, capsys, *run_args(tmp_path, r))
    assert str(r) in err and "empty" in err


@pytest.mark.parametrize("field, value", [("optim.lr", ".nan"), ("optim.lr", ".inf"),
                                          ("optim.weight_decay", "-.inf"), ("target.value", ".nan"),
                                          ("optim.schedule.div", ".inf"), ("optim.label_smoothing", ".nan")])
def test_nan_and_inf_are_not_numbers_here(tmp_path, capsys, field, value):
    err = refuse(tmp_path, capsys, *run_args(tmp_path, "cpu_quick", "--set", f"{field}={value}"))
    assert field in err and "finite" in err


def test_results_naming_a_directory_is_refused_before_training(tmp_path, capsys, no_work):
    (tmp_path / "out").mkdir()
    code, out = run_bench(tmp_path, "run", "cpu_quick", "--results", tmp_path / "out",
                          "--reports", tmp_path / "out" / "reports", capsys=capsys)
    assert code == 2 and "is a directory" in out.err and "--results" in out.err
    assert not (tmp_path / "out" / "reports").exists()


def test_malformed_results_table_is_refused_before_training(tmp_path, capsys, no_work):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    table = out_dir / "results.csv"
    table.write_text("run_id,status,wall_s\nabc,reached,1.0\nbroken line with,too,many,fields\n")
    before = table.read_bytes()
    code, out = run_bench(tmp_path, "run", "cpu_quick", "--results", table, "--reports", out_dir / "reports",
                          capsys=capsys)
    assert code == 2, out
    assert "line 3" in out.err and "malformed" in out.err and "Remove that line" in out.err
    assert "appended" not in out.out
    assert table.read_bytes() == before and not (out_dir / "reports").exists()


def test_results_in_a_folder_that_cannot_be_created(tmp_path, capsys, no_work):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out = run_bench(tmp_path, "run", "cpu_quick", "--results", blocker / "sub" / "results.csv",
                          "--reports", tmp_path / "reports", capsys=capsys)
    assert code == 2 and "cannot create" in out.err


@pytest.mark.parametrize("name", ["../escape", "a/b", "", "white space"])
def test_recipe_names_that_would_leave_the_reports_folder(tmp_path, capsys, name):
    r = recipe_file(tmp_path, f"name: {name!r}\n")
    err = refuse(tmp_path, capsys, *run_args(tmp_path, r))
    assert "name" in err


def test_recipe_path_that_is_a_directory(tmp_path, capsys):
    (tmp_path / "d.yaml").mkdir()
    err = refuse(tmp_path, capsys, "validate", tmp_path / "d.yaml")
    assert "d.yaml" in err


def test_compare_target_given_in_percent(tmp_path, capsys):
    table = tmp_path / "t.csv"
    table.write_text("run_id,status,target\nx,reached,0.94\n")
    code, out = run_bench(tmp_path, "compare", "--results", table, "--target", "94", "--no-plot", capsys=capsys)
    assert code == 2 and "--target" in out.err and "0.94" in out.err


def test_unknown_set_field_names_the_allowed_ones(tmp_path, capsys):
    err = refuse(tmp_path, capsys, "show", "cpu_quick", "--set", "optim.learning_rate=0.1")
    assert "optim.learning_rate" in err and "lr" in err


# ------------------------------------------------------------------------------------------ every path, checked first
# Each command checks every path it is given before any work: a bad one is one `bench: error:` line naming the
# option, the path, what is wrong and the fix, exit 2. The work each command would start is replaced by a tripwire,
# so a check that comes too late (or not at all) fails the test instead of loading data or training.

WORK = ("bench.run.runner.run_recipe", "bench.studies.sweep.run_sweep", "bench.studies.cluster_sweep.run_cluster_sweep",
        "bench.studies.speed.run_speed", "bench.studies.overhead.run_overhead", "bench.data.loader_bench.run_loaders",
        "bench.data.sources.load_dataset", "bench.data.cifar.fetch_cifar10", "bench.report.compare.run",
        "bench.report.summary.load", "bench.report.submit.submit", "bench.report.finalize", "bench.report.verify.verify",
        "bench.system.envinfo.capture", "bench.site.boards.read_tables", "bench.report.dawnbench_import.read_dir")


@pytest.fixture
def no_work(monkeypatch):
    """Every WORK function replaced by a tripwire, also where a module bound it by `from ... import` (which a
    module first imported during the test would otherwise keep for the rest of the session)."""
    import importlib
    import sys

    def tripwire(*args, **kwargs):
        raise AssertionError("work started before the bad path was refused")

    for module in ("bench.studies.rerun", "bench.report.submit", "bench.run.bundle"):  # they bind WORK names
        importlib.import_module(module)
    for target in WORK:
        owner, _, name = target.rpartition(".")
        original = getattr(importlib.import_module(owner), name)
        for mod in [m for n, m in list(sys.modules.items()) if n.startswith("bench") and m is not None]:
            if getattr(mod, name, None) is original:
                monkeypatch.setattr(mod, name, tripwire)


@pytest.fixture
def where(tmp_path, jpeg_archive) -> dict:
    """{F}: a regular file, {D}: an empty folder, {tmp}: the test's folder, {jpeg}: a real data archive."""
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "dir").mkdir()
    return {"F": tmp_path / "file.txt", "D": tmp_path / "dir", "tmp": tmp_path, "jpeg": jpeg_archive}


def refused(capsys, where, args, says):
    code = main([a.format(**where) for a in args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and err.startswith("bench: error: ") and err.count("\n") == 1, err
    for s in says:
        assert s.format(**where) in err, (s, err)
    leftovers = [p for p in where["tmp"].rglob("*") if p not in (where["F"], where["D"])]
    assert not leftovers, leftovers  # nothing written: no table, bundle, plot, lock or temp file
    return err


UNDER_FILE = ["lies under a file", "cannot create or write it in {F} (not a folder)"]
FILE_FIX = UNDER_FILE + ["in a folder you can write"]
FOLDER_FIX = UNDER_FILE + ["under a folder you can write"]


PATH_CASES = [
    # bench run: the table, the bundles folder, the weights, the data and its cache
    (["run", "cpu_quick", "--reports", "{F}/reports"], ["--reports {F}/reports: ", *FOLDER_FIX]),
    (["run", "cpu_quick", "--reports", "{F}"], ["--reports {F}: is a file, not a folder; name a folder"]),
    (["run", "cpu_quick", "--results", "{F}/r.csv"], ["--results {F}/r.csv: ", *FILE_FIX]),
    (["run", "cpu_quick", "--save-model", "{F}/m.pt"], ["--save-model {F}/m.pt: ", *FILE_FIX]),
    (["run", "cpu_quick", "--save-model", "{D}"], ["--save-model {D}: is a directory; name a model file in it, "
                                                   "e.g. --save-model {D}/model.pt"]),
    (["run", "cpu_quick", "--save-model", "{tmp}/judge.json"],
     ["--save-model {tmp}/judge.json: the metadata is written to", "overwrite the weights", "{tmp}/judge.pt"]),
    (["run", "cpu_quick", "--data-dir", "{F}/cache"], ["--data-dir {F}/cache: ", *FOLDER_FIX]),
    (["run", "cpu_quick", "--data-dir", "{F}"], ["--data-dir {F}: is a file, not a folder"]),
    (["run", "cpu_quick", "--data", "{tmp}/missing.tar"], ["--data {tmp}/missing.tar: ", "not found", "Give 'cifar10'"]),
    (["run", "{D}"], ["RECIPE {D}: is a folder, not a recipe file; name a recipe .yaml file"]),
    (["show", "{D}"], ["RECIPE {D}: is a folder, not a recipe file"]),
    (["overhead", "{D}"], ["RECIPE {D}: is a folder, not a recipe file"]),
    # bench sweep (here and on SLURM, whose state lives beside the table)
    (["sweep", "cpu_quick", "--results", "{D}"], ["--results {D}: is a directory; name a CSV file in it"]),
    (["sweep", "cpu_quick", "--results", "{F}/r.csv"], ["--results {F}/r.csv: ", *FILE_FIX]),
    (["sweep", "cpu_quick", "--slurm", "--results", "{F}/r.csv"], ["--results {F}/r.csv: ", *FILE_FIX]),
    (["sweep", "cpu_quick", "--reports", "{F}/reports"], ["--reports {F}/reports: ", *FOLDER_FIX]),
    (["sweep", "cpu_quick", "--plot-dir", "{F}/plots"], ["--plot-dir {F}/plots: ", *FOLDER_FIX]),
    (["sweep", "cpu_quick", "--data-dir", "{F}/cache"], ["--data-dir {F}/cache: ", *FOLDER_FIX]),
    # bench speed, overhead, loaders
    (["speed", "cpu_quick", "--json", "{F}/x.json"], ["--json {F}/x.json: ", *FILE_FIX]),
    (["speed", "cpu_quick", "--json", "{D}"], ["--json {D}: is a directory; name a JSON file in it"]),
    (["speed", "cpu_quick", "--csv", "{F}/speed.csv"], ["--csv {F}/speed.csv: ", *FILE_FIX]),
    (["speed", "cpu_quick", "--csv", "{D}"], ["--csv {D}: is a directory; name a CSV file in it, e.g. --csv {D}/speed.csv"]),
    (["overhead", "cpu_quick", "--json", "{F}/x.json"], ["--json {F}/x.json: ", *FILE_FIX]),
    (["overhead", "cpu_quick", "--json", "{D}"], ["--json {D}: is a directory"]),
    (["overhead", "cpu_quick", "--data-dir", "{F}/cache"], ["--data-dir {F}/cache: ", *FOLDER_FIX]),
    (["loaders", "--json", "{F}/x.json"], ["--json {F}/x.json: ", *FILE_FIX]),
    (["loaders", "--json", "{D}"], ["--json {D}: is a directory"]),
    (["loaders", "--data", "{tmp}/missing"], ["--data {tmp}/missing: ", "not found"]),
    # bench compare, race, submit, report, verify, env
    (["compare", "--results", "{D}"], ["--results {D}: is a folder, not a file; name a results table"]),
    (["compare", "--results", "{tmp}/none.csv"], ["--results {tmp}/none.csv: does not exist; run `bench run` first"]),
    (["compare", "--results", "{jpeg}", "--plot", "{F}/c.png"], ["--plot {F}/c.png: ", *FILE_FIX]),
    (["compare", "--results", "{jpeg}", "--plot", "{D}"], ["--plot {D}: is a directory; name a PNG file in it"]),
    (["compare", "--results", "{jpeg}", "--no-plot", "--json", "{F}/c.json"], ["--json {F}/c.json: ", *FILE_FIX]),
    (["compare", "--results", "{jpeg}", "--no-plot", "--json", "{D}"], ["--json {D}: is a directory"]),
    (["race", "{D}", "--out", "{F}/race.png"], ["--out {F}/race.png: ", *FILE_FIX]),
    (["race", "{F}"], ["bundle {F}: is a file, not a folder; name a report bundle directory"]),
    (["submit", "{D}", "--out", "{F}/subs"], ["--out {F}/subs: ", *FOLDER_FIX]),
    (["submit", "{D}", "--out", "{F}"], ["--out {F}: is a file, not a folder"]),
    (["submit", "{tmp}/nope"], ["{tmp}/nope: no such bundle directory; name an existing report bundle directory"]),
    (["report", "{F}"], ["bundle {F}: is a file, not a folder"]),
    (["verify", "{F}"], ["bundle {F}: is a file, not a folder"]),
    (["env", "--json", "{F}/env.json"], ["--json {F}/env.json: ", *FILE_FIX]),
    (["env", "--json", "{D}"], ["--json {D}: is a directory"]),
    # bench data, site, import
    (["data", "info", "{jpeg}", "--json", "{F}/x.json"], ["--json {F}/x.json: ", *FILE_FIX]),
    (["data", "info", "{jpeg}", "--json", "{D}"], ["--json {D}: is a directory"]),
    (["data", "info", "{jpeg}", "--data-dir", "{F}/cache"], ["--data-dir {F}/cache: ", *FOLDER_FIX]),
    (["data", "info", "{tmp}/missing"], ["PATH {tmp}/missing: ", "not found"]),
    (["data", "fetch", "cifar10", "--data-dir", "{F}/cache"], ["--data-dir {F}/cache: ", *FOLDER_FIX]),
    (["data", "fetch", "cifar10", "--data-dir", "{F}"], ["--data-dir {F}: is a file, not a folder"]),
    (["site", "--out", "{F}/site"], ["--out {F}/site: ", *FOLDER_FIX]),
    (["site", "--out", "{F}"], ["--out {F}: is a file, not a folder"]),
    (["site", "--out", "{tmp}/s", "--results", "{D}"], ["--results {D}: is a folder, not a file; name a results table"]),
    (["site", "--out", "{tmp}/s", "--reports", "{F}"], ["--reports {F}: is a file, not a folder"]),
    (["site", "--out", "{tmp}/s", "--studies", "{tmp}/none"], ["--studies {tmp}/none: does not exist"]),
    (["import", "dawnbench", "{D}", "--out", "{F}/d.csv"], ["--out {F}/d.csv: ", *FILE_FIX]),
    (["import", "dawnbench", "{D}", "--out", "{D}"], ["--out {D}: is a directory; name a CSV file in it"]),
]


@pytest.mark.parametrize("args, says", [pytest.param(a, s, id=" ".join(a)) for a, s in PATH_CASES])
def test_a_bad_path_is_refused_before_any_work(no_work, where, capsys, args, says):
    refused(capsys, where, args, says)


def test_a_bundle_folder_without_write_permission_is_refused_by_report(no_work, where, capsys, monkeypatch):
    """bench report rewrites files in the bundle; os.access is replaced so the branch is the same as root."""
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **kw: False if Path(p) == where["D"] and mode & os.W_OK
                        else real(p, mode, *a, **kw))
    refused(capsys, where, ["report", "{D}"], ["bundle {D}: not writable", "(no write permission)"])
    with pytest.raises(AssertionError, match="work started"):  # verify only reads: on it goes
        main(["verify", str(where["D"])])


@pytest.mark.parametrize("args, says", [
    (["loaders", "--workers", "-1"], ["--workers -1: allowed: >= 0"]),  # ran, and printed "cannot run", exit 0
    (["loaders", "--images", "0"], ["--images 0: allowed: >= 1"]),  # the same
    (["loaders", "--images", "-3"], ["--images -3: allowed: >= 1"]),  # a numpy traceback
    (["verify", "{D}", "--rerun", "--runs", "0"], ["--runs 0: allowed: >= 1"]),  # refused already: pinned
    (["data", "fetch", "cifar10", "--data-dir", "{D}", "--url", "notaurl"],  # urllib's ValueError traceback
     ["--url 'notaurl': not a download URL; give an http(s)://", "or leave --url out"]),
])
def test_a_bad_count_or_value_is_refused_before_any_work(no_work, where, capsys, args, says):
    refused(capsys, where, args, says)


def test_an_unknown_env_device_is_refused(capsys):
    with pytest.raises(SystemExit) as e:  # argparse's own refusal: usage, one error line, exit 2
        main(["env", "--device", "tpu"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --device: invalid choice: 'tpu'" in err and "Traceback" not in err


@pytest.mark.parametrize("target", ["-1", "0"])
def test_compare_target_not_a_percent_suggests_a_fraction(tmp_path, capsys, target):
    table = tmp_path / "t.csv"
    table.write_text("run_id,status,target\nx,reached,0.94\n")
    code, out = run_bench(tmp_path, "compare", "--results", table, "--target", target, "--no-plot", capsys=capsys)
    assert code == 2 and "e.g. --target 0.94" in out.err  # was "e.g. --target -0.01" and "e.g. --target 0"


def test_sigterm_lands_an_aborted_row_and_exits_143(tmp_path, jpeg_archive):
    """What SLURM sends at a time limit: the row lands, one line says so, no traceback, exit 128 + 15."""
    import signal

    from bench.core.results import read_table

    results = tmp_path / "results.csv"
    cmd = [sys.executable, "-m", "bench", "run", "cpu_quick", "--data", str(jpeg_archive), "--results", str(results),
           "--reports", str(tmp_path / "reports"), "--set", "precision=fp32", "--set", "data.train_subset=1024",
           "--set", "data.test_subset=256", "--set", "model.params.widths=[8,16,16,16]",
           "--set", "optim.epochs=200", "--set", "target.value=0.99"]
    code, text, err = signal_when(cmd, marker="epoch   1", sig=signal.SIGTERM, cwd=tmp_path, within_s=300,
                                  finish_s=120, env={"OMP_NUM_THREADS": "1"}, merge_stderr=False)
    assert code == 128 + signal.SIGTERM, text + err
    assert "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == "bench: terminated by SIGTERM (signal 15)", err
    row = read_table(results).iloc[0]
    assert row["status"] == "aborted" and "SIGTERM" in row["error"] and row["epochs"] >= 1
    assert "appended to" in text
