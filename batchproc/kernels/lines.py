"""Line filters along one axis, replaying scipy.ndimage's C code (ni_filters.c):
each line is copied into a float64 buffer extended by the boundary mode, filtered
in float64 in scipy's order of operations, and cast to the output dtype.

Arrays are viewed as (outer, n, inner) with the filtered axis in the middle, so
that the inner loop runs over contiguous memory.
"""

from __future__ import annotations

import numpy as np

from batchproc.kernels._jit import OPTIONS, jit, overload, types
from batchproc.kernels.params import MODE_CODES


@jit
def source_index(k: int, n: int, mode: int) -> int:
    """Where position ``k`` of a line of length ``n`` reads from; -1 means cval."""
    if 0 <= k < n:
        return k
    if mode == 4:
        return -1
    if mode == 2:
        return 0 if k < 0 else n - 1
    if mode == 3:
        return k % n
    if mode == 0:
        period = 2 * n
        k = k % period
        return k if k < n else period - 1 - k
    if n == 1:
        return 0
    period = 2 * n - 2
    k = k % period
    return k if k < n else period - k


#: Columns per tile for the line buffers of uniform/minimum/maximum when the
#: filtered axis is not the last: one tile's extended lines (float64) stay in
#: cache, and the inner loops run over contiguous memory.
TILE = 256

#: Columns per sweep when a correlation along an axis that is not the last reads
#: its taps straight from the block: the 2 * radius + 1 rows of a sweep stay in
#: cache while the output row moves down. Rows up to 1.25 sweeps wide go whole
#: (docs/concepts/kernels.md, "Measured choices").
SWEEP = 2048


@jit
def _fill(ext, src, o, t0, t1, before, mode, cval):
    n = src.shape[1]
    for r in range(ext.shape[0]):
        s = source_index(r - before, n, mode)
        if s < 0:
            for t in range(t1 - t0):
                ext[r, t] = cval
        else:
            # (a slice: an index computed as t0 + t is checked for wrapping around,
            # which keeps the loop scalar)
            row = src[o, s, t0:t1]
            for t in range(t1 - t0):
                ext[r, t] = row[t]


@jit
def _fill_line(ext, line, before, mode, cval):
    """ext = ``line`` (1-D) in float64, ``before`` values of the mode before it and
    the rest after; the line itself in one loop (asking the mode for each value
    cost more than the correlation of a 256-voxel line)."""
    n = line.shape[0]
    m = ext.shape[0]
    start = min(max(before, 0), m)
    stop = min(max(before + n, start), m)
    inside = ext[start:stop]
    values = line[start - before : stop - before]
    for r in range(stop - start):
        inside[r] = values[r]
    for r in range(start):
        s = source_index(r - before, n, mode)
        ext[r] = cval if s < 0 else line[s]
    for r in range(stop, m):
        s = source_index(r - before, n, mode)
        ext[r] = cval if s < 0 else line[s]


def _plus(a, b):
    """``float(a) + float(b)`` in float64 (scipy's sum of a pair of taps)."""
    return np.float64(a) + np.float64(b)


def _minus(a, b):
    """``float(a) - float(b)`` in float64."""
    return np.float64(a) - np.float64(b)


@overload(_plus, jit_options=OPTIONS)
def _plus_typed(a, b):
    # Integers of up to 32 bits add exactly in int64, and their sum converts to
    # float64 exactly: one conversion instead of two, the add off the float pipes.
    if isinstance(a, types.Integer) and isinstance(b, types.Integer) and a.bitwidth <= 16 and b.bitwidth <= 16:
        # Of 16 bits, the sum fits 32: narrowed there, twice the lanes of int64.
        return lambda a, b: np.float64(np.int32(np.int32(a) + np.int32(b)))
    if isinstance(a, types.Integer) and isinstance(b, types.Integer) and a.bitwidth <= 32 and b.bitwidth <= 32:
        return lambda a, b: np.float64(np.int64(a) + np.int64(b))
    return lambda a, b: np.float64(a) + np.float64(b)


