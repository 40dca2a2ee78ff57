"""User-facing errors: the CLI prints the message (no traceback) and exits with `exit_code`."""


class BenchError(Exception):
    """Bad input or an impossible request. Messages name the file/field, the bad value and the fix."""

    exit_code = 2


class VerifyError(BenchError):
    """A report bundle that does not check out (edited numbers, missing files)."""

    exit_code = 1


class Pruned(BenchError):
    """bench tune --prune: a trial ran past its study's best time to target so far, so it cannot win its study
    and is stopped. Its run is recorded (as aborted, with this reason) and its time counts in the tuning cost."""


class Terminated(BaseException):
    """A termination signal (SIGTERM: what SLURM sends at a time limit or on preemption, and what torchrun
    sends to tear a group down), raised where the process is, so the run's records are finalised as for
    Ctrl-C. Not an Exception, so no `except Exception` swallows it; the CLI exits 128 + signum."""

    def __init__(self, signum: int):
        import signal

        self.signum = signum
        self.signame = signal.Signals(signum).name
        super().__init__(f"terminated by {self.signame} (signal {signum})")
