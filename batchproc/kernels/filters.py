"""Compiled block kernels for the separable filters, each a replay of scipy's own
Python driver (same passes, same axis order, same intermediate dtype) over the
line kernels of :mod:`batchproc.kernels.lines`.

Each ``fast_*`` function takes the input dtype and the validated parameters and
returns a block kernel, or ``None`` where the compiled path could differ from
scipy (an integer output that could overflow or go negative: C's cast of such
values is undefined, so scipy's result there is not something to replay).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from batchproc.kernels.buffers import empty
from batchproc.kernels.params import MODE_CODES, axes_tuple, expand, scipy_function

Block = Callable[..., np.ndarray]


def _out_dtype(dtype: np.dtype, params: Mapping[str, Any]) -> np.dtype:
    return np.dtype(params["output"]) if params.get("output") is not None else np.dtype(dtype)


def _cval_fits(dtype: np.dtype, params: Mapping[str, Any], modes: tuple) -> bool:
    """Does ``cval`` stay within an integer output's range (when it is used)?"""
    if not any(m in ("constant", "grid-constant") for m in modes):
        return True
    info = np.iinfo(dtype)
    return info.min <= params["cval"] <= info.max


def _numeric(dtype: np.dtype) -> bool:
    """An integer or float dtype scipy.ndimage's C code takes (not float16)."""
    return np.dtype(dtype).kind in "iuf" and np.dtype(dtype) != np.float16


def _contiguous(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x)


def gaussian_weights(sigma: float, order: int, radius: int) -> np.ndarray:
    """scipy's 1-D Gaussian weights (``_gaussian_kernel1d``) bit for bit. Order 0
    is the same numpy operations in the same order, done here so that a run need
    not import scipy.ndimage; derivatives (a product of small matrices, whose
    rounding is BLAS's) come from scipy itself."""
    if order != 0:
        from scipy.ndimage._filters import _gaussian_kernel1d

        return _gaussian_kernel1d(sigma, order, radius)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * x**2)
    return phi / phi.sum()


# ---------------------------------------------------------------- gaussian


def fast_gaussian(dtype: np.dtype, params: Mapping[str, Any]) -> Block | None:
    out = _out_dtype(dtype, params)
    if not _numeric(out) or not _numeric(dtype):
        return None
    orders = params["order"]
    if out.kind in "iu":
        # Weights of order 0 are positive and sum to 1: the result stays in the
        # input's range. Derivatives can go negative: leave those to scipy.
        if any(o != 0 for o in (orders if isinstance(orders, tuple) else (orders,))):
            return None
        if np.dtype(dtype).kind == "f" or not _cval_fits(out, params, expand(params["mode"], 1)):
            return None
        if np.iinfo(dtype).min < np.iinfo(out).min or np.iinfo(dtype).max > np.iinfo(out).max:
            return None
    return gaussian_block


