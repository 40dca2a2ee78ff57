"""bench tune on the CPU: real trials on a tiny recipe (rows, bundles, the tuned bundle and its verify), resumption
after SIGTERM with no trial lost or run twice, and the orchestrator's rules (crashes, pruning, two processes on
one storage, a storage holding another tune) with a stand-in for the training run where only the bookkeeping
is under test."""
import json
import signal
import sys
import threading
from pathlib import Path

import pytest

from bench.cli import main
from bench.core.errors import Terminated
from bench.core.results import append_row, read_table
from bench.studies import tune
from bench.studies import tune_storage as ts

RECIPE = """name: tiny
model: {{arch: resnet9, params: {{widths: [8, 8, 16, 16]}}}}
data: {{source: {archive}, batch_size: 128, eval_batch_size: 256, train_subset: 512, test_subset: 256}}
optim: {{epochs: {epochs}}}
precision: bf16
target: {{value: {target}}}
hardware: {{device: cpu, threads: 1}}
tune:
  optim.lr: {{log_uniform: [0.05, 1.0]}}
  optim.label_smoothing: {{choice: [0.0, 0.2]}}
"""


def recipe_file(folder: Path, archive, epochs=1, target=0.05) -> Path:
    p = folder / "tiny.yaml"
    p.write_text(RECIPE.format(archive=archive, epochs=epochs, target=target))
    return p


def tune_cmd(recipe: Path, folder: Path, *extra) -> list[str]:
    return ["tune", str(recipe), "--dir", str(folder / "tune"), *map(str, extra)]


def the_bundle(folder: Path) -> Path:
    found = sorted((folder / "tune" / "tuned").glob("tiny-*"))
    assert len(found) == 1, found
    return found[0]


# ---------------------------------------------------------------- real trials


@pytest.mark.slow
def test_tune_runs_trials_writes_a_tuned_bundle_that_verifies_and_resumes_to_nothing(tmp_path, jpeg_archive, capsys):
    r = recipe_file(tmp_path, jpeg_archive)
    # several studies with real runs: test_tune_cluster.py (SLURM); here one, to keep the suite short
    assert main(tune_cmd(r, tmp_path, "--trials", 2, "--studies", 1)) == 0
    rows = read_table(tmp_path / "tune" / "results.csv")
    assert len(rows) == 2 and set(rows["status"]) <= {"reached", "missed"}
    assert sorted(zip(rows["tune_study"], rows["tune_trial"])) == [(0, 0), (0, 1)]
    assert rows["seed"].nunique() == 2  # every trial its own seed
    assert rows["recipe_hash"].nunique() == 2  # and its own drawn setting
    assert len(list((tmp_path / "tune" / "trials").iterdir())) == 2  # a report bundle per trial
    bundle = the_bundle(tmp_path)
    s = json.loads((bundle / "score.json").read_text())
    assert s["trials_run"] == 2 and s["device_hours"] == pytest.approx(rows["gpu_hours"].sum())
    out = capsys.readouterr().out
    assert f"-> {bundle}" in out and "at 2 trials x 1 studies" in out
    assert main(["verify", str(bundle)]) == 0
    if s["winner"] is not None:  # the winner is a recipe anyone can run: it loads and carries the drawn values
        from bench import recipe as recipes

        won = recipes.load(bundle / "winner.yaml")
        trial = rows[(rows["tune_study"] == s["winner"]["study"]) & (rows["tune_trial"] == s["winner"]["trial"])]
        assert won.hash == trial["recipe_hash"].iloc[0]
    manifest = (bundle / "MANIFEST").read_text()

    # the same command again: every study has its trials, nothing runs, the same bundle is written
    assert main(tune_cmd(r, tmp_path, "--trials", 2, "--studies", 1)) == 0
    assert len(read_table(tmp_path / "tune" / "results.csv")) == 2
    assert (bundle / "MANIFEST").read_text() == manifest

    # a larger budget on the same storage is another tune: refused, naming the storage
    assert main(tune_cmd(r, tmp_path, "--trials", 3, "--studies", 1)) == 2
    err = capsys.readouterr().err
    assert "journal.log: already holds study 'tiny/study0' of another tune (trials: 2 there, 3 here" in err


