"""`bench submit`: pack a verified bundle into a submission tree modelled on MLPerf Training's.

    <out>/<system>/<recipe>/
      systems/<system>.json                     what ran it: host, accelerator model and count, CPU model
                                                and cores, RAM, framework versions (from env.json)
      results/<system>/<recipe>/result_<i>.txt  run i's MLPerf event log (runs/<id>/mllog.txt), i = 0, 1, ...
                                                in start order, byte for byte
      summary.json  report.md  plots/*.png      as in the bundle (report.md's image links keep working)
      dawnbench/result_<i>.tsv, result_<i>.json run i's DAWNBench files; the JSON completed with the
                                                submitter's author, e-mail, code URL and log URL
      bundle.MANIFEST                           the bundle's MANIFEST, as verified: each copied file's hash
                                                is in it, so the tree can be traced back to the bundle
      convergence.json                          the check against the recipe's reference convergence points
                                                (bench.report.convergence); results/.../scaling.json holds the
                                                normalisation factor when it is above 1, as MLPerf's checker writes
      MANIFEST                                  sha256 of every file of this tree, same format

<system> defaults to `<count>x<accelerator>` (e.g. 1xNVIDIA_H100_80GB_HBM3) or `cpu-<cores>c-<host>`,
made filesystem-safe. The bundle is verified first; one that fails is refused, and so is one that converges faster
than its references (unless rcp_bypass).
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from bench.core.errors import BenchError, VerifyError
from bench.report import exports, manifest, summary as summ
from bench.report.verify import verify
from bench.core.results import atomic_write


def safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("_") or "unnamed"


def system_name(env: dict, rows: list[dict]) -> str:
    device = next((r.get("device_name") for r in rows if r.get("device_name")), None)
    if env.get("device") == "cuda":
        count = int(env.get("world_size") or 1)
        return safe(f"{count}x{device or (env.get('gpus') or [{}])[0].get('name') or 'gpu'}")
    cores = (env.get("cpu") or {}).get("logical_cores") or "?"
    return safe(f"cpu-{cores}c-{env.get('host') or 'host'}")


def system_description(env: dict, rows: list[dict], name: str) -> dict:
    cpu = env.get("cpu") or {}
    cuda = env.get("cuda") or {}
    gpus = env.get("gpus") or []
    is_gpu = env.get("device") == "cuda"
    return {
        "system_name": name,
        "host": env.get("host"),
        "number_of_nodes": env.get("nodes"),
        "accelerator_model_name": next((r.get("device_name") for r in rows if r.get("device_name")), None)
        if is_gpu else None,
        "accelerators_per_node": (int(env.get("world_size") or 1) // int(env.get("nodes") or 1)) if is_gpu else 0,
        "accelerator_memory_mb": gpus[0].get("memory_mb") if gpus else None,
        "accelerator_driver": gpus[0].get("driver") if gpus else None,
        "host_processor_model_name": cpu.get("model"),
        "host_processor_core_count": cpu.get("physical_cores"),
        "host_processor_logical_cores": cpu.get("logical_cores"),
        "host_memory_capacity_gb": env.get("ram_gb"),
        "operating_system": env.get("os"),
        "framework": f"PyTorch {env.get('torch')}",
        "framework_versions": {"python": env.get("python"), "torch": env.get("torch"),
                               "torchvision": env.get("torchvision"), "cuda": cuda.get("version"),
                               "cudnn": env.get("cudnn"), "nccl": env.get("nccl"), "dali": env.get("dali"),
                               "bench": env.get("bench")},
        "git": env.get("git"),
    }


def submit(bundle: Path, out: Path, system: str | None = None, force: bool = False, who: dict | None = None,
           say=print, rcp: Path | None = None, rcp_bypass: bool = False) -> Path:
    """`who`: the submitter (exports.submitter(): author, email, code_url, log_url, each optional). `rcp`: the
    reference convergence points (a file or a folder, default results/rcp); a bundle that converges faster than
    them is refused unless `rcp_bypass` (MLPerf's --rcp_bypass: packed, and marked for review)."""
    from bench.report import convergence

    who = who or {}
    bundle = summ.require_dir(bundle)
    verify(bundle)
    raw = summ.load(bundle)
    conv = convergence.check(bundle, rcp, raw)
    for line in convergence.lines(conv):
        say(line)
    if conv.failed and not rcp_bypass:
        raise VerifyError(f"{bundle}: converges faster than its references: not accepted without review; "
                          f"pass --rcp-bypass to pack it marked for review")
    name = safe(system) if system else system_name(raw.env, raw.rows)
    recipe = safe(raw.recipe.get("name") or "recipe")
    dest = Path(out) / name / recipe
    if dest.exists():
        if not force:
            raise BenchError(f"{dest}: already exists; remove it, pass --force to replace it, or use --out")
        shutil.rmtree(dest)
    results_dir = dest / "results" / name / recipe
    results_dir.mkdir(parents=True)
    desc = json.dumps(system_description(raw.env, raw.rows, name), indent=2, sort_keys=True) + "\n"
    atomic_write(dest / "systems" / f"{name}.json", lambda f: f.write(desc))
    missing: list[str] = []
    for i, rid in enumerate(raw.logs):
        run = bundle / "runs" / rid
        shutil.copyfile(run / "mllog.txt", results_dir / f"result_{i}.txt")
        (dest / "dawnbench").mkdir(exist_ok=True)
        shutil.copyfile(run / "dawnbench.tsv", dest / "dawnbench" / f"result_{i}.tsv")
        log_url = (f"{who['log_url'].rstrip('/')}/results/{name}/{recipe}/result_{i}.txt"
                   if who.get("log_url") else None)
        doc = exports.for_submission(json.loads((run / "dawnbench.json").read_text(encoding="utf-8")), who, log_url)
        text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
        atomic_write(dest / "dawnbench" / f"result_{i}.json", lambda f: f.write(text))
        missing = exports.missing_for_dawnbench(doc, summ.read_json(bundle, "summary.json"))
    for rel in ("summary.json", "report.md", *manifest.PLOTS):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bundle / rel, dest / rel)
    shutil.copyfile(bundle / manifest.NAME, dest / "bundle.MANIFEST")
    record = {**conv.to_json(), "rcp_bypass": bool(conv.failed and rcp_bypass)}
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    atomic_write(dest / "convergence.json", lambda f: f.write(text))
    if conv.verdict.state == "pass" and conv.verdict.factor > 1:  # as MLPerf's checker writes it (set_scaling)
        scaling = json.dumps({"scaling_factor": conv.verdict.factor}) + "\n"
        atomic_write(results_dir / "scaling.json", lambda f: f.write(scaling))
    manifest.write(dest)
    say(f"submitted {len(raw.logs)} run(s) of {recipe} as system {name}: {dest}")
    if missing:
        say("a DAWNBench pull request (CIFAR10/train, one run: JSON + TSV named "
            "[author]_[model]_[hardware tag]_[framework]) still needs:\n" + "\n".join(f"  - {m}" for m in missing))
    return dest
