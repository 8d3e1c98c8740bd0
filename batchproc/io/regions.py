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

from batchproc.kernels.buffers import empty


class ChunkCache:
    """Decoded input chunks that more than one block reads, per process.

    A chunk is kept until the last of the blocks that read it (``readers``, when
    the caller knows them) has taken its part. Of a chunk whose *faces* are known
    (the parts other blocks read), all of it is kept until the block it lies in
    (its owner) has read it, then its faces only. It never holds more than
    ``budget`` bytes, the sum of what the runs using it reserved: past that, the
    least recently used whole chunks are cut to their faces first, then the least
    recently used entries go (and are read again if asked for). Two threads asking
    for one chunk read it once: the second waits for the first. Keys are ``((run,
    ...), chunk index)``: a run's chunks go when it ends (:meth:`forget`)."""

    def __init__(self) -> None:
        self.held = 0
        self._budgets: dict[Hashable, int] = {}
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._left: dict[Hashable, int] = {}  # readers still to come, by key
        self._faces: dict[Hashable, Callable[[np.ndarray], Any]] = {}  # whole chunks, and how to cut them
        self._loading: dict[Hashable, threading.Event] = {}
        self._lock = threading.Lock()
        self.reads = 0  # chunks read (not found in the cache)

    @property
    def budget(self) -> int:
        return sum(self._budgets.values())

    def reserve(self, run: Hashable, budget: int) -> None:
        """Room for ``budget`` more bytes while ``run`` lasts."""
        if run not in self._budgets:
            with self._lock:
                self._budgets[run] = int(budget)

    def forget(self, run: Hashable) -> None:
        """Drop the chunks of ``run`` and its room."""
        with self._lock:
            self._budgets.pop(run, None)
            for key in [k for k in self._entries if k[0][0] == run]:
                self._drop(key)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._left.clear()
            self._faces.clear()
            self._budgets.clear()
            self.held = 0

    def _drop(self, key: Hashable) -> None:
        self.held -= self._entries.pop(key).nbytes
        del self._left[key]
        self._faces.pop(key, None)

    def _cut(self, key: Hashable) -> None:
        """Keep only the faces of the whole chunk at ``key``."""
        whole = self._entries[key]
        faces = self._faces.pop(key)(whole)
        self._entries[key] = faces
        self.held += faces.nbytes - whole.nbytes

    def _taken(self, key: Hashable, owner: bool) -> tuple[Any, Callable[[np.ndarray], Any] | None]:
        """The chunk at ``key`` for one more reader (or None), and how to cut it
        to its faces when this was the owner's read (call with the lock; cut
        without it, :meth:`_put_faces`)."""
        found = self._entries.get(key)
        if found is None:
            return None, None
        self._left[key] -= 1
        if self._left[key] <= 0:  # that was its last reader
            self._drop(key)
        elif owner and key in self._faces:  # the others need its faces only
            return found, self._faces.pop(key)
        else:
            self._entries.move_to_end(key)
        return found, None

    def _put_faces(self, key: Hashable, whole: np.ndarray, cut: Callable[[np.ndarray], Any]) -> None:
        """Replace the whole chunk at ``key`` by its faces (cut here, outside the lock:
        the copy must not hold up the other threads)."""
        faces = cut(whole)
        with self._lock:
            if self._entries.get(key) is whole:
                self._entries[key] = faces
                self.held += faces.nbytes - whole.nbytes

    def _make_room(self) -> None:
        while self.held > self.budget and self._faces:
            self._cut(next(k for k in self._entries if k in self._faces))
        while self.held > self.budget and self._entries:
            self._drop(next(iter(self._entries)))

    def get(
        self, key: Hashable, load: Callable[[], np.ndarray], readers: int = 2**62, faces: Callable[[np.ndarray], Any] | None = None, owner: bool = False
    ) -> Any:
        """The chunk at ``key``, read with ``load`` unless kept; ``readers``: how
        many reads of it are coming in all (this one included); ``faces``: how to
        cut a chunk to what the blocks other than its owner read; ``owner``: this
        read is the owner's. The reader that reads the chunk gets all of it."""
        while True:
            with self._lock:
                found, cut = self._taken(key, owner)
                if found is None:
                    waiting = self._loading.get(key)
                    if waiting is None:
                        self._loading[key] = threading.Event()
                        break
            if found is None:
                waiting.wait()
                with self._lock:
                    found, cut = self._taken(key, owner)
            if found is not None:
                if cut is not None:
                    self._put_faces(key, found, cut)
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
        whole = faces is None or (not owner and value.nbytes <= self.budget)
        kept = value if whole or readers <= 1 else faces(value)
        with self._lock:
            self.reads += 1
            if readers > 1 and kept.nbytes <= self.budget:
                self._entries[key] = kept
                self._left[key] = readers - 1
                if whole and faces is not None:
                    self._faces[key] = faces
                self.held += kept.nbytes
                self._make_room()
            self._loading.pop(key).set()
        return value


