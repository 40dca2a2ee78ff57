"""A bundle's convergence against its recipe's reference runs, as MLPerf reviews submissions (`bench rcp`, and the
convergence line of `bench verify`, `bench submit` and the site). The arithmetic is bench.core.rcp's.

A run's **epochs to converge** is the epoch number of its first evaluation at or above the target (a run stops
there, so it is also its last evaluation: MLPerf's reader takes the `epoch_num` of the last `eval_accuracy` before a
successful `run_stop`, rounded to 3 decimals, and so is this). A run that did not reach the target (missed, failed,
aborted) did not converge, whatever its accuracy.

Reference files (`results/rcp/<recipe>.json`, bench.core.rcp.SCHEMA) are made from bundles that verify, by
`bench rcp make`; each point keeps its runs (bundle, run id, seed, status, epochs, commit) and each bundle's MANIFEST
hash, so `bench rcp verify FILE` re-derives every figure from the bundles. A file applies to a bundle only for the
same recipe name, data set (content fingerprint) and target (metric, value, direction): any other is refused, not
compared. A point's recipe hash may differ from a checked bundle's (MLPerf checks any hyperparameters at a batch
size against the reference's); the fields that differ are named.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from bench.core import rcp
from bench.core.digest import file_sha256
from bench.core.errors import BenchError
from bench.core.targets import reaches
from bench.report import manifest, summary as summ

DEFAULT_DIR = Path("results/rcp")
UNIT = ("epochs to the target: the epoch number of each run's first evaluation at or above it (MLPerf: the "
        "epoch_num of the last eval_accuracy before a successful run_stop); a run that did not reach it did not "
        "converge")
RULES = ("MLPerf Training's RCP check (mlperf_logging/rcp_checker; bench/core/rcp.py): olympic mean of epochs "
         "(fastest and slowest dropped, a run that did not converge counts as slowest, two leave no mean); numpy "
         "std (ddof 0) as the spread; a set fails when its olympic mean is below the lowest mean a one-sided "
         "equal-variance t-test at alpha 0.05 accepts (found by bisection); a passing set faster than the "
         "references has its score multiplied by reference mean / its mean; points pruned to the fastest "
         "convergence as a function of batch size and interpolated between batch sizes")
NOT_HYPERPARAMETERS = ("name", "provenance", "runs")  # fields of a resolved recipe that do not change a run


def run_epochs(facts: dict, target: float, mode: str):
    """Epochs to converge of one run (summary facts), or None when it did not converge."""
    if facts.get("status") != "reached":
        return None
    # an evaluation's figure is "acc" (classifiers) or "value" (kind: gan's summary, bench.report.gan)
    e = next((e["epoch"] for e in facts.get("evals") or [] if reaches(e["acc"] if "acc" in e else e["value"],
                                                                     target, mode)), None)
    if e is None:
        return None
    e = round(float(e), 3)
    return int(e) if e.is_integer() else e


def shown_path(path: Path) -> str:
    """A path as the reference file records it: relative to the current folder when under it, POSIX."""
    p = Path(path)
    try:
        return p.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return p.resolve().as_posix()


@dataclass
class RunSet:
    """One bundle's runs as the convergence check sees them."""
    bundle: Path
    recipe: str
    kind: str
    recipe_hash: Optional[str]
    hyperparameters: dict
    dataset: dict
    target: dict
    batch_size: int
    world_size: int
    runs: list[dict]
    commit: Optional[str]
    score: Optional[float]          # the olympic time to target, seconds (summary stats)

    @property
    def epochs(self) -> list:
        return [r["epochs"] for r in self.runs]


def hyperparameters(recipe: dict) -> dict:
    return {k: v for k, v in recipe.items() if k not in NOT_HYPERPARAMETERS}


def run_set(bundle: Path, raw: Optional[summ.Raw] = None, expected: Optional[dict] = None) -> RunSet:
    raw = raw or summ.load(bundle)
    expected = expected or summ.compute(raw)
    r = raw.recipe
    world = int(raw.env.get("world_size") or 1)
    per_device = (r.get("data") or {}).get("batch_size")
    if isinstance(per_device, bool) or not isinstance(per_device, int) or per_device < 1:
        raise BenchError(f"{bundle}/recipe.yaml: data.batch_size is {per_device!r}; a reference point is kept "
                         f"per global batch size, so the bundle's recipe must state a positive one")
    git = raw.env.get("git") or {}
    runs = [{"run_id": f["run_id"], "seed": f.get("seed"), "status": f["status"],
             "epochs": run_epochs(f, raw.target, raw.mode)} for f in expected["runs"]]
    return RunSet(Path(bundle), r.get("name") or "?", r.get("kind") or "classifier", raw.recipe_hash,
                  hyperparameters(r), {"name": raw.dataset.get("name"), "fingerprint": raw.dataset.get("fingerprint")},
                  {"metric": raw.metric, "value": raw.target, "mode": raw.mode}, per_device * world, world, runs,
                  git.get("commit"), ((expected.get("stats") or {}).get("olympic_time") or {}).get("value"))


