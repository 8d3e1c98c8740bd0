"""Small dense correlations (``correlate``/``convolve``) over lanes.

scipy (NI_Correlate) keeps the weights whose magnitude exceeds DBL_EPSILON, in C
order, and sums ``weight * value`` for each in turn from 0.0 in float64 (a value
beyond the edge in constant mode is ``cval`` itself, in float64), then casts the
sum to the output dtype. Here a whole row of outputs is summed at once, eight
weights per sweep over the row (then four, then one), which vectorizes; each
output still adds the same terms in the same order. The planes the taps read are
converted to float64 once each, extended by the mode, into a ring of as many
planes as the weights are deep.
"""

from __future__ import annotations

import numpy as np

from batchproc.kernels._jit import jit
from batchproc.kernels.buffers import empty
from batchproc.kernels.lines import MODE_CODES, source_index


@jit
def _fill_plane(x, z, by, bx, mode, cval, plane):
    """``plane`` = source plane ``z`` of ``x`` (-1: cval) in float64, extended by
    ``by`` rows and ``bx`` columns before (and the rest after) with the mode."""
    ny, nx = x.shape[1], x.shape[2]
    rows, width = plane.shape
    for r in range(rows):
        s = source_index(r - by, ny, mode) if z >= 0 else -1
        dst = plane[r]
        if s < 0:
            for c in range(width):
                dst[c] = cval
            continue
        src = x[z, s]
        inner = dst[bx : bx + nx]
        for c in range(nx):
            inner[c] = np.float64(src[c])
        for c in range(bx):
            k = source_index(c - bx, nx, mode)
            dst[c] = cval if k < 0 else np.float64(src[k])
        for c in range(bx + nx, width):
            k = source_index(c - bx, nx, mode)
            dst[c] = cval if k < 0 else np.float64(src[k])


@jit
def _tap(flat, starts, e, n):
    return flat[starts[e] : starts[e] + n]


@jit
def _sum_taps(flat, starts, weights, acc, n):
    """acc[t] = sum over taps e, in order, from 0.0, of weights[e] * flat[starts[e] + t].
    (Each tap a slice: an index computed as starts[e] + t would be checked for
    wrapping around, which stops the loop vectorizing.)"""
    m = weights.shape[0]
    for t in range(n):
        acc[t] = 0.0
    e = 0
    while e + 8 <= m:
        a0, a1, a2, a3 = _tap(flat, starts, e, n), _tap(flat, starts, e + 1, n), _tap(flat, starts, e + 2, n), _tap(flat, starts, e + 3, n)
        a4, a5, a6, a7 = _tap(flat, starts, e + 4, n), _tap(flat, starts, e + 5, n), _tap(flat, starts, e + 6, n), _tap(flat, starts, e + 7, n)
        w0, w1, w2, w3 = weights[e], weights[e + 1], weights[e + 2], weights[e + 3]
        w4, w5, w6, w7 = weights[e + 4], weights[e + 5], weights[e + 6], weights[e + 7]
        for t in range(n):
            acc[t] = (((((((acc[t] + w0 * a0[t]) + w1 * a1[t]) + w2 * a2[t]) + w3 * a3[t]) + w4 * a4[t]) + w5 * a5[t]) + w6 * a6[t]) + w7 * a7[t]
        e += 8
    while e + 4 <= m:
        a0, a1, a2, a3 = _tap(flat, starts, e, n), _tap(flat, starts, e + 1, n), _tap(flat, starts, e + 2, n), _tap(flat, starts, e + 3, n)
        w0, w1, w2, w3 = weights[e], weights[e + 1], weights[e + 2], weights[e + 3]
        for t in range(n):
            acc[t] = (((acc[t] + w0 * a0[t]) + w1 * a1[t]) + w2 * a2[t]) + w3 * a3[t]
        e += 4
    while e < m:
        a0, w0 = _tap(flat, starts, e, n), weights[e]
        for t in range(n):
            acc[t] = acc[t] + w0 * a0[t]
        e += 1


