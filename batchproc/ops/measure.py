"""Global operations: histogram (with labels, as scipy), equalization.

Both count voxels block by block and add the counts: a count does not depend on
how the array is chunked, so the totals equal scipy's on the whole array. Each
voxel is assigned to its bin by the same comparisons scipy/numpy make.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from batchproc import dispatch
from batchproc.dispatch import Trial
from batchproc.errors import BatchprocError
from batchproc.ops import _checks as c
from batchproc.ops._registry import Operation, Param, Pass, register

if TYPE_CHECKING:
    import dask.array as da

CountFn = Callable[..., np.ndarray]


def located_blocks(x: da.Array) -> tuple[list[Any], list[tuple[tuple[int, int], ...]]]:
    """The blocks of ``x`` as delayed arrays, in C order, and each one's box
    (per axis ``(start, stop)``)."""
    from dask.array.core import slices_from_chunks

    boxes = [tuple((s.start, s.stop) for s in where) for where in slices_from_chunks(x.chunks)]
    return list(x.to_delayed().ravel()), boxes


def aligned_labels(x: da.Array, labels: Any, where: str) -> tuple[da.Array, da.Array]:
    """``x`` and ``labels`` (any array) broadcast together, the labels chunked as
    ``x``; an error naming ``where`` when their shapes do not fit."""
    import dask.array as da

    lab = labels if isinstance(labels, da.Array) else da.asarray(np.asarray(labels))
    try:
        xb, lab = da.broadcast_arrays(x, lab)
    except ValueError:
        raise BatchprocError(f"{where}: parameter 'labels' must have the input's shape {x.shape} (or broadcast to it); got shape {lab.shape}.") from None
    return xb, lab.rechunk(xb.chunks)


def lazy_partials(
    x: da.Array, partial: CountFn, shape: tuple[int, ...], *aligned: da.Array, scalars: tuple[da.Array, ...] = (), dtype: Any = np.float64
) -> da.Array:
    """``partial(block, *aligned_blocks, *scalars) -> array of shape`` on every block,
    lazily: an array of the blocks' partials, indexed by block then ``shape``.
    ``aligned`` arrays are chunked like ``x``; ``scalars`` (small arrays) are passed
    whole to every block."""
    import dask.array as da

    ndim = x.ndim
    ind = tuple(range(ndim))
    new = tuple(range(ndim, ndim + len(shape)))

    def per_block(block: np.ndarray, *extra: np.ndarray) -> np.ndarray:
        part = np.asarray(partial(block, *extra))
        return part.reshape((1,) * ndim + shape)

    args: list[Any] = [x, ind]
    for a in aligned:
        args += [a, ind]
    for k, s in enumerate(scalars):
        args += [s.rechunk(-1) if s.ndim else s, tuple(range(100 + k * 8, 100 + k * 8 + s.ndim))]
    return da.blockwise(
        per_block,
        ind + new,
        *args,
        new_axes=dict(zip(new, shape, strict=True)),
        adjust_chunks={a: 1 for a in ind},
        concatenate=True,
        meta=np.empty((0,) * (ndim + len(shape)), dtype),
    )


def lazy_counts(x: da.Array, count_block: CountFn, shape: tuple[int, ...], *aligned: da.Array) -> da.Array:
    """``count_block(block, *aligned_blocks) -> int64 array of shape`` on every block,
    summed (a lazy tree reduction)."""
    parts = lazy_partials(x, lambda *blocks: np.asarray(count_block(*blocks), dtype=np.int64), shape, *aligned, dtype=np.int64)
    return parts.sum(axis=tuple(range(x.ndim)), dtype=np.int64)


# ---------------------------------------------------------------- histogram


def _histogram_edges(lo: float, hi: float, bins: int) -> np.ndarray:
    # scipy.ndimage.histogram's own edges: np.linspace over Python floats.
    return np.linspace(lo, hi, bins + 1)


def block_histogram(dtype: np.dtype, edges: np.ndarray, voxels: int | None = None) -> CountFn:
    """A per-block counter equal to ``np.histogram(block, edges)[0]``.

    For 8/16-bit integer images (and the compiled kernel set) it counts each value
    once (a compiled counting loop) and then adds the counts of the values that fall in
    each bin, each value placed by the same comparisons np.histogram makes
    (e_i <= v < e_i+1, the last bin closed): about 8x faster than np.histogram.
    ``voxels``: the size of the whole input (a small one counts with numpy,
    :func:`batchproc.kernels.for_input`).
    """
    from batchproc import kernels

    small_int = dtype.kind in "iu" and dtype.itemsize <= 2
    chosen = kernels.chosen() if voxels is None else kernels.for_input(voxels)
    if not small_int or chosen != "compiled" or not np.all(np.diff(edges) > 0):
        return lambda b: np.histogram(b, edges)[0]
    info = np.iinfo(dtype)
    values = np.arange(int(info.min), int(info.max) + 1, dtype=np.float64)
    place = np.searchsorted(edges, values, side="right") - 1
    place[values == edges[-1]] = len(edges) - 2
    inside = (place >= 0) & (place < len(edges) - 1)
    bins_of_values = np.where(inside, place, len(edges) - 1)  # a spill bin, dropped below
    offset = -int(info.min)
    trial = counting_trial(dtype)

    def count(block: np.ndarray) -> np.ndarray:
        if not dispatch.ready(trial):
            return np.histogram(block, edges)[0]
        from batchproc.kernels.lines import count_values

        per_value = np.zeros(values.size, np.int64)
        count_values(np.ascontiguousarray(block).reshape(-1), offset, per_value)
        totals = np.zeros(len(edges), np.int64)
        np.add.at(totals, bins_of_values, per_value)
        return totals[:-1]

    return count


def histogram_apply(x: da.Array, min: float, max: float, bins: int, labels: Any = None, index: Any = None) -> tuple[da.Array, Callable[[np.ndarray], Any]]:
    """scipy.ndimage.histogram on a dask array: the counts, lazily, and the function
    that turns them into scipy's result once computed."""

    edges = _histogram_edges(min, max, bins)
    if labels is None:
        if index is not None:
            raise BatchprocError("histogram: parameter 'index' needs 'labels'.")
        return lazy_counts(x, block_histogram(np.dtype(x.dtype), edges, x.size), (bins,)), np.asarray

    xb, lab = aligned_labels(x, labels, "histogram")
    if index is None:
        return lazy_counts(xb, lambda b, lb: np.histogram(b[lb > 0], edges)[0], (bins,), lab), np.asarray

    scalar = np.isscalar(index)
    idx = np.atleast_1d(np.asarray(index))
    if idx.dtype.kind not in "biu" and not (idx.dtype.kind == "f" and np.all(idx == np.round(idx))):
        raise BatchprocError(f"histogram: parameter 'index' must be label values (integers); got {index!r}.")
    if np.any(idx.astype(lab.dtype).astype(idx.dtype) != idx):
        raise BatchprocError(f"histogram: parameter 'index' has values that do not fit the labels' dtype {lab.dtype}: {index!r}.")
    idx = idx.astype(lab.dtype)

    def count(b: np.ndarray, lb: np.ndarray) -> np.ndarray:
        out = np.zeros((idx.size, bins + 1), np.int64)
        for i, value in enumerate(idx):
            sel = lb == value
            out[i, 0] = np.count_nonzero(sel)  # is the label present at all?
            if out[i, 0]:
                out[i, 1:] = np.histogram(b[sel], edges)[0]
        return out

    def per_label(totals: np.ndarray) -> Any:
        result = np.empty(idx.shape, dtype=object)
        for i in range(idx.size):
            # scipy leaves None where a label does not occur.
            result[i] = totals[i, 1:] if totals[i, 0] else None
        return result[0] if scalar else result

    return lazy_counts(xb, count, (idx.size, bins + 1), lab), per_label