def _differ(a, b, path: str = "") -> list[str]:
    """Dotted paths where two resolved recipes differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _differ(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
        return out
    return [] if a == b else [path or "(all)"]


# ------------------------------------------------------------------------------------------ making references

def _verified(bundle: Path) -> RunSet:
    from bench.report import verify

    problems = verify.check(bundle).problems
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise BenchError(f"{bundle}: does not verify, so its runs cannot be references ({len(problems)} "
                         f"problem{'s' * (len(problems) != 1)}):\n{lines}")
    rs = run_set(bundle)
    if rs.kind == "external":
        raise BenchError(f"{bundle}: kind external: a command of one's own counts its own epochs; reference points "
                         f"are made from runs this harness trained")
    return rs


def _note(n: int) -> str:
    most = n // 2
    if most < rcp.MIN_RUNS:
        return (f"{n} reference runs: too few by MLPerf's rule (twice a submission's runs, and a set needs "
                f"{rcp.MIN_RUNS} for its olympic mean: {2 * rcp.MIN_RUNS}); every check against this point says so")
    return f"{n} reference runs: enough, by MLPerf's rule of twice the submission's runs, for sets of up to {most} runs"


def make_point(sets: list[RunSet]) -> dict:
    """One reference point from the bundles of one batch size (one recipe hash)."""
    hashes = sorted({s.recipe_hash or "?" for s in sets})
    if len(hashes) > 1:
        by = "; ".join(f"{s.bundle}: {s.recipe_hash}" for s in sets)
        raise BenchError(f"batch size {sets[0].batch_size}: the bundles ran different recipes ({by}); a reference "
                         f"point is one recipe's runs: make it from the bundles of one hash")
    runs, seen = [], {}
    for s in sets:
        for r in s.runs:
            if r["run_id"] in seen:
                raise BenchError(f"{s.bundle}: run {r['run_id']} is also in {seen[r['run_id']]}; name each bundle once")
            seen[r["run_id"]] = s.bundle
            runs.append({"bundle": shown_path(s.bundle), "run_id": r["run_id"], "seed": r["seed"], "status": r["status"],
                         "epochs": r["epochs"], "commit": s.commit})
    stats = rcp.point_stats([r["epochs"] for r in runs],
                            f"batch size {sets[0].batch_size} ({', '.join(str(s.bundle) for s in sets)})")
    return {"batch_size": sets[0].batch_size, "world_size": sets[0].world_size, "recipe_hash": hashes[0],
            "hyperparameters": sets[0].hyperparameters, "runs": runs,
            "bundles": [{"path": shown_path(s.bundle), "manifest_sha256": file_sha256(s.bundle / manifest.NAME),
                         "commit": s.commit} for s in sets],
            "note": _note(len(runs)), **stats}


def make(bundles: list[Path], existing: Optional[dict] = None, replace: bool = False,
         command: Optional[str] = None) -> dict:
    """A reference file's contents from `bundles` (each verified first), merged into `existing`: a batch size
    `existing` holds already is refused unless `replace`."""
    if not bundles:
        raise BenchError("no bundles given: name the report bundles whose runs are the references")
    sets = [_verified(Path(b)) for b in bundles]
    first = sets[0]
    ident = {"recipe": first.recipe, "kind": first.kind, "dataset": first.dataset, "target": first.target}
    for s in sets[1:]:
        why = _identity(ident, s)
        if why:
            raise BenchError(f"{s.bundle}: not the same references as {first.bundle}: {'; '.join(why)}; a reference "
                             f"file holds one recipe on one data set at one target")
    doc = {"schema": rcp.SCHEMA, **ident, "unit": UNIT, "rules": RULES, "points": []}
    if existing is not None:
        why = rcp.identity_problems(existing, first.recipe, first.dataset, first.target)
        if why:
            raise BenchError(f"the reference file is for other runs ({'; '.join(why)}); refused, not merged: name "
                             f"another file with --out")
        doc["points"] = list(existing["points"])
    by_size: dict[int, list[RunSet]] = {}
    for s in sets:
        by_size.setdefault(s.batch_size, []).append(s)
    for size, group in sorted(by_size.items()):
        old = [p for p in doc["points"] if p["batch_size"] == size]
        if old and not replace:
            raise BenchError(f"batch size {size}: the reference file already has a point ({old[0]['n_runs']} runs); "
                             f"pass --replace to replace it with these bundles' runs")
        point = make_point(group)
        if command:
            point["made_by"] = command
        doc["points"] = [p for p in doc["points"] if p["batch_size"] != size] + [point]
    doc["points"].sort(key=lambda p: p["batch_size"])
    return rcp.validate(json.loads(rcp.dumps(doc)), "the new reference file")


def _identity(ident: dict, s: RunSet) -> list[str]:
    out = []
    if s.recipe != ident["recipe"]:
        out.append(f"recipe {s.recipe!r}, not {ident['recipe']!r}")
    if s.dataset.get("fingerprint") != ident["dataset"].get("fingerprint"):
        out.append(f"data set {s.dataset.get('name')!r} ({str(s.dataset.get('fingerprint'))[:12]}), not "
                   f"{ident['dataset'].get('name')!r} ({str(ident['dataset'].get('fingerprint'))[:12]})")
    if s.target != ident["target"]:
        out.append(f"target {s.target}, not {ident['target']}")
    return out


def rederive(doc: dict, where: str) -> list[str]:
    """Every difference between a reference file and what its bundles give now (`bench rcp verify`)."""
    problems = []
    for i, p in enumerate(doc["points"]):
        at = f"{where}: points[{i}] (batch size {p['batch_size']})"
        bundles = [b.get("path") for b in p.get("bundles") or []]
        if not bundles:
            problems.append(f"{at}: bundles lists none, so nothing can re-derive it")
            continue
        for b in p["bundles"]:
            path = Path(b["path"])
            if not (path / manifest.NAME).is_file():
                problems.append(f"{at}: bundle {b['path']}: not found (or has no MANIFEST) from {Path.cwd()}")
                continue
            if file_sha256(path / manifest.NAME) != b.get("manifest_sha256"):
                problems.append(f"{at}: bundle {b['path']}: its MANIFEST changed since the point was made")
        if any(p.startswith(at) for p in problems):
            continue
        try:
            again = make_point([_verified(Path(b)) for b in bundles])
        except BenchError as e:
            problems.append(f"{at}: {e}")
            continue
        for key in ("runs", "olympic_mean", "stdev", "n_runs", "n_converged", "recipe_hash", "batch_size"):
            if json.loads(json.dumps(again[key])) != p.get(key):
                problems.append(f"{at}: {key}: the file has {p.get(key)!r}, the bundles give {again[key]!r}")
    return problems


# ------------------------------------------------------------------------------------------ finding references

def _loose(path: Path) -> Optional[dict]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def locate(rs: RunSet, where: Optional[Path] = None) -> tuple[Optional[dict], Optional[Path], Optional[str]]:
    """(reference file contents, its path, None) for this set, or (None, None, why there is none).

    `where` is a reference file (one for another recipe, data set or target is refused: BenchError) or a folder
    of them (default results/rcp: the files for this recipe are read; one for another data set or target is
    not compared, and the reason says so)."""
    where = Path(where) if where is not None else DEFAULT_DIR
    if where.is_file():
        doc = rcp.read(where)
        why = rcp.identity_problems(doc, rs.recipe, rs.dataset, rs.target)
        if why:
            raise BenchError(f"--rcp {where}: not a reference for these runs ({'; '.join(why)}): refused, not "
                             f"compared; name the reference file of recipe {rs.recipe!r} on this data set and target, "
                             f"or make one with `bench rcp make`")
        return doc, where, None
    make_hint = f"make them with `bench rcp make {rs.recipe} --runs N` or `bench rcp make --from-bundles DIR...`"
    if not where.is_dir():
        return None, None, f"no reference points for recipe {rs.recipe!r}: no folder {where} ({make_hint})"
    mine = []
    for path in sorted(where.glob("*.json")):
        loose = _loose(path)
        if (loose or {}).get("recipe") == rs.recipe or (loose is None and path.stem == rs.recipe):
            mine.append((path, rcp.read(path)))  # a broken file for this recipe is an error, not a silent skip
    if not mine:
        return None, None, f"no reference points for recipe {rs.recipe!r} in {where} ({make_hint})"
    fits = [(p, d) for p, d in mine if not rcp.identity_problems(d, rs.recipe, rs.dataset, rs.target)]
    if len(fits) > 1:
        raise BenchError(f"{', '.join(str(p) for p, _ in fits)}: more than one reference file for recipe "
                         f"{rs.recipe!r} on this data set and target; keep one (`bench rcp make --out FILE` merges "
                         f"batch sizes into one file)")
    if not fits:
        why = "; ".join(f"{p}: {', '.join(rcp.identity_problems(d, rs.recipe, rs.dataset, rs.target))}"
                        for p, d in mine)
        return None, None, f"no reference for these runs' data set and target ({why}): refused, not compared"
    return fits[0][1], fits[0][0], None


# ------------------------------------------------------------------------------------------ checking a bundle

@dataclass
class Check:
    """The convergence check of one bundle: the verdict, the set, the reference file, notes and scores."""
    verdict: rcp.Verdict
    set: Optional[RunSet] = None
    file: Optional[Path] = None
    point: Optional[dict] = None        # the reference file's point when the check used one as it is
    notes: list[str] = field(default_factory=list)
    score: Optional[float] = None       # olympic time to target, seconds
    normalised: Optional[float] = None  # score x the normalisation factor

    @property
    def failed(self) -> bool:
        return self.verdict.failed

    def to_json(self) -> dict:
        v = self.verdict
        ref = v.reference
        return {"state": v.state, "headline": headline(self), "batch_size": v.batch_size, "how": v.how,
                "reference_file": str(self.file) if self.file else None,
                "reference": None if ref is None else {"batch_size": ref.batch_size, "olympic_mean": ref.mean,
                                                       "stdev": ref.stdev, "runs": ref.runs,
                                                       "interpolated": ref.interpolated},
                "epochs": self.set.epochs if self.set else None, "olympic_mean": v.mean, "runs": v.runs,
                "converged": v.converged, "lowest_acceptable_mean": v.lowest, "threshold": v.threshold,
                "p": v.p, "alpha": rcp.ALPHA, "normalisation_factor": v.factor, "score_s": self.score,
                "normalised_score_s": self.normalised, "reason": v.reason, "notes": self.notes}


def check(bundle: Path, where: Optional[Path] = None, raw: Optional[summ.Raw] = None,
          expected: Optional[dict] = None) -> Check:
    """The convergence check of a bundle against the reference points of its recipe (`where`: a reference file or
    a folder of them; default results/rcp). Raises BenchError only for a reference file that must be refused
    (named explicitly for other runs, or broken); every other outcome is a verdict."""
    raw = raw or summ.load(bundle)
    if (raw.recipe.get("kind") or "classifier") == "external":
        return Check(rcp.Verdict(rcp.NOT_CHECKED, reason="kind external: the command counts its own epochs; "
                                                         "reference points are for runs this harness trained"))
    rs = run_set(bundle, raw, expected)
    doc, path, why = locate(rs, where)
    if doc is None:
        return Check(rcp.Verdict(rcp.NOT_CHECKED, batch_size=rs.batch_size, runs=len(rs.runs),
                                 converged=sum(e is not None for e in rs.epochs), mean=rcp.olympic(rs.epochs)[0],
                                 reason=why), rs, score=rs.score)
    v = rcp.judge(rs.epochs, rcp.points_of(doc), rs.batch_size)
    c = Check(v, rs, path, score=rs.score)
    ref = v.reference
    if ref is not None and not ref.interpolated:
        c.point = next(p for p in doc["points"] if p["batch_size"] == ref.batch_size)
    if v.state in (rcp.PASS, rcp.FASTER) and rs.score is not None:
        c.normalised = rs.score * v.factor
    c.notes = _notes(c, doc)
    return c


def _notes(c: Check, doc: dict) -> list[str]:
    v, rs, out = c.verdict, c.set, []
    if v.reference is None:
        return out
    runs = len(rs.runs)
    used = [c.point] if c.point else [p for p in doc["points"] if p["batch_size"] in _neighbours(doc, v.batch_size)]
    ref_ids = {r["run_id"] for p in used for r in p["runs"]}
    same = [r["run_id"] for r in rs.runs if r["run_id"] in ref_ids]
    if same and len(same) == runs == len(ref_ids):
        out.append(f"the references are this bundle's own {runs} runs (the same run ids): the check compares them "
                   f"with themselves, so it cannot find them faster")
    elif same:
        out.append(f"the references include {len(same)} of this bundle's {runs} runs (the same run ids): the two "
                   f"sides are not independent, as MLPerf's references are")
    if c.point is not None and c.point["n_runs"] < 2 * runs:
        out.append(f"the references hold {c.point['n_runs']} runs, fewer than twice this bundle's {runs}: too few "
                   f"by MLPerf's rule, which asks for at least {2 * runs}")
    if v.reference.interpolated:
        out.append(f"the reference at batch size {v.batch_size} is interpolated between the points at "
                   f"{' and '.join(str(b) for b in _neighbours(doc, v.batch_size))}; its test counts {2 * runs} "
                   f"reference runs, as MLPerf's interpolated records do")
    dof = rcp.degrees_of_freedom(runs - 2 * rcp.DROPPED, v.reference.n_ref(runs))
    if v.reference.stdev == 0:
        out.append(f"the references have no spread (every converged run took {v.reference.mean:g} epochs): any "
                   f"olympic mean below {v.reference.mean:g} fails, as in MLPerf's checker")
    elif dof < 1:
        out.append(f"the t-test has no degrees of freedom ({runs - 2 * rcp.DROPPED} + {v.reference.n_ref(runs)} "
                   f"olympic runs): any olympic mean below the references' fails, as in MLPerf's checker")
    if c.point is not None and c.point.get("recipe_hash") != rs.recipe_hash:
        fields = _differ(c.point.get("hyperparameters") or {}, rs.hyperparameters)
        out.append(f"the references ran recipe hash {c.point.get('recipe_hash')}, this bundle {rs.recipe_hash}"
                   + (f" (fields that differ: {', '.join(fields[:8])}{', ...' if len(fields) > 8 else ''})"
                      if fields else ""))
    return out


def _neighbours(doc: dict, batch_size: int) -> list[int]:
    pts = rcp.prune(rcp.points_of(doc))
    lower = [p.batch_size for p in pts if p.batch_size < batch_size]
    upper = [p.batch_size for p in pts if p.batch_size > batch_size]
    return ([lower[-1]] if lower else []) + ([upper[0]] if upper else [])


def _num(x: Optional[float], digits: int = 4) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}g}"


def headline(c: Check) -> str:
    v = c.verdict
    if v.state == rcp.PASS:
        extra = f" (no reference at batch size {v.batch_size}; {v.reason.split('; ', 1)[1]})" if v.how == "below" else ""
        return "converges as the references do" + extra
    if v.state == rcp.FASTER:
        if v.p is not None:
            return "faster than the references at p < 0.05: not accepted without review"
        return ("faster than the references (below the lowest acceptable mean; the t-test is undefined here, so any "
                "faster mean fails, as in MLPerf's checker): not accepted without review")
    if v.state == rcp.NO_REFERENCE:
        return f"{v.reason}: not checked"
    if v.state == rcp.INSUFFICIENT:
        return f"insufficient convergence: {v.reason}: not compared"
    return f"not checked: {v.reason}"


def lines(c: Check) -> list[str]:
    """What `bench verify` prints: a headline, then the numbers."""
    v, rs = c.verdict, c.set
    out = [f"convergence: {headline(c)}"]
    if rs is None:
        return out
    metric = f"{rs.target['metric']} {'>=' if rs.target['mode'] == 'max' else '<='} {rs.target['value']:g}"
    shown = ", ".join("did not converge" if e is None else f"{e:g}" for e in rs.epochs)
    out.append(f"  this bundle: epochs to {metric} at batch size {rs.batch_size}: {shown}; olympic mean "
               f"{_num(v.mean)} over {len(rs.runs)} run{'s' * (len(rs.runs) != 1)} ({v.converged} converged)")
    ref = v.reference
    if ref is not None:
        src = f"{c.file}, " if c.file else ""
        kind = "interpolated" if ref.interpolated else f"{ref.runs} runs"
        out.append(f"  references ({src}batch size {ref.batch_size}, {kind}): olympic mean {_num(ref.mean, 6)} "
                   f"epochs, spread {_num(ref.stdev)}")
        out.append(f"  lowest acceptable olympic mean {_num(v.lowest, 6)} epochs (one-sided t-test, alpha "
                   f"{rcp.ALPHA}); p = {_num(v.p, 3)} for this bundle's mean")
        if c.score is not None:
            norm = f"{c.normalised:.2f} s" if c.normalised is not None else "none (the check did not pass or fail)"
            out.append(f"  score: olympic time {c.score:.2f} s; normalised {norm} (x{v.factor:.4f}: "
                       + ("converging faster than the references is never rewarded)" if v.factor > 1
                          else "no faster than the references)"))
        else:
            out.append(f"  score: no olympic time (see the summary); normalisation factor x{v.factor:.3f}")
    out += [f"  note: {n}" for n in c.notes]
    return out
