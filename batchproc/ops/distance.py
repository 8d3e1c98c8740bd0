"""``distance_transform_edt``: scipy's exact Euclidean distance transform, lazily
and in chunks.

The squared distance is separable: a pass along each axis in turn, each over whole
lines (:mod:`batchproc.kernels.edt`). Axis 0 is done a column of blocks at a time
into a scratch file on local disk, the other axes a slab of planes at a time from
it (:func:`edt_apply`), so memory stays at a few blocks whatever the volume.
Squared distances are summed in
scipy's order, so without ``sampling`` (or with integer sampling) they are exact
integers and the distances equal scipy's bit for bit; with other spacings, where
two background voxels are all but equally near, the one taken may differ from
scipy's by the last bit (docs/concepts/exactness.md).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from batchproc.ops import _checks as c
from batchproc.ops._registry import Operation, Param, register


def _spacing(sampling: Any, ndim: int) -> tuple[float, ...]:
    if sampling is None:
        return (1.0,) * ndim
    values = np.atleast_1d(np.asarray(sampling, dtype=np.float64))
    if values.size == 1:
        return (float(values[0]),) * ndim
    return tuple(float(v) for v in values)


#: Where a squared distance is an integer, the scratch holds it as uint32, this
#: value standing for "no background on the line yet" (infinity).
NOT_REACHED = np.iinfo(np.uint32).max


def _whole_lines(x: Any, spacing: tuple[float, ...]) -> Any:
    """The transform of a 1-D array (or an empty one): its one line is whole."""

    from batchproc.kernels.edt import envelope

    def transform(block: np.ndarray) -> np.ndarray:
        f = np.where(block == 0, 0.0, np.inf)
        for axis in range(block.ndim):
            f = envelope(f, axis, spacing[axis])
        if block.size and not (block == 0).any():
            f = _no_background(block.shape, spacing, 0)
        return np.sqrt(f)

    return x.rechunk(-1).map_blocks(transform, dtype=np.float64, meta=np.empty((0,) * x.ndim, np.float64)).rechunk(x.chunks)


def _no_background(shape: tuple[int, ...], spacing: tuple[float, ...], z0: int) -> np.ndarray:
    """scipy's squared distances where the array holds no background at all: its
    feature transform points every voxel at (-1, 0, ..., 0)."""
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    f = np.zeros(shape, np.float64)
    for axis, g in enumerate(grids):
        d = ((g + z0 + 1) if axis == 0 else g) * spacing[axis]
        f = f + d * d
    return f


def _stage(block: np.ndarray, box: tuple[tuple[int, int], ...], staging: Any) -> None:
    """One input block into the staging scratch, where the columns read it."""
    staging.write(tuple(slice(lo, hi) for lo, hi in box), block)


def _column(blocks: Any, box: tuple[tuple[int, int], ...], scratch: Any, spacing: tuple[float, ...], tile: tuple[int, ...], *staged: Any) -> bool:
    """The first pass over one column (whole along axis 0): its input ``blocks``,
    or its part of the staging scratch they were written to (``staged``: the
    writes, waited for); each tile of ``tile`` across the other axes in turn,
    written to the scratch. Whether the column holds background."""
    from batchproc.kernels.edt import envelope

    if isinstance(blocks, list):
        column = np.concatenate(blocks, axis=0) if len(blocks) > 1 else blocks[0]
    else:
        try:
            column = blocks.read((slice(None), *(slice(lo, hi) for lo, hi in box)))
        finally:
            blocks.release()
    found = False
    for corner in itertools.product(*(range(0, hi - lo, t) for (lo, hi), t in zip(box, tile, strict=True))):
        part = tuple(slice(c, min(c + t, hi - lo)) for c, t, (lo, hi) in zip(corner, tile, box, strict=True))
        piece = column[(slice(None), *part)]
        background = piece == 0
        found = found or bool(background.any())
        f = envelope(np.where(background, 0.0, np.inf), 0, spacing[0])
        if scratch.dtype == np.uint32:
            f = np.where(np.isinf(f), NOT_REACHED, f).astype(np.uint32)
        scratch.write((slice(None), *(slice(lo + p.start, lo + p.stop) for p, (lo, _) in zip(part, box, strict=True))), f)
    return found


def _slab(scratch: Any, z0: int, z1: int, found: list[bool], spacing: tuple[float, ...]) -> np.ndarray:
    """The other axes' passes over planes ``z0:z1`` (whole across them), from the
    scratch; the distances."""
    from batchproc.kernels.edt import envelope

    try:
        shape = (z1 - z0, *scratch.shape[1:])
        if not any(found):
            return np.sqrt(_no_background(shape, spacing, z0))
        f = scratch.read((slice(z0, z1),) + (slice(None),) * (len(shape) - 1))
        f = np.where(f == NOT_REACHED, np.inf, f.astype(np.float64)) if f.dtype == np.uint32 else f
        for axis in range(1, len(shape)):
            f = envelope(f, axis, spacing[axis])
        return np.sqrt(f)
    finally:
        scratch.release()


def edt_apply(x: Any, sampling: Any = None, return_distances: bool = True, return_indices: bool = False, distances: Any = None, indices: Any = None) -> Any:
    """scipy.ndimage.distance_transform_edt on a dask array, lazily, in bounded memory.

    Two passes, each over whole lines of its axes: along axis 0 a column of blocks
    at a time (cut into tiles across the other axes), into a scratch file on
    local disk (:mod:`batchproc.io.scratch`); then across the other axes a slab of
    planes at a time, from the scratch. Each holds about
    :func:`~batchproc.plan.block_bytes` of float64 per tile or slab. The result
    comes in the input's chunks, or in those slabs where a row of the input's
    chunks would hold more than four blocks of float64.
    """
    import dask
    import dask.array as da

    from batchproc.io.scratch import Scratch
    from batchproc.plan import block_bytes

    spacing = _spacing(sampling, x.ndim)
    if x.ndim == 1 or x.size == 0:
        return _whole_lines(x, spacing)
    budget = block_bytes()
    depth, rest = x.shape[0], x.shape[1:]
    # A tile: whole along axis 0, of about a block of float64 across the others.
    side = max(1, int((budget / (8 * depth)) ** (1 / len(rest))))
    tile = tuple(min(side, n) for n in rest)
    # A column: whole along axis 0, of at most about four blocks of the input. Where
    # a column of the input's own blocks is larger, the blocks go first to a staging
    # scratch in narrower columns: splitting them in the graph would keep every
    # piece of a block alive until the last column that needs it ran.
    column_bytes = 4 * budget
    blocks = x.to_delayed()
    starts = [np.cumsum((0, *c)) for c in x.chunks]
    staged = depth * x.dtype.itemsize * math.prod(max(c) for c in x.chunks[1:]) > column_bytes
    widths, tile = _column_layout(x.chunks[1:], tile, depth * x.dtype.itemsize, column_bytes if staged else 0)
    planes = max(1, min(depth, budget // (8 * math.prod(rest))))
    slabs = [(z, min(z + planes, depth)) for z in range(0, depth, planes)]
    exact = all(float(s).is_integer() for s in spacing[:1]) and (depth * spacing[0]) ** 2 < NOT_REACHED
    scratch = Scratch(x.shape, np.uint32 if exact else np.float64, (planes, *tile), readers=len(slabs))
    columns = []
    if not staged:
        for index in itertools.product(*(range(len(sizes)) for sizes in x.chunks[1:])):
            box = tuple((int(starts[a + 1][i]), int(starts[a + 1][i + 1])) for a, i in enumerate(index))
            columns.append(dask.delayed(_column, pure=False)(list(blocks[(slice(None), *index)]), box, scratch, spacing, tile))
    else:
        grid = [range(0, n, w) for n, w in zip(rest, widths, strict=True)]
        staging = Scratch(x.shape, x.dtype, (_grid_step(x.chunks[0]), *widths), readers=math.prod(len(g) for g in grid))
        writes = [
            dask.delayed(_stage, pure=False)(blocks[index], tuple((int(starts[a][i]), int(starts[a][i + 1])) for a, i in enumerate(index)), staging)
            for index in np.ndindex(*x.numblocks)
        ]
        for corner in itertools.product(*grid):
            box = tuple((c, min(c + w, n)) for c, w, n in zip(corner, widths, rest, strict=True))
            columns.append(dask.delayed(_column, pure=False)(staging, box, scratch, spacing, tile, *writes))
    parts = [
        da.from_delayed(
            dask.delayed(_slab, pure=False)(scratch, z0, z1, columns, spacing), (z1 - z0, *rest), np.float64, meta=np.empty((0,) * x.ndim, np.float64)
        )
        for z0, z1 in slabs
    ]
    out = da.concatenate(parts, axis=0)
    # The input's chunks where a row of them fits in a few blocks of float64; else
    # the slabs themselves (a row of chunks would gather that many slabs at once).
    row = max(x.chunks[0]) * math.prod(rest) * 8
    return out.rechunk(x.chunks) if row <= 4 * budget else out


def _grid_step(sizes: tuple[int, ...]) -> int:
    """The widest step on which every chunk of ``sizes`` starts (the last may end short)."""
    return math.gcd(*sizes[:-1]) if len(sizes) > 1 else sizes[0]


def _column_layout(chunks: tuple[tuple[int, ...], ...], tile: tuple[int, ...], line_bytes: int, column_bytes: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Widths of the columns across axes 1.., and the tiles that cut them.

    Where an axis has several input chunks, a width divides the step on which they
    start (each block then covers whole columns) and a tile divides the width;
    where it has one, a width is the whole axis or a whole number of tiles. The
    widest widths such that a column (``line_bytes`` per line) stays within
    ``column_bytes``; with 0, the input's own (its chunks' step, or the whole axis)."""
    options = []
    for sizes, t in zip(chunks, tile, strict=True):
        n = sum(sizes)
        if len(sizes) == 1:
            options.append([n, *range((n - 1) // t * t, 0, -t)])
        else:
            g = _grid_step(sizes)
            options.append([d for d in range(g, 0, -1) if g % d == 0])
    pick = [0] * len(chunks)
    while column_bytes and line_bytes * math.prod(o[i] for o, i in zip(options, pick, strict=True)) > column_bytes:
        widest = max((a for a in range(len(pick)) if pick[a] + 1 < len(options[a])), key=lambda a: options[a][pick[a]], default=None)
        if widest is None:
            break
        pick[widest] += 1
    widths = tuple(o[i] for o, i in zip(options, pick, strict=True))
    tiles = tuple(t if len(sizes) == 1 else max(d for d in range(1, min(t, w) + 1) if w % d == 0) for sizes, t, w in zip(chunks, tile, widths, strict=True))
    return widths, tiles


def _relate(params: dict[str, Any], ctx: c.Context) -> None:
    # scipy checks the sampling first
    sampling = params.get("sampling")
    if sampling is not None and ctx.ndim is not None:
        values = np.atleast_1d(np.asarray(sampling, dtype=float))
        if np.ndim(sampling) > 0 and values.size != ctx.ndim:  # scipy: a list has one per axis
            raise ctx.fail("sampling", f"one spacing, or one per axis ({ctx.ndim})", sampling, RuntimeError)
    if not params["return_distances"] and not params["return_indices"]:
        raise ctx.fail("return_distances", "True (scipy: 'at least one of return_distances/return_indices must be True')", False, RuntimeError)
    if not params["return_distances"] or params["return_indices"] or params["distances"] is not None or params["indices"] is not None:
        raise ctx.fail(
            "return_indices",
            "False, with return_distances True and no output arrays (the distances are returned; the feature transform is not offered yet)",
            {k: params[k] for k in ("return_distances", "return_indices")},
        )


def _sampling(name: str, v: Any, ctx: c.Context) -> Any:
    if v is None:
        return None
    try:
        values = np.atleast_1d(np.asarray(v, dtype=float))
    except (TypeError, ValueError):
        raise ctx.fail(name, "a positive spacing or a list of them", v) from None
    if values.ndim != 1 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ctx.fail(name, "a positive spacing or a list of them", v)
    return v if np.isscalar(v) else tuple(float(s) for s in values)


def _tolerance(a: np.ndarray, want: np.ndarray) -> float:
    """Exact for unit or integer spacings; one part in 10**15 of the distance otherwise."""
    return 1e-15 * max(1.0, float(np.abs(want[np.isfinite(want)]).max(initial=0)))


register(
    Operation(
        name="distance_transform_edt",
        summary_text="Exact Euclidean distance of every non-zero voxel to the nearest zero voxel, as scipy computes it.",
        doc_of="distance_transform_edt",
        params=(
            Param(
                "sampling",
                c.described(
                    _sampling,
                    {
                        "anyOf": [
                            {"type": "number", "exclusiveMinimum": 0},
                            {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}},
                            {"type": "null"},
                        ]
                    },
                ),
                None,
                "voxel spacing per axis (default 1)",
            ),
            Param("return_distances", c.boolean(), True, "must be True: the distances are returned"),
            Param("return_indices", c.boolean(), False, "must be False: the feature transform is not offered yet"),
            Param("distances", c.anything(), None, "must be None"),
            Param("indices", c.anything(), None, "must be None"),
        ),
        kind="global",
        apply=edt_apply,
        relate=_relate,
        tolerance=_tolerance,
        scipy=True,
        in_pipeline=False,
        returns_array=True,
        dtype=lambda dtype, params: np.dtype(np.float64),
    )
)
