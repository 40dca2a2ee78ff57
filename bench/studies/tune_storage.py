"""Where `bench tune` keeps its trials: an Optuna storage, and the rules that keep it honest when a tune is
cut short, resumed, or shared by several processes.

    journal file   results/tuning/<name>/journal.log by default (Optuna's JournalFileBackend: an append-only
                   log under a file lock; nothing to start, resumable, several processes on one machine or a
                   shared file system may use it at once)
    database URL   --storage postgresql://user@host/db (or any SQLAlchemy URL Optuna takes): what trials on
                   several nodes share

One Optuna study per recipe and study number (`<recipe>/study<k>`). Its user attributes hold the tune's
identity (recipe hash, space hash, sampler, seed, budget, data): a storage that already holds a study of that
name with another identity is refused, never mixed into. Each trial carries its owner (host, pid) and a
heartbeat while it runs; a running trial whose owner is gone (a dead pid on this host, or no heartbeat for
GRACE_S from anywhere) is marked aborted and run again with the same values by the next process that looks.
"""
from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from bench.core.errors import BenchError
from bench.core.tuning import COUNTED

HEARTBEAT_S = 30.0  # how often a running trial says it is alive
GRACE_S = 300.0  # a trial silent for this long is taken as dead (its process or node is gone)
IDENTITY_WAIT_S = 10.0  # how long a new study's identity may take its creator (another process) to write
ATTR = "bench"  # the trial user attribute holding its record (bench.core.tuning's fields)


def _optuna():
    try:
        import optuna
    except ImportError:  # pragma: no cover - a dependency of the package
        raise BenchError("bench tune needs Optuna: pip install optuna (make setup installs it)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def is_url(spec: str) -> bool:
    return "://" in str(spec)


def describe(spec: str) -> str:
    """The storage as it may be printed and recorded: a database URL without its password."""
    spec = str(spec)
    if is_url(spec) and "@" in spec:
        scheme, _, rest = spec.partition("://")
        creds, _, host = rest.rpartition("@")
        return f"{scheme}://{creds.split(':')[0]}@{host}"
    return spec


def open_storage(spec: str):
    """An Optuna storage for a journal file path or a database URL; bad ones refused with the fix."""
    optuna = _optuna()
    if is_url(spec):
        try:
            return _database(optuna, str(spec))
        except ImportError as exc:
            raise BenchError(f"--storage {describe(spec)}: its database driver is not installed ({exc}); install "
                             f"it (for PostgreSQL: pip install psycopg2-binary)") from None
        except Exception as exc:  # sqlalchemy's errors: no server, wrong password, no such database
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BenchError(f"--storage {describe(spec)}: cannot open the database: {first}") from None
    from bench.core.paths import check_output
    from optuna.storages.journal import JournalFileBackend

    path = check_output("--storage", spec, what="journal file", example="journal.log")
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def _database(optuna, url: str, tries: int = 6):
    """RDBStorage(url), tried again while another process is creating Optuna's tables in the same new database:
    two workers starting on an empty database race to create them, and the loser's CREATE fails (optuna#1092)."""
    import sqlalchemy.exc

    for attempt in range(tries):
        try:
            return optuna.storages.RDBStorage(url)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == tries - 1:
                raise
            time.sleep(0.25 * (attempt + 1))


def make_sampler(kind: str, seed: int):
    optuna = _optuna()
    if kind == "qmc":  # AlgoPerf's quasi-random search: a scrambled Sobol sequence, its own per study
        return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed, warn_independent_sampling=False,
                                          warn_asynchronous_seeding=False)
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise BenchError(f"--sampler {kind!r}: allowed: qmc (quasi-random, AlgoPerf's), tpe, random")


def distributions(space) -> dict:
    """bench.recipe.space dimensions as Optuna distributions."""
    optuna = _optuna()
    d = optuna.distributions
    out = {}
    for dim in space.dims:
        if dim.kind == "choice":
            out[dim.path] = d.CategoricalDistribution([json.dumps(c) for c in dim.choices])  # any YAML value
        elif dim.kind in ("int", "log_int"):
            out[dim.path] = d.IntDistribution(int(dim.low), int(dim.high), log=dim.kind == "log_int")
        else:
            out[dim.path] = d.FloatDistribution(float(dim.low), float(dim.high), log=dim.kind == "log_uniform")
    return out


def values_of(space, params: dict) -> dict:
    """A trial's Optuna params as recipe values (choices travel as JSON text)."""
    return {dim.path: json.loads(params[dim.path]) if dim.kind == "choice" else params[dim.path] for dim in space.dims}


def open_study(storage, name: str, identity: dict, sampler, where: str):
    """The study `name`, created with `identity` as its attributes, or loaded if it holds the same identity."""
    optuna = _optuna()
    try:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    except KeyError:
        try:
            study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, direction="minimize")
            for key, value in identity.items():  # only by its creator: one attribute at a time
                study.set_user_attr(key, value)
        except optuna.exceptions.DuplicatedStudyError:  # another process created it meanwhile
            study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    attrs, deadline = study.user_attrs, time.monotonic() + IDENTITY_WAIT_S
    while not set(identity) <= set(attrs) and time.monotonic() < deadline:  # its creator is still writing it
        time.sleep(0.1)
        attrs = study.user_attrs
    held = {k: attrs.get(k) for k in identity}
    if held != identity:
        diff = ", ".join(f"{k}: {held[k]!r} there, {identity[k]!r} here" for k in identity if held[k] != identity[k])
        raise BenchError(f"{where}: already holds study {name!r} of another tune ({diff}); a storage is never "
                         f"shared by two spaces or recipes: name another --storage (or --dir), or delete "
                         f"{where} to start this tune over")
    return study