@overload(_minus, jit_options=OPTIONS)
def _minus_typed(a, b):
    if isinstance(a, types.Integer) and isinstance(b, types.Integer) and a.bitwidth <= 32 and b.bitwidth <= 32:
        return lambda a, b: np.float64(np.int64(a) - np.int64(b))
    return lambda a, b: np.float64(a) - np.float64(b)


@jit
def _tap(a, o, rows, col0, colstep, width, j):
    """Tap ``j`` of ``width`` neighbouring outputs: ``a[o, rows[j], c : c + width]``
    with ``c = col0 + j * colstep``. (A test for cval rows here, once per tap, cost
    10 % on the sweeps.)"""
    c = col0 + j * colstep
    return a[o, rows[j], c : c + width]


@jit
def _correlate_taps(a, o, rows, col0, colstep, width, weights, symmetric, acc):
    """acc[t] = scipy's correlation sum for ``width`` neighbouring outputs at once,
    tap ``j`` (of weight ``weights[j]``) being :func:`_tap`'s.

    Each output sums its taps in scipy's order (NI_Correlate1D), in float64
    (``np.float64(v)``: numba's arithmetic on two float32 stays float32). For
    (anti)symmetric weights several tap pairs go per sweep over the lanes, which
    keeps that order and cuts the traffic through ``acc``.
    """
    size = weights.shape[0]
    size1 = size // 2
    size2 = size - size1 - 1
    if symmetric > 0 and size1 >= 4:
        # Four pairs per sweep, the centre tap folded into the first.
        mid = _tap(a, o, rows, col0, colstep, width, size1)
        wm = weights[size1]
        j = 0
        while j + 4 <= size1:
            a0 = _tap(a, o, rows, col0, colstep, width, j)
            b0 = _tap(a, o, rows, col0, colstep, width, size - 1 - j)
            a1 = _tap(a, o, rows, col0, colstep, width, j + 1)
            b1 = _tap(a, o, rows, col0, colstep, width, size - 2 - j)
            a2 = _tap(a, o, rows, col0, colstep, width, j + 2)
            b2 = _tap(a, o, rows, col0, colstep, width, size - 3 - j)
            a3 = _tap(a, o, rows, col0, colstep, width, j + 3)
            b3 = _tap(a, o, rows, col0, colstep, width, size - 4 - j)
            w0, w1, w2, w3 = weights[j], weights[j + 1], weights[j + 2], weights[j + 3]
            if j == 0:
                for t in range(width):
                    acc[t] = (((np.float64(mid[t]) * wm + _plus(a0[t], b0[t]) * w0) + _plus(a1[t], b1[t]) * w1) + _plus(a2[t], b2[t]) * w2) + _plus(
                        a3[t], b3[t]
                    ) * w3
            else:
                for t in range(width):
                    acc[t] = (((acc[t] + _plus(a0[t], b0[t]) * w0) + _plus(a1[t], b1[t]) * w1) + _plus(a2[t], b2[t]) * w2) + _plus(a3[t], b3[t]) * w3
            j += 4
        while j < size1:
            aa = _tap(a, o, rows, col0, colstep, width, j)
            bb = _tap(a, o, rows, col0, colstep, width, size - 1 - j)
            wa = weights[j]
            for t in range(width):
                acc[t] += _plus(aa[t], bb[t]) * wa
            j += 1
        return
    if symmetric != 0:
        mid = _tap(a, o, rows, col0, colstep, width, size1)
        wm = weights[size1]
        for t in range(width):
            acc[t] = np.float64(mid[t]) * wm
        j = 0
        while j < size1:
            aa = _tap(a, o, rows, col0, colstep, width, j)
            bb = _tap(a, o, rows, col0, colstep, width, size - 1 - j)
            wa = weights[j]
            if j + 1 < size1:
                cc = _tap(a, o, rows, col0, colstep, width, j + 1)
                dd = _tap(a, o, rows, col0, colstep, width, size - 2 - j)
                wb = weights[j + 1]
                if symmetric > 0:
                    for t in range(width):
                        acc[t] = (acc[t] + _plus(aa[t], bb[t]) * wa) + _plus(cc[t], dd[t]) * wb
                else:
                    for t in range(width):
                        acc[t] = (acc[t] + _minus(aa[t], bb[t]) * wa) + _minus(cc[t], dd[t]) * wb
                j += 2
            else:
                if symmetric > 0:
                    for t in range(width):
                        acc[t] += _plus(aa[t], bb[t]) * wa
                else:
                    for t in range(width):
                        acc[t] += _minus(aa[t], bb[t]) * wa
                j += 1
        return
    top = _tap(a, o, rows, col0, colstep, width, size1 + size2)
    wt = weights[size1 + size2]
    for t in range(width):
        acc[t] = np.float64(top[t]) * wt
    for j in range(size1 + size2):
        aa = _tap(a, o, rows, col0, colstep, width, j)
        w = weights[j]
        for t in range(width):
            acc[t] += np.float64(aa[t]) * w


