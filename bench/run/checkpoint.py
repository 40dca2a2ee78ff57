"""`bench run --save-model PATH`: keep the trained weights of a run, with what made them.

Writes PATH (a torch checkpoint: arch, params, num_classes, state_dict, and for a network of the user's own
its source: file name, sha256 and text; loadable with weights_only=True, rebuilt by load_model)
and PATH with .json beside it: the data set's name and content fingerprint, the test accuracy of those
weights, the recipe name and hash, the run id, and the exact command that rebuilds it. The GAN judge
(bench.train.quality.load_judge) is such a checkpoint. With several runs, the last run's weights are kept."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import torch

from bench.core.results import atomic_write
from bench.data.types import Dataset
from bench.models import user
from bench.recipe import Recipe


def save_model(path: Path, bare: torch.nn.Module, recipe: Recipe, row: dict, ds: Dataset, argv) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", memory_format=torch.contiguous_format).clone()
             for k, v in bare.state_dict().items()}
    # A network of the user's own is kept by its source, not by where its file lies on this machine: the arch
    # without folders (my_net.py:build) and the file's text with its sha256 (load_model builds from them).
    arch, source = recipe.model.arch, None
    if user.is_user(arch):
        arch, source = user.label(arch), user.saved_source(recipe.model.arch, recipe.model.source)
    ckpt = {"arch": arch, "params": dict(recipe.model.params),
            "num_classes": len(ds.identity.classes), "state_dict": state}
    if source is not None:
        ckpt["source"] = source
    tmp = path.with_name(path.name + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)
    meta = {
        "checkpoint": path.name, "arch": arch, "params": dict(recipe.model.params),
        "classes": list(ds.identity.classes), "dataset": ds.identity.name,
        "dataset_fingerprint": ds.identity.fingerprint, "train_images": len(ds.train), "test_images": len(ds.test),
        "test_acc": row.get("final_acc"), "best_acc": row.get("best_acc"), "status": row.get("status"),
        "recipe": recipe.name, "recipe_hash": recipe.hash, "precision": recipe.precision, "seed": row.get("seed"),
        "run_id": row.get("run_id"), "git_commit": row.get("git_commit"), "torch": row.get("torch"),
        "command": "python -m bench " + shlex.join(_args(argv)),
    }
    if source is not None:
        meta["source"] = {k: v for k, v in source.items() if k != "text"}  # the text is in the checkpoint
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    atomic_write(path.with_suffix(".json"), lambda f: f.write(text))
    return path


def load_model(path: Path) -> torch.nn.Module:
    """The network save_model wrote, with its weights, on the CPU; a user's model is built from the source the
    checkpoint carries (bench.models.user.build_saved), so neither its file nor this checkout's path is needed."""
    from bench.models import build_model

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    num_classes = ckpt.get("num_classes", 10)
    if user.is_user(ckpt["arch"]):
        net = user.build_saved(ckpt["arch"], ckpt.get("source"), ckpt["params"], num_classes, str(path))
    else:
        net = build_model(ckpt["arch"], ckpt["params"], num_classes=num_classes)
    net.load_state_dict(ckpt["state_dict"])
    return net


def _args(argv) -> list[str]:
    """The command line after the program name (sys.argv[0] is bench/__main__.py or the bench script)."""
    args = list(argv or [])
    return args[1:] if args and Path(args[0]).name in ("__main__.py", "bench") else args