def test_an_edited_tuned_bundle_is_named_by_verify(tmp_path, capsys):
    from bench.report import manifest, tuned

    bundle = fake_tuned_bundle(tmp_path)
    assert tuned.verify(bundle) == []
    trials = bundle / "trials.csv"
    text = trials.read_text()
    trials.write_text(text.replace(",reached,30.0,", ",reached,3.0,", 1))
    assert main(["verify", str(bundle)]) == 1
    assert "trials.csv: changed" in capsys.readouterr().err
    manifest.write(bundle)  # an editor who also rewrites the MANIFEST is caught by the recomputation
    problems = tuned.verify(bundle)
    assert any(p.startswith("score.json: score_s is 30.0; trials.csv gives 3.0") for p in problems), problems
    assert any("time_to_target_s 3.0 but its row says 30.0" in p for p in problems), problems
    trials.write_text(text.replace('"0.5"', '"7.5"', 1) if '"0.5"' in text else text.replace(",0.5", ",7.5", 1))
    manifest.write(bundle)
    assert any("lies outside the space" in p for p in tuned.verify(bundle))


def fake_tuned_bundle(tmp_path: Path) -> Path:
    """A tuned bundle written from hand-made records (bench.report.tuned.write), no training."""
    from bench.report import tuned

    space = {"optim.lr": {"log_uniform": [0.05, 1.0]}}
    tune_json = {"recipe": "tiny", "recipe_hash": "h", "space_hash": "s", "sampler": "qmc", "seed": 0, "trials": 2,
                 "studies": 1, "prune": False, "data": "d", "tune_id": "t", "space": space}
    recs = [{"study": 0, "trial": 0, "state": "complete", "status": "reached", "time_to_target_s": 30.0,
             "wall_s": 40.0, "device_hours": 0.01, "cost_usd": None, "run_id": "r0", "values": {"optim.lr": 0.5}},
            {"study": 0, "trial": 1, "state": "complete", "status": "missed", "time_to_target_s": None,
             "wall_s": 50.0, "device_hours": 0.02, "cost_usd": None, "run_id": "r1", "values": {"optim.lr": 0.1}}]
    rows = [{"run_id": "r0", "status": "reached", "time_to_target_s": 30.0, "gpu_hours": 0.01},
            {"run_id": "r1", "status": "missed", "time_to_target_s": None, "gpu_hours": 0.02}]
    return tuned.write(tmp_path / "tuned" / "tiny-t", tune_json, recs, rows, {"name": "tiny", "optim": {"lr": 0.5}})


@pytest.mark.slow
def test_sigterm_mid_trial_aborts_it_and_the_same_command_finishes_the_tune(tmp_path, jpeg_archive):
    from processes import signal_when

    r = recipe_file(tmp_path, jpeg_archive, epochs=2, target=0.99)  # never reached: every trial runs 2 epochs
    cmd = [sys.executable, "-m", "bench", *tune_cmd(r, tmp_path, "--trials", 2, "--studies", 1)]
    code, out, _ = signal_when(cmd, marker="epoch   1", sig=signal.SIGTERM, cwd=tmp_path, within_s=120)
    assert code == 128 + signal.SIGTERM, out
    storage = ts.open_storage(str(tmp_path / "tune" / "journal.log"))
    study = ts._optuna().load_study(study_name="tiny/study0", storage=storage)
    first = ts.records(study)
    assert [(x["trial"], x["state"]) for x in first] == [(0, "aborted")]
    aborted_values = first[0]["values"]
    rows = read_table(tmp_path / "tune" / "results.csv")
    assert list(rows["status"]) == ["aborted"]  # the interrupted run's row landed, as any run's does

    assert main(tune_cmd(r, tmp_path, "--trials", 2, "--studies", 1)) == 0
    recs = ts.records(study)
    assert [x["state"] for x in recs] == ["aborted", "complete", "complete"]
    assert recs[1]["values"] == aborted_values  # the aborted trial ran again, with the same values
    assert recs[2]["values"] != aborted_values
    bundle = the_bundle(tmp_path)
    s = json.loads((bundle / "score.json").read_text())
    assert s["trials_run"] == 3 and not s["reached"]  # the aborted trial's time is in the cost
    assert main(["verify", str(bundle)]) == 0


def test_a_run_past_its_deadline_is_pruned_and_recorded(tmp_path, jpeg_archive):
    from bench import recipe as recipes
    from bench.run.runner import train_recipe

    r = recipes.load(recipe_file(tmp_path, jpeg_archive, epochs=3, target=0.99))
    with pytest.raises(Exception, match="pruned at"):
        train_recipe(r, results_path=tmp_path / "r.csv", reports_dir=None, deadline_s=0.0, say=lambda s: None)
    row = read_table(tmp_path / "r.csv").iloc[0]
    assert row["status"] == "aborted" and row["error"].startswith("Pruned: pruned at") and row["epochs"] == 1
    assert tune.trial_record(row.to_dict(), {}, 1.0, 1, None, False)["state"] == "pruned"


