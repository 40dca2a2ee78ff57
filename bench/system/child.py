"""A command run as one refereed child: its own process group, its output read line by line and stamped.

`Child` starts the command in a new session (so its process group is its own and every process it starts, a
torchrun agent and its workers included, belongs to it), with PYTHONUNBUFFERED=1, and reads stdout and stderr
with one selector loop: every line is stamped, on arrival, with the referee's clock (bench.core.clock.Clock,
anchored at the moment the command is started, so a stamp is seconds since its start). `LineReader` splits the
byte stream into lines: a line longer than MAX_LINE keeps its first MAX_LINE bytes and the number cut, bytes
that are not UTF-8 are replaced (and the line marked), so neither a megabyte line nor binary output can hurt
the reader. Stopping is always the whole group: SIGTERM, then SIGKILL after a grace period.

`GroupSampler` is the telemetry sampler (bench.system.telemetry) over every process of the group, and
`pipe_latency()` measures how late a printed line reaches the referee through the same reader.
"""
from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from typing import Callable, Iterator, Optional

import psutil

from bench.core.clock import Clock
from bench.core.errors import BenchError
from bench.system.telemetry import Sampler

MAX_LINE = 64 * 1024  # bytes of one line the referee keeps; the rest is counted, not stored
READ_BYTES = 64 * 1024
POLL_S = 0.1  # the loop wakes at least this often (timeouts, the kill deadline)
LINGER_S = 2.0  # after the leader exits, how long its group may keep the output pipes open


class LineReader:
    """Bytes of one stream -> lines (bytes without the newline, bytes cut)."""

    def __init__(self, limit: int = MAX_LINE):
        self.limit = limit
        self.buf = bytearray()
        self.cut = 0

    def feed(self, data: bytes) -> list[tuple[bytes, int]]:
        out = []
        pos = 0
        while True:
            nl = data.find(b"\n", pos)
            piece = data[pos:] if nl < 0 else data[pos:nl]
            room = self.limit - len(self.buf)
            if len(piece) > room:
                self.buf += piece[:max(room, 0)]
                self.cut += len(piece) - max(room, 0)
            else:
                self.buf += piece
            if nl < 0:
                return out
            out.append((bytes(self.buf), self.cut))
            self.buf, self.cut = bytearray(), 0
            pos = nl + 1

    def flush(self) -> list[tuple[bytes, int]]:
        """At end of stream: the last line if it had no newline."""
        if not self.buf and not self.cut:
            return []
        out = [(bytes(self.buf), self.cut)]
        self.buf, self.cut = bytearray(), 0
        return out


