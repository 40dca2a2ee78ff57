"""`bench verify` on a bundle's copy of a user's model code (bench.run.model_copy writes it).

The MANIFEST already names a copy whose bytes changed after the bundle was written; this checks the copy
against what the recipe states (model.source's sha256, which the recipe hash includes), so a copy swapped
together with its MANIFEST line is named too, and a bundle's file model must name its copy: the network
`bench verify --rerun` builds is the one the results were measured with."""
from __future__ import annotations

from pathlib import Path

from bench.models import user
from bench.report.manifest import sha256


def problems(bundle: Path, recipe: dict) -> list[str]:
    model = recipe.get("model") if isinstance(recipe, dict) else None
    if not isinstance(model, dict):
        return []
    arch, src = model.get("arch"), model.get("source")
    if not user.is_user(arch):
        return []
    if not isinstance(src, dict):
        return [f"recipe.yaml: model.arch {arch!r} is a network of the user's own but model.source is "
                f"{src!r}: nothing says which code the results were measured with"]
    if "file" not in src:
        return []  # a distribution's module: named by name and version, not copied
    rel = f"{user.BUNDLE_DIR}/{src['file']}"
    out = []
    try:
        spec = user.parse(arch)
    except Exception as exc:  # a BenchError naming the bad spec
        return [f"recipe.yaml: {exc}"]
    if spec.is_file and arch != f"{rel}:{spec.attr}":
        out.append(f"recipe.yaml: model.arch is {arch!r}, but a bundle's model file is its copy: {rel}:{spec.attr}")
    copy = Path(bundle) / rel
    if not copy.is_file():
        out.append(f"{rel}: missing (recipe.yaml's model.source names it, sha256 {src.get('sha256')})")
    elif sha256(copy) != src.get("sha256"):
        out.append(f"{rel}: its sha256 is {sha256(copy)} but recipe.yaml's model.source states {src.get('sha256')}: "
                   f"the copy of the model was edited, so it is not the network these results were measured with")
    return out
