"""A GAN bundle's figures, from its summary (reproducible PNG bytes, as bench.report.plots draws them):
the target metric against time, the critic's Wasserstein estimate, is_judge against time (the WGAN-GP
paper's figure 3, in judge space; `race` draws it for several bundles at once) and the telemetry."""
from __future__ import annotations

from pathlib import Path

from bench.report import plots


def _label(run: dict, prefix: str = "") -> str:
    return f"{prefix}seed {run['seed']} ({run['status']})"


def _series(ax, runs, key: str, prefix: str = "", target=None) -> None:
    for run in runs:
        pts = [(e["elapsed_s"], e[key]) for e in run["evals"] if e.get(key) is not None]
        if not pts:
            continue
        line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=4,
                        label=_label(run, prefix))
        if target is not None and run["time_to_target_s"] is not None:
            hit = next(e for e in run["evals"] if e["elapsed_s"] == run["time_to_target_s"])
            ax.plot([hit["elapsed_s"]], [hit[key]], marker="*", markersize=14, color=line.get_color(),
                    linestyle="none")


def quality_vs_time(s: dict, path: Path) -> None:
    fig = plots.figure()
    ax = fig.add_subplot()
    m = s["target_metric"]
    _series(ax, s["runs"], "value", target=s["target"])
    ax.axhline(s["target"], color="black", linestyle="--", linewidth=1, label=f"target {s['target']:g}")
    c = s.get("target_check")
    if c:
        ax.axhline(c["untrained"], color="tab:red", linestyle=":", linewidth=1, label=f"untrained {c['untrained']:.4g}")
        ax.axhline(c["real"], color="tab:green", linestyle=":", linewidth=1, label=f"real images {c['real']:.4g}")
    if s["target_mode"] == "min" and c and c["untrained"] > 0 and c["real"] > 0:
        ax.set_yscale("log")
    ax.set_xlabel("time since run_start (s)")
    ax.set_ylabel(f"{m} (judge space)")
    ax.set_title(f"{s['recipe']['name']}: {m} at each evaluation (star: target reached)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    plots.save(fig, path)


def wasserstein(s: dict, path: Path) -> None:
    fig = plots.figure()
    ax = fig.add_subplot()
    for run in s["runs"]:
        pts = [(e.get("generator_iters"), e.get("wasserstein")) for e in run["evals"]]
        pts = [p for p in pts if None not in p]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=4, label=_label(run))
    ax.set_xlabel("generator iterations")
    ax.set_ylabel("critic's estimate D(fake) - D(real)")
    ax.set_title(f"{s['recipe']['name']}: Wasserstein estimate on held-out images (the WGAN paper's curve)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    plots.save(fig, path)


def race(summaries: list[dict], path: Path, metric: str = "is_judge", target: float | None = None) -> None:
    """`metric` (default is_judge) against wall-clock time since run_start, every run of every summary: the
    WGAN-GP paper's figure 3 (Inception score against time for WGAN clipping, WGAN-GP, DCGAN), in the judge's
    space. A board's race passes the metric it ranks by and its target, drawn as a line (star: reached)."""
    fig = plots.figure()
    ax = fig.add_subplot()
    for s in summaries:
        _series(ax, s["runs"], metric, prefix=f"{s['recipe']['name']} ", target=target)
    if target is not None:
        ax.axhline(target, color="black", linestyle="--", linewidth=1, label=f"target {target:g}")
    ax.set_xlabel("time since run_start (s)")
    ax.set_ylabel(f"{metric} (judge space, not Inception score)" if metric == "is_judge" else f"{metric} (judge space)")
    ax.set_title(f"{metric} against wall-clock time" + (" (star: target reached)" if target is not None else ""))
    ax.grid(alpha=0.3)
    if any(s["runs"] for s in summaries):
        ax.legend(loc="best", fontsize="small")
    plots.save(fig, path)


def write(bundle: Path, s: dict, logs: dict) -> list[str]:
    bundle = Path(bundle)
    with plots.default_style():
        quality_vs_time(s, bundle / "plots" / "quality_vs_time.png")
        wasserstein(s, bundle / "plots" / "wasserstein.png")
        race([s], bundle / "plots" / "is_judge_vs_time.png")
        plots.telemetry(bundle, s, logs, bundle / "plots" / "telemetry.png")
    return ["plots/quality_vs_time.png", "plots/wasserstein.png", "plots/is_judge_vs_time.png", "plots/telemetry.png"]
