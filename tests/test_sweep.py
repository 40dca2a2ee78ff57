"""bench sweep on a tiny real family (two 1-epoch ResNet-9s on 512 JPEG images): runs, resumes, --force,
--set; and family_files for names, folders, globs and nothing found."""
import time

import pytest

from bench.cli import build_parser

from bench import recipe

from bench.studies import sweep
from bench.core.errors import BenchError
from bench.core.results import read_table

BASE = """
name: tiny_base
model: {{arch: resnet9, params: {{widths: [8, 8, 16, 16]}}}}
data: {{source: {archive}, batch_size: 128, eval_batch_size: 256, train_subset: 512, test_subset: 256}}
optim: {{epochs: 1}}
precision: bf16
target: {{value: 0.05}}
hardware: {{device: cpu, threads: 1}}
"""


@pytest.fixture
def family(tmp_path, jpeg_archive):
    fam = tmp_path / "tinyfam"
    fam.mkdir()
    (fam / "_base.yaml").write_text(BASE.format(archive=jpeg_archive))
    (fam / "a.yaml").write_text("# as the base\nextends: _base\nname: tiny_a\n")
    (fam / "b.yaml").write_text("# lr 0.2 instead of 0.4\nextends: _base\nname: tiny_b\noptim: {lr: 0.2}\n")
    return fam


def current_commit():
    from bench.system.envinfo import git_state

    return git_state().get("commit")


def sweep_args(tmp_path, spec, *extra):
    return build_parser().parse_args(["sweep", str(spec), "--results", str(tmp_path / "results.csv"),
                         "--reports", str(tmp_path / "reports"), "--plot-dir", str(tmp_path / "plots"),
                         *map(str, extra)])


def test_sweep_runs_resumes_forces_and_reruns_on_a_changed_set(family, tmp_path, capsys):
    table = tmp_path / "results.csv"
    commit = current_commit()  # the skip rule keys on it: a commit landing mid-test would rerun everything
    t0 = time.monotonic()
    assert sweep.run_sweep(sweep_args(tmp_path, family)) == 0
    elapsed = time.monotonic() - t0
    df = read_table(table)
    assert sorted(df["recipe"]) == ["tiny_a", "tiny_b"]
    # A process per recipe: each wall clock starts at its own process's start. In one shared process
    # the second would be charged from this test process's start, past the sweep's whole duration.
    assert df["wall_s"].sum() <= elapsed
    assert (tmp_path / "plots" / "time_per_epoch.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "[1/2] tiny_a" in out and "[2/2] tiny_b" in out and "left)" in out  # progress with an estimate

    assert sweep.run_sweep(sweep_args(tmp_path, family)) == 0
    if current_commit() != commit:
        pytest.skip("a commit landed during the test; the resumption check needs a fixed commit")
    assert len(read_table(table)) == 2
    assert capsys.readouterr().out.count(": skipped, 1 matching run") == 2

    assert sweep.run_sweep(sweep_args(tmp_path, family, "--force")) == 0
    assert len(read_table(table)) == 4

    # a glob picks one member; a changed --set is another resolved recipe, so it runs
    assert sweep.run_sweep(sweep_args(tmp_path, family / "a.y*ml", "--set", "optim.lr=0.3")) == 0
    df = read_table(table)
    assert len(df) == 5 and df["recipe_hash"].nunique() == 3


def test_aborted_rows_do_not_count_and_runs_top_up(family, tmp_path):
    from bench.core.results import append_row

    files = recipe.family_files(str(family))
    first = sweep.make_plan(files, [], 2, False, tmp_path / "none.csv", None, None,
                            sweep.Identity("c0ffee", "cpu-x"))
    table = tmp_path / "results.csv"
    p = first[0]
    common = {"recipe": p.recipe.name, "recipe_hash": p.recipe.hash, "dataset_fingerprint": p.fingerprint,
              "git_commit": "c0ffee", "device_name": "cpu-x"}
    append_row(table, {**common, "status": "aborted"})
    append_row(table, {**common, "status": "missed"})
    append_row(table, {**common, "status": "reached", "device_name": "other-gpu"})
    plan = sweep.make_plan(files, [], 2, False, table, None, None, sweep.Identity("c0ffee", "cpu-x"))
    assert [(q.done, q.todo) for q in plan] == [(1, 1), (0, 2)]


def test_family_by_name_folder_and_glob_leave_bases_out(family):
    names = [f.name for f in recipe.family_files("bottleneck")]
    assert names == sorted(names) and "_base.yaml" not in names and "funnel1.yaml" in names
    assert [f.name for f in recipe.family_files(str(family))] == ["a.yaml", "b.yaml"]
    assert [f.name for f in recipe.family_files(str(family / "*.yaml"))] == ["a.yaml", "b.yaml"]
    assert [f.name for f in recipe.family_files(str(family / "_*.yaml"))] == ["_base.yaml"]
    assert [f.name for f in recipe.family_files("recipes/wrn/d22_k1*.yaml")] == ["d22_k1.yaml", "d22_k10.yaml"]


def test_nothing_found_names_the_spec_and_the_families():
    with pytest.raises(BenchError, match=r"'nonesuch'.*known families: .*bottleneck.*wrn"):
        recipe.family_files("nonesuch")
