"""The per-epoch step bar of `bench run`: drawn on a terminal, absent from pipes and files."""
import sys

from bench.core.progress import StepBar


def test_step_bar_draws_each_epoch_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # what a terminal says
    bar = StepBar()
    assert bar.progress is not None
    for _ in range(2):
        for i in range(1, 4):
            bar.step(i, 3)
    bar.close()
    out = capsys.readouterr()
    # rich draws the final state once more as it stops (then clears it): the second epoch, all 3 steps done
    assert "epoch   2" in out.out and "3/3" in out.out, out.out
    assert out.err == "" and bar.epoch == 2


def test_step_bar_is_silent_when_output_is_not_a_terminal(capsys):
    bar = StepBar()  # stdout is captured here: not a terminal
    bar.step(1, 3)
    bar.close()
    assert bar.progress is None and capsys.readouterr() == ("", "")
