"""Rank filters (median, percentile, rank) with selection networks.

scipy (NI_RankFilter) copies each window into a float64 buffer and runs a
quickselect per voxel. Here a window's values sit in lanes (one lane per output
voxel along the last axis) and a fixed network of compare-exchanges, pruned to the
one rank wanted, runs on all lanes at once, in the input's own dtype.

The result is the same value: the rank-th smallest of the window is unique once
there are no NaNs (whose order depends on the algorithm) and no negative zeros
(equal to +0 but with other bits), and every value of a dtype up to 32 bits is
exact in scipy's float64 buffer. Blocks holding NaN or -0.0 go to scipy.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from batchproc.kernels._jit import jit
from batchproc.kernels.buffers import empty
from batchproc.kernels.lines import extend

#: Lanes per sweep of the network: one row segment of output voxels.
LANES = 256

#: Windows larger than this go to scipy (the network grows as n log^2 n), unless
#: the sliding histogram takes them (:func:`histogram_pays`).
MAX_WINDOW = 343
#: Integer images of 8 or 16 bits (by itemsize) over a full box of more voxels
#: than this take the sliding histogram (:func:`box_rank_histogram`), of any size:
#: below it the sorting network is faster (docs/concepts/kernels.md, "Measured choices").
HISTOGRAM_AFTER = {1: 27, 2: 64}

#: 16-bit blocks take the histogram only while their values span fewer than this:
#: where the selected value jumps across the range (a 0/65535 mask) it passes up to
#: this many coarse bins per voxel, and the network is faster.
HISTOGRAM_SPAN_16 = 4096


def histogram_pays(x: np.ndarray, rank: int, count: int, footprint: np.ndarray) -> bool:
    """Is the sliding histogram the faster kernel for this block and window? 8-bit
    images: any full box of more than 27 voxels. 16-bit images: a full box of more
    than 64, at least 3 voxels along the last axis (the window slides along it; a
    box 1 voxel wide is new at every step), not the smallest or largest rank (scipy
    takes those to its separable minimum and maximum), and values spanning fewer
    than :data:`HISTOGRAM_SPAN_16`."""
    if x.dtype.kind not in "iu" or x.dtype.itemsize not in HISTOGRAM_AFTER or count <= HISTOGRAM_AFTER[x.dtype.itemsize] or not footprint.all():
        return False
    if x.dtype.itemsize == 1:
        return True
    return 0 < rank < count - 1 and footprint.shape[-1] >= 3 and int(x.max()) - int(x.min()) < HISTOGRAM_SPAN_16


@lru_cache(maxsize=64)
def selection_network(n: int, rank: int) -> np.ndarray:
    """Compare-exchanges that leave the ``rank``-th smallest of ``n`` values at
    position ``rank``: Batcher's odd-even merge sort, pruned backwards to the
    exchanges that output depends on.

    Rows are (low, high, kind): kind 0 exchanges (min to low, max to high), 1 only
    keeps the min at low, 2 only keeps the max at high.
    """
    return ranks_network(n, (rank,))


@lru_cache(maxsize=64)
def ranks_network(n: int, ranks: tuple[int, ...]) -> np.ndarray:
    """:func:`selection_network` for several ranks at once: afterwards position
    ``r`` holds the ``r``-th smallest for every ``r`` in ``ranks``."""
    size = 1 << max(0, (n - 1).bit_length())
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p) and i + j + k < n:
                        # A padding value (index >= n) would be +inf: never moved.
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    needed = set(ranks)
    kept = []
    for low, high in reversed(pairs):
        want_low, want_high = low in needed, high in needed
        if not (want_low or want_high):
            continue
        kept.append((low, high, 0 if want_low and want_high else (1 if want_low else 2)))
        needed.update((low, high))
    return np.array(kept[::-1], dtype=np.int64).reshape(-1, 3)


#: Full boxes (depth, rows, columns) and ranks (None: any rank, the whole network
#: then the rank asked for) whose network is written out as straight-line code in
#: :mod:`batchproc.kernels.unrolled`, by function name. The window's values then
#: stay in registers, one output per vector lane, where :func:`_select_planes`
#: sweeps every exchange through memory (docs/concepts/kernels.md, "Measured choices").
UNROLLED = {((3, 3, 3), 13): "median_3x3x3", ((1, 3, 3), 4): "median_3x3", ((3, 3, 3), None): "rank_3x3x3", ((1, 3, 3), None): "rank_3x3"}


def unrolled_source() -> str:
    """The source of :mod:`batchproc.kernels.unrolled`: each network of
    :data:`UNROLLED` as one compiled function ``name(padded, rank, out)``. The module is
    generated, and a test keeps it equal to this::

        python -c "from batchproc.kernels.rank import unrolled_source as s; print(s(), end='')" > batchproc/kernels/unrolled.py
    """
    lines = [
        '"""Selection networks written out, one function per full box and rank.',
        "",
        "Generated by batchproc.kernels.rank.unrolled_source; do not edit.",
        '"""',
        "",
        "from batchproc.kernels._jit import jit",
        "",
    ]
    for (box, rank), name in UNROLLED.items():
        depth, rows, cols = box
        n = depth * rows * cols
        which = f"rank {rank} (counted from 0; ``rank`` must be {rank})" if rank is not None else "rank ``rank`` (counted from 0)"
        lines += [
            "",
            "@jit",
            f"def {name}(padded, rank, out):",
            f'    """out[z, y, x] = the value of {which} in padded[z:z + {depth}, y:y + {rows}, x:x + {cols}]."""',
            "    nz, ny, nx = out.shape",
            "    for z in range(nz):",
            "        for y in range(ny):",
        ]
        lines += [f"            r{dz * rows + dy} = padded[z + {dz}, y + {dy}]" for dz in range(depth) for dy in range(rows)]
        lines += ["            o = out[z, y]", "            for x in range(nx):"]
        lines += [
            f"                v{(dz * rows + dy) * cols + dx} = r{dz * rows + dy}[x + {dx}]" for dz in range(depth) for dy in range(rows) for dx in range(cols)
        ]
        network = selection_network(n, rank) if rank is not None else ranks_network(n, tuple(range(n)))
        for low, high, kind in network:
            a, b = f"v{low}", f"v{high}"
            if kind == 0:
                lines.append(f"                {a}, {b} = ({a}, {b}) if {a} < {b} else ({b}, {a})")
            elif kind == 1:
                lines.append(f"                {a} = {a} if {a} < {b} else {b}")
            else:
                lines.append(f"                {b} = {b} if {a} < {b} else {a}")
        if rank is not None:
            lines.append(f"                o[x] = v{rank}")
        else:  # every position sorted: the one asked for (the same for the whole loop)
            lines.append("                o[x] = " + " else ".join(f"v{r} if rank == {r}" for r in range(n - 1)) + f" else v{n - 1}")
    return "\n".join(lines) + "\n"


