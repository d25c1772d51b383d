"""Old names kept importable for one release after a rename, with a DeprecationWarning that names the new one.

    # at the end of the module that defines the new names
    __getattr__ = renamed(__name__, {"SamplingConfig": "SamplingSettings"})

Standard library only: any module, on any floor, can use it.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, Callable


def renamed(module: str, names: dict[str, str], *, stacklevel: int = 2) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) that answers each old name in ``names`` with the module's object under
    the new name, warning ``DeprecationWarning`` each time the old name is used. ``stacklevel=3`` when a module's
    own ``__getattr__`` calls it, so the warning still names the line that used the old name."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new = names[name]
        warnings.warn(
            f"{module}.{name} was renamed {module}.{new}; the old name will be removed in the next release",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        return getattr(sys.modules[module], new)

    return __getattr__
