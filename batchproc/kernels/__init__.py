"""Per-block kernels compiled with numba, bit-identical to scipy.ndimage.

Each kernel here replays scipy.ndimage's own arithmetic (float64 line buffers, the
same summation order, the same casts) so that its result equals scipy's bit for
bit; the contract tests run every operation against both kernel sets. Where a
compiled kernel does not cover a dtype or parameter, the operation falls back to
scipy.

The kernel set is chosen with ``BATCHPROC_KERNELS`` or
``dask.config.set({"batchproc.kernels": "scipy"})`` (``compiled``, the default,
or ``scipy``), read when a graph is built.
"""

from __future__ import annotations

import os
import threading

import dask

KERNEL_SETS = ("compiled", "scipy")


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


def active() -> str:
    """:func:`chosen`, for kernels about to run in this process: numba's set-up
    starts in the background."""
    value = chosen()
    if value == "compiled":
        warm_up()
    return value


_warming: threading.Thread | None = None


def warm_up() -> None:
    """Start numba's one-time set-up (about 0.2 s per process, even with every
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
