"""Measurements per object: scipy's ``sum_labels``, ``mean``, ``variance``,
``standard_deviation``, ``minimum``, ``maximum``, ``minimum_position``,
``maximum_position``, ``extrema``, ``center_of_mass`` and ``find_objects``, block
by block.

Each block reduces its voxels to a few numbers per label present in it (count,
sum, extremes and where they first occur, the sum of value times coordinate, the
bounding box); the client merges the blocks' tables by label, and answers in
scipy's forms (``labels`` None: the whole input; ``index`` None: every voxel where
``labels > 0`` as one group; a scalar: that label; a sequence: each). One pass
over the data answers every measurement but the variance, which takes a second
(scipy's: the sum of squares about each label's mean).

Exactness (docs/concepts/exactness.md): counts, extremes, first positions of
unique extremes, bounding boxes, and sums, means and centres of mass of integer
images equal scipy's. Sums of floats are added block by block, in another order
than scipy's, and so is the variance's sum of squares for any image: those agree
to within a few units in the last place of the sum (tested: relative 1e-12 for
float64 and 1e-5 for float32, of the sum of absolute values). Where several voxels
of a label share its extreme, scipy's position for a sequence of labels depends
on the order of an unstable sort; here it is always the first in C order, as scipy
gives it for a single group.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from batchproc.errors import BatchprocError
from batchproc.ops import _checks as c
from batchproc.ops._registry import Operation, Param, register

Box = tuple[tuple[int, int], ...]
_INT_MAX = np.iinfo(np.int64).max


def _groups(lb: np.ndarray | None, shape: tuple[int, ...], index: Any) -> np.ndarray | None:
    """Each voxel's group key, or None where a voxel belongs to no group."""
    if lb is None:
        return np.ones(shape, np.int8)
    if index is None:
        return (lb > 0).astype(np.int8)
    if np.isscalar(index):
        return (lb == index).astype(np.int8)
    return lb


def block_table(
    block: np.ndarray,
    lb: np.ndarray | None,
    *,
    where: Box,
    shape: Sequence[int],
    index: Any,
    wanted: frozenset[str],
    means: Any = None,
) -> dict[str, np.ndarray]:
    """One block reduced per group: ``key``, ``count`` and what ``wanted`` asks for."""
    keys = _groups(lb, block.shape, index)
    grouped = index is None or np.isscalar(index) or lb is None
    compiled = _compiled_table(block, keys, where, grouped, wanted)
    if compiled is not None:
        return compiled
    flat_keys = keys.ravel()
    present = flat_keys != 0 if grouped else np.ones(flat_keys.shape, bool)
    values = block.ravel()[present]
    unique, inverse = _keys(flat_keys[present] if not present.all() else flat_keys)
    table: dict[str, np.ndarray] = {"key": unique, "count": np.bincount(inverse, minlength=unique.size).astype(np.int64)}
    if "sum" in wanted:
        # Integers in their own accumulator (int64/uint64: exact, as scipy's
        # vals.sum() or its float64 bincount up to 2**53), floats in float64.
        acc = np.sum(np.zeros(1, block.dtype)).dtype if grouped and block.dtype.kind in "biu" else np.dtype(np.float64)
        sums = np.zeros(unique.size, acc)
        np.add.at(sums, inverse, values.astype(acc, copy=False))
        table["sum"] = sums
    if "centered" in wanted:
        mean = np.asarray(means[1], np.float64)[np.searchsorted(means[0], unique)]
        centred = values.astype(np.float64) - mean[inverse]
        table["centered"] = np.bincount(inverse, weights=centred * centred, minlength=unique.size)
    origin = np.array([lo for lo, _ in where])
    if "bbox" in wanted:  # scipy's find_objects over the block, its groups numbered 1..k
        numbered = np.zeros(block.shape, np.int64)
        numbered.reshape(-1)[present] = inverse + 1
        boxes = __import__("scipy.ndimage").ndimage.find_objects(numbered, max_label=unique.size)
        table["lo"] = np.array([[s.start for s in box] for box in boxes], np.int64).reshape(unique.size, block.ndim) + origin
        table["hi"] = np.array([[s.stop - 1 for s in box] for box in boxes], np.int64).reshape(unique.size, block.ndim) + origin
    for kind, pick in (("min", np.minimum), ("max", np.maximum)):
        if kind in wanted or f"{kind}pos" in wanted:
            best = np.full(unique.size, _extreme(values.dtype, kind == "min"), values.dtype)
            pick.at(best, inverse, values)
            table[kind] = best
    if wanted & {"minpos", "maxpos"}:
        coords = np.indices(block.shape).reshape(block.ndim, -1)[:, present] + origin[:, None]
        positions = np.ravel_multi_index(tuple(coords), tuple(shape)).astype(np.int64)
        for kind in ("min", "max"):
            if f"{kind}pos" in wanted:
                first = np.full(unique.size, _INT_MAX, np.int64)
                hit = values == table[kind][inverse]
                np.minimum.at(first, inverse[hit], positions[hit])
                table[f"{kind}pos"] = first
    for name, weighted in (("moments", True), ("coords", False)):
        # The sum of (value times) each coordinate per label (scipy: float64 grids),
        # one axis's coordinates at a time.
        if name in wanted:
            sums = []
            for axis in range(block.ndim):
                line = (np.arange(block.shape[axis], dtype=np.float64) + origin[axis]).reshape([-1 if a == axis else 1 for a in range(block.ndim)])
                coordinate = np.broadcast_to(line, block.shape).reshape(-1)[present]
                sums.append(np.bincount(inverse, weights=values * coordinate if weighted else coordinate, minlength=unique.size))
            table[name] = np.stack(sums, axis=1).reshape(unique.size, block.ndim)
    return table


