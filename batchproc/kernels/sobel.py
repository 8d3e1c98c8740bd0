"""Sobel gradient magnitude in one pass over the block, plane by plane.

scipy computes ``sobel(x, a)`` as a derivative pass along ``a`` and a smoothing pass
along each other axis in increasing order, each pass rounding to the output dtype;
the magnitude then squares, sums in axis order and takes the square root, each in
the output dtype. This kernel replays every one of those roundings, but on one z
plane at a time (the passes along z read three planes), so that its working set is a
few planes instead of three whole float64 responses: bit-identical to scipy, a
fraction of the memory traffic.

The passes' arithmetic is float64 (``np.float64(v)``: numba's ``float(v)`` keeps a
float32 a float32), rounded to the output dtype after each step as scipy stores it.
For a float32 output that equals native float32 arithmetic: a float64 result of one
+, * or sqrt on float32 operands, rounded to float32, is the correctly rounded
float32 result (53 >= 2 * 24 + 2).

An integer input of at most 16 bits with a float32 output (and an integral cval
of at most 2^16) takes the passes in float32 instead, twice the lanes of float64: every value they make is
then an integer below 2^21 in magnitude (a derivative at most doubles the input's
range, each smoothing quadruples it), which float32 and float64 both hold exactly, so
no pass rounds in either, and the responses equal scipy's. The only difference is
the sign of a zero response, which the square that follows removes. The arithmetic
type is the ``like`` argument's (a 0 of it), resolved when numba compiles.
"""

from __future__ import annotations

import numpy as np

from batchproc.kernels._jit import OPTIONS, jit, overload, types
from batchproc.kernels.buffers import empty
from batchproc.kernels.lines import MODE_CODES, source_index

# scipy's weights as its C loop uses them (NI_Correlate1D, size 3): a symmetric
# [1, 2, 1] gives c * 2 + (left + right) * 1; an antisymmetric [-1, 0, 1] gives
# c * 0 + (left - right) * -1. c * 0 is kept: it decides the sign of a zero and
# turns inf into nan exactly as scipy does.
_SMOOTH_C, _SMOOTH_S = 2.0, 1.0
_DERIV_C, _DERIV_S = 0.0, -1.0


def _as(value, like):
    """``value`` in the passes' arithmetic type: that of ``like``."""
    return np.float64(value)


@overload(_as, jit_options=OPTIONS)
def _as_typed(value, like):
    if isinstance(like, types.Float) and like.bitwidth == 32:
        return lambda value, like: np.float32(value)
    return lambda value, like: np.float64(value)


def _planes(shape, rounding):
    """An empty array of ``shape`` in the type of ``rounding`` (the result's)."""
    return np.empty(shape, np.float64)


@overload(_planes, jit_options=OPTIONS)
def _planes_typed(shape, rounding):
    if isinstance(rounding, types.Float) and rounding.bitwidth == 32:
        return lambda shape, rounding: np.empty(shape, np.float32)
    return lambda shape, rounding: np.empty(shape, np.float64)


@jit
def _tap(c, left, right, derivative, like):
    if derivative:
        return c * _as(_DERIV_C, like) + (left - right) * _as(_DERIV_S, like)
    return c * _as(_SMOOTH_C, like) + (left + right) * _as(_SMOOTH_S, like)


@jit
def _pass_x(src, dst, derivative, mode, cval, like):
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
        dc, ds, sc, ss = _as(_DERIV_C, like), _as(_DERIV_S, like), _as(_SMOOTH_C, like), _as(_SMOOTH_S, like)
        if derivative:
            for i in range(total - 2):
                inside[i] = _as(centre[i], like) * dc + (_as(left[i], like) - _as(right[i], like)) * ds
        else:
            for i in range(total - 2):
                inside[i] = _as(centre[i], like) * sc + (_as(left[i], like) + _as(right[i], like)) * ss
    lo = source_index(-1, nx, mode)
    hi = source_index(nx, nx, mode)
    edge = _as(cval, like)
    for y in range(ny):
        row = src[y]
        out = dst[y]
        left = edge if lo < 0 else _as(row[lo], like)
        right = _as(row[1], like) if nx > 1 else (edge if hi < 0 else _as(row[hi], like))
        first = _tap(_as(row[0], like), left, right, derivative, like)
        if nx > 1:
            left = _as(row[nx - 2], like)
            right = edge if hi < 0 else _as(row[hi], like)
            out[nx - 1] = _tap(_as(row[nx - 1], like), left, right, derivative, like)
        out[0] = first


@jit
def _combine(prev, cur, nxt, prev_cval, next_cval, dst, derivative, cval, like):
    """dst = tap(cur, prev, nxt) over two planes' rows (or one plane's), ``cval``
    standing in for a neighbour beyond the edge in constant mode."""
    ny, nx = cur.shape
    edge = _as(cval, like)
    dc, ds, sc, ss = _as(_DERIV_C, like), _as(_DERIV_S, like), _as(_SMOOTH_C, like), _as(_SMOOTH_S, like)
    for y in range(ny):
        c = cur[y]
        d = dst[y]
        p = prev[y]
        q = nxt[y]
        if derivative:
            for i in range(nx):
                left = edge if prev_cval else _as(p[i], like)
                right = edge if next_cval else _as(q[i], like)
                d[i] = _as(c[i], like) * dc + (left - right) * ds
        else:
            for i in range(nx):
                left = edge if prev_cval else _as(p[i], like)
                right = edge if next_cval else _as(q[i], like)
                d[i] = _as(c[i], like) * sc + (left + right) * ss


