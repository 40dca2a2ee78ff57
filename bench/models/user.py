"""A network of the user's own: `model.arch` as an import path or a file path, the way Hydra's `_target_` and
LightningCLI's `class_path` name code.

    package.module:function      imported from the environment (installed, or on PYTHONPATH)
    path/to/file.py:function     a file; relative to the recipe file that sets model.arch (bench.recipe.files
                                 makes it absolute as it reads that file), or to the current directory for
                                 --set and for a recipe built from a plain mapping

The function is called with the recipe's `model.params` as keyword arguments plus `num_classes`, and must
return a torch.nn.Module. What the result depends on is the model's source, so it is part of the recipe
(`model.source`, filled in when the recipe is loaded, and hashed):

    {"file": "my_net.py", "sha256": ...}           a file, or an importable module's own file
    {"distribution": "name", "version": "1.2"}     a module inside an installed distribution (site-packages)

The hash sees a file path without its folders (`my_net.py:function`), so a checkout, a bundle's copy and a
--set from another directory all hash alike; only the file's bytes and the function's name count. A file
model is executed from the bytes that were hashed, in a module of its own (not on sys.path: a file model
imports installed packages only; a model spread over several files is a package, named by import path).
A checkpoint (`bench run --save-model`) keeps the file's text with its sha256 (saved_source), and build_saved
rebuilds the network from that text on a machine without the file.

Importing this module imports no torch; checking a user's model imports the user's code (and whatever it
imports), which `bench validate` does to check model.params against the function's signature.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import re
import sys
import types
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Optional

from bench.core.errors import BenchError

BUNDLE_DIR = "model"  # a report bundle keeps the model's file here (bench.run.model_copy, bench.report.model_copy)
FORMS = "path/to/file.py:function (relative to the recipe file) or package.module:function"
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def is_user(arch) -> bool:
    """A built-in architecture is a bare name; anything with a ':' names code of the user's own."""
    return isinstance(arch, str) and ":" in arch


@dataclass(frozen=True)
class Spec:
    target: str  # the file path as written (file form) or the module's dotted name
    attr: str  # the function (or class), possibly dotted: Outer.build
    is_file: bool

    @property
    def label(self) -> str:
        """The spec without the file's folders: how tables and the hash name it."""
        name = re.split(r"[\\/]", self.target)[-1] if self.is_file else self.target
        return f"{name}:{self.attr}"


def parse(arch: str) -> Spec:
    target, _, attr = arch.rpartition(":")
    is_file = target.endswith(".py") or "/" in target or "\\" in target
    if not target or not _DOTTED.fullmatch(attr):
        raise BenchError(f"model.arch: {arch!r} does not name a function; allowed: {FORMS}, e.g. "
                         f"my_net.py:my_net or mypackage.nets:build")
    if is_file and not target.endswith(".py"):
        raise BenchError(f"model.arch: {arch!r} names {target!r}, which is not a .py file; allowed: {FORMS}")
    if not is_file and not _DOTTED.fullmatch(target):
        raise BenchError(f"model.arch: {arch!r}: {target!r} is neither a module name (package.module) nor a "
                         f".py file; allowed: {FORMS}")
    return Spec(target, attr, is_file)


def label(arch: str) -> str:
    """`my_net.py:my_net` for any file path to my_net.py; other archs as they are."""
    try:
        return parse(arch).label if is_user(arch) else arch
    except BenchError:
        return arch


# ---------------------------------------------------------------- where the file is


def anchor(data: dict, base: Path) -> dict:
    """`data` (a recipe mapping) with a file-path model.arch made absolute (and resolved) against `base`: what
    bench.recipe.files does for each file of an `extends:` chain with that file's folder, and a recipe
    built from a mapping with the current directory. Anything else is returned unchanged."""
    model = data.get("model") if isinstance(data, dict) else None
    arch = model.get("arch") if isinstance(model, dict) else None
    if not is_user(arch):
        return data
    try:
        spec = parse(arch)
    except BenchError:
        return data  # reported, with the fix, when the recipe is validated
    if not spec.is_file:
        return data
    # resolved, absolute paths included: the file's own name (not a link's) is what the hash and the bundle use
    path = (Path(base) / Path(spec.target).expanduser()).resolve()
    return {**data, "model": {**model, "arch": f"{path}:{spec.attr}"}}


