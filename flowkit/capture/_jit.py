"""Start numba's CPU target without importing ``scipy.linalg`` for its BLAS probe.

Why: numba initialises its CPU target (typing and lowering registries) on the first
compile or cached-kernel load in a process. One of those registries,
``numba.np.arraymath``, checks at import whether ``scipy.linalg.cython_blas`` can be
imported, and importing ``scipy.linalg`` costs ~0.3 s and ~15 MB of RSS, although no
flowkit kernel uses linear algebra. ``start()`` runs that initialisation once with the
module hidden from import (the probe then answers without importing anything) and then
sets the probe's answer to whether SciPy ships the module. Nothing else changes:
numba imports ``scipy.linalg.cython_blas`` for real when code compiles ``np.dot`` and
friends, so other numba users in the process are unaffected. If anything here does
not match the installed numba, it falls back to numba's own start-up.
"""
from __future__ import annotations

import importlib.util
import os
import sys

import numba  # noqa: F401  (the kernels' modules import it anyway)

_BLAS = "scipy.linalg.cython_blas"
_started = False


def _scipy_ships_blas() -> bool:
    spec = importlib.util.find_spec("scipy")
    for d in (spec.submodule_search_locations or []) if spec else []:
        linalg = os.path.join(d, "linalg")
        if os.path.isdir(linalg) and any(n.startswith("cython_blas.") for n in os.listdir(linalg)):
            return True
    return False


def start() -> None:
    """Initialise numba's CPU target once, skipping the SciPy import (see module docstring)."""
    global _started
    if _started:
        return
    _started = True
    if any(m in sys.modules for m in ("numba.np.arraymath", "scipy.linalg", _BLAS)):
        return  # already started, or the probe is free
    sys.modules[_BLAS] = None  # makes ``import scipy.linalg.cython_blas`` fail at once
    try:
        from numba.core.registry import cpu_target

        cpu_target.target_context.refresh()
    except Exception:  # an unexpected numba layout: let numba start on its own later
        return
    finally:
        if _BLAS in sys.modules and sys.modules[_BLAS] is None:
            del sys.modules[_BLAS]
    arraymath = sys.modules.get("numba.np.arraymath")
    if arraymath is not None and hasattr(arraymath, "_HAVE_BLAS"):
        arraymath._HAVE_BLAS = _scipy_ships_blas()
