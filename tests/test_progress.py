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


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_step_bar_shows_images_per_second_and_the_epochs_eta(capsys, monkeypatch):
    """Rates count from the end of an epoch's first step (where its bar starts): 3 steps of 100 images in
    1.5 s is 200 img/s, and the 6 steps left at 0.5 s each are 3 s."""
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    clock = FakeClock()
    bar = StepBar(images_per_step=100, get_time=clock)
    for i in range(1, 5):
        clock.now += 0.5
        bar.step(i, 10)
    bar.close()
    out = capsys.readouterr().out
    assert "4/10" in out and "200 img/s" in out and "ETA 0:00:03" in out, out


def test_step_bar_counts_the_images_each_step_read(capsys, monkeypatch):
    """A GAN's generator iteration reads a varying number of real images: the step says how many."""
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    clock = FakeClock()
    bar = StepBar(get_time=clock)
    for i, images in enumerate([6400, 320, 320, 6400], start=1):
        clock.now += 1.0
        bar.step(i, 8, images=images)
    bar.close()
    out = capsys.readouterr().out
    assert "2,347 img/s" in out and "ETA 0:00:04" in out, out  # 7,040 images in 3 s; 4 steps of 1 s left


def test_step_bar_without_an_image_count_shows_steps_per_second(capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    clock = FakeClock()
    bar = StepBar(get_time=clock)
    for i in range(1, 4):
        clock.now += 0.25
        bar.step(i, 5)
    bar.close()
    out = capsys.readouterr().out
    assert "4.0 steps/s" in out and "ETA 0:00:01" in out and "img/s" not in out, out
