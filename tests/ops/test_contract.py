"""The exactness contract, over the whole registry: for random shapes (1-D to 4-D,
length-1 axes), chunkings (size-1 and size-2 chunks, chunks smaller than the halo,
uneven chunks), dtypes, modes with cval, origins (extremes included), even-sized
windows, kernels larger than the array, per-axis parameters and mode lists, the
computed result equals scipy.ndimage on the whole array: same dtype, same shape,
np.array_equal. The one exception (docs/concepts/exactness.md) is uniform_filter's running sum
in float output, allowed to differ in the last bits.
"""

from __future__ import annotations

import warnings
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_strategies import CASES, arrays, reference

import batchproc
from batchproc.errors import BatchprocError
from batchproc.ops import REGISTRY


def function_for(name: str):
    op = REGISTRY[name]
    return getattr(batchproc.ndimage, name) if op.scipy else getattr(batchproc, name)


def assert_same(name: str, got: Any, want: Any, a: np.ndarray) -> None:
    if isinstance(want, tuple | list):  # scipy's tuples and lists (extrema, positions, slices): the same, item by item
        assert type(got) is type(want) and len(got) == len(want), (got, want)
        for g, w in zip(got, want, strict=True):
            assert_same(name, g, w, a)
        return
    if isinstance(want, slice):
        assert got == want, (got, want)
        return
    if want is None or isinstance(want, np.ndarray) and want.dtype == object:
        assert type(got) is type(want)
        if want is not None:
            assert got.shape == want.shape
            for g, w in zip(got.ravel(), want.ravel(), strict=True):
                assert_same(name, g, w, a)
        return
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, f"dtype {got.dtype} != scipy's {want.dtype}"
    assert got.shape == want.shape, f"shape {got.shape} != scipy's {want.shape}"
    tolerance = REGISTRY[name].tolerance
    if tolerance is not None and tolerance(a, want) > 0:
        # The declared exceptions to bit-for-bit (docs/concepts/exactness.md): a
        # sum whose rounding depends on its order. An infinity or NaN that enters
        # scipy's running sum (an infinite cval) stays to the end of scipy's line,
        # where each chunk's line starts afresh: scipy's finite values are the ones to match.
        finite = np.isfinite(want)
        assert np.allclose(got[finite], want[finite], rtol=0, atol=tolerance(a, want)), (got, want)
        return
    equal = np.array_equal(got, want, equal_nan=want.dtype.kind == "f")
    if not equal:
        bad = np.argwhere(got != want)
        raise AssertionError(f"{len(bad)} voxels differ from scipy, first at {tuple(bad[0])}: {got[tuple(bad[0])]} != {want[tuple(bad[0])]}")


def test_every_operation_has_a_contract_case() -> None:
    assert set(CASES) == set(REGISTRY)


KERNEL_CASES = [(name, "scipy") for name in sorted(CASES)] + [(name, "compiled") for name in sorted(CASES) if REGISTRY[name].has_compiled]


@pytest.mark.parametrize(("name", "kernels"), KERNEL_CASES)
def test_chunked_result_equals_scipy_on_whole_array(name: str, kernels: str) -> None:
    """Every operation with scipy's kernels; those with compiled kernels again with
    those, and with twice the examples."""
    dtypes, params_for = CASES[name]
    fn = function_for(name)
    op = REGISTRY[name]
    examples = settings().max_examples * (2 if kernels == "compiled" else 1)

    @settings(max_examples=examples)
    @given(st.data())
    def check(data: st.DataObject) -> None:
        a, chunks = data.draw(arrays(dtypes), label="array, chunks")
        params = params_for(data.draw, a)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                want = reference(name, a, params)
            except Exception as refused:
                # What scipy refuses, batchproc refuses up front, as BatchprocError that
                # is also the class scipy raised (code that catches scipy's keeps working).
                with pytest.raises(BatchprocError) as ours:
                    fn(da.from_array(a, chunks=chunks), **params)
                like = next((k for k in (TypeError, RuntimeError, ValueError) if isinstance(refused, k)), None)
                assert like is None or isinstance(ours.value, like), f"scipy raised {type(refused).__name__}: {refused}; batchproc {ours.value}"
                return
            with dask.config.set({"batchproc.kernels": kernels}):
                got = fn(da.from_array(a, chunks=chunks), **params)
            if op.returns_array and isinstance(want, tuple):  # an array and more (label: and the count), lazily
                assert isinstance(got, tuple) and all(isinstance(g, da.Array) for g in got)
                got = dask.compute(*got, scheduler="synchronous")
                for g, w in zip(got, want, strict=True):
                    assert_same(name, g, np.asarray(w) if np.ndim(w) == 0 and not isinstance(w, np.ndarray) else w, a)
                return
            if op.returns_array:
                assert isinstance(got, da.Array)
                got = got.compute(scheduler="synchronous")
        assert_same(name, got, want, a)

    check()


@pytest.mark.parametrize("kernels", ["compiled", "scipy"])
@pytest.mark.parametrize(("name", "extra"), [("median_filter", {}), ("percentile_filter", {"percentile": 30}), ("rank_filter", {"rank": 1})])
def test_one_dimensional_rank_filters_with_nan_equal_scipy_in_any_chunks(name: str, extra: dict[str, Any], kernels: str) -> None:
    # scipy's 1-D rank filter carries NaN comparisons along the line (the median of
    # [1, 5, 3] between NaN cvals came out 1): hypothesis found it with chunks of 1.
    line = np.array([12.573022, -13.210486, 64.04227, 10.490012, 1.0, 5.0, 3.0, np.nan, 7.5, -2.0, 8.0], dtype=np.float32)
    for params in ({"size": 3, "mode": "constant", "cval": np.nan}, {"size": 3, "mode": "reflect"}, {"size": 4, "mode": "nearest"}):
        params = {**params, **extra}
        want = getattr(ndi, name)(line, **params)
        for chunks in (1, 2, 3):
            with dask.config.set({"batchproc.kernels": kernels}):
                got = function_for(name)(da.from_array(line, chunks=chunks), **params).compute(scheduler="synchronous")
            assert_same(name, got, want, line)