@jit
def _select_planes(padded, offsets, network, rank, out):
    """out[z, y, x] = the ``rank``-th smallest of padded[z + dz, y + dy, x + dx]
    over the window's ``offsets`` (rows of dz, dy, dx)."""
    nz, ny, nx = out.shape
    m = offsets.shape[0]
    lanes = np.empty((m, LANES), out.dtype)
    for z in range(nz):
        for y in range(ny):
            for x0 in range(0, nx, LANES):
                width = min(LANES, nx - x0)
                for e in range(m):
                    row = padded[z + offsets[e, 0], y + offsets[e, 1]]
                    start = x0 + offsets[e, 2]
                    lane = lanes[e]
                    values = row[start : start + width]  # (a slice: start + t would be checked for wrapping)
                    for t in range(width):
                        lane[t] = values[t]
                for c in range(network.shape[0]):
                    a = lanes[network[c, 0]]
                    b = lanes[network[c, 1]]
                    kind = network[c, 2]
                    if kind == 0:
                        for t in range(width):
                            va = a[t]
                            vb = b[t]
                            a[t] = va if va < vb else vb
                            b[t] = vb if va < vb else va
                    elif kind == 1:
                        for t in range(width):
                            va = a[t]
                            vb = b[t]
                            a[t] = va if va < vb else vb
                    else:
                        for t in range(width):
                            va = a[t]
                            vb = b[t]
                            b[t] = vb if va < vb else va
                result = lanes[rank]
                o = out[z, y, x0 : x0 + width]
                for t in range(width):
                    o[t] = result[t]


def rank_filter(x: np.ndarray, rank: int, footprint: np.ndarray, origins: tuple[int, ...], mode: str, cval) -> np.ndarray:
    """The ``rank``-th smallest over ``footprint`` (one dimension per axis of the
    2-D or 3-D ``x``), as scipy.ndimage.rank_filter computes it; ``cval`` is
    already a value of x's dtype."""
    padded, out = _padded_planes(x, footprint.shape, origins, mode, cval)
    box = (1, *footprint.shape) if x.ndim == 2 else tuple(footprint.shape)
    name = UNROLLED.get((box, rank)) or UNROLLED.get((box, None))
    if footprint.all() and name is not None:
        from batchproc.kernels import unrolled

        getattr(unrolled, name)(padded, rank, out)
        return out.reshape(x.shape)
    offsets = np.argwhere(footprint).astype(np.int64)
    if x.ndim == 2:
        offsets = np.column_stack([np.zeros(len(offsets), np.int64), offsets])
    _select_planes(padded, np.ascontiguousarray(offsets), selection_network(len(offsets), rank), rank, out)
    return out.reshape(x.shape)


