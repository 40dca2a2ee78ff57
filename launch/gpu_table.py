"""The table at the end of launch/gpu_check.sh's race part: time to target per recipe from $OUT/race.csv,
`bench overhead` ratios from $OUT/overhead_*.json, the public airbench94_muon's runs from $OUT/airbench.txt
when it ran, and the steps the time budget skipped.

    python launch/gpu_table.py OUT
"""
import csv
import json
import statistics
import sys
from pathlib import Path


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def fmt(values, spec=".1f", scale=1.0):
    values = [v * scale for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return format(values[0], spec)
    return f"{format(statistics.mean(values), spec)} ({format(min(values), spec)}-{format(max(values), spec)})"


def airbench_runs(path: Path) -> list[tuple[float, float]]:
    """(tta accuracy, seconds) of each finished run in airbench94_muon's printout; the first is its warm-up."""
    runs = []
    for line in path.read_text(errors="replace").splitlines() if path.is_file() else []:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[1] == "eval":
            runs.append((float(cells[4]), float(cells[5])))
    return runs[1:]


def main(out: str) -> None:
    out = Path(out)
    rows = list(csv.DictReader(open(out / "race.csv"))) if (out / "race.csv").is_file() else []
    overhead = {}
    for f in sorted(out.glob("overhead_*.json")):
        o = json.loads(f.read_text())
        overhead[o["recipe"]] = o
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r["recipe"], r.get("compile", ""), r["target"]), []).append(r)
    device = rows[0]["device_name"] if rows else "?"
    print(f"\n## time to target on {device} (data: the JPEG copy; mean (min-max) over runs)\n")
    print("| recipe | compile | target | runs | reached | time to target s | init s | images/s | MFU % | best acc % | overhead ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (recipe, compile_, target), rs in groups.items():
        reached = [r for r in rs if r["status"] == "reached"]
        o = overhead.get(recipe) if compile_ in ("", "False") else None
        ratio = f"{o['ratio']:.3f}" if o else "-"
        print(f"| {recipe} | {compile_ or '-'} | {float(target):.3f} | {len(rs)} | {len(reached)} | "
              f"{fmt([num(r['time_to_target_s']) for r in reached], '.2f')} | {fmt([num(r['init_s']) for r in rs])} | "
              f"{fmt([num(r['images_per_s']) for r in rs], ',.0f')} | {fmt([num(r['mfu']) for r in rs], '.1f', 100)} | "
              f"{fmt([num(r['best_acc']) for r in rs], '.2f', 100)} | {ratio} |")
    public = airbench_runs(out / "airbench.txt")
    if public:
        print(f"| airbench94_muon.py (public, max-autotune) | yes | - | {len(public)} | "
              f"{sum(a >= 0.907 for a, _ in public)} (>= 0.907) | {fmt([t for _, t in public], '.2f')} | - | - | - | "
              f"{fmt([a for a, _ in public], '.2f', 100)} | - |")
    for name, o in overhead.items():
        print(f"\noverhead {name}: bare {o['bare_images_per_s']:,.0f} img/s, harness {o['harness_images_per_s']:,.0f} "
              f"img/s, ratio {o['ratio']:.3f} ({o['steps']} steps x {o['rounds']} rounds, {o['precision']})")
    skipped = out / "skipped.txt"
    if skipped.is_file() and skipped.read_text().strip():
        print("\nskipped (time budget spent): " + ", ".join(skipped.read_text().split("\n")).strip(", "))


if __name__ == "__main__":
    main(sys.argv[1])