#: Label values spanning at most this many numbers are found by counting, not sorting.
DENSE_KEYS = 2**26
#: What the compiled tables measure (the rest: positions of extremes, the
#: variance's second pass, extremes of floats, in numpy).
COMPILED_MEASURES = frozenset({"sum", "min", "max", "bbox", "coords", "moments"})


def table_trial(keys: np.dtype, values: np.dtype, acc: np.dtype, extreme: np.dtype) -> Any:
    """The trial that loads the compiled tables for these dtypes (:mod:`batchproc.dispatch`)."""
    from batchproc.dispatch import Trial

    return Trial("batchproc.ops.objects:load_tables", tuple(np.dtype(d).str for d in (keys, values, acc, extreme)))


def load_tables(keys: str, values: str, acc: str, extreme: str) -> None:
    """Call the compiled table kernels once on these dtypes, as the tables call them."""
    from batchproc.kernels.objects import key_rows, tabulate

    k, v = np.zeros(1, keys), np.zeros(1, values)
    place, rows = key_rows(k, 0, 1, False)
    one = np.zeros((1, 1))
    tabulate(
        k,
        v,
        0,
        place,
        np.ones(1, np.int64),
        np.zeros(1, np.int64),
        False,
        np.zeros(1, np.int64),
        np.zeros(1, acc),
        np.zeros(1, extreme),
        np.zeros(1, extreme),
        np.zeros((1, 1), np.int64),
        np.zeros((1, 1), np.int64),
        one,
        one.copy(),
        True,
        True,
        True,
        True,
        True,
    )