@jit
def _correlate_planes(x, offsets, weights, before, mode, cval, out):
    """out = scipy's correlation sums of 3-D ``x`` rounded to out's float dtype."""
    nz, ny, nx = x.shape
    m = offsets.shape[0]
    depth = 1
    for e in range(m):
        depth = max(depth, offsets[e, 0] + 1)
    rows = ny + 1
    width = nx + 1
    for e in range(m):
        rows = max(rows, ny + offsets[e, 1])
        width = max(width, nx + offsets[e, 2])
    size = rows * width
    ring = np.empty(depth * size, np.float64)
    keys = np.full(depth, -(1 << 62), np.int64)
    starts = np.empty(m, np.int64)
    acc = np.empty(nx, np.float64)
    for z in range(nz):
        # Planes z - before[0] to z - before[0] + depth - 1, plane p in slot p % depth.
        for d in range(depth):
            s = source_index(z - before[0] + d, nz, mode)
            slot = (z - before[0] + d) % depth
            key = s if s >= 0 else -1  # every plane beyond a constant edge is cval
            if keys[slot] != key:
                _fill_plane(x, s, before[1], before[2], mode, cval, ring[slot * size : (slot + 1) * size].reshape(rows, width))
                keys[slot] = key
        for e in range(m):
            starts[e] = ((z - before[0] + offsets[e, 0]) % depth) * size + offsets[e, 1] * width + offsets[e, 2]
        for y in range(ny):
            _sum_taps(ring, starts, weights, acc, nx)
            o = out[z, y]
            for t in range(nx):
                o[t] = acc[t]
            for e in range(m):
                starts[e] += width


@jit
def _correlate_planes_int(x, offsets, weights, before, mode, cval, out, lo, hi):
    """:func:`_correlate_planes` for an integer ``out``: False (and ``out`` left
    part-written) as soon as a sum is not above ``lo`` and below ``hi``."""
    nz, ny, nx = x.shape
    m = offsets.shape[0]
    depth = 1
    for e in range(m):
        depth = max(depth, offsets[e, 0] + 1)
    rows = ny + 1
    width = nx + 1
    for e in range(m):
        rows = max(rows, ny + offsets[e, 1])
        width = max(width, nx + offsets[e, 2])
    size = rows * width
    ring = np.empty(depth * size, np.float64)
    keys = np.full(depth, -(1 << 62), np.int64)
    starts = np.empty(m, np.int64)
    acc = np.empty(nx, np.float64)
    for z in range(nz):
        for d in range(depth):
            s = source_index(z - before[0] + d, nz, mode)
            slot = (z - before[0] + d) % depth
            key = s if s >= 0 else -1
            if keys[slot] != key:
                _fill_plane(x, s, before[1], before[2], mode, cval, ring[slot * size : (slot + 1) * size].reshape(rows, width))
                keys[slot] = key
        for e in range(m):
            starts[e] = ((z - before[0] + offsets[e, 0]) % depth) * size + offsets[e, 1] * width + offsets[e, 2]
        for y in range(ny):
            _sum_taps(ring, starts, weights, acc, nx)
            inside = True
            for t in range(nx):
                inside &= (acc[t] > lo) & (acc[t] < hi)
            if not inside:
                return False
            o = out[z, y]
            for t in range(nx):
                o[t] = acc[t]
            for e in range(m):
                starts[e] += width
    return True


def correlate(x: np.ndarray, weights: np.ndarray, origins: tuple[int, ...], mode: str, cval: float, dtype: np.dtype) -> np.ndarray | None:
    """scipy.ndimage.correlate of a 2-D or 3-D ``x`` (weights with one dimension per
    axis, origins already those of a correlation) in ``dtype``; None where an
    integer ``dtype`` cannot hold a sum (scipy's C cast of it is undefined)."""
    if x.size == 0:  # nothing to sum (and no line to extend by the mode)
        return np.empty(x.shape, dtype)
    shape = weights.shape
    before = tuple(s // 2 + o for s, o in zip(shape, origins, strict=True))
    kept = np.abs(weights) > np.finfo(np.float64).eps
    offsets = np.argwhere(kept).astype(np.int64)
    taps = np.ascontiguousarray(weights[kept], dtype=np.float64)
    src = np.ascontiguousarray(x)
    if x.ndim == 2:
        src = src[np.newaxis]
        offsets = np.column_stack([np.zeros(len(offsets), np.int64), offsets])
        before = (0, *before)
    out = empty(src.shape, dtype)
    code = MODE_CODES[mode]
    if np.dtype(dtype).kind == "f":
        _correlate_planes(src, np.ascontiguousarray(offsets), taps, np.array(before, np.int64), code, float(cval), out)
        return out.reshape(x.shape)
    info = np.iinfo(dtype)
    # C's cast truncates toward zero; it is defined (and numba's equals it) when the
    # truncated value fits the output dtype.
    if not _correlate_planes_int(
        src, np.ascontiguousarray(offsets), taps, np.array(before, np.int64), code, float(cval), out, float(info.min) - 1.0, float(info.max) + 1.0
    ):
        return None
    return out.reshape(x.shape)