def _relate_histogram(params: dict[str, Any], ctx: c.Context) -> None:
    if params["min"] > params["max"]:
        raise ctx.fail("min", f"<= max ({params['max']})", params["min"])


register(
    Operation(
        name="histogram",
        summary_text="Calculate the histogram of the values of an array, optionally at labels.",
        doc_of="histogram",
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


def _integer_range(dtype: np.dtype, lo: Any, hi: Any) -> tuple[int, int] | None:
    if lo is not None and hi is not None:
        return int(lo), int(hi)
    if dtype.kind in "biu" and dtype.itemsize <= 2:
        info = np.iinfo(dtype) if dtype.kind != "b" else None
        dlo, dhi = (info.min, info.max) if info else (0, 1)
        return int(dlo if lo is None else lo), int(dhi if hi is None else hi)
    return None


def counting_trial(dtype: np.dtype) -> Trial:
    """The trial that loads the compiled value counter for ``dtype``
    (:mod:`batchproc.dispatch`)."""
    return Trial("batchproc.ops.measure:load_counter", (np.dtype(dtype).str,))


def load_counter(dtype: str) -> None:
    """Call the compiled value counter once on ``dtype``, as the counts call it."""
    from batchproc.kernels.lines import count_values

    count_values(np.zeros(1, np.dtype(dtype)), 0, np.zeros(1, np.int64))


def _value_counter(dtype: np.dtype, lo: int, hi: int, kernels: str) -> CountFn:
    """Per-block counts of each integer value lo..hi (values outside are ignored)."""
    n = hi - lo + 1

    def count(b: np.ndarray) -> np.ndarray:
        v = b.astype(np.int64, copy=False) - lo
        return np.bincount(v[(v >= 0) & (v < n)], minlength=n)

    if dtype.kind in "iu" and dtype.itemsize <= 2 and kernels == "compiled":
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            trial = counting_trial(dtype)

            def count_compiled(b: np.ndarray) -> np.ndarray:
                if not dispatch.ready(trial):
                    return count(b)
                from batchproc.kernels.lines import count_values

                per_value = np.zeros(int(info.max) - int(info.min) + 1, np.int64)
                count_values(np.ascontiguousarray(b).reshape(-1), -int(info.min), per_value)
                return per_value[lo - int(info.min) : hi - int(info.min) + 1]

            return count_compiled

    return count


def block_range(b: np.ndarray) -> np.ndarray:
    """``[min, max]`` of a block, in float64 (NaN if it holds one, as numpy's)."""
    return np.array([b.min(), b.max()], dtype=np.float64)


def _equalize_range(params: Mapping[str, Any]) -> Callable[..., tuple[float, float]]:
    """The range of the bins: ``min``/``max`` where given, else the data's (the
    result of the range pass, the first argument after the block)."""

    def bounds(*earlier: np.ndarray) -> tuple[float, float]:
        data = earlier[0] if earlier else None
        lo = float(params["min"]) if params["min"] is not None else float(data[0])
        hi = float(params["max"]) if params["max"] is not None else float(data[1])
        return lo, hi

    return bounds


def equalize_passes(dtype: np.dtype, params: Mapping[str, Any], kernels: str = "scipy") -> tuple[Pass, ...]:
    """Integer images with a known range (8/16-bit, or ``min``/``max`` given) and no
    ``bins``: one pass counting each integer value (exact). Otherwise ``bins`` equal
    bins (256 by default) over [min, max], after a pass for the data's range when
    either is not given."""
    exact = _integer_range(dtype, params["min"], params["max"]) if (dtype.kind in "biu" and params["bins"] is None) else None
    if exact is not None:
        return (Pass(_value_counter(dtype, *exact, kernels), (exact[1] - exact[0] + 1,)),)
    nbins = 256 if params["bins"] is None else params["bins"]
    bounds = _equalize_range(params)

    def count(b: np.ndarray, *earlier: np.ndarray) -> np.ndarray:
        return np.histogram(b, _histogram_edges(*bounds(*earlier), nbins))[0]

    ranged = params["min"] is None or params["max"] is None
    return (Pass(block_range, (2,), "range"), Pass(count, (nbins,))) if ranged else (Pass(count, (nbins,)),)


def equalize_finish(dtype: np.dtype, params: Mapping[str, Any]) -> Callable[..., np.ndarray]:
    """Histogram equalization as in the course: ``cdf[im] * max``, given the passes'
    counts. Values below the range map to 0, above it to ``out_max``."""
    exact = _integer_range(dtype, params["min"], params["max"]) if (dtype.kind in "biu" and params["bins"] is None) else None
    out_max = params["out_max"]
    if exact is not None:
        lo, hi = exact
        n = hi - lo + 1
        top = float(hi) if out_max is None else float(out_max)

        def lookup(b: np.ndarray, hist: np.ndarray) -> np.ndarray:
            table = np.concatenate([np.zeros(1), hist.cumsum() / hist.sum()]) * top
            v = b.astype(np.int64, copy=False) - lo + 1
            return table[np.clip(v, 0, n)]

        return lookup
    nbins = 256 if params["bins"] is None else params["bins"]
    bounds = _equalize_range(params)

    def lookup_bins(b: np.ndarray, *results: np.ndarray) -> np.ndarray:
        *earlier, counts = results
        lo, hi = bounds(*earlier)
        table = np.concatenate([np.zeros(1), counts.cumsum() / counts.sum()])
        k = np.searchsorted(_histogram_edges(lo, hi, nbins), b, side="right")
        return table[np.minimum(k, nbins)] * (hi if out_max is None else float(out_max))

    return lookup_bins


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
                f"given when min..max spans more than {MAX_EXACT_BINS} integer values ({exact[0]}..{exact[1]})",
                None,
            )
    if ctx.dtype is not None and ctx.dtype.kind not in "biuf":
        raise ctx.fail("input", "a boolean, integer or float image", str(ctx.dtype))


register(
    Operation(
        name="equalize",
        summary_text="Histogram equalization: each value replaced by its CDF times out_max (cdf[im] * max).",
        doc_text=inspect.cleandoc(equalize_passes.__doc__ or "") + "\n\n" + inspect.cleandoc(equalize_finish.__doc__ or ""),
        params=(
            Param("bins", c.optional(c.integer(1)), None, "number of bins (default: one per integer value; 256 for floats)"),
            Param("min", c.optional(c.real()), None, "bottom of the range (default: dtype minimum for 8/16-bit, else data minimum)"),
            Param("max", c.optional(c.real()), None, "top of the range (default: dtype maximum for 8/16-bit, else data maximum)"),
            Param("out_max", c.optional(c.real()), None, "value the CDF is multiplied by (default: the top of the range)"),
        ),
        kind="global",
        passes=equalize_passes,
        finish=equalize_finish,
        relate=_relate_equalize,
        dtype=lambda dtype, params: np.dtype(np.float64),
        compiled_global=True,
    )
)