def _compiled_table(block: np.ndarray, keys: np.ndarray, where: Box, grouped: bool, wanted: frozenset[str]) -> dict[str, np.ndarray] | None:
    """:func:`block_table` in one compiled pass (:mod:`batchproc.kernels.objects`),
    or None where it does not apply: the scipy kernel set, measurements it does not
    make, labels that are not integers or span too many values for one block."""
    from batchproc import dispatch, kernels

    if not wanted <= COMPILED_MEASURES or keys.size == 0 or keys.dtype.kind not in "iu" or kernels.chosen() != "compiled":
        return None
    if wanted & {"min", "max"} and block.dtype.kind not in "iu":
        return None
    low, high = int(keys.min()), int(keys.max())
    span = high - low + 1
    if span > max(2**20, 2 * keys.size):
        return None
    acc = np.sum(np.zeros(1, block.dtype)).dtype if grouped and block.dtype.kind in "biu" else np.dtype(np.float64)
    extreme = block.dtype if wanted & {"min", "max"} else np.dtype(np.int64)
    if not dispatch.ready(table_trial(keys.dtype, block.dtype, acc, extreme)):
        return None  # numpy's path while the compiled tables get ready (the same numbers)
    from batchproc.kernels.objects import key_rows, tabulate

    flat_keys, values = keys.reshape(-1), block.reshape(-1)
    place, rows = key_rows(flat_keys, low, span, grouped)
    ndim = block.ndim
    table = {"key": (np.flatnonzero(place >= 0) + low).astype(keys.dtype), "count": np.zeros(rows, np.int64)}
    sums = np.zeros(rows if "sum" in wanted else 0, acc)
    mins = np.full(rows if "min" in wanted or "max" in wanted else 0, _extreme(extreme, True), extreme)
    maxs = np.full(mins.size, _extreme(extreme, False), extreme)
    lo = np.full((rows if "bbox" in wanted else 0, ndim), _INT_MAX, np.int64)
    hi = np.full(lo.shape, -1, np.int64)
    coords = np.zeros((rows if "coords" in wanted else 0, ndim))
    moments = np.zeros((rows if "moments" in wanted else 0, ndim))
    tabulate(
        flat_keys,
        values,
        low,
        place,
        np.array(block.shape, np.int64),
        np.array([a for a, _ in where], np.int64),
        grouped,
        table["count"],
        sums,
        mins,
        maxs,
        lo,
        hi,
        coords,
        moments,
        "sum" in wanted,
        bool(wanted & {"min", "max"}),
        "bbox" in wanted,
        "coords" in wanted,
        "moments" in wanted,
    )
    for name, column in (("sum", sums), ("min", mins), ("max", maxs), ("lo", lo), ("hi", hi), ("coords", coords), ("moments", moments)):
        if name in wanted or (name in ("lo", "hi") and "bbox" in wanted):
            table[name] = column
    return table


def _keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``keys``, sorted, and each key's place among them (as
    ``np.unique(..., return_inverse=True)``): for integer labels of a moderate
    span by counting them (one pass, against a sort of the whole block)."""
    if keys.dtype.kind not in "biu" or keys.size == 0:
        return np.unique(keys, return_inverse=True)
    low, high = int(keys.min()), int(keys.max())
    if high - low >= DENSE_KEYS:
        return np.unique(keys, return_inverse=True)
    shifted = keys.astype(np.int64, copy=False) - low if low else keys
    present = np.flatnonzero(np.bincount(shifted.ravel(), minlength=high - low + 1))
    place = np.zeros(high - low + 1, np.int64)
    place[present] = np.arange(present.size)
    return (present + low).astype(keys.dtype), place[shifted]


def _extreme(dtype: np.dtype, lowest_wanted: bool) -> Any:
    """The start of a running minimum (the largest value) or maximum (the smallest)."""
    if dtype.kind == "b":
        return True if lowest_wanted else False
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return info.max if lowest_wanted else info.min
    return np.inf if lowest_wanted else -np.inf


def merge(tables: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The blocks' tables as one, by key."""
    tables = [t for t in tables if t["key"].size]
    if not tables:
        return {}
    keys = np.concatenate([t["key"] for t in tables])
    unique, inverse = np.unique(keys, return_inverse=True)
    out: dict[str, np.ndarray] = {"key": unique}
    for name in tables[0]:
        if name == "key":
            continue
        parts = np.concatenate([t[name] for t in tables])
        if name in ("count", "sum", "centered", "moments", "coords"):
            total = np.zeros((unique.size, *parts.shape[1:]), parts.dtype)
            np.add.at(total, inverse, parts)
        elif name in ("min", "max"):
            total = np.full(unique.size, _extreme(parts.dtype, name == "min"), parts.dtype)
            (np.minimum if name == "min" else np.maximum).at(total, inverse, parts)
        elif name in ("minpos", "maxpos"):
            best = out.get(name[:3])
            if best is None:
                raise AssertionError("positions merge after their extremes")
            values = np.concatenate([t[name[:3]] for t in tables])
            total = np.full(unique.size, _INT_MAX, np.int64)
            hit = values == best[inverse]
            np.minimum.at(total, inverse[hit], parts[hit])
        elif name == "lo":
            total = np.full((unique.size, parts.shape[1]), _INT_MAX, np.int64)
            np.minimum.at(total, inverse, parts)
        else:  # hi
            total = np.full((unique.size, parts.shape[1]), -1, np.int64)
            np.maximum.at(total, inverse, parts)
        out[name] = total
    return out


