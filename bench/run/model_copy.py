"""A report bundle's copy of a user's model code (bench.models.user): `model/<file>` beside recipe.yaml.

For a file model (model.arch path/to/my_net.py:build) the bundle's recipe.yaml names the copy,
`model/my_net.py:build`, relative to itself as any recipe file's model path is: `bench verify --rerun` and
`bench run <bundle>/recipe.yaml` build from the copy. For an import-path model whose module is a loose file
the copy is kept for the record (model.arch still names the module, which a rerun imports and must find
unchanged); a module from an installed distribution is named by model.source (name and version), not copied.
The copy is the bytes model.source's sha256 was computed from; the hash of the written recipe is the
recipe's, since the hash sees a model file without its folders."""
from __future__ import annotations

from pathlib import Path

from bench.core.errors import BenchError
from bench.models import user
from bench.recipe import Recipe
from bench.recipe.schema import resolved_hash


def bundle_recipe(recipe: Recipe, bundle_dir: Path) -> dict:
    """recipe.to_dict() as the bundle's recipe.yaml holds it, after copying the model's file into the bundle."""
    d = recipe.to_dict()
    arch, src = recipe.model.arch, recipe.model.source
    if not user.is_user(arch) or not isinstance(src, dict) or "file" not in src:
        return d
    path = user.source_file(arch)
    data = path.read_bytes()
    if user.sha256(data) != src.get("sha256"):
        raise BenchError(f"model.source: {path} changed since the recipe was loaded (its sha256 is now "
                         f"{user.sha256(data)}, the recipe states {src.get('sha256')}); run again with the file as it is")
    copy = Path(bundle_dir) / user.BUNDLE_DIR / src["file"]
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_bytes(data)  # the bundle is still `.partial`: no reader sees it half-written
    spec = user.parse(arch)
    if spec.is_file:
        d["model"]["arch"] = f"{user.BUNDLE_DIR}/{src['file']}:{spec.attr}"
    assert resolved_hash(d) == recipe.hash, "the bundle's recipe must hash as the recipe does"
    return d

