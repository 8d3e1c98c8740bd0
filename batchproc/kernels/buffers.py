"""Block-sized arrays whose memory is used again by the next block.

A block is sized to about 32 MiB at its widest dtype, and glibc maps every
allocation of 32 MiB or more afresh (its ``mmap`` threshold stops there) and
unmaps it when freed: each block's output then costs the system zeroing 32 MiB
of new pages before the kernel can write them. :func:`empty` gives arrays out of
a process-wide pool of buffers instead. A buffer is free again once nothing
refers to it (its reference count: an array made from it holds it, and so does
every view of that array), so an array still held anywhere, by a cache, a
writer or a caller, is never handed out twice. The pool keeps at most
:data:`LIMIT` bytes; past that, or below :data:`MINIMUM`, :func:`empty` is
``np.empty``. :func:`release` drops the free buffers (a run's end). The figures
are in docs/concepts/memory.md ("Measured choices").
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence

import numpy as np

#: Smaller arrays come from ``np.empty``: glibc's own pools serve them again.
MINIMUM = 1 << 20
#: The most bytes the pool keeps, free and in use.
LIMIT = 1 << 30
#: Buffers are sized in steps of this (one huge page), so blocks a little
#: smaller than the one before (at the volume's edges) use its buffer.
STEP = 1 << 21

_LOCK = threading.Lock()
_POOL: list[np.ndarray] = []
#: A buffer's references when only the pool holds it: the list, and the
#: argument of ``sys.getrefcount``.
_ALONE = 2


def _free(index: int) -> bool:
    return sys.getrefcount(_POOL[index]) == _ALONE


def held() -> int:
    """The bytes the pool keeps (free and in use)."""
    with _LOCK:
        return sum(buffer.nbytes for buffer in _POOL)


def empty(shape: Sequence[int] | int, dtype: np.dtype | type | str) -> np.ndarray:
    """A new C-contiguous array, like ``np.empty(shape, dtype)``, on memory the
    pool recycles when it is large (see the module's text).

    Examples
    --------
    >>> a = empty((4, 512, 512), np.float32)
    >>> a.shape, a.dtype, a.flags.c_contiguous
    ((4, 512, 512), dtype('float32'), True)
    """
    dtype = np.dtype(dtype)
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < MINIMUM or dtype.hasobject:
        return np.empty(shape, dtype)
    with _LOCK:
        best = None
        for i in range(len(_POOL)):
            size = _POOL[i].nbytes
            # Not a buffer twice the size: a small array would hold a large one.
            if nbytes <= size <= 2 * nbytes and (best is None or size < _POOL[best].nbytes) and _free(i):
                best = i
        if best is None:
            size = -(-nbytes // STEP) * STEP
            total = sum(buffer.nbytes for buffer in _POOL)
            for i in reversed(range(len(_POOL))):  # room from the free ones first
                if total + size <= LIMIT:
                    break
                if _free(i):
                    total -= _POOL.pop(i).nbytes
            if total + size > LIMIT:
                return np.empty(shape, dtype)
            _POOL.append(np.empty(size, np.uint8))
            best = len(_POOL) - 1
        buffer = _POOL[best]
        return buffer[:nbytes].view(dtype).reshape(shape)


def release() -> None:
    """Drop the buffers nothing uses (those in use go when their arrays do)."""
    with _LOCK:
        _POOL[:] = [_POOL[i] for i in range(len(_POOL)) if not _free(i)]
