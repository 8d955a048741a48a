"""Let a subpackage also be the function of the same name (``flowkit.flows(...)``).

``flowkit.flows`` is both the package holding the flow code and the main entry point;
importing a submodule would otherwise replace the function with the package.
"""
from __future__ import annotations

import sys
import types


def make_callable(module_name: str, func_name: str) -> None:
    module = sys.modules[module_name]

    class _CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return getattr(self, func_name)(*args, **kwargs)

    module.__class__ = _CallableModule