#: The one cache of this process, shared by its threads.
CACHE = ChunkCache()


class Faces:
    """The parts of a chunk other blocks read: boxes (per axis ``(start, stop)``,
    in the chunk's own coordinates) and their voxels, copied out of the chunk so
    that the rest of it can go."""

    def __init__(self, chunk: np.ndarray, boxes: Sequence[Sequence[tuple[int, int]]]) -> None:
        self.parts = [(tuple(box), np.array(chunk[tuple(slice(a, b) for a, b in box)])) for box in boxes]
        self.nbytes = sum(part.nbytes for _, part in self.parts)

    def take(self, where: tuple[slice, ...]) -> np.ndarray | None:
        """``chunk[where]`` if one of the kept boxes holds it, else None."""
        for box, part in self.parts:
            if all(a <= s.start and s.stop <= b for (a, b), s in zip(box, where, strict=True)):
                return part[tuple(slice(s.start - a, s.stop - a) for (a, _), s in zip(box, where, strict=True))]
        return None


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
    faces: Callable[[tuple[int, ...]], list[list[tuple[int, int]]] | None] | None = None,
) -> np.ndarray:
    """The voxels ``lo`` to ``hi`` (per axis; beyond the array on periodic axes) of
    ``reader``, in a new array of native ``dtype``.

    ``exclusive``: per axis, the part ``[a, b)`` of the region that only this
    block reads; a native chunk not wholly inside it is read by neighbouring
    blocks too and goes through ``cache`` under ``(key, chunk index)``;
    ``readers(chunk index)`` says how many blocks read it in all, and
    ``faces(chunk index)`` which parts of it the others read (None: any part)."""
    out = empty([b - a for a, b in zip(lo, hi, strict=True)], dtype)
    pieces = [segments(a, b, n) for a, b, n in zip(lo, hi, shape, strict=True)]
    for parts in itertools.product(*pieces):
        box = [(start, stop) for start, stop, _ in parts]
        into = tuple(slice(offset, offset + stop - start) for start, stop, offset in parts)
        # Only a piece at the region's true place (not a periodic copy) may skip the cache.
        mine = [
            (max(a, s), min(b, t)) if offset + lo[axis] == s else (0, 0) for axis, ((a, b), (s, t, offset)) in enumerate(zip(exclusive, parts, strict=True))
        ]
        _read_box(reader, dtype, native, box, out[into], mine, key, readers, cache, faces)
    return out


def _read_box(
    reader: Any,
    dtype: np.dtype,
    native: Sequence[int] | None,
    box: list[tuple[int, int]],
    out: np.ndarray,
    mine: list[tuple[int, int]],
    key: Hashable,
    readers: Callable[[tuple[int, ...]], int] | None,
    cache: ChunkCache,
    faces: Callable[[tuple[int, ...]], list[list[tuple[int, int]]] | None] | None = None,
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
        inside_chunk = tuple(slice(max(a, x) - x, min(b, y) - x) for (a, b), (x, y) in zip(box, chunk_box, strict=True))
        boxes = faces(index) if faces is not None else None
        cut = (lambda chunk, boxes=boxes: Faces(chunk, boxes)) if boxes is not None else None
        # The chunk's owner reads more of it than any face holds.
        owner = boxes is not None and not any(all(a <= s.start and s.stop <= b for (a, b), s in zip(face, inside_chunk, strict=True)) for face in boxes)
        chunk = cache.get((key, index), lambda chunk_box=chunk_box: _read(reader, chunk_box, dtype), count, cut, owner)
        into = tuple(slice(max(a, x) - a, min(b, y) - a) for (a, b), (x, y) in zip(box, chunk_box, strict=True))
        part = chunk.take(inside_chunk) if isinstance(chunk, Faces) else chunk[inside_chunk]
        out[into] = part if part is not None else _read(reader, [(s.start + x, s.stop + x) for s, (x, _) in zip(inside_chunk, chunk_box, strict=True)], dtype)


def _read(reader: Any, box: Sequence[tuple[int, int]], dtype: np.dtype) -> np.ndarray:
    return np.asarray(reader[tuple(slice(a, b) for a, b in box)]).astype(dtype, copy=False)
