"""The floors of rlhfkit (the map in rlhfkit/__init__.py): every module imports only from the floors below its own.

The check reads the source, so an import inside a function counts as much as one at the top (it is still a
dependency, only a later one); imports under ``if TYPE_CHECKING:`` do not count.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "rlhfkit"

# Keep in step with the map in rlhfkit/__init__.py's docstring.
FLOORS = {
    "rlhfkit._renamed": 0,
    "rlhfkit.cache": 0,
    "rlhfkit.threads": 0,
    "rlhfkit.data": 1,
    "rlhfkit.judges": 1,
    "rlhfkit.metrics": 1,
    "rlhfkit.runs": 1,
    "rlhfkit.figures": 1,
    "rlhfkit.results": 1,
    "rlhfkit.conclusions": 1,
    "rlhfkit.tiny": 1,  # the embedded default's corpus, builder and cache (and the package, see below)
    "rlhfkit.models": 2,
    "rlhfkit.sampling": 2,
    "rlhfkit.tiny.task": 2,
    "rlhfkit.tasks": 3,
    "rlhfkit.train": 3,
    "rlhfkit.labeling": 3,
    "rlhfkit.evaluation": 3,
    "rlhfkit.stages": 4,
    "rlhfkit.compare": 3,
    "rlhfkit.live": 4,
    "rlhfkit.pipeline": 5,
    "rlhfkit.rounds": 5,
    "rlhfkit.criteria": 5,
    "rlhfkit.notebook": 5,
    "rlhfkit.cli": 6,
}

# Imports that go up a floor on purpose, each inside a function and run only when asked for.
ALLOWED_UPWARD = {
    # `from rlhfkit.data import load_task`, its old place, keeps working for one release with a DeprecationWarning
    # (the package's module __getattr__); nothing in rlhfkit.data calls it.
    ("rlhfkit.data", "rlhfkit.tasks"),
    # `from rlhfkit.tiny import reviews_task`: the package re-exports the task (a floor above its builder) on first
    # use, so that rlhfkit.models, which imports the builder, does not load the task's modules.
    ("rlhfkit.tiny", "rlhfkit.tiny.task"),
}


def _group(name: str) -> str | None:
    """The FLOORS entry a dotted module name belongs to (the longest matching prefix), or None."""
    matches = [key for key in FLOORS if name == key or name.startswith(key + ".")]
    return max(matches, key=len) if matches else None


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, package: str):
    """(line, imported name, inside a function) for every rlhfkit import outside `if TYPE_CHECKING:` blocks."""

    def visit(node, in_function):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.orelse:
                yield from visit(child, in_function)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, in_function
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            for alias in node.names:  # `from rlhfkit import data` imports rlhfkit.data
                yield node.lineno, f"{base}.{alias.name}" if _group(f"{base}.{alias.name}") else base, in_function
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            yield from visit(child, inner)

    yield from visit(tree, False)


def _modules():
    return sorted(p for p in ROOT.rglob("*.py") if p != ROOT / "__init__.py")


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_every_module_imports_only_from_lower_floors(path):
    name = _module_name(path)
    own = _group(name)
    assert own is not None, f"{name} is on no floor: add it to FLOORS here and to the map in rlhfkit/__init__.py"
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    problems = []
    for line, target, in_function in _imports(ast.parse(path.read_text(), str(path)), package):
        if target.split(".")[0] != "rlhfkit" or target in ("rlhfkit", "rlhfkit.__version__"):
            continue
        group = _group(target)
        if group is None:
            problems.append(f"line {line}: {target} is on no floor (add it to FLOORS)")
        elif group != own and FLOORS[group] >= FLOORS[own]:
            if in_function and (own, group) in ALLOWED_UPWARD:
                continue
            problems.append(f"line {line}: {name} (floor {FLOORS[own]}) imports {target} (floor {FLOORS[group]})")
    assert not problems, "\n".join(problems)
