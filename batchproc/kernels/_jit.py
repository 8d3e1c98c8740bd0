"""numba's ``njit`` as every kernel here is compiled: kept in numba's on-disk
cache, the GIL released while it runs, and loaded from the cache without
readying numba's whole compiler.

Before it loads a cached entry, numba refreshes its target context: it imports
every typing and lowering registry it has (arrays, linalg, which imports
scipy.linalg, random, typed containers, …), which costs a process a good part
of a second. A compiled entry needs none of that, only the symbols it calls:
numba's runtime (``NRT_*``, which :meth:`rtsys.initialize` adds), its C helpers
and the C math functions (both added when the target context is made), the
Python C API and libc. So :class:`LoadingCache` sets up the runtime and loads.
Compiling is unchanged: numba's compiler refreshes the context itself. The
figures are in docs/concepts/startup.md; ``tests/kernels/test_jit.py`` checks
that no cached entry calls anything else.

batchproc imports numba here and nowhere else (the kernels take ``types``,
``overload`` and ``event`` from this module): the first import of numba from two
threads at once can fail ("partially initialized module 'numba.core.event'"), as
numba's modules import each other in cycles, and Python's lock on this one module
makes every other thread wait for the first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
from numba import types
from numba.core import event
from numba.core.caching import FunctionCache
from numba.core.runtime import rtsys
from numba.extending import overload

__all__ = ["OPTIONS", "LoadingCache", "event", "jit", "overload", "types"]

#: The options of every kernel.
OPTIONS = {"cache": True, "nogil": True}


class LoadingCache(FunctionCache):
    """numba's cache of a function's compiled entries, loading an entry with
    only numba's runtime set up (see the module's text)."""

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        rtsys.initialize(target_context)  # the NRT_* symbols; idempotent
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)


def jit(function: Callable[..., Any]) -> Any:
    """``function`` compiled with numba (:data:`OPTIONS`), its cached entries
    loaded by a :class:`LoadingCache`."""
    dispatcher = numba.njit(**OPTIONS)(function)
    dispatcher._cache = LoadingCache(dispatcher.py_func)
    return dispatcher
