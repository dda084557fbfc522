"""The package's import graph has no cycle, and no import points back up the stages.

Why: a cycle (say the data path importing the training code that imports it back) means neither
side can be read, tested or moved alone, and a function-local import only hides it from Python,
not from the reader. The graph is read from the source with `ast`, so every `from nla_variants...
import` counts: top-level, function-local and under `TYPE_CHECKING` alike.

The package's rooms are ordered as the work flows (`LAYERS`): a module imports its own layer and
the layers below it, so each room can be read knowing only the rooms before it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nla_variants

ROOT = Path(nla_variants.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """Dotted names one import statement may load (a module, or a submodule named in `from`)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:  # relative: resolve against this module's package
        package = module.split(".")
        package = package if is_package else package[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its source."""
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_package = path.name == "__init__.py"
        names = (n for node in ast.walk(tree) for n in _imported(node, module, is_package))
        graph[module] = {n for n in names if n in files and n != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_find_cycle_reports_a_cycle_and_accepts_a_dag():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_graph_sees_function_local_imports():
    graph = import_graph()
    assert len(graph) > 20 and "nla_variants.data.prepare" in graph
    # cli.py imports its commands' modules inside the command functions only
    assert "nla_variants.data.prepare" in graph["nla_variants.cli"]


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_data_path_does_not_import_training():
    """Data flows one way: training (fine-tunes included) reads datasets, never the reverse."""
    graph = import_graph()
    upward = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith("nla_variants.data")
        for target in targets
        if target.startswith("nla_variants.training")
    }
    assert not upward


# The stages, lowest first. A name is a room (a subpackage) or a module at the package root; a
# module belongs to the longest name that holds it. The package's own __init__ (its version) is
# below them all.
LAYERS = (
    "common",  # errors, masking, atomic writes, hashes, cache paths, MLflow stores, ranks, Strict
    "core",  # tensor and text functions: normalisation, MSE/FVE, ridge, injection, GRPO
    "target",  # the target model: loading, early-exit extraction
    "variants",  # the registry, the interfaces, the AV and AR variants, the pair, large targets
    "training.warm_start_config",  # each stage's config, beside its driver in training/ ...
    "training.rl_config",  # ... and below the trial config that composes them
    "config",  # the trial config, whose av/ar sections select the variants
    "checks",  # cheap input checks before any stage
    "data",  # activation datasets: corpus, sampling, teachers, the store
    "evaluation",  # the rollout scorer, the evaluation, per-row scores, faithfulness
    "training",  # warm start, RL, fine-tunes, checkpoints, the trial (run_trial)
    "variants.testing",  # the contract suite: runs a variant through a tiny trial
    "sweeps",  # many trials: nla sweep, nla compare
    "artifacts",  # trained NLAs found, loaded and exported (a sweep's best trial included)
    "explain",  # nla explain and its viewer
    "tools",  # what uses a trained NLA: nla evaluate, search, steer, compare --cross
    "auditing",  # nla audit: model organisms, and what an NLA reveals of them
    "cli",
)


def layer_of(module: str) -> int | None:
    """The index of `module`'s layer in LAYERS (-1: the package itself; None: no layer)."""
    rel = module.removeprefix("nla_variants").removeprefix(".")
    if not rel:
        return -1
    names = [n for n in LAYERS if rel == n or rel.startswith(n + ".")]
    return LAYERS.index(max(names, key=len)) if names else None


def upward_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(module, imported) pairs where the imported module is in a higher layer."""
    return {
        (module, target)
        for module, targets in graph.items()
        for target in targets
        if layer_of(target) > layer_of(module)
    }


def test_layer_of_reads_rooms_and_root_modules():
    assert layer_of("nla_variants") == -1
    assert layer_of("nla_variants.common.errors") == LAYERS.index("common")
    assert layer_of("nla_variants.variants.av.baseline") == LAYERS.index("variants")
    assert layer_of("nla_variants.variants.testing") == LAYERS.index("variants.testing")
    assert layer_of("nla_variants.training.rl_config") < LAYERS.index("config")
    assert layer_of("nla_variants.training.rl") == LAYERS.index("training")
    assert layer_of("nla_variants.cli") == LAYERS.index("cli")
    assert layer_of("nla_variants.elsewhere") is None
    graph = {"nla_variants.data.a": {"nla_variants.training.b"}, "nla_variants.training.b": set()}
    assert upward_imports(graph) == {("nla_variants.data.a", "nla_variants.training.b")}
    graph = {"nla_variants.training.b": {"nla_variants.data.a", "nla_variants.training.c"}}
    assert upward_imports(graph) == set()


def test_every_module_has_a_layer():
    """A new room (or root module) is placed in the flow before it is used."""
    unplaced = sorted(m for m in import_graph() if layer_of(m) is None)
    assert not unplaced, "modules in no layer (add their room to LAYERS): " + ", ".join(unplaced)


def test_no_import_points_back_up_the_stages():
    """A module imports only its own layer and the layers below it (LAYERS)."""
    found = upward_imports(import_graph())
    assert not found, "imports that point up the stages: " + "; ".join(
        f"{m} ({LAYERS[layer_of(m)]}) imports {t} ({LAYERS[layer_of(t)]})" for m, t in sorted(found)
    )


def test_the_package_root_holds_at_most_six_modules():
    """The root holds the entry point and what every stage reads; the rest lives in rooms."""
    modules = sorted(p.name for p in ROOT.glob("*.py"))
    assert len(modules) <= 6, f"{len(modules)} modules at the package root: {modules}"


def test_no_test_module_imports_another_or_conftest():
    """Each test module stands alone: shared helpers are fixtures (tests/conftest.py) or
    `nla_variants.variants.testing`, so a module can be read, run or deleted by itself. (The sweep
    worker script is not a test module; its stand-in trial may be imported.)"""
    tests = Path(__file__).parent
    local = {p.stem for p in tests.glob("test_*.py")} | {"conftest", "tests"}
    found = []
    for path in sorted(tests.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = _imported(node, "tests." + path.stem, is_package=False)
            hits = [n for n in names if n.split(".")[0] in local]
            if hits:
                found.append(f"{path.name}:{node.lineno} imports {hits[0]}")
    assert not found, "test modules import each other: " + "; ".join(found)
