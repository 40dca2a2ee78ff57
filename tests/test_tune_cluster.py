"""bench tune against the real engines: a family tuned as one job array on the tests' one-node SLURM cluster
(tests/slurm_cluster.py), and tunes whose Optuna storage is a real PostgreSQL server (tests/postgres_server.py):
resumed, refused when the space changes, and shared by two processes at once. Every trial is a real run of a
tiny ResNet-9 on 512 images of the JPEG copy of CIFAR-10."""
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench.cli import build_parser, main
from bench.core.errors import BenchError
from bench.core.results import read_table
from bench.core.tuning import COUNTED
from bench.studies import tune_slurm
from bench.studies import tune_storage as ts
from bench.system import slurm

ROOT = Path(__file__).resolve().parents[1]

BASE = """
name: {name}
model: {{arch: resnet9, params: {{widths: [8, 8, 16, 16]}}}}
data: {{source: {archive}, batch_size: 128, eval_batch_size: 256, train_subset: 512, test_subset: 256}}
optim: {{epochs: 1}}
precision: bf16
target: {{value: 0.05}}
hardware: {{device: cpu, threads: 1}}
"""
SPACE = "optim.lr: {{log_uniform: [0.05, {high}]}}"


def recipe(path: Path, name: str, archive: Path, high: float = 1.0) -> Path:
    path.write_text(BASE.format(name=name, archive=archive) + f"tune: {{{SPACE.format(high=high)}}}\n")
    return path


def bench_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def bench(*args, cwd: Path, timeout_s: float = 150) -> subprocess.CompletedProcess:
    """`python -m bench ARGS` in a process of its own, as a user types it."""
    return subprocess.run([sys.executable, "-m", "bench", *map(str, args)], cwd=cwd, env=bench_env(),
                          capture_output=True, text=True, timeout=timeout_s)


def counted_trials(storage, study_name: str) -> list[int]:
    """The numbers of a study's counted trials, as its storage holds them; no trial may be left running."""
    import optuna

    study = optuna.load_study(study_name=study_name, storage=storage)
    running = [t.number for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,))]
    assert not running, f"{study_name}: trials {running} still running"
    return [r["trial"] for r in ts.records(study) if r.get("state") in COUNTED]


def check_rows(results: Path, per_study: dict[tuple[str, int], int]):
    """results.csv has exactly one row per trial: per (recipe, study), as many rows as trials, each trial
    number once, every row tagged with its tune."""
    df = read_table(results)
    tags = ["tune_id", "tune_study", "tune_trial"]
    assert set(tags) <= set(df.columns) and len(df), f"{results}: no trial rows ({len(df)} rows, columns {list(df)})"
    assert df[tags].notna().all().all(), df
    got = {(r, int(k)): sorted(int(t) for t in g["tune_trial"]) for (r, k), g in df.groupby(["recipe", "tune_study"])}
    assert {key: len(trials) for key, trials in got.items()} == per_study, got
    for key, trials in got.items():
        assert len(set(trials)) == len(trials), f"{key}: a trial number ran twice: {trials}"
    assert df["run_id"].is_unique
    return df


def verified(bundle: Path) -> None:
    assert main(["verify", str(bundle)]) == 0, bundle


# ---------------------------------------------------------------- SLURM: a family as one job array


