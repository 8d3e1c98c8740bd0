"""Global operations: histogram (with labels, as scipy), equalization.

Both count voxels block by block and add the counts: a count does not depend on
how the array is chunked, so the totals equal scipy's on the whole array. Each
voxel is assigned to its bin by the same comparisons scipy/numpy make.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dask.array as da
import numpy as np

from batchproc.errors import BatchprocError
from batchproc.execute import compute
from batchproc.ops import _checks as c
from batchproc.ops._registry import Operation, Param, register

CountFn = Callable[..., np.ndarray]


def lazy_counts(
    x: da.Array, count_block: CountFn, shape: tuple[int, ...], *aligned: da.Array, scalars: tuple[da.Array, ...] = ()
) -> da.Array:
    """Apply ``count_block(block, *aligned_blocks, *scalars) -> int64 array of shape``
    to every block and sum the results (a lazy tree reduction). ``aligned`` arrays
    are chunked like ``x``; ``scalars`` are 0-d arrays passed whole to every block."""
    ndim = x.ndim
    ind = tuple(range(ndim))
    new = tuple(range(ndim, ndim + len(shape)))

    def per_block(block: np.ndarray, *extra: np.ndarray) -> np.ndarray:
        counts = np.asarray(count_block(block, *extra), dtype=np.int64)
        return counts.reshape((1,) * ndim + shape)

    args: list[Any] = [x, ind]
    for a in aligned:
        args += [a, ind]
    for s in scalars:
        args += [s, ()]
    parts = da.blockwise(
        per_block,
        ind + new,
        *args,
        new_axes=dict(zip(new, shape, strict=True)),
        adjust_chunks={a: 1 for a in ind},
        dtype=np.int64,
        meta=np.empty((0,) * (ndim + len(shape)), np.int64),
    )
    return parts.sum(axis=ind, dtype=np.int64)


# ---------------------------------------------------------------- histogram


def _histogram_edges(lo: float, hi: float, bins: int) -> np.ndarray:
    # scipy.ndimage.histogram's own edges: np.linspace over Python floats.
    return np.linspace(lo, hi, bins + 1)


def block_histogram(dtype: np.dtype, edges: np.ndarray) -> CountFn:
    """A per-block counter equal to ``np.histogram(block, edges)[0]``.

    For 8/16-bit integer images (and the compiled kernel set) it counts each value
    once (a compiled counting loop) and then adds the counts of the values that fall in
    each bin, each value placed by the same comparisons np.histogram makes
    (e_i <= v < e_i+1, the last bin closed): about 8x faster than np.histogram.
    """
    from batchproc import kernels

    small_int = dtype.kind in "iu" and dtype.itemsize <= 2
    if not small_int or kernels.active() != "compiled" or not np.all(np.diff(edges) > 0):
        return lambda b: np.histogram(b, edges)[0]
    info = np.iinfo(dtype)
    values = np.arange(int(info.min), int(info.max) + 1, dtype=np.float64)
    place = np.searchsorted(edges, values, side="right") - 1
    place[values == edges[-1]] = len(edges) - 2
    inside = (place >= 0) & (place < len(edges) - 1)
    bins_of_values = np.where(inside, place, len(edges) - 1)  # a spill bin, dropped below
    offset = -int(info.min)

    from batchproc.kernels.lines import count_values

    def count(block: np.ndarray) -> np.ndarray:
        per_value = np.zeros(values.size, np.int64)
        count_values(np.ascontiguousarray(block).reshape(-1), offset, per_value)
        totals = np.zeros(len(edges), np.int64)
        np.add.at(totals, bins_of_values, per_value)
        return totals[:-1]

    return count


def histogram_apply(
    x: da.Array, min: float, max: float, bins: int, labels: Any = None, index: Any = None
) -> Any:
    """scipy.ndimage.histogram on a dask array: computes and returns numpy, like scipy."""
    edges = _histogram_edges(min, max, bins)
    if labels is None:
        if index is not None:
            raise BatchprocError("histogram: parameter 'index' needs 'labels'.")
        return compute([lazy_counts(x, block_histogram(np.dtype(x.dtype), edges), (bins,))])[0]

    lab = labels if isinstance(labels, da.Array) else da.asarray(np.asarray(labels))
    try:
        xb, lab = da.broadcast_arrays(x, lab)
    except ValueError:
        raise BatchprocError(
            f"histogram: parameter 'labels' must have the input's shape {x.shape} "
            f"(or broadcast to it); got shape {lab.shape}."
        ) from None
    lab = lab.rechunk(xb.chunks)
    if index is None:
        return compute([lazy_counts(xb, lambda b, lb: np.histogram(b[lb > 0], edges)[0], (bins,), lab)])[0]

    scalar = np.isscalar(index)
    idx = np.atleast_1d(np.asarray(index))
    if idx.dtype.kind not in "biu" and not (idx.dtype.kind == "f" and np.all(idx == np.round(idx))):
        raise BatchprocError(f"histogram: parameter 'index' must be label values (integers); got {index!r}.")
    if np.any(idx.astype(lab.dtype).astype(idx.dtype) != idx):
        raise BatchprocError(
            f"histogram: parameter 'index' has values that do not fit the labels' dtype {lab.dtype}: {index!r}."
        )
    idx = idx.astype(lab.dtype)

    def count(b: np.ndarray, lb: np.ndarray) -> np.ndarray:
        out = np.zeros((idx.size, bins + 1), np.int64)
        for i, value in enumerate(idx):
            sel = lb == value
            out[i, 0] = np.count_nonzero(sel)  # is the label present at all?
            if out[i, 0]:
                out[i, 1:] = np.histogram(b[sel], edges)[0]
        return out

    totals = compute([lazy_counts(xb, count, (idx.size, bins + 1), lab)])[0]
    result = np.empty(idx.shape, dtype=object)
    for i in range(idx.size):
        # scipy leaves None where a label does not occur.
        result[i] = totals[i, 1:] if totals[i, 0] else None
    return result[0] if scalar else result


def _relate_histogram(params: dict[str, Any], ctx: c.Context) -> None:
    if params["min"] > params["max"]:
        raise ctx.fail("min", f"<= max ({params['max']})", params["min"])


register(
    Operation(
        name="histogram",
        summary="Calculate the histogram of the values of an array, optionally at labels.",
        doc=__import__("scipy.ndimage").ndimage.histogram.__doc__ or "",
        params=(
            Param("min", c.real(), help="lowest bin edge"),
            Param("max", c.real(), help="highest bin edge"),
            Param("bins", c.integer(1), help="number of bins (>= 1)"),
            Param("labels", c.anything(), None, "label image: count only where labels > 0, or per index", array=True),
            Param("index", c.anything(), None, "label value(s) to histogram separately"),
        ),
        kind="global",
        apply=histogram_apply,
        relate=_relate_histogram,
        scipy=True,
        in_pipeline=False,
        returns_array=False,
        compiled_global=True,
    )
)


# ---------------------------------------------------------------- equalize


def _blockwise_with(fn: Callable[..., np.ndarray], x: da.Array, dtype: np.dtype, *tables: da.Array) -> da.Array:
    """``fn(block, *tables)`` on every block, each table (small, 0-d or 1-d) passed whole."""
    ind = tuple(range(x.ndim))
    args: list[Any] = [x, ind]
    for k, table in enumerate(tables):
        table = table.rechunk(-1) if table.ndim else table
        args += [table, tuple(range(100 + k, 100 + k + table.ndim))]
    return da.blockwise(fn, ind, *args, dtype=dtype, concatenate=True, meta=np.empty((0,) * x.ndim, dtype))


def _integer_range(dtype: np.dtype, lo: Any, hi: Any) -> tuple[int, int] | None:
    if lo is not None and hi is not None:
        return int(lo), int(hi)
    if dtype.kind in "biu" and dtype.itemsize <= 2:
        info = np.iinfo(dtype) if dtype.kind != "b" else None
        dlo, dhi = (info.min, info.max) if info else (0, 1)
        return int(dlo if lo is None else lo), int(dhi if hi is None else hi)
    return None


def _value_counter(dtype: np.dtype, lo: int, hi: int) -> CountFn:
    """Per-block counts of each integer value lo..hi (values outside are ignored)."""
    from batchproc import kernels

    n = hi - lo + 1
    if dtype.kind in "iu" and dtype.itemsize <= 2 and kernels.active() == "compiled":
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            from batchproc.kernels.lines import count_values

            def count_compiled(b: np.ndarray) -> np.ndarray:
                per_value = np.zeros(int(info.max) - int(info.min) + 1, np.int64)
                count_values(np.ascontiguousarray(b).reshape(-1), -int(info.min), per_value)
                return per_value[lo - int(info.min) : hi - int(info.min) + 1]

            return count_compiled

    def count(b: np.ndarray) -> np.ndarray:
        v = b.astype(np.int64, copy=False) - lo
        return np.bincount(v[(v >= 0) & (v < n)], minlength=n)

    return count


def equalize_apply(x: da.Array, bins: int | None, min: Any, max: Any, out_max: Any) -> da.Array:
    """Histogram equalization as in the course: ``cdf[im] * max``.

    Integer images with a known range (8/16-bit, or ``min``/``max`` given) and no
    ``bins``: one bin per integer value (exact). Otherwise ``bins`` equal bins (256
    by default) over [min, max] (default: the data's range, a lazy global pass).
    Values below the range map to 0, above it to ``out_max``.
    """
    dtype = np.dtype(x.dtype)
    exact = _integer_range(dtype, min, max) if (dtype.kind in "biu" and bins is None) else None
    if exact is not None:
        lo, hi = exact
        n = hi - lo + 1
        top = float(hi) if out_max is None else out_max

        count = _value_counter(dtype, lo, hi)

        hist = lazy_counts(x, count, (n,))
        cdf = hist.cumsum(axis=0) / hist.sum()
        table = da.concatenate([da.zeros(1, dtype=np.float64), cdf]) * top

        def lookup(b: np.ndarray, t: np.ndarray) -> np.ndarray:
            v = b.astype(np.int64, copy=False) - lo + 1
            return t[np.clip(v, 0, n)]

        return _blockwise_with(lookup, x, np.dtype(np.float64), table)

    nbins = 256 if bins is None else bins
    lo_a = da.asarray(float(min)) if min is not None else x.min()
    hi_a = da.asarray(float(max)) if max is not None else x.max()

    def edges_of(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return _histogram_edges(float(lo), float(hi), nbins)

    def count(b: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return np.histogram(b, edges_of(lo, hi))[0]

    counts = lazy_counts(x, count, (nbins,), scalars=(lo_a, hi_a))
    cdf = counts.cumsum(axis=0) / counts.sum()
    top_a = hi_a.astype(np.float64) if out_max is None else da.asarray(float(out_max))
    table = da.concatenate([da.zeros(1, dtype=np.float64), cdf])

    def lookup_bins(b: np.ndarray, t: np.ndarray, lo: np.ndarray, hi: np.ndarray, top: np.ndarray) -> np.ndarray:
        k = np.searchsorted(edges_of(lo, hi), b, side="right")
        return t[np.minimum(k, nbins)] * top[()]

    return _blockwise_with(lookup_bins, x, np.dtype(np.float64), table, lo_a, hi_a, top_a)


#: The most bins of the exact one-bin-per-integer equalization (128 MiB of counts).
MAX_EXACT_BINS = 2**24


def _relate_equalize(params: dict[str, Any], ctx: c.Context) -> None:
    lo, hi = params["min"], params["max"]
    if lo is not None and hi is not None and lo > hi:
        raise ctx.fail("min", f"<= max ({hi})", lo)
    if ctx.dtype is not None and ctx.dtype.kind in "iu" and params["bins"] is None:
        exact = _integer_range(ctx.dtype, lo, hi)
        if exact is None:
            raise ctx.fail("bins", f"given for a {ctx.dtype} image unless min and max are (one bin per value)", None)
        if exact[1] - exact[0] + 1 > MAX_EXACT_BINS:
            raise ctx.fail(
                "bins",
                f"given when min..max spans more than {MAX_EXACT_BINS} integer values "
                f"({exact[0]}..{exact[1]})",
                None,
            )
    if ctx.dtype is not None and ctx.dtype.kind not in "biuf":
        raise ctx.fail("input", "a boolean, integer or float image", str(ctx.dtype))


register(
    Operation(
        name="equalize",
        summary="Histogram equalization: each value replaced by its CDF times out_max (cdf[im] * max).",
        doc=equalize_apply.__doc__ or "",
        params=(
            Param("bins", c.optional(c.integer(1)), None, "number of bins (default: one per integer value; 256 for floats)"),
            Param("min", c.optional(c.real()), None, "bottom of the range (default: dtype minimum for 8/16-bit, else data minimum)"),
            Param("max", c.optional(c.real()), None, "top of the range (default: dtype maximum for 8/16-bit, else data maximum)"),
            Param("out_max", c.optional(c.real()), None, "value the CDF is multiplied by (default: the top of the range)"),
        ),
        kind="global",
        apply=equalize_apply,
        relate=_relate_equalize,
        dtype=lambda dtype, params: np.dtype(np.float64),
        compiled_global=True,
    )
)