def gaussian_block(x: np.ndarray, keep: tuple[slice, ...] | None = None, overwrite_input: bool = False, **p: Any) -> np.ndarray:
    """scipy's gaussian_filter of the block, cut to ``keep`` (slices with bounds).

    Each pass computes only the outputs kept along its own axis: it reads whole
    lines, and later passes read along other axes, so the result is the same.
    With ``overwrite_input`` the passes may write over ``x``.
    """
    from batchproc.kernels.lines import correlate1d, correlate_last_two

    ndim = x.ndim
    keep = keep or tuple(slice(0, n) for n in x.shape)
    axes = axes_tuple(p["axes"], ndim)
    n = len(axes)
    passes = [
        (axis, sigma, order, mode, radius)
        for axis, sigma, order, mode, radius in zip(
            axes, expand(p["sigma"], n), expand(p["order"], n), expand(p["mode"], n), expand(p["radius"], n), strict=True
        )
        if sigma > 1e-15
    ]
    dtype = _out_dtype(x.dtype, p)
    if not passes:
        out = empty(x[keep].shape, dtype)
        out[...] = x[keep]
        return out
    src = _contiguous(x)
    # Every pass writes over the one before it (see below), the first over the
    # block itself when the caller gives it up and the dtype stays.
    buffer = src.reshape(-1) if overwrite_input and src is x and src.dtype == dtype and src.flags.writeable else None
    # In three or more dimensions the passes along the last two axes go plane by
    # plane, the one's plane in cache for the other.
    fused = ndim >= 3 and len(passes) >= 2 and passes[-2][0] == ndim - 2 and passes[-1][0] == ndim - 1
    k = 0
    while k < len(passes):
        group = passes[k : k + 2] if fused and k == len(passes) - 2 else passes[k : k + 1]
        weights = [
            gaussian_weights(sigma, order, int(p["truncate"] * float(sigma) + 0.5) if radius is None else radius)[::-1] for _, sigma, order, _, radius in group
        ]
        shape = list(src.shape)
        for axis, *_ in group:
            shape[axis] = keep[axis].stop - keep[axis].start
        if buffer is None:  # the block itself is dask's: the first pass writes elsewhere
            buffer = empty(int(np.prod(shape)), dtype)
        # Later passes write over the pass before them, packed at the buffer's start:
        # a pass holds each sweep's outputs (or copies each line into its float64
        # buffer) until the sweep has read its inputs, and an output lands in its
        # own columns at or before the input it comes from (one whole-block buffer
        # per task instead of three).
        out = buffer[: int(np.prod(shape))].reshape(shape)
        if len(group) == 2:
            correlate_last_two(src, tuple(weights), out, (group[0][3], group[1][3]), p["cval"], (keep[ndim - 2].start, keep[ndim - 1].start))
        else:
            correlate1d(src, weights[0], group[0][0], out, group[0][3], p["cval"], 0, keep[group[0][0]].start)
        src = out
        k += len(group)
    done = {axis for axis, *_ in passes}
    return src[tuple(slice(None) if axis in done else keep[axis] for axis in range(ndim))]


#: map_stage hands this kernel the part of its result that later steps need,
#: and the block itself to write over when it is the stage's own.
gaussian_block.crops = True  # type: ignore[attr-defined]
gaussian_block.overwrites = True  # type: ignore[attr-defined]


# ---------------------------------------------------------------- sobel, prewitt, magnitude

#: Centre weight of each edge filter's smoothing ``[1, c, 1]``.
_SMOOTH_CENTRE = {"sobel": 2, "prewitt": 1}


def _integer_passes(dtype: np.dtype, out: np.dtype, modes: tuple, cval: float) -> bool:
    """Can the three-tap passes run in integers (:mod:`batchproc.kernels.stencil`):
    an input of at most 16 bits, an 8- or 16-bit output whose cast from float64
    scipy does as a wrap, and an integral cval where a constant edge reads it?"""
    from batchproc.kernels import stencil

    if np.dtype(dtype).kind not in "iu" or np.dtype(dtype).itemsize > 2 or np.dtype(out) not in stencil.WRAPPING:
        return False
    if any(MODE_CODES[m] == 4 for m in modes) and not stencil.integral_cval(cval):
        return False
    return stencil.scipy_wraps(np.dtype(out))


def _three_taps(src: np.ndarray, dst: np.ndarray, axis: int, taps: tuple[int, int, int], mode: str, cval: float, integer: bool) -> None:
    """scipy's correlate1d of ``src`` with the integer weights ``taps`` (symmetric
    or antisymmetric) along ``axis`` into ``dst``."""
    from batchproc.kernels import stencil
    from batchproc.kernels.lines import as_lines

    lines, into = as_lines(src, axis), as_lines(dst, axis)
    if integer:
        # (a cval that is not an integer is never read: no constant edge then)
        stencil.int_pass(lines, into, taps[0], taps[1], taps[2], MODE_CODES[mode], int(cval) if stencil.integral_cval(cval) else 0)
    else:
        stencil.float_pass(lines, into, float(taps[1]), float(taps[0]), taps[0] == -taps[2] != 0, MODE_CODES[mode], float(cval))