# ---------------------------------------------------------------- the bookkeeping, with a stand-in run


class FakeRuns:
    """Stands in for run_in_fresh_process: writes the row a run would, from a script of outcomes per call."""

    def __init__(self, outcomes):
        self.outcomes, self.calls, self.lock = list(outcomes), [], threading.Lock()

    def __call__(self, recipe, tag, *, results_path, tags, deadline_s, **kwargs):
        with self.lock:
            outcome = self.outcomes.pop(0) if self.outcomes else ("missed", None)
            self.calls.append({"lr": recipe.optim.lr, "deadline": deadline_s, **tags})
        status, t = outcome
        if status == "crash":  # the process died before writing a row
            raise RuntimeError("tiny: run process exited with code -9")
        if status == "sigterm":
            append_row(results_path, {"run_id": f"x{len(self.calls)}", "status": "aborted", **tags, "gpu_hours": 0.5,
                                      "error": "Terminated: terminated by SIGTERM (signal 15)"})
            raise Terminated(signal.SIGTERM)
        error = "Pruned: pruned at 9.0s" if status == "pruned" else None
        append_row(results_path, {"run_id": f"x{len(self.calls)}-{tags['tune_study']}-{tags['tune_trial']}",
                                  "status": "aborted" if status == "pruned" else status, "time_to_target_s": t,
                                  "gpu_hours": 0.01, "error": error, **tags})


def args_for(recipe: Path, folder: Path, *extra):
    from bench.cli import build_parser

    return build_parser().parse_args(tune_cmd(recipe, folder, *extra))


def test_crashes_count_prunes_count_and_an_interrupted_trial_runs_again(tmp_path, jpeg_archive):
    r = recipe_file(tmp_path, jpeg_archive)
    fake = FakeRuns([("reached", 20.0), ("crash", None), ("sigterm", None)])
    with pytest.raises(Terminated):
        tune.run_tune(args_for(r, tmp_path, "--trials", 4, "--studies", 1, "--prune"), say=lambda s: None, run=fake)
    assert fake.calls[0]["deadline"] is None and fake.calls[1]["deadline"] == 20.0  # the study's best so far
    fake.outcomes = [("pruned", None), ("reached", 15.0), ("missed", None)]
    assert tune.run_tune(args_for(r, tmp_path, "--trials", 4, "--studies", 1, "--prune"), say=lambda s: None,
                         run=fake) == 0
    assert fake.calls[3]["lr"] == fake.calls[2]["lr"]  # the interrupted trial first, with its values
    assert fake.calls[4]["deadline"] == 20.0 and fake.calls[4]["lr"] != fake.calls[2]["lr"]
    assert len(fake.calls) == 5  # 4 counted trials and the one interrupted: nothing lost, nothing twice
    s = json.loads((the_bundle(tmp_path) / "score.json").read_text())
    assert s["score_s"] == 15.0 and s["trials_run"] == 5
    trials = (the_bundle(tmp_path) / "trials.csv").read_text()
    assert ",complete,failed," in trials and ",pruned," in trials and ",aborted," in trials
    assert s["device_hours"] == pytest.approx(0.01 * 3 + 0.5 + fake_crash_hours(trials))


def fake_crash_hours(trials_csv: str) -> float:
    """The crashed trial has no row: its device-hours are the tune's own measure of its time."""
    import csv
    import io

    row = next(r for r in csv.DictReader(io.StringIO(trials_csv)) if r["status"] == "failed")
    assert row["run_id"] == "" and float(row["device_hours"]) > 0
    return float(row["device_hours"])


def test_two_processes_on_one_storage_share_the_studies_exactly(tmp_path, jpeg_archive):
    r = recipe_file(tmp_path, jpeg_archive)
    slow = FakeRuns([])
    slow_call = slow.__call__

    def run(*a, **kw):
        import time

        time.sleep(0.3)  # long enough for both workers to be mid-trial together
        return slow_call(*a, **kw)

    errors = []

    def worker():
        try:
            tune.run_tune(args_for(r, tmp_path, "--trials", 3, "--studies", 2), say=lambda s: None, run=run)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    keys = [(c["tune_study"], c["tune_trial"]) for c in slow.calls]
    assert len(keys) == 6 and len(set(keys)) == 6  # 3 per study, none run twice
    assert main(["verify", str(the_bundle(tmp_path))]) == 0


