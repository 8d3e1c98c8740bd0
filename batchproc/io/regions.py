"""Reading a block with its halo straight from the input.

A block's region reaches into its neighbours' voxels. An input's own chunks are
its unit of reading (a zarr chunk is decoded whole), so a chunk that lies within
reach of a block's edge is read by several blocks: it is read once, kept in a
bounded per-process cache (:class:`ChunkCache`) and copied from there. Chunks no
other block reaches are read straight into the region. Along periodic axes a
region reaches beyond the array, and the far side is read there.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np


class ChunkCache:
    """Decoded input chunks that more than one block reads, per process.

    A chunk is kept until the last of the blocks that read it (``readers``, when
    the caller knows them) has taken its part, and never beyond ``budget`` bytes
    (then the least recently used go first, and are read again if asked for). Two
    threads asking for one chunk read it once: the second waits for the first."""

    def __init__(self) -> None:
        self.budget = 0
        self.held = 0
        self._entries: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._left: dict[Hashable, int] = {}  # readers still to come, by key
        self._loading: dict[Hashable, threading.Event] = {}
        self._lock = threading.Lock()
        self.reads = 0  # chunks read (not found in the cache)

    def reserve(self, budget: int) -> None:
        """Keep at most ``budget`` bytes from now on (at least what is asked)."""
        with self._lock:
            self.budget = max(self.budget, int(budget))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._left.clear()
            self.held = 0
            self.budget = 0

    def _taken(self, key: Hashable) -> np.ndarray | None:
        """The chunk at ``key`` for one more reader, or None (call with the lock)."""
        found = self._entries.get(key)
        if found is None:
            return None
        self._left[key] -= 1
        if self._left[key] <= 0:  # that was its last reader
            del self._entries[key], self._left[key]
            self.held -= found.nbytes
        else:
            self._entries.move_to_end(key)
        return found

    def get(self, key: Hashable, load: Callable[[], np.ndarray], readers: int = 2**62) -> np.ndarray:
        """The chunk at ``key``, read with ``load`` unless kept; ``readers``: how
        many reads of it are coming in all (this one included)."""
        while True:
            with self._lock:
                found = self._taken(key)
                if found is not None:
                    return found
                waiting = self._loading.get(key)
                if waiting is None:
                    self._loading[key] = threading.Event()
                    break
            waiting.wait()
            with self._lock:
                found = self._taken(key)
            if found is not None:
                return found
            # Not kept (over budget) or its read failed: read it here.
            with self._lock:
                if key not in self._loading:
                    self._loading[key] = threading.Event()
                    break
        try:
            value = load()
        except BaseException:
            with self._lock:
                self._loading.pop(key).set()
            raise
        with self._lock:
            self.reads += 1
            if readers > 1 and value.nbytes <= self.budget:
                self._entries[key] = value
                self._left[key] = readers - 1
                self.held += value.nbytes
                while self.held > self.budget and self._entries:
                    old_key, old = self._entries.popitem(last=False)
                    del self._left[old_key]
                    self.held -= old.nbytes
            self._loading.pop(key).set()
        return value


#: The one cache of this process, shared by its threads.
CACHE = ChunkCache()


def segments(lo: int, hi: int, n: int) -> list[tuple[int, int, int]]:
    """``[lo, hi)`` on a periodic axis of length ``n`` as pieces inside the array:
    ``(start, stop, offset)``, ``offset`` being where the piece goes in the region."""
    out = []
    position = lo
    while position < hi:
        start = position % n
        stop = min(n, start + (hi - position))
        out.append((start, stop, position - lo))
        position += stop - start
    return out


def read_region(
    reader: Any,
    shape: Sequence[int],
    dtype: np.dtype,
    native: Sequence[int] | None,
    lo: Sequence[int],
    hi: Sequence[int],
    exclusive: Sequence[tuple[int, int]],
    key: Hashable,
    readers: Callable[[tuple[int, ...]], int] | None = None,
    cache: ChunkCache = CACHE,
) -> np.ndarray:
    """The voxels ``lo`` to ``hi`` (per axis; beyond the array on periodic axes) of
    ``reader``, in a new array of native ``dtype``.

    ``exclusive``: per axis, the part ``[a, b)`` of the region that only this
    block reads; a native chunk not wholly inside it is read by neighbouring
    blocks too and goes through ``cache`` under ``(key, chunk index)``;
    ``readers(chunk index)`` says how many blocks read it in all."""
    out = np.empty([b - a for a, b in zip(lo, hi, strict=True)], dtype=dtype)
    pieces = [segments(a, b, n) for a, b, n in zip(lo, hi, shape, strict=True)]
    for parts in itertools.product(*pieces):
        box = [(start, stop) for start, stop, _ in parts]
        into = tuple(slice(offset, offset + stop - start) for start, stop, offset in parts)
        # Only a piece at the region's true place (not a periodic copy) may skip the cache.
        mine = [(max(a, s), min(b, t)) if offset + lo[axis] == s else (0, 0)
                for axis, ((a, b), (s, t, offset)) in enumerate(zip(exclusive, parts, strict=True))]
        _read_box(reader, dtype, native, box, out[into], mine, key, readers, cache)
    return out


def _read_box(
    reader: Any, dtype: np.dtype, native: Sequence[int] | None, box: list[tuple[int, int]], out: np.ndarray,
    mine: list[tuple[int, int]], key: Hashable, readers: Callable[[tuple[int, ...]], int] | None, cache: ChunkCache,
) -> None:
    """``box`` of ``reader`` into ``out``: the native chunks wholly inside ``mine``
    in one read, the others each through the cache."""
    if native is None or cache.budget == 0:
        out[...] = _read(reader, box, dtype)
        return
    # The chunks inside ``mine`` (whole chunks only), as one box of chunk indices.
    inner = []
    for (a, b), (s, t), c in zip(box, mine, native, strict=True):
        first, last = -(-max(a, s) // c), min(b, t) // c  # chunks [first, last) lie inside
        inner.append((first, last) if last > first else (0, 0))
    inside = all(last > first for first, last in inner)
    if inside:
        region = [(f * c, min(b, l_ * c)) for (f, l_), c, (_, b) in zip(inner, native, box, strict=True)]
        where = tuple(slice(x - a, y - a) for (x, y), (a, _) in zip(region, box, strict=True))
        out[where] = _read(reader, region, dtype)
    spans = [range(a // c, -(-b // c)) for (a, b), c in zip(box, native, strict=True)]
    ends = tuple(int(n) for n in reader.shape)
    for index in itertools.product(*spans):
        if inside and all(f <= i < l_ for i, (f, l_) in zip(index, inner, strict=True)):
            continue
        chunk_box = [(i * c, min(i * c + c, n_end)) for i, c, n_end in zip(index, native, ends, strict=True)]
        count = readers(index) if readers is not None else 2**62
        chunk = cache.get((key, index), lambda chunk_box=chunk_box: _read(reader, chunk_box, dtype), count)
        inside_chunk = tuple(slice(max(a, x) - x, min(b, y) - x) for (a, b), (x, y) in zip(box, chunk_box, strict=True))
        into = tuple(slice(max(a, x) - a, min(b, y) - a) for (a, b), (x, y) in zip(box, chunk_box, strict=True))
        out[into] = chunk[inside_chunk]


def _read(reader: Any, box: Sequence[tuple[int, int]], dtype: np.dtype) -> np.ndarray:
    return np.asarray(reader[tuple(slice(a, b) for a, b in box)]).astype(dtype, copy=False)