def _passes_into(x: np.ndarray, out: np.ndarray, passes: list[tuple[int, tuple[int, int, int], str]], cval: float, integer: bool) -> np.ndarray:
    """``passes`` (axis, weights, mode) one after the other from ``x``, each into
    the output dtype, the last one into ``out``."""
    spare = empty(out.shape, out.dtype) if len(passes) > 1 else out
    src = x
    for k, (axis, taps, mode) in enumerate(passes):
        dst = out if (len(passes) - 1 - k) % 2 == 0 else spare
        _three_taps(src, dst, axis, taps, mode, cval, integer)
        src = dst
    return out


def fast_edges(kind: str) -> Callable[[np.dtype, Mapping[str, Any]], Block | None]:
    """sobel/prewitt as scipy runs them (the derivative along ``axis``, then the
    smoothing along each other axis in increasing order, each rounded to the
    output dtype), in three-tap passes: float outputs in float64, 8- and 16-bit
    outputs of inputs of at most 16 bits in integers (:func:`_integer_passes`)."""
    centre = _SMOOTH_CENTRE[kind]

    def fast(dtype: np.dtype, params: Mapping[str, Any]) -> Block | None:
        out = _out_dtype(dtype, params)
        if not _numeric(dtype) or not _numeric(out):
            return None
        integer = _integer_passes(dtype, out, expand(params["mode"], 1), params["cval"])
        if out.kind != "f" and not integer:
            return None

        def block(x: np.ndarray, **p: Any) -> np.ndarray:
            axis = p["axis"] % x.ndim
            modes = expand(p["mode"], x.ndim)
            passes = [(axis, (-1, 0, 1), modes[axis])] + [(a, (1, centre, 1), modes[a]) for a in range(x.ndim) if a != axis]
            return _passes_into(_contiguous(x), empty(x.shape, out), passes, p["cval"], integer)

        return block

    return fast


def fast_laplace(dtype: np.dtype, params: Mapping[str, Any]) -> Block | None:
    """laplace as scipy's generic_laplace runs it: the second derivative along the
    first of ``axes`` into the output, then each other one into the output dtype
    and added to it (numpy's ``+=``), in three-tap passes as for sobel."""
    out = _out_dtype(dtype, params)
    if not _numeric(dtype) or not _numeric(out):
        return None
    integer = _integer_passes(dtype, out, expand(params["mode"], 1), params["cval"])
    if out.kind != "f" and not integer:
        return None

    def block(x: np.ndarray, **p: Any) -> np.ndarray:
        axes = axes_tuple(p["axes"], x.ndim)
        if not axes:
            return scipy_function("laplace")(x, **p)
        modes = expand(p["mode"], len(axes))
        src = _contiguous(x)
        result = empty(x.shape, out)
        _three_taps(src, result, axes[0], (1, -2, 1), modes[0], p["cval"], integer)
        if len(axes) > 1:
            each = empty(result.shape, result.dtype)
            for axis, mode in zip(axes[1:], modes[1:], strict=True):
                _three_taps(src, each, axis, (1, -2, 1), mode, p["cval"], integer)
                result += each
        return result

    return block


