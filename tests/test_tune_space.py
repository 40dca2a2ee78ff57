"""Search spaces for bench tune (bench.recipe.space) and the tuned score (bench.core.tuning): declared, checked
with the recipe's own rules before any trial, hashed; scored by AlgoPerf's rule with every trial's cost."""
import math

import pytest

from bench import recipe as recipes
from bench.cli import main
from bench.core import tuning
from bench.core.errors import BenchError
from bench.recipe.space import as_overrides, load_space

BASE = """name: tiny
model: {arch: resnet9, params: {widths: [8, 8, 16, 16]}}
optim: {epochs: 4}
hardware: {device: cpu}
"""


def write(folder, name, text):
    p = folder / name
    p.write_text(text)
    return p


def space_error(path, overrides=()) -> str:
    with pytest.raises(BenchError) as info:
        load_space(path, list(overrides))
    return str(info.value)


def test_a_space_is_read_checked_and_hashed(tmp_path):
    p = write(tmp_path, "r.yaml", BASE + "tune:\n  optim.lr: {log_uniform: [0.05, 3.0]}\n"
                                         "  optim.epochs: {int: [2, 6]}\n  optim.label_smoothing: {choice: [0.0, 0.2]}\n")
    space = load_space(p)
    assert space.paths == ["optim.epochs", "optim.label_smoothing", "optim.lr"]
    assert [d.kind for d in space.dims] == ["int", "choice", "log_uniform"]
    # the recipe itself runs as before: the space is not part of one run's identity
    assert recipes.load(p).hash == recipes.load(write(tmp_path, "plain.yaml", BASE)).hash
    other = write(tmp_path, "r2.yaml", BASE + "tune:\n  optim.lr: {log_uniform: [0.05, 2.0]}\n"
                                             "  optim.epochs: {int: [2, 6]}\n  optim.label_smoothing: {choice: [0.0, 0.2]}\n")
    assert load_space(other).hash != space.hash
    assert load_space(write(tmp_path, "none.yaml", BASE)) is None
    # drawn values go back in as --set lines, types intact
    r = recipes.load(p, as_overrides({"optim.lr": 1e-05, "optim.epochs": 3, "optim.label_smoothing": 0.2}))
    assert (r.optim.lr, r.optim.epochs, r.optim.label_smoothing) == (1e-05, 3, 0.2)


def test_every_problem_of_a_space_is_named_at_once(tmp_path):
    p = write(tmp_path, "bad.yaml", BASE + """tune:
  optim.lr: {log_uniform: [0, 3.0]}
  optim.epochs: {int: [0, 6]}
  optim.momentun: {uniform: [0.8, 0.99]}
  optim.weight_decay: {uniform: [1e-3, 1e-4]}
  optim.label_smoothing: {gaussian: [0, 1]}
  model.params.widths: {choice: [[8, 8, 16, 16], [8, 8, 16]]}
  optim.batch: 3
""")
    text = space_error(p)
    assert "7 problems" in text
    assert "tune.optim.lr.log_uniform: low 0; a log scale needs low > 0" in text
    assert "tune.optim.epochs = 0: optim.epochs: 0 is out of range" in text or "tune.optim.epochs = 0:" in text
    assert "tune.optim.momentun = 0.8: optim.momentun: unknown field" in text
    assert "low 0.001 is not below high 0.0001" in text
    assert "'gaussian' is not a distribution" in text
    assert "tune.model.params.widths = [8, 8, 16]" in text  # the builder's own rule refuses three widths
    assert "tune.optim.batch: 3 is not a distribution" in text
    # every line names the file
    assert all(str(p) in line for line in text.splitlines()[1:])


def test_a_tuned_field_cannot_also_be_set(tmp_path):
    p = write(tmp_path, "r.yaml", BASE + "tune:\n  optim.lr: {log_uniform: [0.05, 3.0]}\n")
    assert "also fixed by --set optim.lr" in space_error(p, ["optim.lr=0.4"])
    assert load_space(p, ["optim.epochs=3"]) is not None  # other fields may be set


def test_a_family_space_is_shared_and_a_recipe_can_change_it(tmp_path):
    fam = tmp_path / "fam"
    fam.mkdir()
    write(fam, "tune.yaml", "optim.lr: {log_uniform: [0.05, 3.0]}\noptim.epochs: {int: [2, 6]}\n")
    a = write(fam, "a.yaml", BASE.replace("tiny", "a"))
    b = write(fam, "b.yaml", BASE.replace("tiny", "b") + "tune:\n  optim.epochs: null\n"
                                                          "  optim.weight_decay: {log_uniform: [1e-5, 1e-3]}\n")
    assert load_space(a).paths == ["optim.epochs", "optim.lr"]
    assert load_space(b).paths == ["optim.lr", "optim.weight_decay"]  # null removed the family's epochs
    # the family's space file is not one of its recipes
    assert [p.name for p in recipes.family_files(str(fam))] == ["a.yaml", "b.yaml"]
    write(fam, "tune.yaml", "optim.lr: [0.05, 3.0]\n")
    assert "tune.optim.lr: [0.05, 3.0] is not a distribution" in space_error(a)