#: Lanes of one sweep along the last axis: lines go a group at a time, side by
#: side in the lanes, so that a sweep's set-up (a slice per tap) is shared by the
#: group rather than paid per line.
LINE_LANES = 2048


@jit
def _correlate_lines(src, weights, before, mode, cval, symmetric, out, lo, buf):
    """scipy's NI_Correlate1D along the last axis of an (outer, n) array, for the
    outputs ``lo`` to ``lo + out.shape[1]`` of each line, side by side in the
    lanes: each line is copied into ``buf`` extended by the boundary mode, as scipy
    does (``buf``: float64, or ``src``'s dtype where it holds ``cval``; a whole
    number of extended lines long), a group of lines after another. ``out`` may be
    ``src``'s memory, packed from its start (a group's lines are read before its
    outputs are written)."""
    outer, n = src.shape
    width = out.shape[1]
    size = weights.shape[0]
    after = size - 1 - before
    m = n + size - 1
    group = max(1, buf.shape[0] // m)
    acc = np.empty(group * m, np.float64)
    rows = np.zeros(size, np.int64)
    lanes3 = buf.reshape(1, 1, buf.shape[0])
    ahead = np.empty(before, np.int64)
    behind = np.empty(after, np.int64)
    for r in range(before):
        ahead[r] = source_index(r - before, n, mode)
    for r in range(after):
        behind[r] = source_index(n + r, n, mode)
    for o0 in range(0, outer, group):
        count = min(group, outer - o0)
        for g in range(count):
            line = src[o0 + g]
            seg = buf[g * m : (g + 1) * m]
            inside = seg[before : before + n]
            for i in range(n):
                inside[i] = line[i]
            for r in range(before):
                seg[r] = cval if ahead[r] < 0 else line[ahead[r]]
            for r in range(after):
                seg[before + n + r] = cval if behind[r] < 0 else line[behind[r]]
        _correlate_taps(lanes3, 0, rows, lo, 1, (count - 1) * m + width, weights, symmetric, acc)
        for g in range(count):
            row = out[o0 + g]
            values = acc[g * m : g * m + width]
            for i in range(width):
                row[i] = values[i]


@jit
def _correlate_inside_lines(src, weights, before, symmetric, out, lo):
    """:func:`_correlate_lines` when every output's taps lie inside its line (a
    block's halo is wider than the weights): read from the block itself, without
    the line buffer, a group of lines side by side in the lanes (the lanes between
    two lines' outputs computed and dropped). (One function holding both loops
    ran the buffered one 50 % slower.)"""
    outer, n = src.shape
    width = out.shape[1]
    group = max(1, LINE_LANES // n)
    acc = np.empty(group * n, np.float64)
    rows = np.zeros(weights.shape[0], np.int64)
    flat = src.reshape(1, 1, outer * n)
    for o0 in range(0, outer, group):
        count = min(group, outer - o0)
        _correlate_taps(flat, 0, rows, o0 * n + lo - before, 1, (count - 1) * n + width, weights, symmetric, acc)
        for g in range(count):
            row = out[o0 + g]
            values = acc[g * n : g * n + width]
            for i in range(width):
                row[i] = values[i]


@jit
def _correlate_rows(src, weights, before, mode, cval, symmetric, out, lo, inplace):
    """scipy's NI_Correlate1D along the middle axis of an (outer, n, inner) array,
    for the outputs ``lo`` to ``lo + out.shape[1]`` along it.

    The taps are read from ``src`` itself, a row per tap, the boundary mode picking
    the row; an output with a cval tap (constant mode) gathers its taps into a
    float64 buffer first. Wide rows go in sweeps of SWEEP columns, the output row
    moving down under them (the sweep's rows stay in cache). In narrow rows (the
    second pass of a block) the rows whose taps all lie inside the plane are one
    run of lanes, tap j the plane from row j on. With ``inplace`` (``out`` is
    ``src``'s memory, packed from its start) a sweep's outputs wait in a buffer
    until the sweep has read its last tap: they land at or before the rows they
    come from, and no later sweep reads those columns of those rows.
    """
    outer, n, inner = src.shape
    hi = lo + out.shape[1]
    size = weights.shape[0]
    after = size - 1 - before
    narrow = inner <= SWEEP
    sweep = inner if inner <= SWEEP + SWEEP // 4 else SWEEP
    first = min(max(lo, before), hi) if narrow else hi  # rows first..last: one run
    last = max(min(hi, n - after), first) if narrow else hi
    run = (last - first) * inner
    chunks = -(-run // SWEEP)
    planes = src.reshape(outer, 1, n * inner)
    rows = np.empty(size, np.int64)
    in_order = np.arange(size)
    acc = np.empty(max(sweep, SWEEP), np.float64)
    gathered = np.empty((1, size, sweep if mode == 4 else 1), np.float64)
    held = np.empty((hi - lo, sweep) if inplace else (1, 1), out.dtype)
    flat_held = held.reshape(-1)
    i = lo
    for o in range(outer):
        flat_out = out[o].reshape(-1)
        for t0 in range(0, inner, sweep):
            width = min(sweep, inner - t0)
            # The run's chunks first, then the rows one by one.
            for k in range(chunks + hi - lo):
                edge = False
                if k < chunks:
                    lanes = min(SWEEP, run - k * SWEEP)
                    at = (first - lo) * inner + k * SWEEP
                    rows[:] = 0
                    col0, step, source = (first - before) * inner + k * SWEEP, inner, planes
                else:
                    i = lo + k - chunks
                    if first <= i < last:
                        continue
                    lanes, at = width, (i - lo) * sweep
                    col0, step, source = t0, 0, src
                    for j in range(size):
                        rows[j] = source_index(i - before + j, n, mode)
                        edge = edge or rows[j] < 0
                if edge:  # a cval among the taps: they are gathered in float64
                    for j in range(size):
                        tap = gathered[0, j, :width]
                        if rows[j] < 0:
                            tap[:] = cval
                        else:
                            tap[:] = src[o, rows[j], t0 : t0 + width]
                    _correlate_taps(gathered, 0, in_order, 0, 0, width, weights, symmetric, acc)
                else:
                    _correlate_taps(source, o, rows, col0, step, lanes, weights, symmetric, acc)
                if inplace:
                    dst = flat_held[at : at + lanes]
                elif k < chunks:
                    dst = flat_out[at : at + lanes]
                else:
                    dst = out[o, i - lo, t0 : t0 + width]
                for t in range(lanes):
                    dst[t] = acc[t]
            if inplace:
                for r in range(hi - lo):
                    out[o, r, t0 : t0 + width] = held[r, :width]


@jit
def uniform1d_3d(src, size, origin, mode, cval, out):
    """scipy's NI_UniformFilter1D: a running sum along each line, divided per output."""
    outer, n, inner = src.shape
    size1 = size // 2
    size2 = size - size1 - 1
    before = size1 + origin
    after = size2 - origin
    fsize = float(size)
    if inner == 1:
        # The running sum is a chain of adds; the divisions wait for it in a loop
        # of their own, which vectorizes (a division per step, in the chain, cost
        # more than the adds).
        line = np.empty(n + before + after, np.float64)
        sums = np.empty(n, np.float64)
        following = sums[1:]
        # (2-D views: a line taken as [o, :, 0] is typed as strided, and its loops
        # do not vectorize)
        lines, results = src.reshape(outer, n), out.reshape(outer, n)
        for o in range(outer):
            _fill_line(line, lines[o], before, mode, cval)
            acc = 0.0
            for r in range(size):
                acc += line[r]
            sums[0] = acc
            entering, leaving = line[size : size + n - 1], line[: n - 1]
            for k in range(n - 1):
                acc += entering[k] - leaving[k]
                following[k] = acc
            dst = results[o]
            for i in range(n):
                dst[i] = sums[i] / fsize
        return
    ext = np.empty((n + before + after, TILE), np.float64)
    acc = np.empty(TILE, np.float64)
    for o in range(outer):
        for t0 in range(0, inner, TILE):
            t1 = min(inner, t0 + TILE)
            width = t1 - t0
            _fill(ext, src, o, t0, t1, before, mode, cval)
            for t in range(width):
                acc[t] = 0.0
            for r in range(size):
                for t in range(width):
                    acc[t] += ext[r, t]
            first = out[o, 0, t0:t1]
            for t in range(width):
                first[t] = acc[t] / fsize
            for i in range(1, n):
                row = out[o, i, t0:t1]
                for t in range(width):
                    acc[t] += ext[i + size - 1, t] - ext[i - 1, t]
                    row[t] = acc[t] / fsize


#: From this window size on, the moving minimum/maximum uses van Herk/Gil-Werman
#: (three comparisons per voxel whatever the size) instead of a direct scan
#: (size - 1 comparisons, but vectorized and in cache): the two break even at
#: about this size (docs/concepts/kernels.md, "Measured choices").
VAN_HERK_FROM = 9


@jit
def minmax1d_3d(src, size, origin, mode, cval, minimum, out):
    """A moving minimum/maximum along each line (exact: comparisons only, so any
    order gives scipy's value when there is no NaN and no -0.0)."""
    outer, n, inner = src.shape
    size1 = size // 2
    size2 = size - size1 - 1
    before = size1 + origin
    after = size2 - origin
    m = n + before + after
    if inner == 1:
        line = np.empty((m, 1), np.float64)
        flat = line.reshape(-1)
        results = out.reshape(outer, n)
        lines = src.reshape(outer, n)
        acc = np.empty(n, np.float64)
        for o in range(outer):
            _fill_line(flat, lines[o], before, mode, cval)
            if size >= VAN_HERK_FROM:
                _moving_extreme(line, n, 1, size, minimum, out[o, :, 0:1])
                continue
            # The direct scan along the line itself, its outputs side by side in
            # the lanes.
            for i in range(n):
                acc[i] = flat[i]
            # (each shift a slice: an index computed as i + j is checked for
            # wrapping around, which keeps the loop scalar)
            if minimum:
                for j in range(1, size):
                    shifted = flat[j : j + n]
                    for i in range(n):
                        acc[i] = min(acc[i], shifted[i])
            else:
                for j in range(1, size):
                    shifted = flat[j : j + n]
                    for i in range(n):
                        acc[i] = max(acc[i], shifted[i])
            dst = results[o]
            for i in range(n):
                dst[i] = acc[i]
        return
    ext = np.empty((m, TILE), np.float64)
    for o in range(outer):
        for t0 in range(0, inner, TILE):
            t1 = min(inner, t0 + TILE)
            _fill(ext, src, o, t0, t1, before, mode, cval)
            _moving_extreme(ext, n, t1 - t0, size, minimum, out[o, :, t0:t1])


@jit
def _moving_extreme(ext, n, width, size, minimum, out):
    """out[i] = extreme of ext[i : i + size], for each of ``width`` lanes."""
    if size < VAN_HERK_FROM:
        acc = np.empty(width, np.float64)
        for i in range(n):
            for t in range(width):
                acc[t] = ext[i, t]
            for r in range(i + 1, i + size):
                if minimum:
                    for t in range(width):
                        acc[t] = min(acc[t], ext[r, t])
                else:
                    for t in range(width):
                        acc[t] = max(acc[t], ext[r, t])
            for t in range(width):
                out[i, t] = acc[t]
        return
    # van Herk/Gil-Werman: in segments of ``size`` rows, the running extreme from
    # each segment's start (ahead) and from its end (behind); a window then spans
    # at most two segments and is the extreme of one value of each. The min and
    # max loops are written out twice: a branch inside the lane loop stops numba
    # vectorizing it (docs/concepts/kernels.md, "Measured choices"), and a min/max function
    # passed in makes the kernel uncacheable.
    rows = n + size - 1
    ahead = np.empty((rows, width), np.float64)
    behind = np.empty((rows, width), np.float64)
    for start in range(0, rows, size):
        stop = min(rows, start + size)
        for t in range(width):
            ahead[start, t] = ext[start, t]
            behind[stop - 1, t] = ext[stop - 1, t]
        if minimum:
            for r in range(start + 1, stop):
                for t in range(width):
                    ahead[r, t] = min(ahead[r - 1, t], ext[r, t])
            for r in range(stop - 2, start - 1, -1):
                for t in range(width):
                    behind[r, t] = min(behind[r + 1, t], ext[r, t])
        else:
            for r in range(start + 1, stop):
                for t in range(width):
                    ahead[r, t] = max(ahead[r - 1, t], ext[r, t])
            for r in range(stop - 2, start - 1, -1):
                for t in range(width):
                    behind[r, t] = max(behind[r + 1, t], ext[r, t])
    if minimum:
        for i in range(n):
            for t in range(width):
                out[i, t] = min(behind[i, t], ahead[i + size - 1, t])
    else:
        for i in range(n):
            for t in range(width):
                out[i, t] = max(behind[i, t], ahead[i + size - 1, t])


def extend(x: np.ndarray, before: tuple[int, ...], after: tuple[int, ...], mode: str, cval) -> np.ndarray:
    """``x`` extended by ``before``/``after`` voxels per axis with scipy's boundary
    ``mode`` (one for all axes); ``cval`` is a value of x's dtype."""
    code = MODE_CODES[mode]
    if code == 4:
        padded = np.full(tuple(n + b + a for n, b, a in zip(x.shape, before, after, strict=True)), cval, x.dtype)
        padded[tuple(slice(b, b + n) for n, b in zip(x.shape, before, strict=True))] = x
        return padded
    for axis, (b, a) in enumerate(zip(before, after, strict=True)):
        n = x.shape[axis]
        index = np.array([source_index(k - b, n, code) for k in range(n + b + a)], dtype=np.intp)
        x = np.take(x, index, axis=axis)
    return np.ascontiguousarray(x)


def as_lines(a: np.ndarray, axis: int) -> np.ndarray:
    """``a`` (C-contiguous) viewed as (outer, n, inner) around ``axis``."""
    outer = int(np.prod(a.shape[:axis], dtype=np.int64))
    inner = int(np.prod(a.shape[axis + 1 :], dtype=np.int64))
    return a.reshape(outer, a.shape[axis], inner)


def symmetry(weights: np.ndarray) -> int:
    """scipy's test: 1 symmetric, -1 antisymmetric, 0 neither (odd sizes only)."""
    size = weights.shape[0]
    if not size & 1:
        return 0
    half = size // 2
    eps = np.finfo(np.float64).eps
    left, right = weights[half - 1 :: -1] if half else weights[:0], weights[half + 1 :]
    if np.all(np.abs(right - left) <= eps):
        return 1
    if np.all(np.abs(right + left) <= eps):
        return -1
    return 0


def _along_last(src: np.ndarray, w: np.ndarray, before: int, mode: int, cval: float, symmetric: int, out: np.ndarray, lo: int) -> None:
    if lo >= before and lo + out.shape[1] + (w.shape[0] - 1 - before) <= src.shape[1]:
        _correlate_inside_lines(src, w, before, symmetric, out, lo)
        return
    m = src.shape[1] + w.shape[0] - 1
    # Integer lines in their own dtype where it holds cval (sums of pairs then
    # stay integers): scipy's float64 buffer holds the same values. Float lines
    # in float64, as scipy (converted once, not once per tap).
    kind = np.float64 if src.dtype.kind == "f" or mode == MODE_CODES["constant"] and not _holds(src.dtype, cval) else src.dtype
    buf = np.empty(max(1, LINE_LANES // m) * m, kind)
    _correlate_lines(src, w, before, mode, cval, symmetric, out, lo, buf)


def _holds(dtype: np.dtype, value: float) -> bool:
    """Is ``value`` a value of ``dtype``?"""
    if dtype.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):
            return bool(float(dtype.type(value)) == value)
    info = np.iinfo(dtype)
    return bool(np.isfinite(value)) and float(value).is_integer() and info.min <= value <= info.max


def _weights_and_taps(weights, mode: str, cval: float, origin: int = 0) -> tuple[np.ndarray, tuple[int, int, float, int]]:
    """The weights as the line kernels take them, and the arguments that follow
    them: taps before the output, mode code, cval, symmetry."""
    w = np.ascontiguousarray(weights, dtype=np.float64)
    return w, (w.shape[0] // 2 + int(origin), MODE_CODES[mode], float(cval), symmetry(w))


def correlate1d(src: np.ndarray, weights, axis: int, out: np.ndarray, mode: str, cval: float, origin: int = 0, lo: int = 0) -> None:
    """scipy's correlate1d of ``src`` along ``axis`` into ``out``, whose extent
    along ``axis`` may be a part of the line, starting at ``lo``; ``out`` may be
    ``src``'s memory, packed from its start."""
    if out.size == 0:  # nothing to compute (and a sweep of no columns would not advance)
        return
    w, taps = _weights_and_taps(weights, mode, cval, origin)
    lines, into = as_lines(src, axis), as_lines(out, axis)
    if lines.shape[2] == 1:
        _along_last(lines.reshape(lines.shape[:2]), w, *taps, into.reshape(into.shape[:2]), int(lo))
    else:
        _correlate_rows(lines, w, *taps, into, int(lo), np.may_share_memory(src, out))


def correlate_last_two(src: np.ndarray, weights: tuple, out: np.ndarray, modes: tuple[str, str], cval: float, lo: tuple[int, int]) -> None:
    """scipy's correlate1d of ``src`` along its last two axes in turn (``weights``
    and ``modes`` per axis, origin 0) into ``out``, whose extents along them may be
    parts of the lines, starting at ``lo``; ``out`` may be ``src``'s memory, packed
    from its start.

    It goes one plane at a time: the first pass's plane, rounded to ``out``'s
    dtype as scipy stores it, stays in cache for the second; plane o of the result
    lands at or before plane o of ``src``, which the first pass has read by then.
    """
    w1, first = _weights_and_taps(weights[0], modes[0], cval)
    w2, second = _weights_and_taps(weights[1], modes[1], cval)
    m1, m2 = out.shape[-2:]
    planes = src.reshape(-1, *src.shape[-2:])
    results = out.reshape(-1, m1, m2)
    held = np.empty((1, m1, src.shape[-1]), out.dtype)
    for o in range(planes.shape[0]):
        _correlate_rows(planes[o : o + 1], w1, *first, held, int(lo[0]), False)
        _along_last(held[0], w2, *second, results[o], int(lo[1]))


@jit
def count_values(flat, offset, counts):
    """counts[v + offset] += 1 for each value v (an integer histogram, one pass)."""
    for i in range(flat.shape[0]):
        counts[flat[i] + offset] += 1
