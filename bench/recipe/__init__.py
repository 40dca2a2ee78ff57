"""Recipes: the schema (bench.recipe.schema), its checks (bench.recipe.validation) and the files that hold them
(bench.recipe.files).

    YAML (safe) -> `extends:` chain deep-merged -> `--set key.path=value` -> one frozen, hashed `Recipe`

A recipe names an architecture from bench.models and checks its parameters against that catalogue,
which is read without importing torch, so `bench validate` stays light."""
from bench.recipe.files import SPACE_FILES, family_files, load, load_raw, resolve_path
from bench.recipe.schema import (METRICS, Augmentation, Data, Gan, Hardware, Model, Optim, Price, Provenance, Recipe, Schedule,
                                 Target)
from bench.recipe.validation import from_dict

__all__ = ["SPACE_FILES", "METRICS", "Augmentation", "Data", "Gan", "Hardware", "Model", "Optim", "Price", "Provenance", "Recipe", "Schedule",
           "Target", "family_files", "from_dict", "load", "load_raw", "resolve_path"]
