"""One pass of the exact Euclidean distance transform along whole lines: the
lower envelope of parabolas (Felzenszwalb and Huttenlocher, 2012).

``out[x] = min over q of f[q] + ((x - q) * s)**2`` along each line, where ``f``
holds the previous axes' squared distances (0 at background voxels before the
first pass, infinity where no background was reached yet). The value is added in
scipy's order (the previous axes' sum, then this axis's ``(d * s) * (d * s)``), so
for integer spacings the squared distances are exact integers, as scipy's are.
"""

from __future__ import annotations

import numpy as np

from batchproc.kernels._jit import jit


@jit
def _line(f: np.ndarray, s: float, out: np.ndarray, v: np.ndarray, z: np.ndarray) -> None:
    n = f.shape[0]
    s2 = s * s
    k = -1
    for q in range(n):
        fq = f[q]
        if fq == np.inf:
            continue
        while k >= 0:
            p = v[k]
            cross = ((fq + s2 * q * q) - (f[p] + s2 * p * p)) / (2.0 * s2 * (q - p))
            if cross <= z[k]:
                k -= 1
            else:
                break
        if k < 0:
            k = 0
            v[0] = q
            z[0] = -np.inf
        else:
            k += 1
            v[k] = q
            z[k] = cross
        z[k + 1] = np.inf
    if k < 0:
        for x in range(n):
            out[x] = np.inf
        return
    j = 0
    for x in range(n):
        while z[j + 1] < x:
            j += 1
        d = (x - v[j]) * s
        out[x] = f[v[j]] + d * d


@jit
def envelope_lines(f: np.ndarray, s: float) -> np.ndarray:
    """The pass along the last axis of the 2-D array ``f`` (one line a row)."""
    rows, n = f.shape
    out = np.empty((rows, n), np.float64)
    v = np.empty(n, np.int64)
    z = np.empty(n + 1, np.float64)
    for r in range(rows):
        _line(f[r], s, out[r], v, z)
    return out


def envelope(f: np.ndarray, axis: int, s: float) -> np.ndarray:
    """The pass along ``axis`` of ``f`` (float64), every line of it whole."""
    moved = np.ascontiguousarray(np.moveaxis(f, axis, -1), dtype=np.float64)
    flat = moved.reshape(-1, moved.shape[-1]) if moved.size else moved.reshape(0, max(1, moved.shape[-1]))
    out = envelope_lines(flat, float(s)) if flat.size else flat.copy()
    return np.moveaxis(out.reshape(moved.shape), -1, axis)