# ---------------------------------------------------------------- who runs a trial, and whether they still do


def owner() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _gone(attrs: dict, now: float, started: Optional[float] = None) -> bool:
    who, beat = attrs.get("owner") or {}, attrs.get("heartbeat")
    if beat is None and started is not None:  # asked, then its process died before the first heartbeat
        beat = started
    if who.get("host") == socket.gethostname() and who.get("pid") is not None:
        try:
            os.kill(int(who["pid"]), 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, someone else's
            pass
    return beat is not None and now - float(beat) > GRACE_S


def record_of(trial) -> Optional[dict]:
    return trial.user_attrs.get(ATTR)


def fail_stale(study, say) -> int:
    """Mark running trials whose owner is gone as aborted (FAIL in Optuna); returns how many."""
    optuna = _optuna()
    storage, now, n = study._storage, time.time(), 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        started = t.datetime_start.timestamp() if t.datetime_start else None
        if not _gone(t.user_attrs, now, started):
            continue
        rec = {"state": "aborted", "status": "aborted", "error": "its process stopped without finishing it",
               "values": t.user_attrs.get("values"), "device_hours": t.user_attrs.get("device_hours_so_far", 0.0)}
        try:
            storage.set_trial_user_attr(t._trial_id, ATTR, rec)
            if storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL):
                n += 1
                say(f"  trial {t.number}: its process is gone; recorded as aborted, to be run again")
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # its owner or another process finished it first
    return n


def requeue_aborted(study) -> int:
    """Put every aborted trial's values back in the queue once, so a resumed tune runs each again."""
    trials = study.get_trials(deepcopy=False)
    rerun = {t.user_attrs.get("rerun_of") for t in trials if t.user_attrs.get("rerun_of") is not None}
    n = 0
    for t in trials:
        rec = record_of(t) or {}
        if rec.get("state") == "aborted" and t.number not in rerun and t.params:
            study.enqueue_trial(t.params, user_attrs={"rerun_of": t.number})
            n += 1
    return n


def placed(study, trial, budget: int) -> Optional[str]:
    """Why `trial` must not run (None if it may): the study already has `budget` trials counted or running
    before it, or it repeats a rerun another trial already took. Decided by trial number, which the storage
    hands out atomically, so two processes sharing a study agree on who runs what."""
    optuna = _optuna()
    ahead = 0
    reruns = {}
    for t in study.get_trials(deepcopy=False):
        if t.number >= trial.number:
            continue
        rec = record_of(t) or {}
        if rec.get("state") == "surplus":
            continue
        if t.state == optuna.trial.TrialState.RUNNING or rec.get("state") in COUNTED:
            ahead += 1
        if t.user_attrs.get("rerun_of") is not None:
            reruns[t.user_attrs["rerun_of"]] = t.number
    mine = trial.user_attrs.get("rerun_of")
    if mine is not None and mine in reruns:
        return f"trial {mine} is already being run again as trial {reruns[mine]}"
    if ahead >= budget:
        return f"the study has its {budget} trials"
    return None


@contextmanager
def heartbeat(study, trial):
    """While the block runs, the trial says every HEARTBEAT_S that its process is alive."""
    storage, stop = study._storage, threading.Event()
    storage.set_trial_user_attr(trial._trial_id, "owner", owner())
    storage.set_trial_user_attr(trial._trial_id, "heartbeat", time.time())

    def beat():
        while not stop.wait(HEARTBEAT_S):
            try:
                storage.set_trial_user_attr(trial._trial_id, "heartbeat", time.time())
            except Exception:  # a finished trial or a storage hiccup: the next beat, or the end, settles it
                pass

    thread = threading.Thread(target=beat, name="tune-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def finish(study, trial, record: dict) -> None:
    """Store the trial's record and tell Optuna how it ended (the objective: seconds to target, inf if never)."""
    optuna = _optuna()
    study._storage.set_trial_user_attr(trial._trial_id, ATTR, record)
    state = record["state"]
    if state == "complete":
        t = record.get("time_to_target_s")
        value = float(t) if record.get("status") == "reached" and t is not None else math.inf
        study.tell(trial, value)
    elif state == "pruned":
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:  # aborted, surplus: not one of the study's trials
        study.tell(trial, state=optuna.trial.TrialState.FAIL)


def records(study) -> list[dict]:
    """Every finished trial's record, with its number and Optuna params, oldest first."""
    out = []
    for t in study.get_trials(deepcopy=False):
        rec = record_of(t)
        if rec is not None and rec.get("state") != "surplus":
            out.append({**rec, "trial": t.number, "params": dict(t.params)})
    return out
