"""User-facing errors: the CLI prints the message (no traceback) and exits with `exit_code`."""


class BenchError(Exception):
    """Bad input or an impossible request. Messages name the file/field, the bad value and the fix."""

    exit_code = 2


class VerifyError(BenchError):
    """A report bundle that does not check out (edited numbers, missing files)."""

    exit_code = 1
