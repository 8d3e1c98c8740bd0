"""Hypothesis strategies: random arrays, chunkings and valid parameters for every
operation in the registry, and the reference result for each (scipy.ndimage on the
whole array, or the course's numpy formula for the operations scipy lacks)."""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce
from typing import Any

import numpy as np
import scipy.ndimage as ndi
from hypothesis import strategies as st

MODES = ("reflect", "constant", "nearest", "mirror", "wrap", "grid-wrap", "grid-constant", "grid-mirror")
INT_DTYPES = ("uint8", "uint16", "int16", "int32")
FLOAT_DTYPES = ("float32", "float64")
DTYPES = INT_DTYPES + FLOAT_DTYPES


@st.composite
def shapes(draw: st.DrawFn) -> tuple[int, ...]:
    ndim = draw(st.integers(1, 4))
    top = {1: 40, 2: 14, 3: 7, 4: 4}[ndim]
    return tuple(draw(st.lists(st.integers(1, top), min_size=ndim, max_size=ndim)))


@st.composite
def axis_chunks(draw: st.DrawFn, n: int) -> tuple[int, ...]:
    """Chunks along one axis: single, all 1, all 2, or a random (uneven) partition."""
    style = draw(st.sampled_from(["single", "ones", "twos", "random", "random"]))
    if style == "single":
        return (n,)
    if style == "ones":
        return (1,) * n
    if style == "twos":
        return (2,) * (n // 2) + ((1,) if n % 2 else ())
    cuts = sorted(draw(st.sets(st.integers(1, max(1, n - 1)), max_size=min(n - 1, 6)))) if n > 1 else []
    edges = [0, *cuts, n]
    return tuple(b - a for a, b in zip(edges, edges[1:], strict=False) if b > a)


@st.composite
def chunkings(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    return tuple(draw(axis_chunks(n)) for n in shape)


def make_array(seed: int, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.random(shape) < rng.uniform(0.2, 0.8)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        # Sometimes a narrow range, so that ties and repeated values are common.
        lo, hi = (int(info.min), int(info.max)) if rng.random() < 0.5 else (max(int(info.min), -5), min(int(info.max), 20))
        return rng.integers(lo, hi, size=shape, endpoint=True).astype(dt)
    values = rng.normal(0.0, 100.0, size=shape)
    if rng.random() < 0.3:
        values = np.round(values / 25.0) * 25.0
    return values.astype(dt)


@st.composite
def arrays(draw: st.DrawFn, dtypes: tuple[str, ...] = DTYPES) -> tuple[np.ndarray, tuple]:
    shape = draw(shapes())
    dtype = draw(st.sampled_from(dtypes))
    a = make_array(draw(st.integers(0, 2**32 - 1)), shape, dtype)
    return a, draw(chunkings(shape))


# ------------------------------------------------------------------ parameter pieces


@st.composite
def active_axes(draw: st.DrawFn, ndim: int, sorted_only: bool = False) -> tuple[Any, tuple[int, ...]]:
    """``axes`` as the user may give it (None, an int, a tuple, negative numbers) and
    the axes it means."""
    if draw(st.booleans()):
        return None, tuple(range(ndim))
    chosen = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    if sorted_only:
        chosen.sort()
    given = [a - ndim if draw(st.booleans()) else a for a in chosen]
    if len(given) == 1 and draw(st.booleans()):
        return given[0], tuple(chosen)
    return tuple(given), tuple(chosen)


def per_axis(draw: st.DrawFn, n: int, element: st.SearchStrategy) -> Any:
    if draw(st.booleans()):
        return draw(element)
    return tuple(draw(element) for _ in range(n))


def origin_for(draw: st.DrawFn, sizes: tuple[int, ...]) -> Any:
    """A valid origin, often at the extremes (where even windows are most fragile)."""
    values = tuple(
        draw(st.sampled_from(sorted({-(s // 2), (s - 1) // 2, 0}))) if draw(st.booleans()) else draw(st.integers(-(s // 2), (s - 1) // 2)) for s in sizes
    )
    if len(set(values)) == 1 and draw(st.booleans()):
        return values[0]
    return values


def window_sizes(draw: st.DrawFn, shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    # Up to a little beyond the axis: kernels larger than the whole array are a case.
    return tuple(draw(st.integers(1, min(shape[a] + 2, 7))) for a in axes)


def mode_param(draw: st.DrawFn, n: int, per_axis_ok: bool) -> Any:
    if per_axis_ok and draw(st.booleans()):
        return tuple(draw(st.sampled_from(MODES)) for _ in range(n))
    return draw(st.sampled_from(MODES))


def cval(draw: st.DrawFn) -> float:
    return draw(st.sampled_from([0.0, 1.0, -3.5, 7, 255.0, float("inf"), float("-inf"), float("nan")]))


def random_bool(draw: st.DrawFn, sizes: tuple[int, ...]) -> np.ndarray:
    seed = draw(st.integers(0, 2**32 - 1))
    fp = np.random.default_rng(seed).random(sizes) < 0.6
    fp.flat[draw(st.integers(0, fp.size - 1))] = True
    return fp


# ------------------------------------------------------------------ per operation
# Each returns (dtypes it accepts, a strategy of params given the array).

ParamsFn = Callable[[st.DrawFn, np.ndarray], dict[str, Any]]
CASES: dict[str, tuple[tuple[str, ...], ParamsFn]] = {}


def case(name: str, dtypes: tuple[str, ...] = DTYPES) -> Callable[[ParamsFn], ParamsFn]:
    def register(fn: ParamsFn) -> ParamsFn:
        CASES[name] = (dtypes, fn)
        return fn

    return register


def output_param(draw: st.DrawFn) -> Any:
    return draw(st.sampled_from([None, None, None, "float64", "float32", "int32"]))


@case("correlate")
@case("convolve")
def _weights(draw: st.DrawFn, a: np.ndarray) -> dict[str, Any]:
    axes_given, axes = draw(active_axes(a.ndim))
    sizes = window_sizes(draw, a.shape, axes)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    weights = rng.integers(-3, 4, size=sizes) if draw(st.booleans()) else rng.normal(size=sizes).round(3)
    params: dict[str, Any] = {
        "weights": weights,
        "mode": mode_param(draw, len(axes), False),
        "cval": cval(draw),
        "origin": origin_for(draw, sizes),
        "output": output_param(draw),
    }
    if axes_given is not None:
        params["axes"] = axes_given
    return params


def gaussian_common(draw: st.DrawFn, a: np.ndarray, *, order: bool) -> dict[str, Any]:
    axes_given, axes = draw(active_axes(a.ndim))
    n = len(axes)
    # The derivative filters smooth along every axis: sigma/radius are per array axis.
    n_sigma = n if order else a.ndim
    params: dict[str, Any] = {
        "sigma": per_axis(draw, n_sigma, st.sampled_from([0.0, 0.5, 1.0, 1.7, 3.0])),
        "mode": mode_param(draw, n, True),
        "cval": cval(draw),
        "truncate": draw(st.sampled_from([4.0, 1.0, 2.5])),
        "output": output_param(draw),
    }
    if order:
        params["order"] = per_axis(draw, n, st.integers(0, 2))
    if draw(st.booleans()):
        params["radius"] = per_axis(draw, n_sigma, st.integers(0, 4))
    if axes_given is not None:
        params["axes"] = axes_given
    return params


@case("gaussian_filter")
def _gaussian(draw: st.DrawFn, a: np.ndarray) -> dict[str, Any]:
    return gaussian_common(draw, a, order=True)


@case("gaussian_gradient_magnitude", FLOAT_DTYPES + ("int16", "int32"))
@case("gaussian_laplace", FLOAT_DTYPES + ("int16", "int32"))
def _gaussian_derivative(draw: st.DrawFn, a: np.ndarray) -> dict[str, Any]:
    return gaussian_common(draw, a, order=False)


@case("sobel")
@case("prewitt")
def _sobel(draw: st.DrawFn, a: np.ndarray) -> dict[str, Any]:
    return {"axis": draw(st.integers(-a.ndim, a.ndim - 1)), "mode": mode_param(draw, a.ndim, True), "cval": cval(draw), "output": output_param(draw)}


@case("laplace")
def _laplace(draw: st.DrawFn, a: np.ndarray) -> dict[str, Any]:
    axes_given, axes = draw(active_axes(a.ndim))
    params = {"mode": mode_param(draw, len(axes), True), "cval": cval(draw), "output": output_param(draw)}
    if axes_given is not None:
        params["axes"] = axes_given
    return params


@case("uniform_filter")
def _uniform(draw: st.DrawFn, a: np.ndarray) -> dict[str, Any]:
    axes_given, axes = draw(active_axes(a.ndim))
    sizes = window_sizes(draw, a.shape, axes)
    size = sizes[0] if len(set(sizes)) == 1 and draw(st.booleans()) else sizes
    params = {"size": size, "mode": mode_param(draw, len(axes), True), "cval": cval(draw), "origin": origin_for(draw, sizes), "output": output_param(draw)}
    if axes_given is not None:
        params["axes"] = axes_given
    return params


def window_common(draw: st.DrawFn, a: np.ndarray, per_axis_mode: bool) -> tuple[dict[str, Any], int]:
    axes_given, axes = draw(active_axes(a.ndim))
    sizes = window_sizes(draw, a.shape, axes)
    params: dict[str, Any] = {"cval": cval(draw), "origin": origin_for(draw, sizes)}
    if draw(st.booleans()):
        fp = random_bool(draw, sizes)
        params["footprint"] = fp
        params["mode"] = mode_param(draw, len(axes), False)
        count = int(fp.sum())
    else:
        params["size"] = sizes
        params["mode"] = mode_param(draw, len(axes), per_axis_mode)
        count = int(np.prod(sizes))
    if axes_given is not None:
        params["axes"] = axes_given
    return params, count


@case("minimum_filter")
@case("maximum_filter")
def _minmax(draw: st.DrawFn, a: np.ndarray) -> dict[str, Any]:
    return window_common(draw, a, True)[0]


def rank_common(draw: st.DrawFn, a: np.ndarray) -> tuple[dict[str, Any], int]:
    params, count = window_common(draw, a, False)
    # scipy 1.17's rank filters on 1-D input read outside the line when the window
    # is longer than it, in the modes that fold or wrap: the result changes from
    # call to call (median_filter([45], 3, mode="mirror") gave 32, 33 or 45), so
    # scipy cannot serve as the reference there (docs/concepts/exactness.md lists it).
    window = params["footprint"].shape[0] if "footprint" in params else params["size"][0]
    if a.ndim == 1 and window > a.shape[0] and params["mode"] in ("reflect", "mirror", "wrap", "grid-wrap", "grid-mirror"):
        params["mode"] = "nearest"
    # Nor in 1-D with integers and a cval int64 cannot hold: scipy refuses it or not
    # by the line's length (docs/concepts/exactness.md); batchproc always does.
    if a.ndim == 1 and a.dtype.kind in "iu" and not np.isfinite(params["cval"]):
        params["cval"] = 0.0
    return params, count


@case("median_filter")
def _median(draw: st.DrawFn, a: np.ndarray) -> dict[str, Any]:
    return rank_common(draw, a)[0]


@case("percentile_filter")
def _percentile(draw: st.DrawFn, a: np.ndarray) -> dict[str, Any]:
    params = rank_common(draw, a)[0]
    params["percentile"] = draw(st.sampled_from([-100, -30, 0, 12.5, 50, 75, 100]))
    return params


@case("rank_filter")
def _rank(draw: st.DrawFn, a: np.ndarray) -> dict[str, Any]:
    params, count = rank_common(draw, a)
    params["rank"] = draw(st.integers(-count, count - 1))
    return params


def _centre_is_true(structure: np.ndarray, origin: Any) -> bool:
    origin = np.broadcast_to(origin, (structure.ndim,))
    return bool(structure[tuple(s // 2 + o for s, o in zip(structure.shape, origin, strict=True))])


def morphology(draw: st.DrawFn, a: np.ndarray) -> dict[str, Any]:
    # Sorted axes only: with unsorted ones scipy 1.17 itself corrupts memory, so it
    # cannot serve as the reference (batchproc sorts them: test_validation.py).
    axes_given, axes = draw(active_axes(a.ndim, sorted_only=True))
    params: dict[str, Any] = {
        "iterations": draw(st.sampled_from([1, 1, 2, 3, 5, 0, -1])),
        "border_value": draw(st.sampled_from([0, 1])),
        "brute_force": draw(st.booleans()),
    }
    if draw(st.booleans()):
        sizes = tuple(draw(st.integers(1, 4)) for _ in axes)
        params["structure"] = random_bool(draw, sizes)
        params["origin"] = origin_for(draw, sizes)
    if draw(st.booleans()):
        params["mask"] = make_array(draw(st.integers(0, 2**32 - 1)), a.shape, "bool")
    if axes_given is not None:
        params["axes"] = axes_given
    if params["iterations"] < 1 and "structure" in params and not _centre_is_true(params["structure"], params["origin"]):
        # With the centre false, scipy's "until nothing changes" loop may never end,
        # so it cannot be the reference; test_validation.py covers batchproc there.
        params["iterations"] = 2
    if params["iterations"] != 1:
        # scipy's change-tracking path for repeated passes can corrupt the heap (an
        # abort in free() mid-suite); its brute-force path, the same result by
        # definition, is the reference (tests/ops/test_validation.py).
        params["brute_force"] = True
    return params


for _name in ("binary_dilation", "binary_erosion", "binary_opening", "binary_closing"):
    case(_name, ("bool", "bool", "uint8", "float32"))(morphology)


@case("histogram")
def _histogram(draw: st.DrawFn, a: np.ndarray) -> dict[str, Any]:
    lo = draw(st.sampled_from([0.0, -100.0, float(a.min()), -5.0]))
    hi = lo + draw(st.sampled_from([1.0, 50.0, 300.0, 70000.0]))
    params: dict[str, Any] = {"min": lo, "max": hi, "bins": draw(st.integers(1, 40))}
    kind = draw(st.sampled_from(["none", "labels", "index", "scalar"]))
    if kind != "none":
        labels = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(0, 4, size=a.shape)
        params["labels"] = labels
        if kind == "index":
            params["index"] = draw(st.lists(st.integers(0, 5), min_size=1, max_size=4))
        elif kind == "scalar":
            params["index"] = draw(st.integers(0, 5))
    return params


@case("label", ("bool", "bool", "bool", "uint8", "int16", "float32"))
def _label(draw: st.DrawFn, a: np.ndarray) -> dict[str, Any]:
    kind = draw(st.sampled_from(["default", "default", "connectivity", "symmetric", "symmetric", "wrong"]))
    params: dict[str, Any] = {}
    if kind == "connectivity":
        params["structure"] = ndi.generate_binary_structure(a.ndim, draw(st.integers(1, a.ndim)))
    elif kind == "symmetric":  # any centrosymmetric structure, its centre true or not
        half = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).random((3,) * a.ndim) < 0.4
        params["structure"] = half | half[(slice(None, None, -1),) * a.ndim]
    elif kind == "wrong":  # scipy refuses: another rank, not 3 wide, or not symmetric
        params["structure"] = draw(
            st.sampled_from(
                [
                    np.ones((3,) * (a.ndim % 4 + 1), bool),
                    np.ones((2,) * a.ndim, bool),
                    np.eye(3, dtype=bool)[(0,) * (a.ndim - 2)] if a.ndim >= 2 else np.array([1, 1, 0], bool),
                ]
            )
        )
    params["output"] = draw(st.sampled_from([None, None, "int64", "uint32"]))
    return params


def _labels_for(draw: st.DrawFn, a: np.ndarray) -> np.ndarray:
    """Labels for measurements: objects of a random mask, or random small integers."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        return ndi.label(rng.random(a.shape) < 0.5)[0]
    return rng.integers(0, 5, size=a.shape).astype(draw(st.sampled_from(["int32", "uint8", "int64"])))


def _measurement(positions: bool) -> ParamsFn:
    """``labels`` and ``index`` in each of scipy's forms. Positions of an extreme
    shared by several voxels are compared in the single-group forms only, where
    scipy takes the first in C order (docs/concepts/exactness.md)."""

    def params_for(draw: st.DrawFn, a: np.ndarray) -> dict[str, Any]:
        form = draw(st.sampled_from(["none", "labels", "scalar", "scalar"] + ([] if positions else ["sequence", "sequence"])))
        if form == "none":
            return {}
        labels = _labels_for(draw, a)
        params: dict[str, Any] = {"labels": labels}
        if form == "scalar":
            params["index"] = draw(st.sampled_from([1, 2, int(labels.max(initial=0))]))
        elif form == "sequence":
            params["index"] = draw(st.lists(st.integers(0, 7), min_size=1, max_size=6))
        return params

    return params_for


for _name in ("sum_labels", "mean", "variance", "standard_deviation", "minimum", "maximum", "center_of_mass"):
    case(_name, DTYPES + ("bool",))(_measurement(False))
for _name in ("minimum_position", "maximum_position", "extrema"):
    case(_name, DTYPES)(_measurement(True))


@case("find_objects", ("uint8", "int16"))  # labels: full-range int32 values make scipy's list run out of memory
def _find_objects(draw: st.DrawFn, a: np.ndarray) -> dict[str, Any]:
    return {"max_label": draw(st.sampled_from([0, 0, 1, 3, 30]))}


@case("distance_transform_edt", ("bool", "bool", "uint8", "float32"))
def _edt(draw: st.DrawFn, a: np.ndarray) -> dict[str, Any]:
    kind = draw(st.sampled_from(["none", "none", "integers", "floats", "one"]))
    if kind == "none":
        return {}
    if kind == "one":
        return {"sampling": draw(st.sampled_from([2, 0.5, 1.7]))}
    if kind == "integers":
        return {"sampling": draw(st.lists(st.integers(1, 4), min_size=a.ndim, max_size=a.ndim))}
    return {"sampling": draw(st.lists(st.floats(0.2, 5.0), min_size=a.ndim, max_size=a.ndim))}


@case("sobel_magnitude")
def _sobel_magnitude(draw: st.DrawFn, a: np.ndarray) -> dict[str, Any]:
    axes_given, _ = draw(active_axes(a.ndim))
    params = {"mode": mode_param(draw, a.ndim, True), "cval": cval(draw), "output": draw(st.sampled_from([None, None, "float32"]))}
    if axes_given is not None:
        params["axes"] = axes_given
    return params


@case("equalize", DTYPES + ("int8",))
def _equalize(draw: st.DrawFn, a: np.ndarray) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if a.dtype.kind == "f" or a.dtype.itemsize > 2 or draw(st.booleans()):
        if draw(st.booleans()):
            params["bins"] = draw(st.integers(1, 300))
        if draw(st.booleans()):
            params["min"], params["max"] = sorted([float(a.min()), float(a.max()) + draw(st.sampled_from([0, 3]))])
    if a.dtype.kind in "iu" and a.dtype.itemsize > 2 and "bins" not in params:
        params["bins"] = 64  # one bin per int32 value would be billions of bins
    if draw(st.booleans()):
        params["out_max"] = draw(st.sampled_from([255, 1.0, 4095]))
    return params


@case("threshold")
def _threshold(draw: st.DrawFn, a: np.ndarray) -> dict[str, Any]:
    which = draw(st.sampled_from(["above", "below", "both"]))
    params = {}
    if which in ("above", "both"):
        params["above"] = draw(st.sampled_from([0, 10, 64, -20.5]))
    if which in ("below", "both"):
        params["below"] = draw(st.sampled_from([0, 100, 200.5]))
    return params


# Each expression with the numpy it must mean (the reference is written out, not evaluated).
EXPRESSIONS: dict[str, Callable[[np.ndarray], Any]] = {
    "(x > 32) & ~(x > 64)": lambda x: (x > 32) & ~(x > 64),
    "x * 2 + 1": lambda x: x * 2 + 1,
    "-x": lambda x: -x,
    "10 < x <= 50": lambda x: (10 < x) & (x <= 50),
    "(x == 0) | (x >= 7)": lambda x: (x == 0) | (x >= 7),
    "x / 3": lambda x: x / 3,
    "x // 3": lambda x: x // 3,
    "x % 5": lambda x: x % 5,
    "~(x < 3) ^ (x > 9)": lambda x: ~(x < 3) ^ (x > 9),
    "x > 64": lambda x: x > 64,
}


@case("expression")
def _expression(draw: st.DrawFn, a: np.ndarray) -> dict[str, Any]:
    return {"expr": draw(st.sampled_from(sorted(EXPRESSIONS)))}


@case("where")
def _where(draw: st.DrawFn, a: np.ndarray) -> dict[str, Any]:
    cond = draw(st.sampled_from(["x > 64", "(x > 32) & ~(x > 64)", "mask"]))
    if cond == "mask":
        cond = make_array(draw(st.integers(0, 2**32 - 1)), a.shape, "bool")
    return {"condition": cond, "fill": draw(st.sampled_from([0, 1, 7]))}


@case("astype")
def _astype(draw: st.DrawFn, a: np.ndarray) -> dict[str, Any]:
    params: dict[str, Any] = {"dtype": draw(st.sampled_from(["uint8", "uint16", "int16", "float32", "float64"]))}
    if draw(st.booleans()):
        params["rescale"] = True
        if draw(st.booleans()):
            params["in_range"] = [-50, 300]
    elif np.dtype(params["dtype"]).kind in "iu" and a.dtype.kind == "f":
        params["dtype"] = "float32"  # float -> int casts of out-of-range values are undefined in numpy
    return params


# ------------------------------------------------------------------ references


def reference(name: str, a: np.ndarray, params: dict[str, Any]) -> Any:
    """What the operation must return, computed on the whole array in memory."""
    if name in REFERENCES:
        return REFERENCES[name](a, **params)
    return getattr(ndi, name)(a, **params)


def _ref_sobel_magnitude(a: np.ndarray, axes: Any = None, mode: Any = "reflect", cval: float = 0.0, output: Any = None) -> np.ndarray:
    dtype = np.dtype(output) if output else (a.dtype if a.dtype.kind == "f" else np.dtype(np.float64))
    axes_list = range(a.ndim) if axes is None else ([axes] if isinstance(axes, int) else axes)
    squares = [np.square(ndi.sobel(a, axis=ax, output=dtype, mode=mode, cval=cval)) for ax in axes_list]
    return np.sqrt(reduce(np.add, squares))


def _ref_equalize(a: np.ndarray, bins: Any = None, min: Any = None, max: Any = None, out_max: Any = None) -> np.ndarray:
    small_int = a.dtype.kind in "iu" and a.dtype.itemsize <= 2
    if bins is None and a.dtype.kind in "iu" and (small_int or min is not None):
        # The course: hist = ndi.histogram(im, lo, hi, hi - lo + 1); cdf[im - lo] * max
        info = np.iinfo(a.dtype)
        lo = int(info.min if min is None else min)
        hi = int(info.max if max is None else max)
        hist = ndi.histogram(a, lo, hi, hi - lo + 1)
        cdf = hist.cumsum() / hist.sum()
        return cdf[a.astype(np.int64) - lo] * (hi if out_max is None else out_max)
    nbins = 256 if bins is None else bins
    lo = float(a.min()) if min is None else float(min)
    hi = float(a.max()) if max is None else float(max)
    edges = np.linspace(lo, hi, nbins + 1)
    hist = np.histogram(a, edges)[0]
    cdf = np.concatenate([[0.0], hist.cumsum() / hist.sum()])
    return cdf[np.minimum(np.searchsorted(edges, a, side="right"), nbins)] * (hi if out_max is None else float(out_max))


def _ref_threshold(a: np.ndarray, above: Any = None, below: Any = None) -> np.ndarray:
    if above is not None and below is not None:
        return (a > above) & (a < below)
    return a > above if above is not None else a < below


def _ref_expression(a: np.ndarray, expr: str) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.asarray(EXPRESSIONS[expr](a))


def _ref_where(a: np.ndarray, condition: Any, fill: Any = 0) -> np.ndarray:
    mask = _ref_expression(a, condition) if isinstance(condition, str) else condition
    return np.where(mask, a, fill)


def _ref_astype(a: np.ndarray, dtype: str, rescale: bool = False, in_range: Any = None) -> np.ndarray:
    dt = np.dtype(dtype)
    if not rescale:
        return a.astype(dt)
    lo, hi = (float(a.min()), float(a.max())) if in_range is None else map(float, in_range)
    out_lo, out_hi = (float(np.iinfo(dt).min), float(np.iinfo(dt).max)) if dt.kind in "iu" else (0.0, 1.0)
    scale = (out_hi - out_lo) / (hi - lo) if hi > lo else 0.0
    y = (a.astype(np.float64) - lo) * scale + out_lo
    if dt.kind in "iu":
        y = np.clip(np.rint(y), out_lo, out_hi)
    return y.astype(dt)


REFERENCES: dict[str, Callable[..., Any]] = {
    "sobel_magnitude": _ref_sobel_magnitude,
    "equalize": _ref_equalize,
    "threshold": _ref_threshold,
    "expression": _ref_expression,
    "where": _ref_where,
    "astype": _ref_astype,
}
