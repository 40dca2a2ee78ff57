"""Are a bundle's runs all the runs its command made? (`bench verify`'s selection check.)

MLPerf forbids running more runs than are submitted and keeping the best. A bundle's MANIFEST shows its files were
not edited, but a bundle can be assembled again from a chosen subset (runs deleted, rows removed, the MANIFEST
rebuilt with `bench report --no-manifest`). What such a subset cannot hide:

- **seeds**: `bench run` gives run i the seed recipe.seed + first_run + i (bench.run.runner), in start order, and
  run ids sort in start order; so a bundle's seeds, read from its event logs in run-id order, are consecutive from
  the recipe's seed plus the set's first_run (a resumed sweep's offset, which env.json records as `first_run`).
  A gap, a repeat or a later start means runs were taken out, or sets merged;
- **the count**: recipe.yaml records how many runs the command was asked for (`runs`). Fewer runs than that, when
  the last one did not end aborted (an interrupted set stops early), means the last runs were taken out.

A run whose log holds no seed (a command of one's own, kind: external, seeds itself) is not judged by its seed.
"""
from __future__ import annotations

ENDED_EARLY = ("aborted",)  # a set stops after a run that ended like this (Ctrl-C, SIGTERM, a dead peer)


def _span(seeds: list[int]) -> str:
    return f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"


def problems(raw, runs: list[dict]) -> list[str]:
    """What shows that `runs` (summary facts, in run-id order) are not every run the bundle's command made."""
    recipe, env = raw.recipe, raw.env
    if (recipe.get("kind") or "classifier") == "external":
        return []  # the command seeds its own runs, and its runs are what it printed
    out: list[str] = []
    base = recipe.get("seed") or 0
    first_run = env.get("first_run")
    start = base + (first_run or 0)
    seeded = [(r["run_id"], r["seed"]) for r in runs if isinstance(r.get("seed"), int)
              and not isinstance(r.get("seed"), bool)]
    seeds = [s for _, s in seeded]
    if seeds:
        seen: dict[int, str] = {}
        for rid, s in seeded:
            if s in seen:
                out.append(f"runs/{rid}: seed {s} again (also runs/{seen[s]}): each run of a set has its own seed; "
                           f"this bundle holds runs of more than one set")
            seen.setdefault(s, rid)
        if seeds[0] != start:
            if first_run is None:
                why = (f"the recipe's seed is {base} and env.json records no first_run (a resumed sweep's offset)")
            else:
                why = f"the recipe's seed is {base} and env.json's first_run is {first_run}"
            missing = list(range(start, seeds[0])) if seeds[0] > start else []
            out.append(f"runs: the first run has seed {seeds[0]}, but {why}, so it should be {start}"
                       + (f": the runs with seed {_span(missing)} are missing" if missing else "")
                       + "; a bundle holds every run its command made")
        for (rid_a, a), (rid_b, b) in zip(seeded, seeded[1:]):
            if b > a + 1:
                out.append(f"runs/{rid_b}: seed {b} follows seed {a}: the run{'s' * (b - a > 2)} with seed "
                           f"{_span(list(range(a + 1, b)))} {'are' if b - a > 2 else 'is'} missing; a bundle "
                           f"holds every run its command made, in seed order")
            elif b < a:
                out.append(f"runs/{rid_b}: seed {b} follows seed {a}: runs start in seed order; this bundle's "
                           f"runs were reordered or come from more than one set")
    asked = recipe.get("runs")
    if isinstance(asked, int) and not isinstance(asked, bool) and len(runs) < asked:
        last = runs[-1]["status"] if runs else None
        if last not in ENDED_EARLY:
            ended = f"its last run ended {last}" if last else "it holds none"
            out.append(f"recipe.yaml: runs: {asked}, but the bundle holds {len(runs)} run"
                       f"{'s' * (len(runs) != 1)} and {ended}, not interrupted: runs were taken out; a bundle "
                       f"holds every run its command made")
    return out
