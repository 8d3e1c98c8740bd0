"""scipy.ndimage's filters and binary morphology, declared once each.

Every block kernel here is scipy.ndimage itself, called on a block extended by
the halo declared beside it; ``batchproc.overlap.map_stage`` makes that exact.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from batchproc.errors import BatchprocError
from batchproc.kernels.params import axes_tuple, expand, scipy_function
from batchproc.ops import _checks as c
from batchproc.ops._registry import Operation, Param, mode_edges, register

# ---------------------------------------------------------------- shared parameters

OUTPUT = Param("output", c.dtype_(numeric=True), None, "dtype of the result (default: the input's dtype)")
BINARY_OUTPUT = Param("output", c.dtype_(), None, "dtype of the result (default: bool)")
# scipy takes an infinite or NaN cval too (cval=-inf keeps the edges out of a maximum).
CVAL = Param("cval", c.real(any_float=True), 0.0, "value outside the edges when mode is 'constant'")
AXES = Param("axes", c.axes(), None, "axes to filter along (default: all)", positional=False)
ORIGIN = Param(
    "origin",
    c.per_axis(c.integer(), "an integer"),
    0,
    "shift of the kernel's centre, per axis (positive shifts it to the left)",
)


def mode(per_axis: bool) -> Param:
    text = "boundary handling: reflect, constant, nearest, mirror or wrap"
    return Param("mode", c.mode(per_axis), "reflect", text + (", or one per axis" if per_axis else ""))


SIZE = Param("size", c.optional(c.per_axis(c.integer(1), "an integer >= 1")), None, "window size, per axis")
FOOTPRINT = Param(
    "footprint",
    c.array(kind="bool", what="a footprint"),
    None,
    "boolean window shape (instead of size)",
)

HUGE = sys.maxsize // 4  # "the whole axis": map_stage makes such an axis one chunk


# ---------------------------------------------------------------- compiled kernels


def compiled(name: str, *args: Any) -> Callable[[np.dtype, Mapping[str, Any]], Callable[..., np.ndarray] | None]:
    """An operation's ``fast`` (or ``fuse``): the compiled kernel ``name`` of
    :mod:`batchproc.kernels.filters` (``name(*args)`` for a family), imported on
    first use, so that numba loads only where kernels run (not to plan, not in a
    cluster's client)."""

    def fast(dtype: np.dtype, params: Mapping[str, Any], *more: Any) -> Callable[..., np.ndarray] | None:
        from batchproc.kernels import filters

        factory = getattr(filters, name)
        return (factory(*args) if args else factory)(dtype, params, *more)

    return fast


# ---------------------------------------------------------------- halo helpers


def _naxes(params: Mapping[str, Any], ndim: int) -> int:
    return len(axes_tuple(params.get("axes"), ndim))


def expanded_window(shape: tuple[int, ...], origin: Any, params: Mapping[str, Any], ndim: int) -> list[tuple[int, int, int]]:
    """``(axis, size, origin)`` for each filtered axis.

    With ``axes`` in increasing order (or None) every scipy function pairs window
    dimensions, sizes and origins with the axes in order. With unsorted ``axes``
    scipy's functions disagree among themselves (window arrays are expanded in
    sorted order, origins follow ``axes``, some pair positionally), so each axis
    gets the largest size and origin: a halo that covers every pairing.
    """
    given = axes_tuple(params.get("axes"), ndim)
    origins = expand(origin, len(given))
    if list(given) == sorted(given):
        return list(zip(given, shape, origins, strict=True))
    s_max, o_max = max(shape), max(abs(o) for o in origins)
    return [(axis, s_max, o_max) for axis in given]


def reach_from_shape(shape: tuple[int, ...], origin: Any, params: Mapping[str, Any], ndim: int, times: int = 1) -> tuple[int, ...]:
    """Per-axis reach of a window array of ``shape`` placed at ``origin``.

    For a window of size s and origin o, scipy reads offsets from -(s//2 + o) to
    s - 1 - s//2 - o (correlate) or their mirror (convolve, dilation): both lie
    within s//2 + |o|.
    """
    halo = [0] * ndim
    for axis, s, o in expanded_window(shape, origin, params, ndim):
        halo[axis] = min(HUGE, (s // 2 + abs(o)) * times)
    return tuple(halo)


def sizes_halo(params: Mapping[str, Any], ndim: int) -> tuple[int, ...]:
    """Reach of a ``size`` window (sizes and origins are both per filtered axis)."""
    given = axes_tuple(params.get("axes"), ndim)
    sizes = expand(params["size"], len(given))
    return reach_from_shape(sizes, params.get("origin", 0), params, ndim)


def window_halo(params: Mapping[str, Any], ndim: int) -> tuple[int, ...]:
    fp = params.get("footprint")
    if fp is not None:
        return reach_from_shape(fp.shape, params.get("origin", 0), params, ndim)
    return sizes_halo(params, ndim)


def weights_halo(params: Mapping[str, Any], ndim: int) -> tuple[int, ...]:
    return reach_from_shape(params["weights"].shape, params["origin"], params, ndim)


def active_halo(reach: int):
    def halo(params: Mapping[str, Any], ndim: int) -> tuple[int, ...]:
        active = set(axes_tuple(params.get("axes"), ndim))
        return tuple(reach if axis in active else 0 for axis in range(ndim))

    return halo


def gaussian_halo(params: Mapping[str, Any], ndim: int) -> tuple[int, ...]:
    """scipy's radius per axis: ``int(truncate * sigma + 0.5)`` or ``radius``; axes
    with sigma <= 1e-15 are skipped by scipy and need none."""
    return _gaussian_radii(params, axes_tuple(params.get("axes"), ndim), ndim)


def gaussian_derivative_halo(params: Mapping[str, Any], ndim: int) -> tuple[int, ...]:
    """gaussian_gradient_magnitude/gaussian_laplace: ``axes`` picks the derivatives,
    but each derivative is a gaussian_filter that smooths along *every* axis."""
    return _gaussian_radii(params, tuple(range(ndim)), ndim)


def gaussian_laplace_halo(params: Mapping[str, Any], ndim: int) -> tuple[int, ...]:
    """gaussian_laplace: scipy gives ``sigma`` one value per axis of ``axes`` and
    smooths no other axis (sigma 0 there); ``radius`` stays one per array axis.
    But where ``axes`` names every axis (in any order), scipy leaves ``sigma`` as it
    is: its i-th value is array axis i's, not that of ``axes[i]``."""
    active = axes_tuple(params.get("axes"), ndim)
    sigmas = expand(params["sigma"], len(active))
    radii = expand(params.get("radius"), ndim)
    halo = [0] * ndim
    for axis, sigma in zip(active if len(active) < ndim else range(ndim), sigmas, strict=True):
        if sigma > 1e-15:
            halo[axis] = radii[axis] if radii[axis] is not None else int(params["truncate"] * sigma + 0.5)
    return tuple(halo)


def _gaussian_radii(params: Mapping[str, Any], active: tuple[int, ...], ndim: int) -> tuple[int, ...]:
    n = len(active)
    sigmas = expand(params["sigma"], n)
    radii = expand(params.get("radius"), n)
    halo = [0] * ndim
    for axis, sigma, radius in zip(active, sigmas, radii, strict=True):
        if sigma > 1e-15:
            halo[axis] = radius if radius is not None else int(params["truncate"] * sigma + 0.5)
    return tuple(halo)


# ---------------------------------------------------------------- relations


def check_lengths(params: dict[str, Any], ctx: c.Context, names: tuple[str, ...]) -> None:
    if ctx.ndim is None:
        return
    n = _naxes(params, ctx.ndim)
    for name in names:
        c.check_length(name, params.get(name), n, ctx)


def check_origins(params: dict[str, Any], ctx: c.Context, window: list[tuple[int, int, int]]) -> None:
    """Each origin keeps the centre inside the window (scipy's rule:
    -(s // 2) <= origin <= (s - 1) // 2)."""
    for _, s, o in window:
        if not -(s // 2) <= o <= (s - 1) // 2:
            raise ctx.fail(
                "origin",
                f"within the window (from {-(s // 2)} to {(s - 1) // 2} for size {s})",
                params.get("origin"),
            )


def check_window(params: dict[str, Any], ctx: c.Context, array_name: str, shape: tuple[int, ...]) -> None:
    """A window array has one dimension per filtered axis and valid origins."""
    if ctx.ndim is None:
        return
    n = _naxes(params, ctx.ndim)
    if len(shape) != n:
        # scipy: "... must match len(axes)" / "filter weights array has incorrect shape" are RuntimeErrors
        raise ctx.fail(array_name, f"{n}-dimensional (one dimension per filtered axis)", params[array_name], RuntimeError)
    if _sorted_axes(params, ctx.ndim):
        check_origins(params, ctx, expanded_window(shape, params.get("origin", 0), params, ctx.ndim))


def _sorted_axes(params: Mapping[str, Any], ndim: int) -> bool:
    # Unsorted axes pair origins with windows differently in each scipy function;
    # the probe in Operation.validate (scipy itself) judges those.
    given = axes_tuple(params.get("axes"), ndim)
    return list(given) == sorted(given)


def relate_weights(params: dict[str, Any], ctx: c.Context) -> None:
    check_lengths(params, ctx, ("origin",))
    check_window(params, ctx, "weights", params["weights"].shape)


def relate_window(params: dict[str, Any], ctx: c.Context) -> None:
    if params.get("size") is None and params.get("footprint") is None:
        raise ctx.fail("size", "given (or a footprint)", None, RuntimeError)  # scipy: "no footprint provided"
    check_lengths(params, ctx, ("size", "origin", "mode"))
    if ctx.ndim is None:
        return
    fp = params.get("footprint")
    if fp is not None:
        check_window(params, ctx, "footprint", fp.shape)
        count = int(np.count_nonzero(fp))
    else:
        given = axes_tuple(params.get("axes"), ctx.ndim)
        sizes = expand(params["size"], len(given))
        if ctx.op in ("uniform_filter", "minimum_filter", "maximum_filter") and any(s <= 1 for s in sizes):
            # scipy filters these axis by axis and skips the axes of size 1, origin
            # and all: that origin shifts nothing, whatever it is.
            origins = expand(params.get("origin", 0), len(given))
            params["origin"] = tuple(0 if s <= 1 else o for s, o in zip(sizes, origins, strict=True))
        if _sorted_axes(params, ctx.ndim):
            check_origins(params, ctx, list(zip(given, sizes, expand(params.get("origin", 0), len(given)), strict=True)))
        count = int(np.prod(sizes))
    if isinstance(params.get("mode"), tuple) and fp is not None:
        if ctx.op in ("minimum_filter", "maximum_filter") and fp.all():
            # scipy: a footprint of all ones is separable, filtered as its size, axis
            # by axis, where each axis may have its own mode.
            params["size"], params["footprint"] = tuple(int(n) for n in fp.shape), None
        else:
            raise ctx.fail("mode", "a single mode when a footprint is given (or a footprint of all ones, for minimum/maximum_filter)", list(params["mode"]))
    if "rank" in params and not -count <= params["rank"] < count:
        raise ctx.fail(
            "rank", f"within the footprint's {count} elements (from {-count} to {count - 1})", params["rank"], RuntimeError
        )  # scipy: "rank not within filter footprint size"


def per_derivative_edges(params: Mapping[str, Any], ndim: int) -> tuple[str, ...]:
    """gaussian_gradient_magnitude/gaussian_laplace apply ``mode[i]`` to *every*
    axis of the i-th derivative, so a list mixing wrap and other modes reads each
    smoothed axis's edges both ways."""
    active = axes_tuple(params.get("axes"), ndim)
    wraps = {m in c.WRAP_MODES for m in expand(params["mode"], len(active))}
    edge = "whole" if len(wraps) == 2 else ("periodic" if wraps == {True} else "none")
    return (edge,) * ndim


def relate_gaussian_derivative(params: dict[str, Any], ctx: c.Context) -> None:
    # scipy: gaussian_laplace takes a sigma per axis of ``axes``; the gradient
    # magnitude one per array axis; both a radius per array axis.
    check_lengths(params, ctx, ("mode", "sigma") if ctx.op == "gaussian_laplace" else ("mode",))
    if ctx.ndim is not None:
        for name in ("radius",) if ctx.op == "gaussian_laplace" else ("sigma", "radius"):
            c.check_length(name, params.get(name), ctx.ndim, ctx)


def full_rank_edges(params: Mapping[str, Any], ndim: int) -> tuple[str, ...]:
    """A mode (list) over every axis, whatever ``axes`` selects (sobel_magnitude
    smooths along all axes)."""
    return mode_edges({**params, "axes": None}, ndim)


def rank_edges(params: Mapping[str, Any], ndim: int) -> tuple[str, ...]:
    """scipy filters a 1-D input with a sliding window whose state carries NaN
    comparisons forward: median_filter([1, 5, 3], 3, mode="constant", cval=nan) gave
    1 in the middle, and a voxel's result depends on the line before it. A 1-D line
    therefore goes to scipy whole; in 2-D and more each window is selected alone."""
    return ("whole",) if ndim == 1 else mode_edges(params, ndim)


def relate_gaussian(params: dict[str, Any], ctx: c.Context) -> None:
    check_lengths(params, ctx, ("sigma", "order", "mode", "radius"))


def relate_axes_modes(params: dict[str, Any], ctx: c.Context) -> None:
    check_lengths(params, ctx, ("mode",))


def relate_full_rank_modes(params: dict[str, Any], ctx: c.Context) -> None:
    if ctx.ndim is not None:
        c.check_length("mode", params.get("mode"), ctx.ndim, ctx)
    if ctx.ndim is not None and "axis" in params and not -ctx.ndim <= params["axis"] < ctx.ndim:
        raise ctx.fail("axis", f"an axis of a {ctx.ndim}-D input", params["axis"])


# ---------------------------------------------------------------- block kernels


def scipy_block(name: str, aligned: tuple[str, ...] = ()):
    """A block kernel that is scipy.ndimage's own function ``name``.

    ``aligned`` names the array parameters that ``map_stage`` passes as extra
    blocks (it leaves them out of ``params`` when present)."""

    def block(x: np.ndarray, *extra: np.ndarray, **params: Any) -> np.ndarray:
        present = [n for n in aligned if n not in params]
        params.update(zip(present, extra, strict=True))
        return scipy_function(name)(x, **params)

    block.__name__ = name
    return block


def declare(name: str, params: tuple[Param, ...], *, kind: str = "local", **fields: Any) -> Operation:
    aligned = tuple(p.name for p in params if p.array)
    fields.setdefault("block", scipy_block(name, aligned))
    return register(
        Operation(
            name=name,
            doc_of=name,
            params=params,
            kind=kind,  # type: ignore[arg-type]
            scipy=True,
            **fields,
        )
    )


# ---------------------------------------------------------------- declarations

_weights_array = c.array(kind="number", what="an array of weights")


def _weights(name: str, v: Any, ctx: c.Context) -> Any:
    if v is None:  # scipy: 'weights.ndim (0) must match len(axes)', a RuntimeError
        raise ctx.fail(name, "an array of weights, one dimension per filtered axis", v, RuntimeError)
    return _weights_array(name, v, ctx)


WEIGHTS = Param("weights", c.described(_weights, c.schema_of(_weights_array)), help="the kernel, one dimension per filtered axis")
for _name in ("correlate", "convolve"):
    declare(
        _name,
        (WEIGHTS, OUTPUT, mode(False), CVAL, ORIGIN, AXES),
        halo=weights_halo,
        relate=relate_weights,
        fast=compiled("fast_dense", _name == "convolve"),
    )

SIGMA = Param("sigma", c.per_axis(c.real(0), "a number >= 0"), help="standard deviation, per axis")
TRUNCATE = Param("truncate", c.real(0), 4.0, "truncate the kernel at this many standard deviations")
RADIUS = Param(
    "radius",
    c.optional(c.per_axis(c.integer(0), "an integer >= 0")),
    None,
    "kernel radius per axis (overrides truncate)",
    positional=False,
)
declare(
    "gaussian_filter",
    (
        SIGMA,
        Param("order", c.per_axis(c.integer(0), "an integer >= 0"), 0, "derivative order per axis"),
        OUTPUT,
        mode(True),
        CVAL,
        TRUNCATE,
        RADIUS,
        AXES,
    ),
    halo=gaussian_halo,
    relate=relate_gaussian,
    probed=False,
    fast=compiled("fast_gaussian"),
)
for _name in ("gaussian_gradient_magnitude", "gaussian_laplace"):
    declare(
        _name,
        (
            SIGMA,
            OUTPUT,
            mode(True),
            CVAL,
            AXES,
            Param("truncate", TRUNCATE.check, 4.0, TRUNCATE.help, positional=False),
            RADIUS,
        ),
        halo=gaussian_laplace_halo if _name == "gaussian_laplace" else gaussian_derivative_halo,
        relate=relate_gaussian_derivative,
        edge_rule=per_derivative_edges,
    )

for _name in ("sobel", "prewitt"):
    declare(
        _name,
        (Param("axis", c.integer(), -1, "axis of the derivative"), OUTPUT, mode(True), CVAL),
        halo=active_halo(1),
        relate=relate_full_rank_modes,
        fast=compiled("fast_edges", _name),
    )
declare("laplace", (OUTPUT, mode(True), CVAL, AXES), halo=active_halo(1), relate=relate_axes_modes, fast=compiled("fast_laplace"))


def running_sum_tolerance(a: np.ndarray, want: np.ndarray) -> float:
    """scipy's uniform_filter keeps a running sum along each line, whose rounding
    depends on where the line starts (docs/concepts/exactness.md): a few ulp of
    the input's scale for float output, none for integers."""
    if want.dtype.kind != "f":
        return 0.0
    scale = max(1.0, float(np.abs(a[np.isfinite(a)]).max(initial=0))) if a.dtype.kind == "f" else max(1.0, float(np.abs(a).max(initial=0)))
    return 1e-12 * scale if want.dtype == np.float64 else 4 * float(np.finfo(np.float32).eps) * scale


def _uniform_size(name: str, v: Any, ctx: c.Context) -> Any:
    """scipy's uniform_filter leaves an axis of size 0 or 1 as it is: 0 is taken as 1."""
    sizes = c.per_axis(c.integer(0), "an integer >= 0")(name, v, ctx)
    return tuple(max(1, n) for n in sizes) if isinstance(sizes, tuple) else max(1, sizes)


declare(
    "uniform_filter",
    (
        Param(
            "size", c.described(_uniform_size, c.schema_of(c.per_axis(c.integer(0), "an integer >= 0"))), 3, "window size, per axis (0 or 1: the axis as it is)"
        ),
        OUTPUT,
        mode(True),
        CVAL,
        ORIGIN,
        AXES,
    ),
    halo=window_halo,
    relate=relate_window,
    fast=compiled("fast_uniform"),
    tolerance=running_sum_tolerance,
)
_FAST_WINDOW = {
    "minimum_filter": compiled("fast_minmax", True),
    "maximum_filter": compiled("fast_minmax", False),
    "median_filter": compiled("fast_rank", "median"),
}
_WINDOW_EDGES = {"median_filter": rank_edges}
for _name, per_axis_mode in (("minimum_filter", True), ("maximum_filter", True), ("median_filter", False)):
    declare(
        _name,
        (SIZE, FOOTPRINT, OUTPUT, mode(per_axis_mode), CVAL, ORIGIN, AXES),
        halo=window_halo,
        relate=relate_window,
        fast=_FAST_WINDOW.get(_name),
        edge_rule=_WINDOW_EDGES.get(_name),
    )
declare(
    "percentile_filter",
    (
        Param("percentile", c.real(-100, hi=100), help="percentile from -100 to 100 (negative counts from the top)"),
        SIZE,
        FOOTPRINT,
        OUTPUT,
        mode(False),
        CVAL,
        ORIGIN,
        AXES,
    ),
    halo=window_halo,
    relate=relate_window,
    fast=compiled("fast_rank", "percentile"),
    edge_rule=rank_edges,
)
declare(
    "rank_filter",
    (Param("rank", c.integer(), help="rank in the sorted window (negative counts from the top)"), SIZE, FOOTPRINT, OUTPUT, mode(False), CVAL, ORIGIN, AXES),
    halo=window_halo,
    relate=relate_window,
    fast=compiled("fast_rank", "rank"),
    edge_rule=rank_edges,
)


# ---------------------------------------------------------------- binary morphology

STRUCTURE = Param(
    "structure",
    c.array(kind="bool", what="a structuring element"),
    None,
    "structuring element (default: cross-shaped, connectivity 1)",
)
ITERATIONS = Param("iterations", c.integer(), 1, "repetitions; < 1 repeats until nothing changes")
MASK = Param("mask", c.anything(), None, "only voxels where the mask is true change (an array like the input)", array=True)
BORDER = Param("border_value", c.integer(0, 1, allow_bool=True), 0, "value assumed outside the array (0 or 1)")
BRUTE = Param("brute_force", c.boolean(), False, "scipy's memory condition (the result is the same)")


def _structure_shape(params: Mapping[str, Any], ndim: int) -> tuple[int, ...]:
    s = params.get("structure")
    return s.shape if s is not None else (3,) * _naxes(params, ndim)


def morphology_halo(passes: int):
    def halo(params: Mapping[str, Any], ndim: int) -> tuple[int, ...]:
        iterations = params["iterations"]
        times = passes * iterations if iterations >= 1 else HUGE
        return reach_from_shape(_structure_shape(params, ndim), params["origin"], params, ndim, times)

    return halo


def relate_structure(params: dict[str, Any], ctx: c.Context) -> None:
    check_lengths(params, ctx, ("origin",))
    if ctx.ndim is None:
        return
    if not _sorted_axes(params, ctx.ndim):
        # scipy 1.17's binary morphology corrupts memory when `axes` is not in
        # increasing order (seen: aborts in free(), segmentation faults). The
        # structure's dimensions go onto the sorted axes anyway, so with zero
        # origins sorting the axes changes nothing but the crash; origins would be
        # paired in the given order, so those are refused rather than guessed.
        if any(expand(params["origin"], 1)):
            raise ctx.fail("origin", "0 when 'axes' is not in increasing order (give the axes sorted)", params["origin"])
        params["axes"] = tuple(sorted(axes_tuple(params["axes"], ctx.ndim)))
    check_window(params, ctx, "structure", _structure_shape(params, ctx.ndim))


def bool_dtype(dtype: np.dtype, params: Mapping[str, Any]) -> np.dtype:
    return np.dtype(bool)


_BINARY_ORDER = {
    "binary_dilation": ("structure", "iterations", "mask", "output", "border_value", "origin", "brute_force"),
    "binary_erosion": ("structure", "iterations", "mask", "output", "border_value", "origin", "brute_force"),
    "binary_opening": ("structure", "iterations", "output", "origin", "mask", "border_value", "brute_force"),
    "binary_closing": ("structure", "iterations", "output", "origin", "mask", "border_value", "brute_force"),
}
_BINARY_PARAMS = {p.name: p for p in (STRUCTURE, ITERATIONS, MASK, BINARY_OUTPUT, BORDER, ORIGIN, BRUTE)}


def _center_is_true(params: Mapping[str, Any]) -> bool:
    structure = params.get("structure")
    if structure is None:
        return True
    origin = expand(params["origin"], structure.ndim)
    return bool(structure[tuple(s // 2 + o for s, o in zip(structure.shape, origin, strict=True))])


def _settle(name: str, iterations: int, step: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """scipy's ``iterations < 1`` loop (repeat one pass until nothing changes), ended
    with an error instead of never when the passes cycle."""
    out = step(x)
    seen = {hashlib.blake2b(np.packbits(out)).digest()}
    while True:
        following = step(out)
        if np.array_equal(following, out):
            return following
        digest = hashlib.blake2b(np.packbits(following)).digest()
        if digest in seen:
            raise BatchprocError(
                f"{name}: iterations={iterations} (< 1) repeats until nothing changes, but with this "
                "structure and origin the structuring element's centre is false, so the passes "
                f"cycle through the same {len(seen)} states forever (scipy.ndimage would never "
                "return). Give iterations >= 1, or a structure whose centre (at its origin) is true."
            )
        seen.add(digest)
        out = following


def binary_block(name: str):
    """scipy's binary morphology, steering clear of two scipy 1.17 failures.

    With iterations != 1, scipy's change-tracking path (``brute_force=False``,
    NI_BinaryErosion2) can write past its buffers and corrupt the process's heap:
    "free(): invalid next size" and an abort, with a mask and a non-zero origin, and
    with no mask for a 65x65 disk on a 45x25 image at iterations 2 (scipy issue
    11400 is open). The brute-force path computes the same result by definition
    (scipy: the flag only trades memory for speed), so every repeated pass runs
    brute force.

    With iterations < 1 and a structure whose centre is false, a pass neither only
    grows nor only shrinks the set, and scipy's "until nothing changes" loop can
    cycle forever; the same passes run here, and a repeated state ends them with an
    error.
    """
    scipy_kernel = scipy_block(name, ("mask",))
    passes = {"binary_opening": ("binary_erosion", "binary_dilation"), "binary_closing": ("binary_dilation", "binary_erosion")}.get(name, (name,))

    def block(x: np.ndarray, *extra: np.ndarray, **params: Any) -> np.ndarray:
        if params["iterations"] != 1:
            params = dict(params, brute_force=True)
        if params["iterations"] >= 1 or _center_is_true(params):
            return scipy_kernel(x, *extra, **params)
        mask = params.get("mask", extra[0] if extra else None)
        one = {k: v for k, v in params.items() if k not in ("iterations", "mask", "output")}
        out = x
        for each in passes:
            fn = scipy_function(each)
            out = _settle(name, params["iterations"], lambda y, fn=fn: fn(y, iterations=1, mask=mask, **one), out)
        return out if params.get("output") is None else out.astype(params["output"])

    block.__name__ = name
    return block


for _name, _order in _BINARY_ORDER.items():
    declare(
        _name,
        tuple(_BINARY_PARAMS[n] for n in _order) + (AXES,),
        halo=morphology_halo(2 if _name in ("binary_opening", "binary_closing") else 1),
        relate=relate_structure,
        dtype=bool_dtype,
        block=binary_block(_name),
        fast=compiled("fast_binary", _name),
    )


# ---------------------------------------------------------------- beyond scipy's names


def sobel_magnitude_dtype(dtype: np.dtype, params: Mapping[str, Any]) -> np.dtype:
    if params.get("output") is not None:
        return np.dtype(params["output"])
    return np.dtype(dtype) if np.dtype(dtype).kind == "f" else np.dtype(np.float64)


def sobel_magnitude_block(x: np.ndarray, *, axes: Any, mode: Any, cval: float, output: Any) -> np.ndarray:
    """sqrt(sobel(x, a0)**2 + sobel(x, a1)**2 + ...), each response in the output dtype."""
    dtype = sobel_magnitude_dtype(x.dtype, {"output": output})
    if x.dtype == bool:
        # numpy reads a bool as 0/1; scipy's C loops read its raw byte, which a
        # previous scipy filter writing into a bool array may have left at 2 or 255.
        x = x.astype(dtype)
    total: np.ndarray | None = None
    for axis in axes_tuple(axes, x.ndim):
        response = scipy_function("sobel")(x, axis=axis, output=dtype, mode=mode, cval=cval)
        np.square(response, out=response)
        total = response if total is None else np.add(total, response, out=total)
    assert total is not None
    return np.sqrt(total, out=total)


register(
    Operation(
        name="sobel_magnitude",
        summary_text="Edge strength: the square root of the sum of squared Sobel responses over the axes.",
        doc_text="""Sobel gradient magnitude, as in ``np.sqrt(np.square(ndi.sobel(im, 0)) + np.square(ndi.sobel(im, 1)))``.

Parameters
----------
input : dask.array.Array or numpy.ndarray
    The image (a numpy array is wrapped in one dask block).
axes : int or sequence of int, optional
    Axes whose Sobel derivatives are combined (default: all). Each derivative
    still smooths along every other axis, as ``scipy.ndimage.sobel`` does.
output : dtype, optional
    dtype of the responses and the result (default: float64 for integer input,
    the input's dtype for floats), so that integer images do not overflow.
mode, cval
    As for ``scipy.ndimage.sobel``.
""",
        params=(
            Param("axes", c.axes(), None, "axes whose derivatives are combined (default: all)"),
            OUTPUT,
            mode(True),
            CVAL,
        ),
        kind="local",
        block=sobel_magnitude_block,
        halo=lambda params, ndim: (1,) * ndim,
        dtype=sobel_magnitude_dtype,
        edge_rule=full_rank_edges,
        fast=lambda dtype, params: compiled("fast_sobel_magnitude")(
            dtype, {**params, "_out": sobel_magnitude_dtype(dtype, params), "_whole": sobel_magnitude_block}
        ),
        fuse=lambda dtype, params, then, then_params: compiled("fast_sobel_magnitude_then")(
            dtype, {**params, "_out": sobel_magnitude_dtype(dtype, params), "_whole": sobel_magnitude_block}, then, then_params
        ),
        relate=relate_full_rank_modes,
        probed=False,
    )
)
