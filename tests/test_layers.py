"""The package's layers (README, "How the code is laid out"): every import in bench/, at module level or
inside a function, goes to the same package or to one listed before it, and no module imports itself in a
cycle. Read from the source with ast, so an import hidden in a function counts as much as one at the top."""
import ast
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

# Lowest first. A package may import its own modules and those of any package with a lower number.
LAYERS = {
    "core": 0,  # errors, clock, results table, prices, stats, event log, paths: no torch, no other bench package
    "models": 1,  # the architectures (their catalogue imports no torch)
    "recipe": 2,  # the schema names models and checks their parameters
    "system": 3,  # the machine, process groups, telemetry, FLOPs
    "data": 4,
    "train": 5,
    "report": 6,  # reads bundles and tables: no training
    "run": 7,  # one `bench run`: writes rows and bundles (through report's derivations)
    "studies": 8, "site": 8,  # built from many runs: speed, sweeps, reruns; the leaderboard site
    "cli": 9,
    "__main__": 10,
}


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "bench"


def module_name(path: Path) -> str:
    rel = path.relative_to(BENCH.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(imported bench module, line) for every import statement anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("bench")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if not target.startswith("bench"):
                continue
            # `from bench import x` / `from bench.system import dist` import submodules
            for a in node.names:
                sub = f"{target}.{a.name}"
                found.append((sub if (BENCH.parent / sub.replace(".", "/")).with_suffix(".py").exists()
                              or (BENCH.parent / sub.replace(".", "/")).is_dir() else target, node.lineno))
    return found


SOURCES = sorted(BENCH.rglob("*.py"))


def layer(package: str) -> int:
    assert package in LAYERS or package == "bench", f"package bench.{package} has no layer: add it to LAYERS and the README"
    return LAYERS.get(package, -1)


def test_every_package_has_a_layer():
    packages = {p.name for p in BENCH.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    packages |= {p.stem for p in BENCH.glob("*.py") if p.stem != "__init__"}
    assert packages <= set(LAYERS), sorted(packages - set(LAYERS))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(BENCH)))
def test_no_import_reaches_up(path):
    mine = package_of(module_name(path))
    upward = []
    for target, line in imports_of(path):
        theirs = package_of(target)
        if theirs == "bench":  # the package root: bench.__version__
            continue
        if theirs != mine and layer(theirs) >= layer(mine):
            upward.append(f"line {line}: {target} (layer {layer(theirs)}) from layer {layer(mine)}")
    assert not upward, f"{path.relative_to(BENCH.parent)} imports upward or sideways:\n  " + "\n  ".join(upward)


def test_no_import_cycles():
    graph = {module_name(p): {t for t, _ in imports_of(p)} for p in SOURCES}
    graph = {m: {t for t in ts if t in graph and t != m} for m, ts in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m, stack):
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    # A package's __init__ re-exporting its modules, which import each other's names through it, is the one
    # kind of cycle Python resolves by design; none is allowed here, so the order of imports never matters.
    assert not cycles, "import cycles:\n  " + "\n  ".join(cycles)


def test_the_checker_sees_imports_inside_functions(tmp_path):
    src = tmp_path / "bench" / "core" / "x.py"
    src.parent.mkdir(parents=True)
    src.write_text("def f():\n    from bench.run.runner import run_recipe\n")
    global BENCH
    old, BENCH = BENCH, tmp_path / "bench"
    try:
        assert ("bench.run.runner", 2) in imports_of(src)
    finally:
        BENCH = old