def fast_sobel_magnitude(dtype: np.dtype, params: Mapping[str, Any]) -> Block | None:
    """The fused plane-by-plane kernel for 2-D and 3-D blocks over all axes in order,
    with a float32 or float64 result (an integer ``output`` is a C cast: scipy's).

    ``params`` also carry the result's dtype (``_out``) and the operation's own
    block function for other blocks (``_whole``): the kernels know no operation."""
    out, whole_block = params["_out"], params["_whole"]
    if not _numeric(dtype) or out not in (np.float32, np.float64):
        return None

    def block(x: np.ndarray, keep: tuple[slice, ...] | None = None, overwrite_input: bool = False, **p: Any) -> np.ndarray:
        if x.ndim not in (2, 3) or axes_tuple(p["axes"], x.ndim) != tuple(range(x.ndim)):
            whole = whole_block(x, **p)
            return whole if keep is None else whole[keep]
        from batchproc.kernels import sobel

        return sobel.sobel_magnitude(x, expand(p["mode"], x.ndim), p["cval"], out, keep, overwrite_input)

    # map_stage hands it the part later steps need, and its input to write over.
    block.crops = True  # type: ignore[attr-defined]
    block.overwrites = True  # type: ignore[attr-defined]
    return block


def threshold_mask(x: np.ndarray, above: Any, below: Any) -> np.ndarray:
    """``(x > above) & (x < below)`` (either bound may be None), on recycled memory:
    the threshold operation's block, and the fused magnitude's where it falls back."""
    out = empty(x.shape, bool)
    if above is None:
        return np.less(x, below, out=out)
    np.greater(x, above, out=out)
    if below is not None:
        out &= x < below
    return out


def _held_exactly(dtype: np.dtype, value: Any) -> bool:
    """Is ``value`` a finite number that ``dtype`` holds exactly? Then comparing a
    value of ``dtype`` with it gives the same answer whatever the type it is
    compared in (numpy's promotion rules differ between its versions)."""
    try:
        held = dtype.type(value)
    except (OverflowError, ValueError, TypeError):
        return False
    return bool(np.isfinite(held)) and float(held) == value and (not isinstance(value, int) or int(held) == value)


def fast_sobel_magnitude_then(dtype: np.dtype, params: Mapping[str, Any], then: str, then_params: Mapping[str, Any]) -> Block | None:
    """The sobel magnitude and the threshold after it in one kernel, for blocks of
    2-D and 3-D over all axes: each row's mask from its magnitude while the row is
    in cache, with no magnitude array. Only where the thresholds are numbers the
    magnitude's dtype holds exactly (see :func:`_held_exactly`), and a compiled
    magnitude covers the parameters; otherwise None, and the two steps run apart."""
    magnitude = fast_sobel_magnitude(dtype, params)
    out = params["_out"]
    above, below = then_params.get("above"), then_params.get("below")
    if then != "threshold" or magnitude is None or not all(v is None or _held_exactly(out, v) for v in (above, below)):
        return None

    def block(x: np.ndarray, keep: tuple[slice, ...] | None = None, overwrite_input: bool = False, **p: Any) -> np.ndarray:
        if x.ndim not in (2, 3) or axes_tuple(p["axes"], x.ndim) != tuple(range(x.ndim)):
            return threshold_mask(magnitude(x, keep=keep, **p), above, below)
        from batchproc.kernels import sobel

        return sobel.sobel_magnitude(x, expand(p["mode"], x.ndim), p["cval"], out, keep, overwrite_input, above, below)

    block.crops = True  # type: ignore[attr-defined]
    block.overwrites = True  # type: ignore[attr-defined]
    return block


# ---------------------------------------------------------------- uniform, minimum, maximum


def _size_passes(p: Mapping[str, Any], ndim: int) -> list[tuple[int, int, int, str]]:
    axes = axes_tuple(p["axes"], ndim)
    n = len(axes)
    return [
        (axis, int(size), origin, mode)
        for axis, size, origin, mode in zip(axes, expand(p["size"], n), expand(p["origin"], n), expand(p["mode"], n), strict=True)
        if size > 1
    ]


def fast_uniform(dtype: np.dtype, params: Mapping[str, Any]) -> Block | None:
    out = _out_dtype(dtype, params)
    if not _numeric(dtype) or not _numeric(out):
        return None
    if out.kind in "iu":
        # An average stays within the input's range, but the running sum's
        # rounding can land a hair below an integer: C truncation, replayed exactly.
        if np.dtype(dtype).kind == "f" or not _cval_fits(out, params, expand(params["mode"], 1)):
            return None
        if np.iinfo(dtype).min < np.iinfo(out).min or np.iinfo(dtype).max > np.iinfo(out).max:
            return None
    return uniform_block


