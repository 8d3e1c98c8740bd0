"""Reading a block's region (halo included) from an input, and the chunk cache
that serves the halo chunks several blocks read."""

from __future__ import annotations

import threading
import time

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from batchproc.io.regions import ChunkCache, read_region, segments


class Counting:
    """An input in memory that counts the boxes read from it."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.shape, self.dtype, self.boxes = array, array.shape, array.dtype, []

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        self.boxes.append(key)
        return self.array[key]


@given(st.data())
def test_a_region_equals_the_array_read_with_wrap_around(data: st.DataObject) -> None:
    """Any region, reaching beyond the array (the far side is read), through any
    native chunks, with or without the cache, equals numpy's wrapped take."""
    shape = tuple(data.draw(st.lists(st.integers(1, 9), min_size=1, max_size=3)))
    a = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    native = tuple(data.draw(st.integers(1, n)) for n in shape)
    lo = tuple(data.draw(st.integers(-2 * n, n)) for n in shape)
    hi = tuple(l_ + data.draw(st.integers(1, 2 * n)) for l_, n in zip(lo, shape, strict=True))
    exclusive = tuple((data.draw(st.integers(0, n)), data.draw(st.integers(0, n))) for n in shape)
    cache = ChunkCache()
    if data.draw(st.booleans()):
        cache.reserve("run", 2**20)
    got = read_region(Counting(a), shape, a.dtype, native, lo, hi, exclusive, ("run", 0), None, cache)
    want = a
    for axis, (l_, h) in enumerate(zip(lo, hi, strict=True)):
        want = np.take(want, np.arange(l_, h), axis=axis, mode="wrap")
    assert np.array_equal(got, want)


def test_segments_of_a_periodic_axis() -> None:
    assert segments(-2, 7, 5) == [(3, 5, 0), (0, 5, 2), (0, 2, 7)]
    assert segments(1, 4, 5) == [(1, 4, 0)]


def test_a_chunk_leaves_after_its_last_reader_and_runs_keep_their_own() -> None:
    cache = ChunkCache()
    cache.reserve("a", 10**6)
    cache.reserve("b", 10**6)
    loads = []

    def load(value: int) -> np.ndarray:
        loads.append(value)
        return np.full(10, value)

    for _ in range(3):  # three readers: read once, gone after the third
        assert cache.get((("a", 0), (0,)), lambda: load(1), 3)[0] == 1
    assert loads == [1] and cache.held == 0
    cache.get((("a", 0), (1,)), lambda: load(2), 2)
    cache.get((("b", 0), (1,)), lambda: load(3), 2)
    cache.forget("a")  # run a ends: run b's chunk stays
    assert cache.held == 80 and cache.get((("b", 0), (1,)), lambda: load(4), 2)[0] == 3
    assert loads == [1, 2, 3]


def test_the_cache_stays_within_its_budget_and_reads_a_chunk_once_for_two_threads() -> None:
    cache = ChunkCache()
    cache.reserve("run", 3 * 80)
    for i in range(5):
        cache.get((("run", 0), (i,)), lambda i=i: np.full(10, i), 10)
    assert cache.held == 3 * 80  # the two least recently used went
    loads = []

    def slow() -> np.ndarray:
        loads.append(1)
        time.sleep(0.2)
        return np.zeros(10)

    threads = [threading.Thread(target=cache.get, args=((("run", 0), (9,)), slow, 3)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert loads == [1]


def test_a_chunk_is_kept_whole_until_its_block_has_read_it_then_its_faces() -> None:
    """A chunk read first for a neighbour's halo stays whole until the block it
    lies in has read it (once, from the cache), then only its faces stay; past the
    budget, whole chunks are cut to their faces before anything is dropped."""
    a = np.arange(10 * 12, dtype=np.float64).reshape(10, 12)
    reader = Counting(a)
    cache = ChunkCache()
    cache.reserve("run", 2**20)
    faces = [[(0, 2), (0, 12)], [(8, 10), (0, 12)]]  # its first and last two rows
    key = ("run", 0)

    def read(lo: tuple[int, int], hi: tuple[int, int], exclusive: tuple) -> np.ndarray:
        return read_region(reader, a.shape, a.dtype, (10, 12), lo, hi, exclusive, key, lambda index: 3, cache, lambda index: faces)

    assert np.array_equal(read((8, 0), (10, 12), ((20, 20), (20, 20))), a[8:10])  # the neighbour above
    assert cache.held == a.nbytes  # whole, for its block
    assert np.array_equal(read((0, 0), (10, 12), ((2, 8), (0, 12))), a)  # the chunk's own block
    assert cache.held == 4 * 12 * 8 and len(reader.boxes) == 1  # its faces only
    assert np.array_equal(read((0, 0), (2, 12), ((20, 20), (20, 20))), a[0:2])  # the neighbour below
    assert len(reader.boxes) == 1 and cache.held == 0
    # A budget with room for the faces only: the whole chunk is cut at once.
    tight = ChunkCache()
    tight.reserve("run", 4 * 12 * 8)
    whole = tight.get((key, (0,)), lambda: a.copy(), 3, lambda chunk: __import__("batchproc.io.regions", fromlist=["Faces"]).Faces(chunk, faces))
    assert np.array_equal(whole, a) and tight.held == 4 * 12 * 8