def _file_path(spec: Spec) -> Path:
    path = Path(spec.target).expanduser()
    path = path if path.is_absolute() else (Path.cwd() / path)
    if not path.is_file():
        raise BenchError(f"model.arch: model file {path} not found (from {spec.target}:{spec.attr}); a file path "
                         f"is relative to the recipe file that sets model.arch (to the current directory for "
                         f"--set): fix the path, or name an importable module as package.module:function")
    return path.resolve()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- its source, for the recipe


@lru_cache(maxsize=None)
def _site_roots() -> tuple[Path, ...]:
    import site
    import sysconfig

    roots = [*site.getsitepackages(), site.getusersitepackages(), *(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))]
    return tuple({Path(r).resolve() for r in roots if r})


@lru_cache(maxsize=None)
def _distributions() -> dict:
    import importlib.metadata as md

    return md.packages_distributions()


def _distribution(module_name: str, file: Path) -> Optional[dict]:
    """{"distribution", "version"} when the module's file lies in site-packages and a distribution provides
    its top-level package; None for a module from a source tree (PYTHONPATH, an editable install)."""
    import importlib.metadata as md

    if not any(root == file or root in file.parents for root in _site_roots()):
        return None
    names = _distributions().get(module_name.split(".")[0])
    if not names:
        return None
    dist = md.distribution(names[0])
    return {"distribution": dist.metadata["Name"], "version": dist.version}


def source(arch: str) -> dict:
    """What the model's code is, for the recipe's `model.source` (and its hash)."""
    spec = parse(arch)
    if spec.is_file:
        path = _file_path(spec)
        return {"file": path.name, "sha256": sha256(path.read_bytes())}
    module = _import_module(spec)
    file = Path(module.__file__).resolve() if getattr(module, "__file__", None) else None
    if file is None or not file.is_file():
        raise BenchError(f"model.arch: module {spec.target!r} has no source file to hash (a namespace package?); "
                         f"name the module that defines {spec.attr}")
    return _distribution(spec.target, file) or {"file": file.name, "sha256": sha256(file.read_bytes())}


def source_file(arch: str) -> Optional[Path]:
    """The file whose bytes `source(arch)` hashed, if it hashed one."""
    spec = parse(arch)
    if spec.is_file:
        return _file_path(spec)
    module = _import_module(spec)
    return Path(module.__file__).resolve() if getattr(module, "__file__", None) else None


def source_problem(arch: str, stated: dict, now: Optional[dict] = None) -> Optional[str]:
    """Why `stated` (a recipe's model.source) is not the source `arch` names now, or None when it is."""
    now = source(arch) if now is None else now
    if now == stated:
        return None
    spec = parse(arch)
    where = f"model file {_file_path(spec)}" if spec.is_file else f"module {spec.target}"
    return (f"model.source: the recipe states {stated!r} but the {where} gives {now!r}: the model's code changed "
            f"since the recipe was resolved; restore it, or drop model.source to take the code as it is now")


# ---------------------------------------------------------------- the function


IMPORTED = ("a model file is imported, not run as a script: put its script part (argparse, training, sys.exit) "
            "under `if __name__ == \"__main__\":`")
CALLED = "return the network from the function; it must not call sys.exit() or raise SystemExit"


