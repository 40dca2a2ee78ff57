"""The bundle's three figures, drawn from the summary and the raw telemetry.

PNG bytes must depend on the data alone so that `bench report` can regenerate a bundle and the MANIFEST
still holds: figures are built without pyplot (no global state), inside matplotlib's default style (a
user's matplotlibrc must not leak in), at a fixed size and dpi, with the PNG's Software tag removed.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bench.core import mllog
from bench.core.errors import BenchError

DPI = 100
SIZE = (8.0, 5.0)
PNG_METADATA = {"Software": None}


def default_style():
    """Artists read rcParams when they are created, so the whole drawing happens inside this context."""
    import matplotlib.style

    return matplotlib.style.context("default")


def figure(size=SIZE):
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=DPI, layout="constrained")


def save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")  # a regeneration that dies midway leaves the old figure
    fig.savefig(tmp, format="png", dpi=DPI, metadata=PNG_METADATA)
    os.replace(tmp, path)


def _label(run: dict) -> str:
    return f"seed {run['seed']} ({run['status']})"


def accuracy_vs_time(summary: dict, path: Path) -> None:
    fig = figure()
    ax = fig.add_subplot()
    target = summary["target"]
    for run in summary["runs"]:
        xs = [e["elapsed_s"] for e in run["evals"]]
        ys = [e["acc"] * 100 for e in run["evals"]]
        line, = ax.plot(xs, ys, marker="o", markersize=4, label=_label(run))
        if run["time_to_target_s"] is not None:
            hit = next(e for e in run["evals"] if e["elapsed_s"] == run["time_to_target_s"])
            ax.plot([hit["elapsed_s"]], [hit["acc"] * 100], marker="*", markersize=14, color=line.get_color(),
                    linestyle="none")
    ax.axhline(target * 100, color="black", linestyle="--", linewidth=1, label=f"target {target:.2%}")
    ax.set_xlabel("time since run_start (s)")
    ax.set_ylabel("test top-1 accuracy (%)")
    ax.set_title(f"{summary['recipe']['name']}: test accuracy at each evaluation (star: target reached)")
    ax.grid(alpha=0.3)
    if not any(run["evals"] for run in summary["runs"]):
        ax.text(0.5, 0.5, "no evaluation was logged", transform=ax.transAxes, ha="center", va="center")
    ax.legend(loc="lower right", fontsize="small")
    save(fig, path)


def _horizontal() -> dict:
    # `orientation` arrived in matplotlib 3.10 and `vert` is deprecated there; GPU images may ship older ones
    import matplotlib

    major, minor = (int(x) for x in matplotlib.__version__.split(".")[:2])
    return {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}


def time_to_target(summary: dict, path: Path) -> None:
    fig = figure()
    ax = fig.add_subplot()
    times = [r["time_to_target_s"] for r in summary["runs"] if r["time_to_target_s"] is not None]
    n_all = len(summary["runs"])
    title = f"{summary['recipe']['name']}: time to {summary['target']:.2%} ({len(times)} of {n_all} runs reached it)"
    ax.set_title(title)
    if not times:
        ax.text(0.5, 0.5, f"no run reached the target ({summary['target']:.2%})\n"
                          f"{n_all} run(s) recorded; see the runs table in report.md",
                transform=ax.transAxes, ha="center", va="center", fontsize=14, color="firebrick")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("(no time-to-target to plot)")
        save(fig, path)
        return
    ax.boxplot([times], positions=[0], widths=0.5, showfliers=False, medianprops={"color": "tab:orange"},
               **_horizontal())
    # fixed, data-independent jitter so the figure is reproducible and points do not overlap
    jitter = np.linspace(-0.15, 0.15, len(times)) if len(times) > 1 else np.zeros(1)
    ax.scatter(times, jitter + 0.45, s=30, color="tab:blue", zorder=3, label=f"runs that reached (n={len(times)})")
    t = (summary.get("stats") or {}).get("time") or {}
    if t.get("mean") is not None:
        if t.get("ci_low") is not None:
            ax.errorbar([t["mean"]], [-0.45], xerr=[[t["mean"] - t["ci_low"]], [t["ci_high"] - t["mean"]]],
                        fmt="D", color="tab:red", capsize=6,
                        label=f"mean {t['mean']:.3g} s, 95% CI [{t['ci_low']:.3g}, {t['ci_high']:.3g}]")
        else:
            ax.plot([t["mean"]], [-0.45], "D", color="tab:red", label=f"mean {t['mean']:.3g} s (one run: no CI)")
    ax.set_ylim(-1, 1)
    ax.set_yticks([-0.45, 0, 0.45], ["mean ± CI", "box", "runs"])
    ax.set_xlabel("time to target (s), from run_start to the end of the evaluation that reached it")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper right", fontsize="small")
    save(fig, path)


def _series(bundle: Path, summary: dict, logs: dict[str, list[dict]]):
    """Per run: (label, telemetry samples, run_start in clock seconds)."""
    from bench.system.telemetry import read_csv

    out = []
    for run in summary["runs"]:
        path = bundle / "runs" / run["run_id"] / "telemetry.csv"
        if not path.is_file():
            continue
        try:
            samples = read_csv(path)
        except BenchError:
            continue  # verify reports unreadable files; a figure must not fail the whole report
        start = next((e["time_ms"] / 1000 for e in logs.get(run["run_id"], []) if e["key"] == mllog.RUN_START),
                     samples[0]["t"] if samples else 0.0)
        out.append((_label(run), samples, start))
    return out


_HOST = [("cpu_percent", "system CPU (% of all cores)"), ("proc_cpu_percent", "process CPU (% of one core)"),
         ("proc_rss_mb", "process RSS (MB)")]
_GPU = [("util_gpu_pct", "GPU utilisation (%)"), ("power_w", "GPU power (W)"), ("mem_used_mb", "GPU memory used (MB)")]


def telemetry(bundle: Path, summary: dict, logs: dict[str, list[dict]], path: Path) -> None:
    series = _series(bundle, summary, logs)
    has_gpu = any(g.get(k) is not None for _, samples, _ in series for s in samples for g in s["gpus"]
                  for k, _ in _GPU)
    panels = _HOST + (_GPU if has_gpu else [])
    fig = figure((8.0, 2.2 * len(panels) + 0.8))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    fig.suptitle(f"{summary['recipe']['name']}: telemetry during each run"
                 + ("" if has_gpu else " (no GPU metrics recorded)"))
    for ax, (key, label) in zip(axes, panels):
        for name, samples, start in series:
            if key in dict(_GPU):
                pts = [(s["t"] - start, g[key], g["gpu"]) for s in samples for g in s["gpus"] if g.get(key) is not None]
                for gpu in sorted({p[2] for p in pts}):
                    mine = [p for p in pts if p[2] == gpu]
                    ax.plot([p[0] for p in mine], [p[1] for p in mine], marker=".", label=f"{name} gpu{gpu}")
            else:
                pts = [(s["t"] - start, s[key]) for s in samples if s.get(key) is not None]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=name)
        ax.set_ylabel(label, fontsize="small")
        ax.grid(alpha=0.3)
        if not series:
            ax.text(0.5, 0.5, "no telemetry recorded", transform=ax.transAxes, ha="center", va="center")
    axes[-1].set_xlabel("time since run_start (s)")
    if series:
        axes[0].legend(loc="best", fontsize="x-small")
        if has_gpu:  # GPU lines carry their own labels (one per device)
            axes[len(_HOST)].legend(loc="best", fontsize="x-small")
    save(fig, path)


def write(bundle: Path, summary: dict, logs: dict[str, list[dict]]) -> list[str]:
    bundle = Path(bundle)
    with default_style():
        accuracy_vs_time(summary, bundle / "plots" / "accuracy_vs_time.png")
        time_to_target(summary, bundle / "plots" / "time_to_target.png")
        telemetry(bundle, summary, logs, bundle / "plots" / "telemetry.png")
    return ["plots/accuracy_vs_time.png", "plots/time_to_target.png", "plots/telemetry.png"]