def _padded_planes(x: np.ndarray, shape: tuple[int, ...], origins: tuple[int, ...], mode: str, cval) -> tuple[np.ndarray, np.ndarray]:
    """``x`` extended by a window of ``shape`` at ``origins`` with scipy's ``mode``,
    and an empty output, both 3-D (a 2-D ``x`` as one plane)."""
    before = tuple(s // 2 + o for s, o in zip(shape, origins, strict=True))
    after = tuple(s - 1 - b for s, b in zip(shape, before, strict=True))
    padded = extend(x, before, after, mode, cval)
    if x.ndim == 2:
        return padded[np.newaxis], empty((1, *x.shape), x.dtype)
    return padded, empty(x.shape, x.dtype)


@jit
def _box_rank_histogram(padded, wz, wy, wx, rank, offset, bits, shift, out):
    """The ``rank``-th smallest over a wz x wy x wx box of ``bits``-bit integers
    (shifted by ``offset`` to start at 0), from a histogram slid along each row
    (Huang's algorithm): per output, 2 * wz * wy bin updates, then the selected
    value moves to its new place, whatever the box's length along x.

    With ``shift < bits`` (16-bit images) a second, coarse histogram counts whole
    groups of ``1 << shift`` values, which the selected value passes at once; with
    ``shift == bits`` (8-bit images) there is only the fine one.
    """
    depth, rows, cols = out.shape
    fine = np.zeros(1 << bits, np.int32)
    coarse = np.zeros(1 << (bits - shift), np.int32)
    group = 1 << shift
    two = shift < bits
    for z in range(depth):
        for y in range(rows):
            for dz in range(wz):
                for dy in range(wy):
                    for dx in range(wx):
                        v = np.int64(padded[z + dz, y + dy, dx]) + offset
                        fine[v] += 1
                        if two:
                            coarse[v >> shift] += 1
            value = 0
            below = 0  # voxels of the window smaller than ``value``
            for x in range(cols):
                if x > 0:
                    for dz in range(wz):
                        for dy in range(wy):
                            leaving = np.int64(padded[z + dz, y + dy, x - 1]) + offset
                            fine[leaving] -= 1
                            if two:
                                coarse[leaving >> shift] -= 1
                            if leaving < value:
                                below -= 1
                            entering = np.int64(padded[z + dz, y + dy, x + wx - 1]) + offset
                            fine[entering] += 1
                            if two:
                                coarse[entering >> shift] += 1
                            if entering < value:
                                below += 1
                while below > rank:
                    if two and value % group == 0 and below - coarse[(value >> shift) - 1] > rank:
                        value -= group
                        below -= coarse[value >> shift]
                    else:
                        value -= 1
                        below -= fine[value]
                while below + fine[value] <= rank:
                    if two and value % group == 0 and below + coarse[value >> shift] <= rank:
                        below += coarse[value >> shift]
                        value += group
                    else:
                        below += fine[value]
                        value += 1
                out[z, y, x] = value - offset
            # The row's last window leaves the histograms empty for the next row
            # (cheaper than clearing 65536 bins).
            for dz in range(wz):
                for dy in range(wy):
                    for dx in range(wx):
                        v = np.int64(padded[z + dz, y + dy, cols - 1 + dx]) + offset
                        fine[v] -= 1
                        if two:
                            coarse[v >> shift] -= 1


def box_rank_histogram(x: np.ndarray, rank: int, shape: tuple[int, ...], origins: tuple[int, ...], mode: str, cval) -> np.ndarray:
    """The ``rank``-th smallest over a full box of ``shape`` for a 2-D or 3-D
    8- or 16-bit integer ``x``, as scipy.ndimage.rank_filter computes it
    (integers: the order of equal values cannot show); ``cval`` is a value of
    x's dtype."""
    padded, out = _padded_planes(x, shape, origins, mode, cval)
    box = (1, *shape) if x.ndim == 2 else tuple(shape)
    bits = 8 * x.dtype.itemsize
    offset = 1 << (bits - 1) if x.dtype.kind == "i" else 0
    _box_rank_histogram(padded, box[0], box[1], box[2], rank, offset, bits, bits if bits == 8 else 4, out)
    return out.reshape(x.shape)