@pytest.mark.slow
def test_slurm_tune_of_a_family_runs_one_array_and_writes_verified_bundles(
        slurm_cluster, tmp_path, jpeg_archive, monkeypatch, capsys):
    trials, studies = 1, 2  # 2 recipes x 2 studies x 1 trial: about 35 s on 2 cores (55 s decoding the data)
    fam = tmp_path / "fam"
    fam.mkdir()
    (fam / "_base.yaml").write_text(BASE.format(name="tiny_base", archive=jpeg_archive))
    (fam / "a.yaml").write_text("extends: _base\nname: tiny_a\n")
    (fam / "b.yaml").write_text("extends: _base\nname: tiny_b\nmodel: {params: {widths: [8, 16, 16, 16]}}\n")
    (fam / "tune.yaml").write_text(SPACE.format(high=1.0) + "\n")  # the family's space, beside its recipes
    folder = tmp_path / "tune"
    # The tasks get the submitting environment: this cluster, this checkout, the session's data cache.
    for key, value in slurm_cluster.env(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(tune_slurm, "POLL_S", 0.5)
    live_jobs, deadline = slurm.live_jobs, time.monotonic() + 240

    def bounded_live_jobs(*a, **kw):  # --wait polls until the array is gone: a hung task fails the test
        assert time.monotonic() < deadline, "the array is still running after 240 s:\n" + logs(folder)
        return live_jobs(*a, **kw)

    monkeypatch.setattr(slurm, "live_jobs", bounded_live_jobs)
    argv = ["tune", str(fam), "--trials", str(trials), "--studies", str(studies), "--dir", str(folder)]

    args = build_parser().parse_args([*argv, "--slurm", "--wait"])
    rc = args.func(args)
    out = capsys.readouterr().out
    assert rc == 0, out + logs(folder)

    # One array of recipes x studies tasks, each running one study of one recipe, all completed.
    scripts = list(folder.glob("array-*.sbatch"))
    assert len(scripts) == 1, scripts
    text = scripts[0].read_text()
    assert "#SBATCH --array=0-3" in text and len(re.findall(r"^  \d\) exec ", text, re.M)) == 4, text
    for i, (name, k) in enumerate([("a", 0), ("a", 1), ("b", 0), ("b", 1)]):
        line = re.search(rf"^  {i}\) exec .*$", text, re.M).group(0)
        assert f"{fam / name}.yaml" in line and f"--study {k} " in line, line
    array = re.search(r"submitted job array (\d+) \(4 tasks: 2 recipe\(s\) x 2 studies\)", out).group(1)
    tasks = [f"{array}_{i}" for i in range(4)]
    assert {j: e.state for j, e in slurm.ended_jobs(tasks).items()} == {j: "COMPLETED" for j in tasks}, logs(folder)
    assert sorted(p.name for p in (folder / "parts").glob("*.csv")) == [f"{t}.csv" for t in tasks]
    for t in tasks:
        assert len(read_table(folder / "parts" / f"{t}.csv")) == trials, t

    # Every study has exactly its trials, and the merged table one row per trial.
    storage = ts.open_storage(str(folder / "journal.log"))
    for name in ("tiny_a", "tiny_b"):
        for k in range(studies):
            assert len(counted_trials(storage, f"{name}/study{k}")) == trials, (name, k)
    df = check_rows(folder / "results.csv", {(n, k): trials for n in ("tiny_a", "tiny_b") for k in range(studies)})

    # Each recipe's tuned bundle, named by its tune id, verifies.
    ids = {name: set(g["tune_id"].astype(str)) for name, g in df.groupby("recipe")}
    assert all(len(v) == 1 for v in ids.values()) and ids["tiny_a"] != ids["tiny_b"], ids
    bundles = sorted((folder / "tuned").iterdir())
    assert [b.name for b in bundles] == [f"{n}-{ids[n].pop()}" for n in ("tiny_a", "tiny_b")]
    for b in bundles:
        assert len(read_table(b / "trials.csv")) == trials * studies
        verified(b)

    # The same command without --slurm merges again (nothing new), runs nothing, submits nothing.
    args = build_parser().parse_args(argv)
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "] optim.lr=" not in out and "submitted" not in out, out
    assert len(read_table(folder / "results.csv")) == len(df) and len(list(folder.glob("*.sbatch"))) == 1
    for b in bundles:
        verified(b)


def logs(folder: Path) -> str:
    return "".join(f"\n--- {p}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted((folder / "logs").glob("*")))


# ---------------------------------------------------------------- PostgreSQL: a database as the storage


@pytest.mark.slow
def test_tune_on_postgres_resumes_and_refuses_another_space(postgres_url, tmp_path, jpeg_archive):
    tiny = recipe(tmp_path / "tiny.yaml", "tiny_pg", jpeg_archive)
    folder = tmp_path / "tune"
    argv = ["tune", tiny, "--trials", 2, "--studies", 1, "--dir", folder, "--storage", postgres_url]

    first = bench(*argv, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"storage {postgres_url}" in first.stdout
    df = check_rows(folder / "results.csv", {("tiny_pg", 0): 2})
    bundle = folder / "tuned" / f"tiny_pg-{df['tune_id'].astype(str).iloc[0]}"
    verified(bundle)
    storage = ts.open_storage(postgres_url)
    assert sorted(counted_trials(storage, "tiny_pg/study0")) == [0, 1]
    assert not (folder / "journal.log").exists()  # the database holds the study, not a journal beside it

    again = bench(*argv, cwd=tmp_path)  # the same command: the study is complete, nothing runs
    assert again.returncode == 0, again.stdout + again.stderr
    assert "] optim.lr=" not in again.stdout and str(bundle) in again.stdout, again.stdout
    assert len(read_table(folder / "results.csv")) == 2
    assert sorted(counted_trials(storage, "tiny_pg/study0")) == [0, 1]
    verified(bundle)

    recipe(tiny, "tiny_pg", jpeg_archive, high=2.0)  # same recipe name, another space, same storage: refused
    other = bench(*argv, cwd=tmp_path)
    assert other.returncode == 2, other.stdout + other.stderr
    lines = other.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error: "), other.stderr
    assert postgres_url in lines[0] and "tiny_pg/study0" in lines[0] and "space_hash" in lines[0], lines[0]
    assert len(read_table(folder / "results.csv")) == 2
    assert sorted(counted_trials(storage, "tiny_pg/study0")) == [0, 1]


@pytest.mark.slow
def test_two_tunes_sharing_a_postgres_storage_run_each_trial_once(postgres_url, tmp_path, jpeg_archive):
    from postgres_server import fresh_database

    trials, studies = 2, 2
    race = recipe(tmp_path / "race.yaml", "tiny_race", jpeg_archive)
    folder = tmp_path / "tune"
    url = fresh_database(postgres_url, "two_tunes")  # empty: both also race to create Optuna's tables
    argv = [sys.executable, "-m", "bench", "tune", str(race), "--trials", str(trials), "--studies", str(studies),
            "--dir", str(folder), "--storage", url]
    procs = [subprocess.Popen(argv, cwd=tmp_path, env=bench_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=200)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    shown = "\n".join(f"--- process {i} (exit {p.returncode})\n{o}" for i, (p, o) in enumerate(zip(procs, outs)))
    # Exit 1: done with its share while the other still ran a trial (its bundle is left to the last one).
    assert sorted(p.returncode for p in procs) in ([0, 0], [0, 1]), shown

    started = [m for o in outs for m in re.findall(r"^\[tiny_race study (\d+)/2 trial (\d+)\] optim", o, re.M)]
    assert len(started) == trials * studies and len(set(started)) == len(started), shown
    storage = ts.open_storage(url)
    for k in range(studies):
        assert len(counted_trials(storage, f"tiny_race/study{k}")) == trials, (k, shown)
    df = check_rows(folder / "results.csv", {("tiny_race", k): trials for k in range(studies)})

    again = bench(*argv[3:], cwd=tmp_path)  # the studies are complete: nothing runs, the bundle is written
    assert again.returncode == 0 and "] optim.lr=" not in again.stdout, again.stdout + again.stderr
    assert len(read_table(folder / "results.csv")) == len(df)
    verified(folder / "tuned" / f"tiny_race-{df['tune_id'].astype(str).iloc[0]}")


# ---------------------------------------------------------------- workers starting at the same moment


OPEN_AT = """
import sys, time
from bench.studies import tune_storage as ts
at = float(sys.argv[2])
while time.time() < at:
    pass
ts.open_storage(sys.argv[1])
"""


@pytest.mark.slow
def test_workers_starting_together_on_a_new_database_all_open_it(postgres_url, tmp_path):
    """Optuna creates its tables in an empty database on first use; workers that start together race to
    create them (optuna#1092), and none may fail for it."""
    from postgres_server import fresh_database

    url = fresh_database(postgres_url, "opened_together")
    at = str(time.time() + 5)  # past every worker's imports
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_AT, url, at], cwd=tmp_path, env=bench_env(),
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(errors)


# ---------------------------------------------------------------- a study another process is creating


@pytest.mark.parametrize("engine", ["journal", "postgres"])
def test_a_study_whose_creator_is_still_writing_its_identity_is_waited_for(engine, tmp_path, request):
    """Two processes opening a new study at once: the one that loses the race to create it may find the
    winner's identity half written (one attribute at a time). It waits for the rest instead of refusing the
    storage as another tune's."""
    import optuna

    spec = str(tmp_path / "journal.log") if engine == "journal" else request.getfixturevalue("postgres_url")
    name = f"half_written_{engine}/study0"
    identity = {"recipe": "r", "recipe_hash": "h", "space_hash": "s", "sampler": "qmc", "seed": 0, "trials": 2,
                "studies": 1, "prune": False, "data": "d"}
    storage = ts.open_storage(spec)
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize")
    keys = list(identity)
    study.set_user_attr(keys[0], identity[keys[0]])  # the creator, caught between two of its writes

    def finish_writing():
        time.sleep(0.5)
        for key in keys[1:]:
            study.set_user_attr(key, identity[key])

    writer = threading.Thread(target=finish_writing)
    writer.start()
    try:
        opened = ts.open_study(ts.open_storage(spec), name, identity, None, spec)
    finally:
        writer.join()
    assert opened.user_attrs == identity

    other = {**identity, "space_hash": "another"}  # a finished study of another tune is still refused
    with pytest.raises(BenchError, match=r"already holds study .*space_hash: 's' there, 'another' here"):
        ts.open_study(ts.open_storage(spec), name, other, None, spec)
