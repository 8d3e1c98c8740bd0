"""Three-tap passes along one axis: the passes of scipy's sobel, prewitt and laplace.

scipy runs each as ``correlate1d`` with weights of size 3, whose C loop for
(anti)symmetric weights is ``c * w[1] + (l +/- r) * w[0]`` in float64 (``l``, ``c``,
``r`` the voxel's neighbours along the axis, extended by the mode), the result cast
to the output dtype. Two kinds of pass replay it:

- float outputs: the same float64 expression, rounded to the output as scipy
  stores it;
- 8- and 16-bit integer outputs from inputs of at most 16 bits, with an integral
  ``cval``: every value scipy computes is then an integer far inside float64's
  exact range and its cast to the output keeps the low bits (a wrap, checked
  against scipy's own kernel in :func:`scipy_wraps`), so the pass is integer
  arithmetic modulo the output's range, whatever the order of the adds.

Arrays are viewed as (outer, n, inner) around the axis (``lines.as_lines``); rows
whose neighbours lie inside take a loop without the mode, the first and last rows
ask it.
"""

from __future__ import annotations

import functools

import numpy as np

from batchproc.kernels._jit import jit
from batchproc.kernels.lines import source_index


@jit
def _float_row(left, centre, right, lc, rc, cval, wc, ws, antisymmetric, out):
    """One output row of a float pass: ``lc``/``rc`` say the left/right neighbour is
    ``cval`` (a constant edge) instead of the row given."""
    for t in range(out.shape[0]):
        lv = cval if lc else np.float64(left[t])
        rv = cval if rc else np.float64(right[t])
        pair = lv - rv if antisymmetric else lv + rv
        out[t] = np.float64(centre[t]) * wc + pair * ws


@jit
def float_pass(src, dst, wc, ws, antisymmetric, mode, cval):
    """scipy's correlate1d with weights ``(ws, wc, ws)`` (``(ws, wc, -ws)`` when
    ``antisymmetric``) along the middle axis of (outer, n, inner) ``src`` into
    ``dst`` (not ``src``'s memory), in float64, rounded to ``dst``'s float dtype."""
    outer, n, inner = src.shape
    if inner == 1:
        # Along the lines themselves: the inside of each line in one loop (2-D
        # views: a line taken as [o, :, 0] is typed as strided and does not
        # vectorize).
        lines, results = src.reshape(outer, n), dst.reshape(outer, n)
        for o in range(outer):
            s = lines[o]
            d = results[o]
            # (shifted slices: an index computed as i - 1 is checked for wrapping
            # around, which keeps the loop scalar)
            left, centre, right, inside = s[: n - 2], s[1 : n - 1], s[2:], d[1 : n - 1]
            if antisymmetric:
                for i in range(n - 2):
                    inside[i] = np.float64(centre[i]) * wc + (np.float64(left[i]) - np.float64(right[i])) * ws
            else:
                for i in range(n - 2):
                    inside[i] = np.float64(centre[i]) * wc + (np.float64(left[i]) + np.float64(right[i])) * ws
            for i in range(0, n, max(n - 1, 1)):
                a = source_index(i - 1, n, mode)
                b = source_index(i + 1, n, mode)
                _float_row(s[max(a, 0) : max(a, 0) + 1], s[i : i + 1], s[max(b, 0) : max(b, 0) + 1], a < 0, b < 0, cval, wc, ws, antisymmetric, d[i : i + 1])
        return
    for o in range(outer):
        for i in range(n):
            a = source_index(i - 1, n, mode)
            b = source_index(i + 1, n, mode)
            if a >= 0 and b >= 0:
                left, centre, right, d = src[o, a], src[o, i], src[o, b], dst[o, i]
                if antisymmetric:
                    for t in range(inner):
                        d[t] = np.float64(centre[t]) * wc + (np.float64(left[t]) - np.float64(right[t])) * ws
                else:
                    for t in range(inner):
                        d[t] = np.float64(centre[t]) * wc + (np.float64(left[t]) + np.float64(right[t])) * ws
            else:
                _float_row(src[o, max(a, 0)], src[o, i], src[o, max(b, 0)], a < 0, b < 0, cval, wc, ws, antisymmetric, dst[o, i])


@jit
def _int_row(left, centre, right, lc, rc, cval, wl, wc, wr, out):
    for t in range(out.shape[0]):
        lv = cval if lc else np.int64(left[t])
        rv = cval if rc else np.int64(right[t])
        out[t] = lv * wl + np.int64(centre[t]) * wc + rv * wr


@jit
def int_pass(src, dst, wl, wc, wr, mode, cval):
    """scipy's correlate1d with integer weights ``(wl, wc, wr)`` along the middle
    axis of (outer, n, inner) ``src`` into ``dst`` (not ``src``'s memory), in
    integers modulo ``dst``'s range (``cval`` an integer)."""
    outer, n, inner = src.shape
    if inner == 1:
        lines, results = src.reshape(outer, n), dst.reshape(outer, n)
        for o in range(outer):
            s = lines[o]
            d = results[o]
            left, centre, right, inside = s[: n - 2], s[1 : n - 1], s[2:], d[1 : n - 1]
            for i in range(n - 2):
                inside[i] = np.int64(left[i]) * wl + np.int64(centre[i]) * wc + np.int64(right[i]) * wr
            for i in range(0, n, max(n - 1, 1)):
                a = source_index(i - 1, n, mode)
                b = source_index(i + 1, n, mode)
                _int_row(s[max(a, 0) : max(a, 0) + 1], s[i : i + 1], s[max(b, 0) : max(b, 0) + 1], a < 0, b < 0, cval, wl, wc, wr, d[i : i + 1])
        return
    for o in range(outer):
        for i in range(n):
            a = source_index(i - 1, n, mode)
            b = source_index(i + 1, n, mode)
            if a >= 0 and b >= 0:
                left, centre, right, d = src[o, a], src[o, i], src[o, b], dst[o, i]
                for t in range(inner):
                    d[t] = np.int64(left[t]) * wl + np.int64(centre[t]) * wc + np.int64(right[t]) * wr
            else:
                _int_row(src[o, max(a, 0)], src[o, i], src[o, max(b, 0)], a < 0, b < 0, cval, wl, wc, wr, dst[o, i])


#: Output dtypes whose cast from scipy's float64 an integer pass may replay.
WRAPPING = tuple(np.dtype(d) for d in ("uint8", "int8", "uint16", "int16"))


@functools.cache
def scipy_wraps(dtype: np.dtype) -> bool:
    """Does scipy's cast of an integral float64 to ``dtype`` keep its low bits (a
    wrap, as numpy's int64 -> ``dtype``), for values of either sign up to 2^22,
    whatever the length of the line? (C leaves the cast of a value out of range
    undefined; this is what scipy's build here does, asked once per process.)"""
    import scipy.ndimage as ndi

    rng = np.random.default_rng(0)
    for n in (1, 3, 8, 17, 64, 1001):
        values = rng.integers(-(2**22), 2**22, n).astype(np.float64)
        values[: min(n, 6)] = np.array([-1.0, -256.0, 65536.0, 70001.0, -70001.0, 2.0**22 - 1])[: min(n, 6)]
        got = ndi.correlate1d(values, [1.0], output=dtype)
        if not np.array_equal(got, values.astype(np.int64).astype(dtype)):
            return False
    return True


def integral_cval(cval: float) -> bool:
    """Is ``cval`` an integer small enough that every sum of an integer pass stays
    exact in float64 and far inside int32 (scipy's cast of it is then a wrap)?"""
    return bool(np.isfinite(cval)) and float(cval).is_integer() and abs(cval) <= 2**20