def ended(what: str, exc: SystemExit, filename: Optional[str] = None, fix: str = IMPORTED) -> str:
    """The message for user code that ended the process (sys.exit(), raise SystemExit, argparse on import):
    an error, never the silent exit code 0 it would give, with the line that did it where it is in `filename`."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if filename is not None and tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return (f"model.arch: {what} ended the process (SystemExit({exc.code!r}))"
            + (f" at line {line}" if line else "") + f"; {fix}")


def _import_module(spec: Spec) -> types.ModuleType:
    try:
        return importlib.import_module(spec.target)
    except SystemExit as exc:
        raise BenchError(ended(f"importing {spec.target}", exc)) from None
    except ModuleNotFoundError as exc:
        if exc.name and (spec.target == exc.name or spec.target.startswith(exc.name + ".")):
            raise BenchError(f"model.arch: no module named {exc.name!r} (from {spec.target}:{spec.attr}); install "
                             f"it, put its folder on PYTHONPATH, or name a file as path/to/file.py:{spec.attr}") from None
        raise BenchError(f"model.arch: importing {spec.target} failed: {type(exc).__name__}: {exc}; "
                         f"fix the module or install what it needs") from None
    except Exception as exc:
        raise BenchError(f"model.arch: importing {spec.target} failed: {type(exc).__name__}: {exc}; fix the module") from None


_FILES: dict[tuple[str, str], types.ModuleType] = {}  # (path, sha256) -> the module executed from those bytes


def _load_file(path: Path) -> types.ModuleType:
    return _load_bytes(path.read_bytes(), path)


def _load_bytes(data: bytes, path: Path) -> types.ModuleType:
    """A module executed from `data`, the bytes of the file `path` (a checkpoint's copy names the file only)."""
    digest = sha256(data)
    key = (str(path), digest)
    if key in _FILES:
        return _FILES[key]
    stem = re.sub(r"\W", "_", path.stem)
    name = f"bench_user_model_{stem}_{digest[:12]}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # dataclasses and pickling by reference look classes up here
    try:
        exec(compile(data, str(path), "exec"), module.__dict__)  # noqa: S102 - the user's own model file
    except BaseException as exc:
        del sys.modules[name]
        if isinstance(exc, SystemExit):
            raise BenchError(ended(f"importing {path}", exc, str(path))) from None
        if isinstance(exc, Exception):
            where = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) and exc.lineno else ""
            raise BenchError(f"model.arch: importing {path} failed{where}: {type(exc).__name__}: {exc}; "
                             f"fix the file") from None
        raise
    _FILES[key] = module
    return module


def function(arch: str) -> Callable:
    spec = parse(arch)
    module = _load_file(_file_path(spec)) if spec.is_file else _import_module(spec)
    return _function_in(module, spec, _file_path(spec) if spec.is_file else f"module {spec.target}")


def _function_in(module: types.ModuleType, spec: Spec, where) -> Callable:
    obj: Any = module
    for part in spec.attr.split("."):
        if not hasattr(obj, part):
            defined = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                             and getattr(v, "__module__", None) == module.__name__)
            raise BenchError(f"model.arch: {where} has no {spec.attr!r}; "
                             + (f"callables defined there: {', '.join(defined)}" if defined else "it defines no functions")
                             + f"; fix the name after ':' in {spec.label}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise BenchError(f"model.arch: {spec.label} is a {type(obj).__name__}, not a function; name a function "
                         f"that takes model.params and num_classes and returns a torch.nn.Module")
    return obj


def _signature(fn: Callable) -> Optional[inspect.Signature]:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None  # a builtin without one: nothing to check before the call


def params_of(arch: str) -> dict[str, Any]:
    """The keyword parameters the function takes (but num_classes), with their defaults (None: required)."""
    sig = _signature(function(arch))
    if sig is None:
        return {}
    out = {}
    for name, p in sig.parameters.items():
        if name != "num_classes" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            value = None if p.default is inspect.Parameter.empty else p.default
            out[name] = list(value) if isinstance(value, tuple) else value  # plain values, as a recipe writes them
    return out


