"""A PostgreSQL server of the tests' own: Debian's binaries (/usr/lib/postgresql/<version>/bin), its own data
folder under /tmp, a free 127.0.0.1 port and its own socket folder, so it never touches (or needs) a system
server. `conftest.postgres_url` starts it on first use and stops it at the end of the session, failing tests
included.

PostgreSQL refuses to run as root: run as root (as CI does), the server runs as Debian's `postgres` user in a
folder that user owns; otherwise as the current user. Nothing may outlive the session: the server is told by
the kernel to stop with the pytest process (PR_SET_PDEATHSIG; its backends end when it does), and `stop`
shuts it down, then kills any of its processes still there.
"""
from __future__ import annotations

import ctypes
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

import psutil

PACKAGE = "postgresql"  # Debian's package: initdb, postgres (Makefile SYSTEM_PACKAGES installs it)
DB_USER = "bench"  # the server's superuser, as the URL names it (trust authentication: no password)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bin_dir() -> Path:
    """The newest installed PostgreSQL's bin folder; a missing one is a broken set-up, never a skip."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")
             if Path(p).with_name("postgres").exists()]
    assert found, (f"PostgreSQL tests need initdb and postgres (/usr/lib/postgresql/*/bin): run `make test` (it "
                   f"installs {PACKAGE}) or apt-get install -y {PACKAGE}")

    def version(p: Path) -> tuple:
        return tuple(int(x) for x in re.findall(r"\d+", p.parent.name))

    return max(found, key=version)


def _as(uid: Optional[int], gid: Optional[int]):
    """The child's set-up between fork and exec: drop to uid/gid (when run as root), then ask the kernel for
    SIGINT when pytest dies (postgres's fast shutdown: it ends its sessions rather than wait for them; asked
    for after the drop, as changing the uid clears PR_SET_PDEATHSIG)."""
    def setup() -> None:
        if uid is not None:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGINT)  # 1 = PR_SET_PDEATHSIG
    return setup


class PostgresServer:
    def __init__(self, database: str = "bench") -> None:
        self.bin = bin_dir()
        self.database = database
        self.root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None
        self.uid = self.gid = None
        if os.geteuid() == 0:
            try:
                who = pwd.getpwnam("postgres")
            except KeyError:
                raise AssertionError(f"PostgreSQL refuses to run as root and there is no `postgres` user to run "
                                     f"it as: apt-get install -y {PACKAGE} creates it") from None
            self.uid, self.gid = who.pw_uid, who.pw_gid
            os.chown(self.root, self.uid, self.gid)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{DB_USER}@127.0.0.1:{self.port}/{self.database}"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        if self.uid is not None:
            env.update(HOME=str(self.root), USER="postgres", LOGNAME="postgres")
        return env

    def _run(self, cmd: list[str]) -> None:
        out = subprocess.run(cmd, cwd=self.root, env=self._env(), capture_output=True, text=True, timeout=120,
                             preexec_fn=_as(self.uid, self.gid))
        assert out.returncode == 0, f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"

    # ------------------------------------------------------------------ start / stop

    def start(self, timeout_s: float = 60) -> "PostgresServer":
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", DB_USER, "--auth=trust", "-E", "UTF8",
                   "--locale=C", "--no-sync"])
        self.port = _free_port()
        log = open(self.log, "w")
        if self.uid is not None:
            os.chown(self.log, self.uid, self.gid)
        # fsync off: a test server's data need not survive a crash. The socket folder is its own.
        self.proc = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1",
             "-k", str(self.root), "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=50"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.root, env=self._env(), start_new_session=True,
            preexec_fn=_as(self.uid, self.gid))
        log.close()
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"postgres exited ({self.proc.returncode}) on start:\n{self.logs()}")
            try:
                self._sql("postgres", f'CREATE DATABASE "{self.database}"')
                return self
            except Exception as exc:  # not accepting connections yet
                if time.monotonic() > deadline:
                    raise AssertionError(f"postgres did not accept connections on 127.0.0.1:{self.port} within "
                                         f"{timeout_s:.0f} s ({exc}):\n{self.logs()}") from None
                time.sleep(0.3)

    def _sql(self, database: str, statement: str) -> None:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=DB_USER, dbname=database, connect_timeout=5)
        try:
            conn.autocommit = True  # CREATE DATABASE refuses to run in a transaction
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else "(no server log)"

    def stop(self) -> list[str]:
        """Shut the server down (fast: SIGINT), then kill whatever of it is left. Returns what had to be killed."""
        killed: list[str] = []
        if self.proc is not None:
            try:
                family = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
            except psutil.Error:
                family = []
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)  # fast shutdown: ends the sessions, then exits
                try:
                    self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            # Backends notice their postmaster is gone and exit; any that has not is killed here.
            alive = []
            for p in family:
                try:
                    if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                        alive.append(p)
                except psutil.Error:
                    pass
            for p in alive:
                try:
                    killed.append(" ".join(p.cmdline())[:120])
                    p.kill()
                except psutil.Error:
                    pass
            psutil.wait_procs(alive, timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)
        return killed


def fresh_database(url: str, name: str) -> str:
    """A new, empty database on the server of `url` (a test's own, whatever ran before it); returns its URL."""
    import psycopg2
    from sqlalchemy.engine import make_url

    u = make_url(url)
    conn = psycopg2.connect(host=u.host, port=u.port, user=u.username, dbname="postgres", connect_timeout=5)
    try:
        conn.autocommit = True  # CREATE DATABASE refuses to run in a transaction
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return u.set(database=name).render_as_string(hide_password=False)