@jit
def _strip_y(src, r0, r1, dst, derivative, mode, cval, like):
    """Rows ``r0`` to ``r1`` of the pass along the columns of a plane (its first
    axis) into ``dst`` (``r1 - r0`` rows): the rows inside in one go, only the
    plane's first and last asking the mode (fewer calls than one per row)."""
    ny = src.shape[0]
    lo, hi = max(r0, 1), min(r1, ny - 1)
    if hi > lo:
        _combine(src[lo - 1 : hi - 1], src[lo:hi], src[lo + 1 : hi + 1], False, False, dst[lo - r0 : hi - r0], derivative, cval, like)
    for y in range(r0, r1):
        if lo <= y < hi:
            continue
        a = source_index(y - 1, ny, mode)
        b = source_index(y + 1, ny, mode)
        _combine(src[max(a, 0) : max(a, 0) + 1], src[y : y + 1], src[max(b, 0) : max(b, 0) + 1], a < 0, b < 0, dst[y - r0 : y - r0 + 1], derivative, cval, like)


@jit
def _pass_y(src, dst, derivative, mode, cval, like):
    """Along the columns of a plane (its first axis)."""
    _strip_y(src, 0, src.shape[0], dst, derivative, mode, cval, like)


@jit
def _pass_z(src, a, z, b, dst, derivative, cval, like):
    """Along z: planes ``a``, ``z``, ``b`` of ``src`` (-1: beyond a constant edge)."""
    _combine(src[max(a, 0)], src[z], src[max(b, 0)], a < 0, b < 0, dst, derivative, cval, like)


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
def _derivative_planes(x, cache, keys, planes, along_y, mode, cval, slots, like):
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
                _pass_y(x[s], cache[j], True, mode, cval, like)
            else:
                _pass_x(x[s], cache[j], True, mode, cval, like)
            keys[j] = s
        slots[k] = j


@jit
def _square_into(src, total, first):
    """Square ``src`` in place (rounded as stored), then start or add to ``total``:
    in the output's own arithmetic (see the module's text). The square is stored
    first, as numpy's square and add do: fused into the add, it let the compiler
    swap the add's operands, and which NaN comes first decides the sign of the one
    that comes out."""
    ny, nx = src.shape
    for y in range(ny):
        s = src[y]
        t = total[y]
        for i in range(nx):
            s[i] = s[i] * s[i]
        if first:
            for i in range(nx):
                t[i] = s[i]
        else:
            for i in range(nx):
                t[i] = t[i] + s[i]


#: Rows per strip of a plane's last passes: a strip's buffers (a few rows of a
#: plane) stay in the first cache levels between the passes that share them.
STRIP = 32


@jit
def _finish(t, row, x0, bounds, above, below):
    """A row of the result from its sum of squares ``t``: the square root, or with
    ``bounds`` (1: above, 2: below, 3: both) the mask ``above < root < below``
    (exact: the bounds are numbers of the root's own type)."""
    mx = row.shape[0]
    if bounds == 0:
        for i in range(mx):
            row[i] = np.sqrt(t[x0 + i])
    elif bounds == 1:
        for i in range(mx):
            row[i] = np.sqrt(t[x0 + i]) > above
    elif bounds == 2:
        for i in range(mx):
            row[i] = np.sqrt(t[x0 + i]) < below
    else:
        for i in range(mx):
            v = np.sqrt(t[x0 + i])
            row[i] = (v > above) & (v < below)