# ---------------------------------------------------------------- scipy's forms


def lazy_table(x: Any, labels: Any, index: Any, wanted: frozenset[str]) -> Any:
    """The merged table of ``x`` (a dask array) by ``labels`` and ``index``,
    lazily (a delayed dict); the variance's second pass when ``centered`` is wanted."""
    import dask

    from batchproc.ops.measure import aligned_labels, located_blocks

    lab = None
    if labels is not None:
        x, lab = aligned_labels(x, labels, "measurement")
    blocks, boxes = located_blocks(x)
    lbs = located_blocks(lab)[0] if lab is not None else [None] * len(blocks)
    first = wanted - {"centered"}

    def one_pass(needs: frozenset[str], means: Any = None) -> Any:
        parts = [
            dask.delayed(block_table)(b, lb, where=box, shape=x.shape, index=index, wanted=needs, means=means)
            for b, lb, box in zip(blocks, lbs, boxes, strict=True)
        ]
        return dask.delayed(merge)(parts)

    table = one_pass(first | {"sum"} if "centered" in wanted else first)
    if "centered" in wanted:
        means = dask.delayed(lambda t: (t["key"], t["sum"].astype(np.float64) / t["count"]) if t else (np.zeros(0), np.zeros(0)))(table)
        centered = one_pass(frozenset({"centered"}), means)
        table = dask.delayed(lambda t, u: {**t, "centered": u["centered"]} if t else t)(table, centered)
    return table


def object_table(image: Any, labels: Any, spacing: Sequence[float], axes: str, units: Sequence[str | None]) -> dict[str, np.ndarray]:
    """One row per object (label > 0) of ``labels`` (a dask array), measured on
    ``image`` (a dask array of the same shape), in one pass: label, voxels, physical
    volume, bounding box (first and last+1 voxel per axis), centroid in voxels and
    in physical units, and the image's sum, mean, minimum and maximum there.
    Physical columns carry the unit in their names where the input states it."""
    from batchproc.engine import compute

    table = compute([lazy_table(image, labels, np.arange(1), frozenset({"sum", "min", "max", "bbox", "coords"}))])[0]
    keep = table["key"] > 0 if table else np.zeros(0, bool)
    t = {name: column[keep] for name, column in table.items()} if table else {}
    count = t.get("count", np.zeros(0, np.int64))
    unit = next((u for u in units if u), None)
    columns: dict[str, np.ndarray] = {"label": t.get("key", np.zeros(0, np.int64)).astype(np.int64), "voxels": count}
    columns[f"volume_{unit}^{len(axes)}" if unit else "volume"] = count * float(np.prod(spacing))
    for k, a in enumerate(axes):
        columns[f"bbox_start_{a}"] = t["lo"][:, k] if t else np.zeros(0, np.int64)
        columns[f"bbox_stop_{a}"] = t["hi"][:, k] + 1 if t else np.zeros(0, np.int64)
    for k, a in enumerate(axes):
        centroid = t["coords"][:, k] / count if t else np.zeros(0)
        columns[f"centroid_{a}"] = centroid
        columns[f"centroid_{a}_{units[k]}" if units[k] else f"centroid_{a}_physical"] = centroid * spacing[k]
    columns["intensity_sum"] = t["sum"] if t else np.zeros(0)
    columns["intensity_mean"] = t["sum"] / count if t else np.zeros(0)
    columns["intensity_min"] = t["min"] if t else np.zeros(0)
    columns["intensity_max"] = t["max"] if t else np.zeros(0)
    return columns


