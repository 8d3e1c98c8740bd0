"""The block buffers: memory used again only once nothing refers to it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from batchproc.kernels import buffers

BIG = (8, 256, 256)  # 2 MiB of float32, above buffers.MINIMUM


@pytest.fixture(autouse=True)
def empty_pool():
    buffers.release()
    yield
    buffers.release()


def test_an_array_like_numpy_s():
    a = buffers.empty(BIG, np.float32)
    assert (a.shape, a.dtype, a.flags.c_contiguous, a.flags.writeable) == (BIG, np.float32, True, True)
    b = buffers.empty(7, "uint16")
    assert (b.shape, b.dtype) == ((7,), np.uint16)


def test_memory_of_a_dropped_array_is_used_again():
    a = buffers.empty(BIG, np.float32)
    address = a.ctypes.data
    del a
    b = buffers.empty(BIG, np.uint16)  # smaller, a different dtype: the same buffer
    assert b.ctypes.data == address
    assert buffers.held() == np.prod(BIG) * 4


def test_memory_still_referred_to_is_never_handed_out():
    a = buffers.empty(BIG, np.float32)
    view = a[1:, ::2]
    del a
    b = buffers.empty(BIG, np.float32)
    assert not np.shares_memory(view, b)
    del view
    c = buffers.empty(BIG, np.float32)
    assert not np.shares_memory(b, c)


def test_small_arrays_are_numpy_s_own():
    a = buffers.empty(buffers.MINIMUM // 8 - 1, np.float64)
    assert a.base is None
    assert buffers.held() == 0


def test_a_large_buffer_is_not_held_by_a_small_array():
    a = buffers.empty((64, 256, 256), np.float32)  # 16 MiB
    del a
    b = buffers.empty(BIG, np.float32)  # 2 MiB: not in the 16 MiB buffer
    assert buffers.held() == 18 * 2**20
    del b


def test_the_pool_keeps_at_most_its_limit(monkeypatch):
    monkeypatch.setattr(buffers, "LIMIT", 6 * 2**20)
    kept = [buffers.empty(BIG, np.float32) for _ in range(4)]  # 2 MiB each
    assert buffers.held() == 6 * 2**20
    assert [a.base is not None for a in kept] == [True, True, True, False]
    del kept[:2]
    # a larger one makes room by dropping free buffers
    c = buffers.empty((12, 256, 256), np.float32)  # 3 MiB, in a buffer of 4
    assert c.base is not None and buffers.held() == 6 * 2**20
    assert not np.shares_memory(c, kept[0])


def test_release_drops_free_buffers_only():
    a = buffers.empty(BIG, np.float32)
    b = buffers.empty(BIG, np.float32)
    del b
    buffers.release()
    assert buffers.held() == a.nbytes
    a[...] = 1.5
    assert (a == 1.5).all()


def test_threads_never_share_a_buffer():
    errors = []

    def work(k: int) -> None:
        for i in range(50):
            a = buffers.empty(BIG, np.int32)
            a[...] = k * 1000 + i
            b = buffers.empty(BIG, np.int32)
            b[...] = -1
            if not (a == k * 1000 + i).all():
                errors.append((k, i))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert buffers.held() <= 4 * 3 * 2**21  # at most three live per thread (a, b, the next a)
