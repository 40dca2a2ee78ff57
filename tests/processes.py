"""One way for tests to interrupt a process the way a user or SLURM would: start it with unbuffered output, read
its stdout until a line shows that work is under way, send the signal, and collect everything it printed."""
from __future__ import annotations

import os
import subprocess
import time


def signal_when(cmd: list[str], *, marker: str, sig: int, cwd, within_s: float, finish_s: float = 60,
                env: dict | None = None, merge_stderr: bool = True) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `cmd` sent `sig` once a line holding `marker` arrives (or after
    `within_s`). With `merge_stderr` stderr is part of stdout and the third value is empty."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, text=True,
                            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE)
    seen = []
    deadline = time.time() + within_s
    for line in proc.stdout:
        seen.append(line)
        if marker in line or time.time() > deadline:
            break
    proc.send_signal(sig)
    rest, err = proc.communicate(timeout=finish_s)
    return proc.returncode, "".join(seen) + rest, err or ""
