"""Per-block kernels compiled with numba, bit-identical to scipy.ndimage.

Each kernel here replays scipy.ndimage's own arithmetic (float64 line buffers, the
same summation order, the same casts) so that its result equals scipy's bit for
bit; the contract tests run every operation against both kernel sets. Where a
compiled kernel does not cover a dtype or parameter, the operation falls back to
scipy.

The kernel set is chosen with ``BATCHPROC_KERNELS`` or
``dask.config.set({"batchproc.kernels": "scipy"})`` (``compiled``, the default,
or ``scipy``), read when a graph is built. How the compiled ones get ready
(:func:`compile_mode`) is ``BATCHPROC_COMPILE`` or ``batchproc.compile``; which
set runs each block is decided in :mod:`batchproc.dispatch`.
"""

from __future__ import annotations

import os
import threading

import dask

KERNEL_SETS = ("compiled", "scipy")
#: How compiled kernels get ready: in another process while scipy's run
#: (``background``), or where they are first called (``wait``).
COMPILE_MODES = ("background", "wait")


def checked(value: str, name: str = "kernels") -> str:
    """``value`` if it names a kernel set, else a BatchprocError naming ``name``."""
    if value not in KERNEL_SETS:
        from batchproc.errors import BatchprocError

        raise BatchprocError(f"{name} must be one of {', '.join(KERNEL_SETS)}; got {value!r}.")
    return value


def asked() -> str | None:
    """The kernel set asked for: dask config ``batchproc.kernels``, else the
    ``BATCHPROC_KERNELS`` environment variable; None when neither says."""
    value = dask.config.get("batchproc.kernels", default=None) or os.environ.get("BATCHPROC_KERNELS")
    return checked(value) if value else None


def chosen() -> str:
    """The kernel set in force: :func:`asked`, else ``compiled``."""
    return asked() or "compiled"


#: Below this many voxels an input takes scipy's kernels unless a set is asked
#: for: loading the compiled ones costs a process about half a second, more than
#: they save on so little (docs/concepts/kernels.md).
SMALL_INPUT = 2**22
#: The same where a rank filter runs, where scipy is slowest.
SMALL_INPUT_RANK = 2**18
RANK_FILTERS = ("median_filter", "percentile_filter", "rank_filter")


def for_input(voxels: int, names: tuple[str, ...] | list[str] = ()) -> str:
    """The kernel set for an input of ``voxels`` going through the operations
    ``names``: :func:`asked`, else scipy's for a small input, else ``compiled``."""
    small = SMALL_INPUT_RANK if any(name in RANK_FILTERS for name in names) else SMALL_INPUT
    return asked() or ("scipy" if voxels <= small else "compiled")


def active() -> str:
    """:func:`chosen`, for kernels about to run in this process: in ``wait``
    mode numba's set-up starts in the background (in the others, it is part of
    getting the kernels ready)."""
    value = chosen()
    if value == "compiled" and compile_mode() == "wait":
        warm_up()
    return value


def compile_mode() -> str:
    """How compiled kernels get ready (:data:`COMPILE_MODES`): dask config
    ``batchproc.compile``, else ``BATCHPROC_COMPILE``, else ``background``; read
    where the blocks run."""
    value = dask.config.get("batchproc.compile", default=None) or os.environ.get("BATCHPROC_COMPILE") or "background"
    if value not in COMPILE_MODES:
        from batchproc.errors import BatchprocError

        raise BatchprocError(f"batchproc.compile (or BATCHPROC_COMPILE) must be one of {', '.join(COMPILE_MODES)}; got {value!r}.")
    return value


_warming: threading.Thread | None = None


def warm_up() -> None:
    """Start numba's one-time set-up (paid once per process, even with every
    kernel cached on disk) in the background, once per process, so that it overlaps
    with building the graph and reading the first blocks instead of stalling the
    first compiled task."""
    global _warming
    if _warming is None:
        _warming = threading.Thread(target=_first_call, name="batchproc-numba-warm-up", daemon=True)
        _warming.start()


def _first_call() -> None:
    from batchproc.kernels.lines import source_index

    source_index(0, 1, 0)