def test_validate_checks_spaces_too(tmp_path, capsys):
    good = write(tmp_path, "good.yaml", BASE + "tune:\n  optim.lr: {log_uniform: [0.05, 3.0]}\n")
    bad = write(tmp_path, "bad.yaml", BASE.replace("tiny", "bad") + "tune:\n  optim.epochs: {int: [0, 3]}\n")
    assert main(["validate", str(good)]) == 0
    assert "tune: 1 field" in capsys.readouterr().out
    assert main(["validate", str(good), str(bad)]) == 2
    assert "tune.optim.epochs = 0" in capsys.readouterr().err
    fam = tmp_path / "fam"
    fam.mkdir()
    write(fam, "a.yaml", BASE.replace("tiny", "a"))
    space = write(fam, "tune.yaml", "optim.lr: {log_uniform: [0.05, 3.0]}\n")
    assert main(["validate", str(space)]) == 0
    assert "search space for 1 recipe" in capsys.readouterr().out


# ---------------------------------------------------------------- the score


def rec(study, trial, status="reached", t=None, hours=0.01, dollars=None, state="complete"):
    return {"study": study, "trial": trial, "state": state, "status": status, "time_to_target_s": t,
            "device_hours": hours, "cost_usd": dollars}


def test_score_is_the_median_of_each_studys_fastest_trial_at_the_target():
    trials = [rec(0, 0, t=30.0), rec(0, 1, t=20.0), rec(0, 2, "missed"),
              rec(1, 0, "missed"), rec(1, 1, "failed"),
              rec(2, 0, t=50.0), rec(2, 1, t=10.0, state="pruned"),  # a pruned trial never wins
              rec(2, 2, t=5.0, state="aborted")]  # nor an aborted one: it is run again
    s = tuning.score(trials, studies=3)
    assert [st["best_s"] for st in s["studies"]] == [20.0, math.inf, 50.0]
    assert s["score_s"] == 50.0 and s["reached"]
    assert s["winner"] == {"study": 2, "trial": 0}
    # every trial that ran is in the cost, aborted and pruned ones included
    assert s["trials_run"] == 8 and s["device_hours"] == pytest.approx(0.08)
    assert s["cost_usd"] is None  # no trial was priced


def test_a_median_study_that_never_reached_is_not_reached():
    s = tuning.score([rec(0, 0, t=12.0), rec(1, 0, "missed"), rec(2, 0, "missed")], studies=3)
    assert s["score_s"] == math.inf and not s["reached"] and s["winner"] is None
    # a study with no trials at all (none ran yet) is infinite too
    assert tuning.score([rec(0, 0, t=12.0)], studies=2)["score_s"] == math.inf


def test_an_even_number_of_studies_takes_the_mean_and_the_upper_winner():
    s = tuning.score([rec(0, 0, t=10.0), rec(1, 0, t=30.0)], studies=2)
    assert s["score_s"] == 20.0 and s["winner"] == {"study": 1, "trial": 0}


def test_dollars_are_known_only_when_every_trial_is_priced():
    assert tuning.cost([rec(0, 0, dollars=1.0), rec(0, 1, dollars=2.5)])["cost_usd"] == 3.5
    assert tuning.cost([rec(0, 0, dollars=1.0), rec(0, 1, dollars=None)])["cost_usd"] is None
    assert tuning.cost([rec(0, 0, dollars=1.0), rec(0, 1, dollars=float("nan"))])["cost_usd"] is None


def test_performance_profile_is_the_share_of_boards_within_tau_of_the_best():
    boards = {"cpu": {"a": 10.0, "b": 20.0, "c": math.inf}, "gpu": {"a": 3.0, "b": 2.0, "c": 7.0},
              "nobody": {"a": math.inf, "b": math.inf}}
    prof = tuning.performance_profile(boards, [1.0, 1.5, 2.0, 4.0])
    assert prof["a"] == [0.5, 1.0, 1.0, 1.0]
    assert prof["b"] == [0.5, 0.5, 1.0, 1.0]
    assert prof["c"] == [0.0, 0.0, 0.0, 0.5]  # 7/2 = 3.5 on one board, never on the other
