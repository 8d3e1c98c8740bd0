"""Sobel gradient magnitude in one pass over the block, plane by plane.

scipy computes ``sobel(x, a)`` as a derivative pass along ``a`` and a smoothing pass
along each other axis in increasing order, each pass rounding to the output dtype;
the magnitude then squares, sums in axis order and takes the square root, each in
the output dtype. This kernel replays every one of those roundings, but on one z
plane at a time (the passes along z read three planes), so that its working set is a
few planes instead of three whole float64 responses: bit-identical to scipy, a
fraction of the memory traffic.

All arithmetic is float64 (``np.float64(v)``: numba's ``float(v)`` keeps a float32 a float32), rounded to the output dtype after each step as scipy
stores it. For a float32 output that equals native float32 arithmetic: a float64
result of one +, * or sqrt on float32 operands, rounded to float32, is the correctly
rounded float32 result (53 >= 2 * 24 + 2).
"""

from __future__ import annotations

import numpy as np

from batchproc.kernels._jit import jit
from batchproc.kernels.lines import MODE_CODES, source_index

# scipy's weights as its C loop uses them (NI_Correlate1D, size 3): a symmetric
# [1, 2, 1] gives c * 2 + (left + right) * 1; an antisymmetric [-1, 0, 1] gives
# c * 0 + (left - right) * -1. c * 0 is kept: it decides the sign of a zero and
# turns inf into nan exactly as scipy does.
_SMOOTH_C, _SMOOTH_S = 2.0, 1.0
_DERIV_C, _DERIV_S = 0.0, -1.0


@jit
def _tap(c, left, right, derivative):
    if derivative:
        return c * _DERIV_C + (left - right) * _DERIV_S
    return c * _SMOOTH_C + (left + right) * _SMOOTH_S


@jit
def _pass_x(src, dst, derivative, mode, cval):
    """Along the rows of a plane (the last axis; both planes C-contiguous). The
    plane goes through as one long row, then each row's two ends are redone with
    the mode: a loop per row cost a third more (258x258 float32 plane: 27.8 -> 21.8 us)."""
    ny, nx = src.shape
    s = src.reshape(-1)
    d = dst.reshape(-1)
    # (shifted slices: an index computed as i - 1 is checked for wrapping around,
    # which keeps the loop scalar)
    total = ny * nx
    if total >= 2:
        left, centre, right, inside = s[: total - 2], s[1 : total - 1], s[2:], d[1 : total - 1]
        if derivative:
            for i in range(total - 2):
                inside[i] = np.float64(centre[i]) * _DERIV_C + (np.float64(left[i]) - np.float64(right[i])) * _DERIV_S
        else:
            for i in range(total - 2):
                inside[i] = np.float64(centre[i]) * _SMOOTH_C + (np.float64(left[i]) + np.float64(right[i])) * _SMOOTH_S
    lo = source_index(-1, nx, mode)
    hi = source_index(nx, nx, mode)
    for y in range(ny):
        row = src[y]
        out = dst[y]
        left = cval if lo < 0 else np.float64(row[lo])
        right = np.float64(row[1]) if nx > 1 else (cval if hi < 0 else np.float64(row[hi]))
        first = _tap(np.float64(row[0]), left, right, derivative)
        if nx > 1:
            left = np.float64(row[nx - 2])
            right = cval if hi < 0 else np.float64(row[hi])
            out[nx - 1] = _tap(np.float64(row[nx - 1]), left, right, derivative)
        out[0] = first


@jit
def _combine(prev, cur, nxt, prev_cval, next_cval, dst, derivative, cval):
    """dst = tap(cur, prev, nxt) over two planes' rows (or one plane's), ``cval``
    standing in for a neighbour beyond the edge in constant mode."""
    ny, nx = cur.shape
    for y in range(ny):
        c = cur[y]
        d = dst[y]
        p = prev[y]
        q = nxt[y]
        if derivative:
            for i in range(nx):
                left = cval if prev_cval else np.float64(p[i])
                right = cval if next_cval else np.float64(q[i])
                d[i] = np.float64(c[i]) * _DERIV_C + (left - right) * _DERIV_S
        else:
            for i in range(nx):
                left = cval if prev_cval else np.float64(p[i])
                right = cval if next_cval else np.float64(q[i])
                d[i] = np.float64(c[i]) * _SMOOTH_C + (left + right) * _SMOOTH_S