def problems(arch: str, params: dict) -> list[str]:
    """Recipe errors in a user's model.arch / model.params: the spec, the file or module, the function, and
    model.params against its signature. Imports the user's code."""
    try:
        fn = function(arch)
    except BenchError as exc:
        return [str(exc)]
    name = parse(arch).label
    sig = _signature(fn)
    if sig is None:
        return []
    named = {n: p for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    open_ended = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    out = []
    if "num_classes" in params:
        out.append("model.params.num_classes: set by the harness from the data set's classes, not by the recipe; "
                   "remove it")
    if "num_classes" not in named and not open_ended:
        out.append(f"model.arch: {name} must take a num_classes argument (the harness passes the data set's class "
                   f"count); add `num_classes: int = 10` to its parameters")
    allowed = [n for n in named if n != "num_classes"]
    for key in params:
        if key != "num_classes" and key not in named and not open_ended:
            out.append(f"model.params.{key} is not a parameter of {name}; allowed: {', '.join(allowed) or 'none'}")
    for n, p in named.items():
        if n != "num_classes" and p.default is inspect.Parameter.empty and n not in params:
            out.append(f"model.params.{n} is required by {name} (it has no default); set model.params.{n}")
    for n, p in sig.parameters.items():
        if p.kind is p.POSITIONAL_ONLY and p.default is inspect.Parameter.empty:
            out.append(f"model.arch: {name} has a positional-only parameter {n!r} that keyword arguments cannot "
                       f"fill; make it an ordinary parameter")
    return out


def build(arch: str, params: dict, num_classes: int, stated: Optional[dict] = None):
    """Call the user's function; `stated` (the recipe's model.source) must still be what the code is."""
    import torch

    if stated:
        problem = source_problem(arch, stated)
        if problem:
            raise BenchError(problem)
    found = problems(arch, params)
    if found:
        raise BenchError(found[0])
    try:
        net = function(arch)(num_classes=num_classes, **params)
    except SystemExit as exc:
        raise BenchError(ended(f"calling {parse(arch).label}", exc, fix=CALLED)) from None
    if not isinstance(net, torch.nn.Module):
        raise BenchError(f"model.arch: {parse(arch).label} returned {type(net).__name__}, not a torch.nn.Module; "
                         f"return the network (an nn.Module) from it")
    return net


# ---------------------------------------------------------------- a saved model (bench run --save-model)


def saved_source(arch: str, stated: Optional[dict] = None) -> dict:
    """The model's source as a checkpoint keeps it: model.source (`stated`, else the code as it is now) plus,
    where that names a file, the file's text, so the network can be rebuilt where the file is not."""
    src = dict(stated or source(arch))
    if "file" in src:
        data = source_file(arch).read_bytes()
        if sha256(data) != src.get("sha256"):
            raise BenchError(f"model.source: {source_file(arch)} changed since the recipe was loaded (its sha256 is "
                             f"now {sha256(data)}, the recipe states {src.get('sha256')}); run again with the file "
                             f"as it is")
        src["text"] = data.decode("utf-8", "surrogateescape")  # the exact bytes back with the same codec
    return src


def build_saved(arch: str, saved: Optional[dict], params: dict, num_classes: int, where: str):
    """The network of a checkpoint written by bench.run.checkpoint: a file model (`my_net.py:build`) is executed
    from the text the checkpoint carries, checked against its sha256, wherever the file is now; an import-path
    model is imported and must still be the source the checkpoint states."""
    spec = parse(arch)
    if not spec.is_file:
        return build(arch, params, num_classes, {k: v for k, v in (saved or {}).items() if k != "text"})
    if not saved or "text" not in saved:
        raise BenchError(f"{where}: the checkpoint names the model file {spec.label} but carries no source text; "
                         f"save it again with `bench run --save-model`")
    data = saved["text"].encode("utf-8", "surrogateescape")
    if sha256(data) != saved.get("sha256"):
        raise BenchError(f"{where}: the model source {saved.get('file')} it carries does not match its sha256 "
                         f"({sha256(data)}, stated {saved.get('sha256')}); save the model again")
    fn = _function_in(_load_bytes(data, Path(saved.get("file") or "model.py")), spec, f"{where}'s {spec.label}")
    try:
        return fn(num_classes=num_classes, **params)
    except SystemExit as exc:
        raise BenchError(ended(f"calling {spec.label}", exc, fix=CALLED)) from None


def hash_view(resolved: dict) -> None:
    """In place, on a resolved recipe (a plain mapping) about to be hashed: a file-path model.arch loses its
    folders (`/home/me/nets/my_net.py:build` and a bundle's `model/my_net.py:build` both hash as
    `my_net.py:build`), so the hash follows the file's contents (model.source) and not where it lies."""
    model = resolved.get("model") if isinstance(resolved, dict) else None
    if isinstance(model, dict) and is_user(model.get("arch")):
        model["arch"] = label(model["arch"])