def line_record(t: float, fd: int, raw: bytes, cut: int) -> dict:
    """One output.jsonl record (bench.core.referee's format)."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    try:
        text, ok = raw.decode("utf-8"), True
    except UnicodeDecodeError:
        text, ok = raw.decode("utf-8", errors="replace"), False
    rec = {"t": t, "fd": fd, "text": text}
    if cut:
        rec["cut"] = cut
    if not ok:
        rec["utf8"] = False
    return rec


def signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


class Child:
    """One start of a command. `events()` yields output records, a {"t", "tick": True} at least every POLL_S, and
    last the exit record; `stop()` asks the group to end; `shutdown()` ends it from outside the loop."""

    def __init__(self, argv: list[str], cwd=None, env: Optional[dict] = None,
                 now: Callable[[], float] = time.perf_counter, poll_s: float = POLL_S, linger_s: float = LINGER_S):
        self.argv, self.cwd = list(argv), cwd
        self.env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.now, self.poll_s, self.linger_s = now, poll_s, linger_s
        self.proc: Optional[subprocess.Popen] = None
        self.clock: Optional[Clock] = None
        self.epoch0: Optional[float] = None
        self._readers: dict[int, tuple[int, LineReader]] = {}
        self._sel: Optional[selectors.BaseSelector] = None
        self._kill_at: Optional[float] = None
        self._linger_until: Optional[float] = None
        self._killed = False
        self.exit_record: Optional[dict] = None

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    def start(self) -> dict:
        """Start the command; returns the start record (t = 0 by the referee's clock)."""
        try:
            self.clock = Clock(now=self.now, since_process_start=0.0)  # t = 0: the command is being started
            self.epoch0 = time.time()
            self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        except OSError as e:
            raise BenchError(f"cannot start the command {self.argv[0]!r}: {e.strerror or e}") from None
        self._sel = selectors.DefaultSelector()
        for fd, stream in ((1, self.proc.stdout), (2, self.proc.stderr)):
            self._readers[stream.fileno()] = (fd, LineReader())
            self._sel.register(stream.fileno(), selectors.EVENT_READ)
        return {"t": 0.0, "start": self.argv, "epoch": self.epoch0, "pid": self.proc.pid}

    def t(self) -> float:
        return self.clock.wall()

    # -------------------------------------------------------------- the loop

    def events(self) -> Iterator[dict]:
        while self.exit_record is None:
            yield from self._step()
        # nothing after the exit record

    def _step(self) -> list[dict]:
        out = []
        if self._readers:
            ready = self._sel.select(self.poll_s)
        else:
            ready = []
            try:
                self.proc.wait(self.poll_s)
            except subprocess.TimeoutExpired:
                pass
        t = self.t()
        for key, _ in ready:
            fno = key.fd
            fd, reader = self._readers[fno]
            data = os.read(fno, READ_BYTES)
            lines = reader.feed(data) if data else reader.flush()
            out += [line_record(t, fd, raw, cut) for raw, cut in lines]
            if not data:
                self._sel.unregister(fno)
                del self._readers[fno]
        done = self.proc.poll() is not None
        if done and self._readers and self._linger_until is None:
            self._linger_until = t + self.linger_s  # the leader is gone; its group may still hold the pipes
        if (self._kill_at is not None and t >= self._kill_at) or \
                (self._linger_until is not None and t >= self._linger_until):
            self._kill()
            if done and self._linger_until is not None and t >= self._linger_until + self.linger_s:
                for fno in list(self._readers):  # someone outside the group holds the pipe: stop reading it
                    self._sel.unregister(fno)
                    del self._readers[fno]
        if done and not self._readers:
            signal_group(self.proc.pid, signal.SIGKILL)  # whatever the group left behind goes with it
            code = self.proc.returncode
            self.exit_record = {"t": self.t(), "exit": code if code >= 0 else None,
                                "signal": -code if code < 0 else None}
            self._close()
            out.append(self.exit_record)
        else:
            out.append({"t": t, "tick": True})
        return out

    def _kill(self) -> None:
        if not self._killed:
            self._killed = True
            signal_group(self.proc.pid, signal.SIGKILL)

    def _close(self) -> None:
        for stream in (self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass
        if self._sel is not None:
            self._sel.close()

    # -------------------------------------------------------------- stopping

    def stop(self, reason: str, grace_s: float) -> dict:
        """SIGTERM to the whole group now, SIGKILL once `grace_s` has passed (the loop does it)."""
        t = self.t()
        if self._kill_at is None:
            signal_group(self.proc.pid, signal.SIGTERM)
            self._kill_at = t + grace_s
        return {"t": t, "stop": reason, "grace_s": grace_s}

    def shutdown(self, reason: str, grace_s: float) -> list[dict]:
        """End the group from outside the loop (the harness was interrupted): the stop record, the rest of the
        output and the exit record. Never leaves the group running."""
        if self.proc is None:
            return []
        out = [self.stop(reason, grace_s)] if self.exit_record is None else []
        try:
            while self.exit_record is None:
                out += [r for r in self._step() if "tick" not in r]
        except BaseException:
            self._kill()
            raise
        return out


class GroupSampler(Sampler):
    """Telemetry of a whole process group: host CPU and RSS summed over the command and every process it started
    (its descendants and the members of its group); GPUs as the base sampler (NVML sees every process)."""

    def __init__(self, pid: int, **kwargs):
        super().__init__(**kwargs)
        self.pid = pid
        self._seen: dict[int, psutil.Process] = {}

    def members(self) -> list[psutil.Process]:
        found = {}
        try:
            root = psutil.Process(self.pid)
            for p in [root] + root.children(recursive=True):
                found[p.pid] = p
        except psutil.Error:
            pass
        for p in psutil.process_iter():
            try:
                if p.pid not in found and os.getpgid(p.pid) == self.pid:
                    found[p.pid] = p
            except (OSError, psutil.Error):
                continue
        # keep the Process objects between ticks: cpu_percent is "since the previous call on this object"
        self._seen = {pid: self._seen.get(pid, p) for pid, p in found.items()}
        return list(self._seen.values())

    def _sample(self) -> dict:
        rss = cpu = 0.0
        procs = self.members()
        for p in procs:
            try:
                rss += p.memory_info().rss
                cpu += p.cpu_percent(None)
            except psutil.Error:
                continue
        return {"t": self.clock(), "cpu_percent": self._try("cpu_percent", psutil.cpu_percent, None),
                "proc_rss_mb": rss / 2**20, "proc_cpu_percent": cpu, "procs": len(procs),
                "gpus": [self._gpu_sample(i, h) for i, h in self._handles.items()]}


PROBE = ("import sys, time\n"
         "for i in range({n}):\n"
         "    time.sleep(0.005)\n"
         "    sys.stdout.write('%r\\n' % time.monotonic()); sys.stdout.flush()\n")


def pipe_latency(n: int = 20) -> dict:
    """How late a printed line reaches the referee: a probe child prints time.monotonic() (CLOCK_MONOTONIC, one
    clock for every process on Linux) `n` times through the same Child reader; latency = arrival - printed."""
    child = Child([sys.executable, "-c", PROBE.format(n=n)], now=time.monotonic, poll_s=0.05)
    child.start()
    base = child.clock.process_start
    samples = []
    for rec in child.events():
        if rec.get("fd") == 1:
            try:
                samples.append(max(0.0, base + rec["t"] - float(rec["text"])))
            except ValueError:
                continue
    return {"method": f"a probe child printed time.monotonic() {n} times, 5 ms apart, through the same pipe and "
                      f"reader; each sample is arrival - printed time", "samples_s": samples}
