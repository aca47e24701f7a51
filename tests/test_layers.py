"""The package's import graph is layered and acyclic, and the command line holds no logic.

Every module is parsed with ``ast`` (nothing is imported); every ``import``/``from`` of a
``lstm_rare_event`` module counts, at the top level or inside a function. A module may import
its own layer or lower ones, never a higher one:

    0  errors, log, tables, files, parallel, version
    1  preprocess.*
    2  synthetic, detectors.*
    3  alarms.*, alerts.*
    4  run
    5  scoring.*
    6  pipeline
    7  steps.*
    8  cli

Two entry points stand outside the layers: ``__main__``, the ``python -m`` entry point, which
imports ``cli``; and the package's ``__init__``, the Python API's front door, which imports the
``Pipeline`` on first use. Nothing imports either (the version is ``version``'s).

No import cycle anywhere, counting the imports inside functions: a loop through a function-level
import is still a loop (two modules that cannot be understood or moved apart).

Step modules are the commands, each its own job: one imports another only along the edges of
``STEP_IMPORTS``, each with its reason, and an edge no module uses any more must leave the list.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = "lstm_rare_event"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

LAYERS = [
    ("errors", "log", "tables", "files", "parallel", "version", "__init__", "__main__"),
    ("preprocess",),
    ("synthetic", "detectors"),
    ("alarms", "alerts"),
    ("run",),
    ("scoring",),
    ("pipeline",),
    ("steps",),
    ("cli",),
]
ENTRY_POINTS = {"__main__", "__init__"}  # may import any layer; nothing may import them

THRESHOLD_WORDS = "evaluate shows the rule and its episodes in the threshold step's words (rule_text, episode_rows)"
REPORTED = "the report shows each step's results in that step's own words (its text and summary functions)"
STEP_IMPORTS = {
    ("steps.evaluate", "steps.threshold"): THRESHOLD_WORDS,
    ("steps.report", "steps.evaluate"): REPORTED,
    ("steps.report", "steps.inspect"): REPORTED,
    ("steps.report", "steps.prepare"): REPORTED,
    ("steps.report", "steps.threshold"): REPORTED,
}


def module_names() -> dict[str, Path]:
    """'preprocess.csv' -> its file; a package is named by its folder ('detectors')."""
    names = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts.pop()
        names[".".join(parts)] = path
    return names


MODULES = module_names()


def layer(module: str) -> int | None:
    head = module.split(".")[0]
    for number, members in enumerate(LAYERS):
        if module in members or head in members:
            return number
    return None


def resolve(name: str) -> str | None:
    """A dotted name below the package as the module it is in (``run.DETECTOR`` -> ``run``)."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in MODULES:
            return ".".join(parts)
        parts.pop()
    return "__init__" if name == "" else None


def package_of(module: str) -> list[str]:
    path = MODULES[module]
    parts = module.split(".") if module != "__init__" else []
    return parts if path.name == "__init__.py" else parts[:-1]


def imports(module: str) -> list[tuple[str, int, bool]]:
    """(imported module, line, at the top level) for every import of a package module."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"), filename=str(MODULES[module]))
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package
                base = package_of(module)[: len(package_of(module)) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
                names = [f"{PACKAGE}.{prefix}".rstrip(".")]
            else:
                names = [node.module or ""]
            # `from lstm_rare_event.steps import score` imports the submodule steps.score
            names = [f"{names[0]}.{a.name}" if resolve(f"{names[0]}.{a.name}".removeprefix(PACKAGE + ".")) and
                     f"{names[0]}.{a.name}".removeprefix(PACKAGE + ".") in MODULES else names[0]
                     for a in node.names]
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                target = resolve(name.removeprefix(PACKAGE).removeprefix("."))
                if target is not None and target != module:
                    found.append((target, node.lineno, id(node) in top_level))
    return found


def test_every_module_has_a_layer():
    missing = sorted(m for m in MODULES if layer(m) is None)
    assert not missing, f"modules in no layer (assign them or remove them): {missing}"


def test_no_module_imports_a_higher_layer():
    violations = []
    for module in MODULES:
        if module in ENTRY_POINTS or layer(module) is None:
            continue
        for target, line, _ in imports(module):
            if target in ENTRY_POINTS:
                violations.append(f"{MODULES[module].relative_to(ROOT.parent)}:{line} imports the entry point {target}")
            elif layer(target) is not None and layer(target) > layer(module):
                violations.append(f"{MODULES[module].relative_to(ROOT.parent)}:{line}: {module} (layer "
                                  f"{layer(module)}) imports {target} (layer {layer(target)})")
    assert not violations, "\n".join(violations)


def cycles(graph: dict[str, list[str]]) -> list[str]:
    """Every cycle a depth-first walk of ``graph`` closes, as 'a -> b -> a'."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    found = []

    def visit(node, stack):
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                found.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])
    return found


def test_imports_have_no_cycle_even_through_functions():
    graph = {m: sorted({t for t, _, _ in imports(m)}) for m in MODULES}
    found = cycles(graph)
    assert not found, "import cycles (top level or inside functions):\n" + "\n".join(found)


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == ["a -> b -> c -> a"]
    assert cycles({"a": ["b", "c"], "b": ["c"], "c": []}) == []


def test_step_modules_import_each_other_only_along_the_allowed_edges():
    used, violations = set(), []
    for module in MODULES:
        if not module.startswith("steps."):
            continue
        for target, line, _ in imports(module):
            if target.startswith("steps.") and target != module:
                if (module, target) in STEP_IMPORTS:
                    used.add((module, target))
                else:
                    violations.append(f"{MODULES[module].relative_to(ROOT.parent)}:{line}: {module} imports {target}")
    assert not violations, ("step modules import each other outside STEP_IMPORTS (move the shared piece below "
                            "the steps, or add the edge with its reason):\n" + "\n".join(violations))
    stale = sorted(set(STEP_IMPORTS) - used)
    assert not stale, f"STEP_IMPORTS edges no module uses any more (remove them): {stale}"


def test_the_checker_sees_imports_inside_functions_and_submodule_imports():
    found = {(t, top) for t, _, top in imports("cli")}
    assert ("steps.score", False) in found  # `from lstm_rare_event.steps import score` in a function
    assert ("run", True) in found
    assert ("preprocess.windows", False) in {(t, top) for t, _, top in imports("run")}


@pytest.mark.parametrize("heavy", ["numpy", "pandas"])
def test_cli_imports_no_numpy_or_pandas_at_module_level(heavy):
    tree = ast.parse(MODULES["cli"].read_text(encoding="utf-8"))
    top = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            top += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            top.append(node.module or "")
    assert not [name for name in top if name == heavy or name.startswith(heavy + ".")]