def uniform_block(x: np.ndarray, **p: Any) -> np.ndarray:
    out = empty(x.shape, _out_dtype(x.dtype, p))
    passes = _size_passes(p, x.ndim)
    if not passes:
        out[...] = x
        return out
    from batchproc.kernels.lines import as_lines, uniform1d_3d

    src = _contiguous(x)
    for axis, size, origin, mode in passes:
        uniform1d_3d(as_lines(src, axis), size, origin, MODE_CODES[mode], float(p["cval"]), as_lines(out, axis))
        src = out
    return out


def _ties_by_order(x: np.ndarray, p: Mapping[str, Any]) -> bool:
    """Whether the block holds values whose pick depends on the algorithm's order
    of comparisons: NaN (unordered) or -0.0 (equal to 0.0, other bits), in the
    block or as a constant-mode ``cval``. Order statistics of such blocks are
    left to scipy."""
    if x.dtype.kind != "f":
        return False
    if any(MODE_CODES[m] == 4 for m in expand(p.get("mode", "reflect"), x.ndim)):
        cval = float(p.get("cval", 0.0))
        if cval != cval or (cval == 0 and np.signbit(cval)):
            return True
    return bool(np.isnan(x).any() or (np.signbit(x) & (x == 0)).any())


def fast_minmax(minimum: bool) -> Callable[[np.dtype, Mapping[str, Any]], Block | None]:
    def fast(dtype: np.dtype, params: Mapping[str, Any]) -> Block | None:
        out = _out_dtype(dtype, params)
        fp = params.get("footprint")
        if fp is not None and not fp.all():
            return None  # a shaped footprint is not separable: scipy's own kernel
        if not _numeric(dtype) or not _numeric(out):
            return None
        if np.dtype(dtype).kind in "iu" and np.dtype(dtype).itemsize > 4:
            return None  # int64 is not exact in float64 line buffers
        if out.kind in "iu":
            cval = params["cval"]
            if np.dtype(dtype).kind == "f" or (
                any(m in ("constant", "grid-constant") for m in expand(params["mode"], 1))
                and not (float(cval).is_integer() and _cval_fits(out, params, ("constant",)))
            ):
                return None
            if np.iinfo(dtype).min < np.iinfo(out).min or np.iinfo(dtype).max > np.iinfo(out).max:
                return None

        def block(x: np.ndarray, **p: Any) -> np.ndarray:
            if _ties_by_order(x, p):
                return scipy_function("minimum_filter" if minimum else "maximum_filter")(x, **p)
            if p.get("footprint") is not None:
                # scipy: an all-true footprint is the separable filter of its shape.
                p = dict(p, size=p["footprint"].shape, footprint=None)
            out_ = empty(x.shape, _out_dtype(x.dtype, p))
            passes = _size_passes(p, x.ndim)
            if not passes:
                out_[...] = x
                return out_
            from batchproc.kernels.lines import as_lines, minmax1d_3d

            src = _contiguous(x)
            for axis, size, origin, mode in passes:
                minmax1d_3d(as_lines(src, axis), size, origin, MODE_CODES[mode], float(p["cval"]), minimum, as_lines(out_, axis))
                src = out_
            return out_

        return block

    return fast


# ---------------------------------------------------------------- median, percentile, rank


def _rank_of(kind: str, p: Mapping[str, Any], count: int) -> int:
    """scipy's rank for a window of ``count`` values (scipy.ndimage._rank_filter)."""
    if kind == "median":
        return count // 2
    if kind == "percentile":
        percentile = p["percentile"] + 100.0 if p["percentile"] < 0 else p["percentile"]
        return count - 1 if percentile == 100.0 else int(float(count) * percentile / 100.0)
    return p["rank"] + count if p["rank"] < 0 else p["rank"]


