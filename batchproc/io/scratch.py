"""A scratch array on local disk between the passes of a global operation.

Some operations cannot stream: ``distance_transform_edt`` needs whole lines
along one axis, then whole planes across the others. Between the two it keeps
its intermediate here rather than in memory: one file, a grid of chunks each
stored whole and contiguous (edge chunks padded), written and read with
positioned I/O, so any thread or process of this machine may write its chunks
while others read theirs. The file is made on first use (nothing happens while
a graph is only built) and removed once every reader has released it, or when
the process exits.
"""

from __future__ import annotations

import atexit
import itertools
import math
import os
import tempfile
import threading
import uuid
from typing import Any

import numpy as np


def scratch_folder() -> str:
    """dask's ``temporary-directory``, else the system's temporary folder."""
    import dask

    return dask.config.get("temporary-directory", None) or tempfile.gettempdir()


class Scratch:
    """An array of ``shape`` and ``dtype`` in a file of chunks of ``chunks``.

    ``readers``: how many :meth:`release` calls (one per reader of the last pass)
    end its use in this process.
    """

    def __init__(self, shape: tuple[int, ...], dtype: Any, chunks: tuple[int, ...], readers: int, folder: str | None = None) -> None:
        self.shape, self.dtype, self.chunks, self.readers = tuple(shape), np.dtype(dtype), tuple(chunks), readers
        self.path = os.path.join(folder or scratch_folder(), f"batchproc-scratch-{uuid.uuid4().hex}.bin")
        self.grid = tuple(math.ceil(n / c) for n, c in zip(self.shape, self.chunks, strict=True))
        self.chunk_bytes = math.prod(self.chunks) * self.dtype.itemsize
        self._fd: int | None = None
        self._pending = readers
        self._lock = threading.Lock()
        self._cleanup = False

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_fd"], state["_lock"], state["_cleanup"] = None, None, False
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _open(self) -> int:
        with self._lock:
            if self._fd is None:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                size = math.prod(self.grid) * self.chunk_bytes
                if os.fstat(fd).st_size < size:
                    os.ftruncate(fd, size)  # sparse: blocks take disk as they are written
                self._fd = fd
                self._pending = self.readers
                if not self._cleanup:  # once: a reopened scratch needs no second hook
                    atexit.register(self.remove)
                    self._cleanup = True
            return self._fd

    def _chunks_of(self, region: tuple[slice, ...]) -> Any:
        """The chunk indices a region covers (whole chunks, or up to the array's end)."""
        ranges = []
        for (c, n), s in zip(zip(self.chunks, self.shape, strict=True), region, strict=True):
            start, stop = s.start or 0, n if s.stop is None else s.stop
            if start % c or (stop % c and stop != n):
                raise ValueError(f"scratch region {region} is not on the chunk grid {self.chunks}")
            ranges.append(range(start // c, math.ceil(stop / c)))
        return itertools.product(*ranges)

    def _place(self, index: tuple[int, ...]) -> tuple[int, tuple[slice, ...], tuple[int, ...]]:
        offset = int(np.ravel_multi_index(index, self.grid)) * self.chunk_bytes
        where = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(index, self.chunks, self.shape, strict=True))
        return offset, where, tuple(s.stop - s.start for s in where)

    def write(self, region: tuple[slice, ...], data: np.ndarray) -> None:
        """Write ``data`` to ``region``, which covers whole chunks."""
        fd = self._open()
        lo = tuple(s.start or 0 for s in region)
        for index in self._chunks_of(region):
            offset, where, size = self._place(index)
            part = data[tuple(slice(w.start - o, w.stop - o) for w, o in zip(where, lo, strict=True))]
            chunk = np.zeros(self.chunks, self.dtype)
            chunk[tuple(slice(0, n) for n in size)] = part
            os.pwrite(fd, chunk.data, offset)

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        """The values of ``region``, which covers whole chunks."""
        fd = self._open()
        box = [(s.start or 0, n if s.stop is None else s.stop) for s, n in zip(region, self.shape, strict=True)]
        out = np.empty(tuple(b - a for a, b in box), self.dtype)
        for index in self._chunks_of(region):
            offset, where, size = self._place(index)
            raw = os.pread(fd, self.chunk_bytes, offset)
            chunk = np.frombuffer(raw, self.dtype).reshape(self.chunks)
            out[tuple(slice(w.start - a, w.stop - a) for w, (a, _) in zip(where, box, strict=True))] = chunk[tuple(slice(0, n) for n in size)]
        return out

    def release(self) -> None:
        """One reader is done; the last one removes the file."""
        with self._lock:
            self._pending -= 1
            last = self._pending <= 0
        if last:
            self.remove()

    def remove(self) -> None:
        """Close and delete the file (again: nothing)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
