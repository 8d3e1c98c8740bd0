"""Small dense correlations (``correlate``/``convolve``) over lanes.

scipy (NI_Correlate) keeps the weights whose magnitude exceeds DBL_EPSILON, in C
order, and sums ``weight * value`` for each in turn from 0.0 in float64, then casts
the sum to the output dtype. Here a whole row of outputs is summed at once, one
weight per sweep over the row (four per sweep, in the same order), which
vectorizes; each output still adds the same terms in the same order.
"""

from __future__ import annotations

import numba
import numpy as np

from batchproc.kernels.lines import extend

_JIT = {"cache": True, "nogil": True}


@numba.njit(**_JIT)
def _row(padded, offsets, e, z, y, nx):
    start = offsets[e, 2]
    return padded[z + offsets[e, 0], y + offsets[e, 1], start : start + nx]


@numba.njit(**_JIT)
def _correlate_rows(padded, offsets, weights, out):
    """out[z, y, x] = sum over taps e of weights[e] * padded[z+dz, y+dy, x+dx],
    from 0.0 in tap order, in float64."""
    nz, ny, nx = out.shape
    m = offsets.shape[0]
    acc = np.empty(nx, np.float64)
    for z in range(nz):
        for y in range(ny):
            for t in range(nx):
                acc[t] = 0.0
            e = 0
            while e + 3 < m:
                a = _row(padded, offsets, e, z, y, nx)
                b = _row(padded, offsets, e + 1, z, y, nx)
                c = _row(padded, offsets, e + 2, z, y, nx)
                d = _row(padded, offsets, e + 3, z, y, nx)
                wa, wb, wc, wd = weights[e], weights[e + 1], weights[e + 2], weights[e + 3]
                for t in range(nx):
                    acc[t] = (((acc[t] + wa * np.float64(a[t])) + wb * np.float64(b[t])) + wc * np.float64(c[t])) + wd * np.float64(d[t])
                e += 4
            while e < m:
                a = _row(padded, offsets, e, z, y, nx)
                wa = weights[e]
                for t in range(nx):
                    acc[t] += wa * np.float64(a[t])
                e += 1
            o = out[z, y]
            for t in range(nx):
                o[t] = acc[t]


def correlate(x: np.ndarray, weights: np.ndarray, origins: tuple[int, ...], mode: str, cval) -> np.ndarray:
    """scipy.ndimage.correlate's float64 sums for a 2-D or 3-D ``x`` (weights with
    one dimension per axis, origins already those of a correlation); ``cval`` is a
    value of x's dtype."""
    shape = weights.shape
    before = tuple(s // 2 + o for s, o in zip(shape, origins, strict=True))
    after = tuple(s - 1 - b for s, b in zip(shape, before, strict=True))
    padded = extend(x, before, after, mode, cval)
    kept = np.abs(weights) > np.finfo(np.float64).eps
    offsets = np.argwhere(kept).astype(np.int64)
    taps = np.ascontiguousarray(weights[kept], dtype=np.float64)
    if x.ndim == 2:
        padded = padded[np.newaxis]
        offsets = np.column_stack([np.zeros(len(offsets), np.int64), offsets])
    sums = np.empty((1, *x.shape) if x.ndim == 2 else x.shape, np.float64)
    _correlate_rows(padded, np.ascontiguousarray(offsets), taps, sums)
    return sums.reshape(x.shape)