def _lookup(table: dict[str, np.ndarray], index: Any) -> tuple[np.ndarray, np.ndarray]:
    """For each label of ``index``, its row in ``table`` and whether it occurs."""
    keys = table.get("key", np.zeros(0))
    idx = np.atleast_1d(np.asarray(index))
    rows = np.searchsorted(keys, idx)
    rows[rows >= keys.size] = 0
    found = keys[rows] == idx if keys.size else np.zeros(idx.shape, bool)
    return rows, found


def answer(table: dict[str, np.ndarray], name: str, index: Any, dtype: np.dtype, grouped: bool, shape: tuple[int, ...]) -> Any:
    """Column ``name`` of the merged table in scipy's form: a scalar for one group,
    an array per label of ``index`` (0 where a label does not occur)."""
    if grouped:
        if table:
            value = table[name][0]
            # scipy's one group sums in the input's accumulator (float32 stays float32)
            return np.sum(np.zeros(1, dtype)).dtype.type(value) if name == "sum" else value
        if name in ("min", "max", "minpos", "maxpos"):  # scipy: min() of no values
            raise BatchprocError(
                f"{'minimum' if name.startswith('min') else 'maximum'} of an empty group: no voxel has the label asked for "
                "(scipy: zero-size array to reduction operation which has no identity)."
            )
        acc = np.sum(np.zeros(1, dtype)).dtype  # scipy: the sum of no values, in the input's accumulator
        return {"count": np.int64(0), "sum": acc.type(0), "centered": np.float64(0)}.get(name, np.int64(0))
    rows, found = _lookup(table, index)
    column = table.get(name)
    if column is None:
        out_dtype = {"count": np.int64, "sum": np.float64, "centered": np.float64, "min": dtype, "max": dtype}.get(name, np.int64)
        return np.zeros(rows.shape, out_dtype)
    out = column[rows].copy()
    out[~found] = 0
    return out