@jit
def sobel_magnitude_planes(x, out, m0, m1, m2, cval, use_z, z0, y0, x0, like, direct, rounding, bounds, above, below):
    """``out`` = scipy's sobel magnitude of ``x`` (nz, ny, nx) from ``(z0, y0, x0)``
    on, as far as ``out`` reaches; with ``use_z`` False each plane is a separate 2-D
    image (axes y and x only). The magnitude is in the type of ``rounding``; with
    ``bounds`` (see :func:`_finish`) ``out`` is the threshold's mask of it.

    Per plane, the passes that need the whole plane (the derivatives, cached for
    the neighbouring planes; the derivative along z; axis 2's smoothing along z)
    go over it; the rest go a strip of rows at a time, all three responses of a
    strip squared and summed while it is in cache. Without ``direct``, plane ``z``
    of the result is written once plane ``z + 1`` is done, so ``out`` may lie over
    ``x`` (packed at its start) as long as no plane reads a plane before it (wrap
    along z does, at the last plane)."""
    nz, ny, nx = x.shape
    my, mx = out.shape[1], out.shape[2]
    plane_a = _planes((ny, nx), rounding)
    plane_b = _planes((ny, nx), rounding)
    dy = _planes((3, ny, nx), rounding)
    dx = _planes((3, ny, nx), rounding)
    s1 = _planes((STRIP, nx), rounding)
    s2 = _planes((STRIP, nx), rounding)
    total = _planes((STRIP, nx), rounding)
    keys_y = np.full(3, -1 << 62, np.int64)
    keys_x = np.full(3, -1 << 62, np.int64)
    planes = np.empty(3, np.int64)
    slots_y = np.empty(3, np.int64)
    slots_x = np.empty(3, np.int64)
    pending = np.empty((my if not direct else 1, mx), out.dtype)
    a = b = -1
    for z in range(z0, z0 + out.shape[0]):
        if use_z:
            a = source_index(z - 1, nz, m0)
            b = source_index(z + 1, nz, m0)
            # axis 0: derivative along z (here), then smoothing along y, then x
            _pass_z(x, a, z, b, plane_a, True, cval, like)
            planes[0], planes[1], planes[2] = a, z, b
        else:
            planes[0], planes[1], planes[2] = -1, z, -1
        # axis 1: derivative along y, then smoothing along z, then x;
        # axis 2: derivative along x, then smoothing along z (here), then y
        _derivative_planes(x, dy, keys_y, planes, True, m1, cval, slots_y, like)
        _derivative_planes(x, dx, keys_x, planes, False, m2, cval, slots_x, like)
        if use_z:
            _pass_z(dx, slots_x[0] if a >= 0 else -1, slots_x[1], slots_x[2] if b >= 0 else -1, plane_b, False, cval, like)
            across = plane_b
        else:
            across = dx[slots_x[1]]
        if z > z0 and not direct:
            out[z - 1 - z0] = pending
        for r0 in range(y0, y0 + my, STRIP):
            r1 = min(y0 + my, r0 + STRIP)
            n = r1 - r0
            if use_z:
                _strip_y(plane_a, r0, r1, s1[:n], False, m1, cval, like)
                _pass_x(s1[:n], s2[:n], False, m2, cval, like)
                _square_into(s2[:n], total[:n], True)
                ya, yz, yb = slots_y[0] if a >= 0 else -1, slots_y[1], slots_y[2] if b >= 0 else -1
                _combine(dy[max(ya, 0), r0:r1], dy[yz, r0:r1], dy[max(yb, 0), r0:r1], ya < 0, yb < 0, s1[:n], False, cval, like)
                _pass_x(s1[:n], s2[:n], False, m2, cval, like)
            else:
                _pass_x(dy[slots_y[1], r0:r1], s2[:n], False, m2, cval, like)
            _square_into(s2[:n], total[:n], not use_z)
            _strip_y(across, r0, r1, s2[:n], False, m1, cval, like)
            _square_into(s2[:n], total[:n], False)
            for y in range(n):
                _finish(total[y], out[z - z0, r0 - y0 + y] if direct else pending[r0 - y0 + y], x0, bounds, above, below)
    if out.shape[0] > 0 and not direct:
        out[out.shape[0] - 1] = pending


def sobel_magnitude(
    x: np.ndarray,
    modes: tuple[str, ...],
    cval: float,
    dtype: np.dtype,
    keep: tuple[slice, ...] | None = None,
    overwrite_input: bool = False,
    above: float | None = None,
    below: float | None = None,
) -> np.ndarray:
    """Sobel magnitude over all axes of a 2-D or 3-D block, in ``dtype`` (float32
    or float64), equal to scipy's bit for bit; only its part ``keep`` (slices with
    bounds), written over ``x`` when ``overwrite_input`` allows and it is safe.

    With ``above`` and/or ``below`` (numbers ``dtype`` holds exactly) the result is
    the mask ``above < magnitude < below`` instead, as the threshold of the
    magnitude gives it, without the magnitude's own array."""
    codes = [MODE_CODES[m] for m in modes]
    src = np.ascontiguousarray(x)
    bounds = (above is not None) + 2 * (below is not None)
    result = np.dtype(bool) if bounds else np.dtype(dtype)
    mine = overwrite_input and src is x and src.dtype == result and src.flags.writeable
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
        out = empty(shape, result)
    # (a float64 output keeps float64 passes: float32 ones between float64 planes were slower)
    exact = dtype == np.float32 and src.dtype.kind in "iu" and src.dtype.itemsize <= 2
    exact = exact and (MODE_CODES["constant"] not in codes or float(cval).is_integer() and abs(cval) <= 2**16)
    like = np.float32(0) if exact else np.float64(0)
    direct = not np.may_share_memory(src, out)
    rounding = np.dtype(dtype).type(0)
    # (in the magnitude's own type, which holds them exactly: a float32 compared
    # with a float64 in the loop is widened first)
    limits = (rounding.dtype.type(0 if above is None else above), rounding.dtype.type(0 if below is None else below))
    sobel_magnitude_planes(
        src,
        out,
        codes[0],
        codes[1],
        codes[2],
        np.float64(cval),
        x.ndim == 3,
        keep[0].start,
        keep[1].start,
        keep[2].start,
        like,
        direct,
        rounding,
        bounds,
        *limits,
    )
    return out.reshape(shape[1:] if x.ndim == 2 else shape)