@jit
def _pass_y(src, dst, derivative, mode, cval):
    """Along the columns of a plane (its first axis)."""
    ny = src.shape[0]
    if ny >= 3:  # the rows inside in one go, only the first and last asking the mode
        # (fewer calls than one per row)
        _combine(src[0 : ny - 2], src[1 : ny - 1], src[2:ny], False, False, dst[1 : ny - 1], derivative, cval)
    step = ny - 1 if ny >= 3 else 1
    for y in range(0, ny, step):
        a = source_index(y - 1, ny, mode)
        b = source_index(y + 1, ny, mode)
        _combine(src[max(a, 0) : max(a, 0) + 1], src[y : y + 1], src[max(b, 0) : max(b, 0) + 1], a < 0, b < 0, dst[y : y + 1], derivative, cval)


@jit
def _pass_z(src, a, z, b, dst, derivative, cval):
    """Along z: planes ``a``, ``z``, ``b`` of ``src`` (-1: beyond a constant edge)."""
    _combine(src[max(a, 0)], src[z], src[max(b, 0)], a < 0, b < 0, dst, derivative, cval)


@jit
def _slot(cache, keys, s, need0, need1, need2):
    """The cache slot holding plane ``s``, or a free one (keys[j] = -2 - s marks it
    to be filled), never one of the planes needed now."""
    for j in range(3):
        if keys[j] == s:
            return j
    for j in range(3):
        k = keys[j]
        if k != need0 and k != need1 and k != need2:
            keys[j] = -2 - s
            return j
    return -1  # unreachable: three slots, at most three planes needed


@jit
def _derivative_planes(x, cache, keys, planes, along_y, mode, cval, slots):
    """For each plane index in ``planes`` (-1 for none), the slot of x's derivative
    along y or x in that plane, computed if not cached."""
    for k in range(3):
        s = planes[k]
        if s < 0:
            slots[k] = 0
            continue
        j = _slot(cache, keys, s, planes[0], planes[1], planes[2])
        if keys[j] != s:
            if along_y:
                _pass_y(x[s], cache[j], True, mode, cval)
            else:
                _pass_x(x[s], cache[j], True, mode, cval)
            keys[j] = s
        slots[k] = j


@jit
def _square_into(src, total, first):
    """Square ``src`` in place (rounded as stored), then start or add to ``total``."""
    ny, nx = src.shape
    for y in range(ny):
        s = src[y]
        t = total[y]
        for i in range(nx):
            v = np.float64(s[i])
            s[i] = v * v
        if first:
            for i in range(nx):
                t[i] = s[i]
        else:
            for i in range(nx):
                t[i] = np.float64(t[i]) + np.float64(s[i])


@jit
def _in_plane_axis(x, cache, keys, planes, along_y, use_z, a, b, work, response, total, first, m1, m2, cval, slots):
    """Plane z's sobel along y (``along_y``) or x, squared into ``total``: the
    derivative in the plane (cached for the neighbouring z), smoothing along z
    (planes a, z, b) when ``use_z``, then along the plane's other axis."""
    _derivative_planes(x, cache, keys, planes, along_y, m1 if along_y else m2, cval, slots)
    if use_z:
        _pass_z(cache, slots[0] if a >= 0 else -1, slots[1], slots[2] if b >= 0 else -1, work, False, cval)
        smoothed = work
    else:
        smoothed = cache[slots[1]]
    if along_y:
        _pass_x(smoothed, response, False, m2, cval)
    else:
        _pass_y(smoothed, response, False, m1, cval)
    _square_into(response, total, first)