def test_bad_budgets_and_storages_are_refused_before_any_trial(tmp_path, jpeg_archive, capsys):
    r = recipe_file(tmp_path, jpeg_archive)
    assert main(tune_cmd(r, tmp_path, "--trials", 0)) == 2
    assert "--trials 0: allowed: >= 1" in capsys.readouterr().err
    assert main(tune_cmd(r, tmp_path, "--studies", -1)) == 2
    assert "--studies -1: allowed: >= 1" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert main(tune_cmd(r, tmp_path, "--storage", tmp_path / "afile" / "journal.log")) == 2
    assert "--storage" in capsys.readouterr().err
    plain = tmp_path / "plain.yaml"
    plain.write_text(RECIPE.format(archive=jpeg_archive, epochs=1, target=0.05).split("tune:")[0])
    assert main(["tune", str(plain), "--dir", str(tmp_path / "t2")]) == 2
    assert "declares no search space: add a `tune:` section" in capsys.readouterr().err
    assert not (tmp_path / "tune").exists()


def test_the_site_shows_tuned_results_on_a_board_of_their_own(tmp_path):
    from bench.core.results import append_row
    from bench.site.build import build

    tuning = tmp_path / "tuning" / "tiny"
    bundle = fake_tuned_bundle(tuning)
    trial = tuning / "trials" / "tiny-20261207T000000Z-abcdef"  # a trial's bundle, as bench run leaves one
    (trial / "runs" / "r0").mkdir(parents=True)
    (trial / "report.md").write_text("# a trial\n")
    for name, value in (("device_name", "AMD EPYC"), ("dataset", "imagefolder:x"), ("target", "0.55")):
        text = (bundle / "rows.csv").read_text().splitlines()
        text[0] += f",{name}"
        text[1:] = [line + f",{value}" for line in text[1:]]
        (bundle / "rows.csv").write_text("\n".join(text) + "\n")
    table = tmp_path / "results.csv"
    append_row(table, {"run_id": "x", "recipe": "handset_only", "status": "reached", "time_to_target_s": 9.0,
                       "target": 0.55, "dataset": "imagefolder:x", "device": "cpu", "device_name": "AMD EPYC"})
    built = build(tmp_path / "site", [table], [], [], [], tuned=[tmp_path / "tuning"])
    index = (tmp_path / "site" / "index.html").read_text()
    tuned_section = index[index.index('id="tuned"'):index.index('id="reported"')]
    assert "time to 55.00% at equal tuning budget (2 trials x 1 studies)" in tuned_section
    assert 'href="tuned/tiny-t/index.html">tiny</a>' in tuned_section and "30.0 s" in tuned_section
    assert "handset_only" not in tuned_section and "handset_only" in index  # single-setting rows: their own boards
    assert "FAILS" in tuned_section  # rows.csv was edited above, so its MANIFEST no longer matches
    page = (tmp_path / "site" / "tuned" / "tiny-t" / "index.html").read_text()
    assert "bench verify</code> on this folder FAILS: rows.csv: changed" in page
    assert 'href="trials/tiny-20261207T000000Z-abcdef/report.md">r0</a>' in page
    assert (tmp_path / "site" / "tuned" / "tiny-t" / "trials" / trial.name / "report.md").is_file()
    assert len(built.tuned) == 1


def test_a_running_trial_is_taken_as_dead_only_when_its_owner_is_gone():
    import socket
    import subprocess
    import time

    dead = subprocess.Popen(["true"])
    dead.wait()
    here, now = socket.gethostname(), time.time()
    assert ts._gone({"owner": {"host": here, "pid": dead.pid}, "heartbeat": now}, now)  # its pid is gone
    assert not ts._gone({"owner": {"host": here, "pid": 1}, "heartbeat": now}, now)  # alive (init)
    elsewhere = {"owner": {"host": "another-node", "pid": dead.pid}}
    assert not ts._gone({**elsewhere, "heartbeat": now - ts.GRACE_S + 5}, now)  # another host: its heartbeat
    assert ts._gone({**elsewhere, "heartbeat": now - ts.GRACE_S - 5}, now)
    # asked, then gone before its first heartbeat: judged by when it started
    assert ts._gone({}, now, started=now - ts.GRACE_S - 5) and not ts._gone({}, now, started=now - 5)
