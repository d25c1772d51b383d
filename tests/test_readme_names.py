"""Every name the README (and notebooks/README.md) imports from rlhfkit exists under that name, without a
deprecation warning: the README shows the current names, and the old ones keep working only with a warning."""

import ast
import importlib
import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports() -> list[tuple[str, str, str]]:
    found = []
    for doc in ("README.md", "notebooks/README.md"):
        text = (ROOT / doc).read_text()
        for block in re.findall(r"```python\n(.*?)```", text, re.S):
            for node in ast.walk(ast.parse(block)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rlhfkit"):
                    found.extend((doc, node.module, alias.name) for alias in node.names)
    return found


IMPORTS = _imports()


def test_the_readme_imports_something():
    assert len(IMPORTS) > 20


@pytest.mark.parametrize("doc,module,name", IMPORTS, ids=[f"{m}.{n}" for _, m, n in IMPORTS])
def test_a_readme_name_imports_without_a_deprecation_warning(doc, module, name):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        loaded = importlib.import_module(module)
        assert hasattr(loaded, name) or importlib.util.find_spec(f"{module}.{name}"), f"{doc}: {module}.{name}"
        getattr(loaded, name, None)