def _over_all_axes(window: np.ndarray, p: Mapping[str, Any], ndim: int) -> tuple[np.ndarray, list[int]] | None:
    """``window`` (one dimension per filtered axis) and its origins over every axis
    of an ``ndim`` block, length 1 and origin 0 on the others, as scipy expands
    them; None for unsorted ``axes`` (scipy pairs those its own way)."""
    axes = axes_tuple(p["axes"], ndim)
    if list(axes) != sorted(axes):
        return None
    shape, origins = [1] * ndim, [0] * ndim
    for axis, size, origin in zip(axes, window.shape, expand(p["origin"], len(axes)), strict=True):
        shape[axis], origins[axis] = size, origin
    return np.ascontiguousarray(window).reshape(shape), origins


def _full_footprint(p: Mapping[str, Any], ndim: int) -> tuple[np.ndarray, list[int]] | None:
    fp = p["footprint"]
    if fp is None:
        fp = np.ones(tuple(int(s) for s in expand(p["size"], len(axes_tuple(p["axes"], ndim)))), dtype=bool)
    return _over_all_axes(np.asarray(fp, dtype=bool), p, ndim)


def _block_cval(dtype: np.dtype, params: Mapping[str, Any]) -> Any:
    """``cval`` as a value of ``dtype`` where the mode reads it (checked exact by
    :func:`_exact_cval`), else an unused 0."""
    return dtype.type(params["cval"] if MODE_CODES[params["mode"]] == 4 else 0)


def _exact_cval(dtype: np.dtype, cval: float) -> bool:
    """Is ``cval`` a value of ``dtype`` (so selecting it in the dtype is selecting
    it in scipy's float64 buffer)?"""
    if dtype.kind == "f":
        with np.errstate(over="ignore"):
            return float(dtype.type(cval)) == cval  # False for nan, whose order is scipy's own
    info = np.iinfo(dtype)
    return float(cval).is_integer() and info.min <= cval <= info.max


def fast_rank(kind: str) -> Callable[[np.dtype, Mapping[str, Any]], Block | None]:
    """Selection networks for ``kind`` (median, percentile, rank) on 2-D and 3-D
    blocks, a sliding histogram for 8- and 16-bit images over larger boxes
    (:func:`~batchproc.kernels.rank.histogram_pays`); scipy for the rest (min/max
    ranks, very large windows of other dtypes, 64-bit integers, NaN or -0.0 in the
    block, empty blocks)."""

    def fast(dtype: np.dtype, params: Mapping[str, Any]) -> Block | None:
        dt = np.dtype(dtype)
        if not _numeric(dt) or dt.itemsize > 4 or _out_dtype(dt, params) != dt:
            return None
        if MODE_CODES[params["mode"]] == 4 and not _exact_cval(dt, float(params["cval"])):
            return None
        if dt.kind in "iu" and not np.isfinite(params["cval"]):
            return None  # scipy casts cval to the dtype whatever the mode, and refuses these
        cval = _block_cval(dt, params)

        def block(x: np.ndarray, **p: Any) -> np.ndarray:
            from batchproc.kernels import rank as networks

            window = _full_footprint(p, x.ndim) if x.ndim in (2, 3) and x.size else None
            if window is not None:
                footprint, origins = window
                count = int(np.count_nonzero(footprint))
                rank = _rank_of(kind, p, count)
                if networks.histogram_pays(x, rank, count, footprint):
                    return networks.box_rank_histogram(x, rank, footprint.shape, tuple(origins), p["mode"], cval)
                if 0 < rank < count - 1 and count <= networks.MAX_WINDOW and not _ties_by_order(x, p):
                    return networks.rank_filter(x, rank, footprint, tuple(origins), p["mode"], cval)
            return scipy_function(f"{kind}_filter")(x, **p)

        return block

    return fast