@jit
def sobel_magnitude_planes(x, out, m0, m1, m2, cval, use_z, z0, y0, x0):
    """``out`` = scipy's sobel magnitude of ``x`` (nz, ny, nx) from ``(z0, y0, x0)``
    on, as far as ``out`` reaches; with ``use_z`` False each plane is a separate 2-D
    image (axes y and x only). Plane ``z`` of the result is written once plane
    ``z + 1`` is done, so ``out`` may lie over ``x`` (packed at its start) as long as
    no plane reads a plane before it (wrap along z does, at the last plane)."""
    nz, ny, nx = x.shape
    plane_a = np.empty((ny, nx), out.dtype)
    plane_b = np.empty((ny, nx), out.dtype)
    total = np.empty((ny, nx), out.dtype)
    dy = np.empty((3, ny, nx), out.dtype)
    dx = np.empty((3, ny, nx), out.dtype)
    keys_y = np.full(3, -1 << 62, np.int64)
    keys_x = np.full(3, -1 << 62, np.int64)
    planes = np.empty(3, np.int64)
    slots = np.empty(3, np.int64)
    pending = np.empty((out.shape[1], out.shape[2]), out.dtype)
    a = b = -1
    for z in range(z0, z0 + out.shape[0]):
        if use_z:
            a = source_index(z - 1, nz, m0)
            b = source_index(z + 1, nz, m0)
            # axis 0: derivative along z, then smoothing along y, then x
            _pass_z(x, a, z, b, plane_a, True, cval)
            _pass_y(plane_a, plane_b, False, m1, cval)
            _pass_x(plane_b, plane_a, False, m2, cval)
            _square_into(plane_a, total, True)
            planes[0], planes[1], planes[2] = a, z, b
        else:
            planes[0], planes[1], planes[2] = -1, z, -1
        # axis 1: derivative along y, then smoothing along z, then x;
        # axis 2: derivative along x, then smoothing along z, then y
        _in_plane_axis(x, dy, keys_y, planes, True, use_z, a, b, plane_a, plane_b, total, not use_z, m1, m2, cval, slots)
        _in_plane_axis(x, dx, keys_x, planes, False, use_z, a, b, plane_a, plane_b, total, False, m1, m2, cval, slots)
        if z > z0:
            out[z - 1 - z0] = pending
        for y in range(out.shape[1]):
            for i in range(out.shape[2]):
                pending[y, i] = np.sqrt(np.float64(total[y0 + y, x0 + i]))
    if out.shape[0] > 0:
        out[out.shape[0] - 1] = pending


def sobel_magnitude(
    x: np.ndarray, modes: tuple[str, ...], cval: float, dtype: np.dtype, keep: tuple[slice, ...] | None = None, overwrite_input: bool = False
) -> np.ndarray:
    """Sobel magnitude over all axes of a 2-D or 3-D block, in ``dtype`` (float32
    or float64), equal to scipy's bit for bit; only its part ``keep`` (slices with
    bounds), written over ``x`` when ``overwrite_input`` allows and it is safe."""
    codes = [MODE_CODES[m] for m in modes]
    src = np.ascontiguousarray(x)
    mine = overwrite_input and src is x and src.dtype == dtype and src.flags.writeable
    keep = keep or tuple(slice(0, n) for n in x.shape)
    if src.ndim == 2:
        src = src[np.newaxis]
        codes = [0, *codes]
        keep = (slice(0, 1), *keep)
    shape = tuple(k.stop - k.start for k in keep)
    # Plane z reads planes z - 1 to z + 1; over x, the result of plane z - 1 (at or
    # before plane z - 1 of x) lands once plane z is done, on planes no later plane
    # reads, unless the last plane reads the first (wrap).
    if mine and not (codes[0] == MODE_CODES["wrap"] and keep[0].stop == src.shape[0]):
        out = src.reshape(-1)[: int(np.prod(shape))].reshape(shape)
    else:
        out = np.empty(shape, dtype)
    sobel_magnitude_planes(src, out, codes[0], codes[1], codes[2], np.float64(cval), x.ndim == 3, keep[0].start, keep[1].start, keep[2].start)
    return out.reshape(shape[1:] if x.ndim == 2 else shape)
