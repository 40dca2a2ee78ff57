"""A recipe whose model.arch names a network of the user's own (bench.models.user): the path made absolute
and the code's source recorded in model.source, which the recipe hash includes.

bench.recipe.files anchors a relative file path to the recipe file that sets it; what is still relative here
(a --set, or a mapping handed to from_dict) is relative to the current directory. A recipe that states
model.source already (a report bundle's recipe.yaml) must match the code it names now."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from bench.core.errors import BenchError
from bench.models import user
from bench.recipe.schema import Recipe


def settle(recipe: Recipe, errors: list[str]) -> Recipe:
    """`recipe` with an absolute model file path and its model.source filled in; problems go to `errors`.
    One the resolver cannot find or import is left for bench.models.param_problems to name."""
    m = recipe.model
    if not user.is_user(m.arch):
        if m.source is not None:
            errors.append(f"model.source: {m.source!r} is set, but model.arch {m.arch!r} is built in; remove it "
                          f"(it is filled in for a network of your own: {user.FORMS})")
        return recipe
    arch = user.anchor({"model": {"arch": m.arch}}, Path.cwd())["model"]["arch"]
    try:
        now = user.source(arch)
    except BenchError:
        return dataclasses.replace(recipe, model=dataclasses.replace(m, arch=arch))
    if m.source is not None:
        problem = user.source_problem(arch, m.source, now)
        if problem:
            errors.append(problem)
    return dataclasses.replace(recipe, model=dataclasses.replace(m, arch=arch, source=now))