# ---------------------------------------------------------------- correlate, convolve

_DENSE_MODES = ("reflect", "grid-mirror", "mirror", "nearest", "wrap", "constant")


def fast_dense(convolution: bool) -> Callable[[np.dtype, Mapping[str, Any]], Block | None]:
    """Row-vectorized correlation for 2-D and 3-D blocks; scipy for the rest
    (64-bit integers, grid-wrap/grid-constant, and integer results out of the
    output's range, whose C cast is scipy's)."""
    scipy_name = "convolve" if convolution else "correlate"

    def fast(dtype: np.dtype, params: Mapping[str, Any]) -> Block | None:
        dt, out = np.dtype(dtype), _out_dtype(dtype, params)
        if not _numeric(dt) or dt.itemsize > 4 and dt.kind != "f":
            return None
        if not _numeric(out) or out.itemsize > 4 and out.kind != "f":
            return None
        if params["mode"] not in _DENSE_MODES:
            return None

        def block(x: np.ndarray, **p: Any) -> np.ndarray:
            window = _over_all_axes(np.asarray(p["weights"], dtype=np.float64), p, x.ndim) if x.ndim in (2, 3) else None
            if window is None:
                return scipy_function(scipy_name)(x, **p)
            weights, origins = window
            if convolution:
                # scipy: a convolution is the correlation with flipped weights and
                # mirrored origins (one further along even sizes).
                weights = weights[(slice(None, None, -1),) * x.ndim]
                origins = [-o - (0 if size & 1 else 1) for o, size in zip(origins, weights.shape, strict=True)]
            from batchproc.kernels import dense

            # scipy's constant edge adds weight * cval in float64, whatever the dtype
            result = dense.correlate(x, weights, tuple(origins), p["mode"], float(p["cval"]), out)
            return scipy_function(scipy_name)(x, **p) if result is None else result

        return block

    return fast


# ---------------------------------------------------------------- binary morphology

#: Each operation's steps, True for a dilation (scipy: opening is erosion then
#: dilation, closing the reverse, each step repeated ``iterations`` times).
_BINARY_STEPS = {
    "binary_erosion": (False,),
    "binary_dilation": (True,),
    "binary_opening": (False, True),
    "binary_closing": (True, False),
}


def _centre_is_true(params: Mapping[str, Any]) -> bool:
    """Is the structure's element at its origin true (scipy's _center_is_true; a
    dilation's reflected structure and mirrored origin pick the same element)?"""
    structure = params.get("structure")
    if structure is None:
        return True
    structure = np.asarray(structure, dtype=bool)
    origin = expand(params["origin"], structure.ndim)
    return bool(structure[tuple(s // 2 + o for s, o in zip(structure.shape, origin, strict=True))])


def fast_binary(name: str) -> Callable[[np.dtype, Mapping[str, Any]], Block | None]:
    """Bit-packed erosion/dilation (:mod:`batchproc.kernels.morphology`) for every
    input dtype scipy takes, ``iterations`` included; scipy's (the operation's own
    block) where ``iterations < 1`` meets a structure whose centre is false, whose
    repeated passes need not settle."""
    steps = _BINARY_STEPS[name]

    def fast(dtype: np.dtype, params: Mapping[str, Any]) -> Block | None:
        if np.dtype(dtype).kind not in "biuf":
            return None
        if params["iterations"] < 1 and not _centre_is_true(params):
            return None

        def block(x: np.ndarray, *extra: np.ndarray, **p: Any) -> np.ndarray:
            mask = p["mask"] if "mask" in p else (extra[0] if extra else None)
            if x.size == 0:
                return np.zeros(x.shape, bool)
            from batchproc.kernels import morphology

            return morphology.binary_morphology(x, steps, p.get("structure"), p["iterations"], mask, p["border_value"], p["origin"], p.get("axes"))

        block.__name__ = name
        return block

    return fast
