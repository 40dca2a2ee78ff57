"""What one array task of `bench sweep FAMILY --slurm` runs: `bench run` for one recipe of the sweep,
in-process, writing the job's own results table (bench.studies.cluster_sweep explains why).

    srun python -m bench.studies.slurm_job MANIFEST      (the generated sbatch script's last line)

The manifest lists the array's recipes; SLURM_ARRAY_TASK_ID picks one. Under srun every task of the
job runs this and joins the process group from SLURM's variables, as with launch/slurm_srun.sbatch;
rank 0 alone writes the table `<parts>/<array>_<task>.csv` and the report bundle.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from bench.core.errors import BenchError


def task_from_manifest(path: Path, env=os.environ) -> tuple[dict, dict, Path]:
    """(manifest, this task's entry, this job's own table) for the array task SLURM started us as."""
    try:
        manifest = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BenchError(f"{path}: cannot read the sweep manifest ({exc}); resubmit with `bench sweep ... --slurm`")
    array, index = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    if array is None or index is None or not index.isdigit() or int(index) >= len(manifest["tasks"]):
        raise BenchError(f"{path}: run this as a task of the job array it was written for (SLURM_ARRAY_JOB_ID="
                         f"{array}, SLURM_ARRAY_TASK_ID={index}, {len(manifest['tasks'])} tasks)")
    return manifest, manifest["tasks"][int(index)], Path(manifest["parts"]) / f"{array}_{index}.csv"


def main(argv: list[str] | None = None) -> int:
    from bench import recipe as recipes

    argv = sys.argv[1:] if argv is None else argv
    try:
        if len(argv) != 1:
            raise BenchError("usage: python -m bench.studies.slurm_job MANIFEST (written by bench sweep --slurm)")
        manifest, task, part = task_from_manifest(Path(argv[0]))
        from bench.recipe.external import with_code  # kind: external: hashed with its script, as the sweep did

        r = with_code(recipes.load(task["file"], task["set"]))
        if r.hash != task["hash"]:  # its rows would carry another hash and never count for the sweep
            raise BenchError(f"{task['file']}: the recipe changed since the sweep was submitted (hash {r.hash}, "
                             f"submitted {task['hash']}); rerun `bench sweep {manifest['family']} --slurm` to submit "
                             f"it as it is now")
        from bench.run.runner import run_recipe

        run_recipe(r, data=manifest["data"], data_dir=Path(manifest["data_dir"]) if manifest["data_dir"] else None,
                   results_path=part, runs=task["runs"], first_run=task["first_run"],
                   reports_dir=Path(manifest["reports"]) if manifest["reports"] else None)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
