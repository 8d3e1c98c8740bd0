"""Per-object tables of one block in one pass over its voxels: the count, sum,
extremes, bounding box and coordinate sums of each label.

Labels are placed by counting, not sorting: :func:`key_rows` gives each label
value present (within a span ``low .. low + span``) its row in sorted order. The
sums run in C order over the voxels, in float64 for floats and in the input's
integer accumulator otherwise: the order numpy's ``add.at`` and ``bincount`` use,
so the results equal theirs bit for bit.
"""

from __future__ import annotations

import numpy as np

from batchproc.kernels._jit import jit


@jit
def key_rows(keys, low, span, skip_zero):  # pragma: no cover - compiled
    """Each value of ``low .. low + span`` present in ``keys``: its row among them
    in sorted order (-1 where absent), and how many there are. ``skip_zero``: the
    key 0 takes no row."""
    place = np.full(span, -1, np.int32)
    for i in range(keys.size):
        k = keys[i]
        if skip_zero and k == 0:
            continue
        place[k - low] = 0
    rows = 0
    for j in range(span):
        if place[j] == 0:
            place[j] = rows
            rows += 1
    return place, rows


@jit
def tabulate(
    keys, values, low, place, shape, origin, skip_zero, count, sums, mins, maxs, lo, hi, coords, moments, do_sum, do_minmax, do_bbox, do_coords, do_moments
):  # pragma: no cover - compiled
    """Add the voxels of one block (``keys`` and ``values`` in C order, the block of
    ``shape`` at ``origin``) into the rows of ``place``."""
    ndim = shape.size
    pos = np.zeros(ndim, np.int64)
    for i in range(keys.size):
        k = keys[i]
        if not (skip_zero and k == 0):
            r = place[k - low]
            count[r] += 1
            if do_sum:
                sums[r] += values[i]
            if do_minmax:
                v = values[i]
                if v < mins[r]:
                    mins[r] = v
                if v > maxs[r]:
                    maxs[r] = v
            if do_bbox or do_coords or do_moments:
                for a in range(ndim):
                    c = pos[a] + origin[a]
                    if do_bbox:
                        if c < lo[r, a]:
                            lo[r, a] = c
                        if c > hi[r, a]:
                            hi[r, a] = c
                    if do_coords:
                        coords[r, a] += np.float64(c)
                    if do_moments:
                        moments[r, a] += np.float64(values[i]) * np.float64(c)
        a = ndim - 1
        while a >= 0:
            pos[a] += 1
            if pos[a] < shape[a]:
                break
            pos[a] = 0
            a -= 1