def _positions(flat: Any, shape: tuple[int, ...]) -> Any:
    """scipy's coordinates of flat positions: a tuple, or a list of tuples."""
    dims = np.array(shape)
    dim_prod = np.cumprod([1] + list(dims[:0:-1]))[::-1]
    if np.isscalar(flat) or np.ndim(flat) == 0:
        return tuple((int(flat) // dim_prod) % dims)
    return [tuple(v) for v in (np.asarray(flat).reshape(-1, 1) // dim_prod) % dims]


MEASURES: dict[str, tuple[frozenset[str], Callable[..., Any]]] = {}


def _measure(name: str, wanted: set[str]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def declare(fn: Callable[..., Any]) -> Callable[..., Any]:
        MEASURES[name] = (frozenset(wanted), fn)
        return fn

    return declare


@_measure("sum_labels", {"sum"})
def _sum(t: dict, index: Any, dtype: np.dtype, grouped: bool, shape: tuple[int, ...]) -> Any:
    return answer(t, "sum", index, dtype, grouped, shape)


@_measure("mean", {"sum"})
def _mean(t: dict, index: Any, dtype: np.dtype, grouped: bool, shape: tuple[int, ...]) -> Any:
    with np.errstate(invalid="ignore", divide="ignore"):
        return answer(t, "sum", index, dtype, grouped, shape) / np.asanyarray(answer(t, "count", index, dtype, grouped, shape)).astype(np.float64)


@_measure("variance", {"sum", "centered"})
def _variance(t: dict, index: Any, dtype: np.dtype, grouped: bool, shape: tuple[int, ...]) -> Any:
    with np.errstate(invalid="ignore", divide="ignore"):
        return answer(t, "centered", index, dtype, grouped, shape) / np.asanyarray(answer(t, "count", index, dtype, grouped, shape)).astype(float)


@_measure("standard_deviation", {"sum", "centered"})
def _std(t: dict, index: Any, dtype: np.dtype, grouped: bool, shape: tuple[int, ...]) -> Any:
    return np.sqrt(_variance(t, index, dtype, grouped, shape))


@_measure("minimum", {"min"})
def _minimum(t: dict, index: Any, dtype: np.dtype, grouped: bool, shape: tuple[int, ...]) -> Any:
    return answer(t, "min", index, dtype, grouped, shape)


@_measure("maximum", {"max"})
def _maximum(t: dict, index: Any, dtype: np.dtype, grouped: bool, shape: tuple[int, ...]) -> Any:
    return answer(t, "max", index, dtype, grouped, shape)


@_measure("minimum_position", {"min", "minpos"})
def _minimum_position(t: dict, index: Any, dtype: np.dtype, grouped: bool, shape: tuple[int, ...]) -> Any:
    return _positions(answer(t, "minpos", index, dtype, grouped, shape), shape)


@_measure("maximum_position", {"max", "maxpos"})
def _maximum_position(t: dict, index: Any, dtype: np.dtype, grouped: bool, shape: tuple[int, ...]) -> Any:
    return _positions(answer(t, "maxpos", index, dtype, grouped, shape), shape)


@_measure("extrema", {"min", "max", "minpos", "maxpos"})
def _extrema(t: dict, index: Any, dtype: np.dtype, grouped: bool, shape: tuple[int, ...]) -> Any:
    low, high = answer(t, "min", index, dtype, grouped, shape), answer(t, "max", index, dtype, grouped, shape)
    return low, high, _positions(answer(t, "minpos", index, dtype, grouped, shape), shape), _positions(answer(t, "maxpos", index, dtype, grouped, shape), shape)


@_measure("center_of_mass", {"sum", "moments"})
def _center_of_mass(t: dict, index: Any, dtype: np.dtype, grouped: bool, shape: tuple[int, ...]) -> Any:
    normalizer = answer(t, "sum", index, dtype, grouped, shape)
    if grouped:
        moments = t["moments"][0] if t else np.zeros(len(shape))
        with np.errstate(invalid="ignore", divide="ignore"):
            return tuple(np.float64(m) / normalizer for m in moments)
    rows, found = _lookup(t, index)
    moments = t["moments"][rows] if t else np.zeros((rows.size, len(shape)))
    moments[~found] = 0
    with np.errstate(invalid="ignore", divide="ignore"):
        results = [moments[:, axis] / normalizer for axis in range(len(shape))]
    return [tuple(v) for v in np.array(results).T]


def measure_apply(name: str) -> Callable[..., Any]:
    """``apply`` of measurement ``name``: its lazy table and the function that
    answers in scipy's form."""
    wanted, respond = MEASURES[name]

    def apply(x: Any, labels: Any = None, index: Any = None) -> tuple[Any, Callable[[Any], Any]]:
        grouped = labels is None or index is None or np.isscalar(index)
        if not grouped:
            index = np.asarray(index)
        table = lazy_table(x, labels, index, wanted)
        return table, lambda t: respond(t, index, np.dtype(x.dtype), grouped, tuple(x.shape))

    return apply


#: The longest list find_objects makes (scipy's would run out of memory further on).
MAX_OBJECTS = 2**28


def find_objects_apply(x: Any, max_label: int = 0) -> tuple[Any, Callable[[Any], Any]]:
    """scipy.ndimage.find_objects on a dask label array: each label's bounding box."""
    if np.dtype(x.dtype).kind not in "iu":
        raise BatchprocError(f"find_objects: the input must be an integer label array; got dtype {x.dtype}.")
    table = lazy_table(x, x, np.arange(1), frozenset({"bbox"}))

    def respond(t: dict[str, np.ndarray]) -> list[Any]:
        top = int(max_label) if max_label and max_label > 0 else int(t["key"].max()) if t and t["key"].size else 0
        if top > MAX_OBJECTS:
            raise BatchprocError(f"find_objects: the largest label is {top}; a list of that many boxes would not fit in memory (at most {MAX_OBJECTS}).")
        out: list[Any] = [None] * max(top, 0)
        for key, lo, hi in zip(t.get("key", []), t.get("lo", []), t.get("hi", []), strict=True):
            if 0 < key <= top:
                out[int(key) - 1] = tuple(slice(int(a), int(b) + 1) for a, b in zip(lo, hi, strict=True))
        return out

    return table, respond


_LABELS = Param("labels", c.anything(), None, "label image: measure where labels > 0, or per index", array=True)
_INDEX = Param("index", c.anything(), None, "label value(s) to measure separately")


def sum_order_tolerance(a: np.ndarray, want: np.ndarray) -> float:
    """Sums of floats, and every variance, are added in another order than
    scipy's: a few units in the last place of the sum of absolute values."""
    scale = max(1.0, float(np.abs(a.astype(np.float64)).sum()))
    if a.dtype == np.float32:
        return 1e-5 * scale
    return 1e-12 * scale * scale if a.dtype.kind in "biu" else 1e-12 * scale


def ratio_tolerance(a: np.ndarray, want: np.ndarray) -> float:
    """A centre of mass is a ratio of such sums, moments over mass: their errors
    grow as the mass cancels out (weights of both signs), by up to (the extent plus
    the centre) over the mass's size. (The whole image's mass: a label's own may be
    smaller.)"""
    each = sum_order_tolerance(a, want)
    finite = np.asarray(want, np.float64)[np.isfinite(want)]
    centre = float(np.abs(finite).max()) if finite.size else 0.0
    mass = abs(float(a.astype(np.float64).sum()))
    return each * max(1.0, (max(a.shape, default=1) + centre) / max(mass, each))


#: Exact for integer images; the sum's order shows for floats (and in variances).
_TOLERANCE = {
    "sum_labels": lambda a, want: 0.0 if a.dtype.kind in "biu" else sum_order_tolerance(a, want),
    "mean": lambda a, want: 0.0 if a.dtype.kind in "biu" else sum_order_tolerance(a, want),
    "center_of_mass": lambda a, want: 0.0 if a.dtype.kind in "biu" else ratio_tolerance(a, want),
    "variance": sum_order_tolerance,
    "standard_deviation": sum_order_tolerance,
}

for _name in MEASURES:
    register(
        Operation(
            name=_name,
            doc_of=_name,
            params=(_LABELS, _INDEX),
            kind="global",
            apply=measure_apply(_name),
            tolerance=_TOLERANCE.get(_name),
            # the first pass of a variance is compiled; positions of extremes never are
            compiled_global=MEASURES[_name][0] - {"centered"} <= COMPILED_MEASURES,
            scipy=True,
            in_pipeline=False,
            returns_array=False,
        )
    )

register(
    Operation(
        name="find_objects",
        summary_text="The bounding box of each label, as slices (None for a label that does not occur).",
        doc_of="find_objects",
        params=(Param("max_label", c.integer(0), 0, "the largest label to report (default: the largest present)"),),
        kind="global",
        apply=find_objects_apply,
        compiled_global=True,
        scipy=True,
        in_pipeline=False,
        returns_array=False,
    )
)
