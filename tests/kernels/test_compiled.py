"""The compiled kernels at the edges the random contract test rarely reaches:
selection networks checked exhaustively, and the values that send a block back to
scipy (NaN, -0.0, inf, a cval the dtype cannot hold, integer sums out of range)."""

from __future__ import annotations

import itertools

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi

import batchproc
from batchproc.errors import BatchprocError
from batchproc.kernels import rank as rank_kernels
from batchproc.kernels.rank import selection_network
from batchproc.ops.filters import sobel_magnitude_block
from batchproc.pipeline import Pipeline


def run_network(values: np.ndarray, network: np.ndarray) -> np.ndarray:
    v = values.copy()
    for low, high, kind in network:
        a, b = v[..., low].copy(), v[..., high].copy()
        if kind in (0, 1):
            v[..., low] = np.minimum(a, b)
        if kind in (0, 2):
            v[..., high] = np.maximum(a, b)
    return v


@pytest.mark.parametrize("n", range(1, 13))
def test_selection_network_every_rank_on_every_binary_input(n: int) -> None:
    # The 0-1 principle: a comparator network that selects correctly on every
    # 0/1 input selects correctly on every input.
    inputs = np.array(list(itertools.product((0, 1), repeat=n)), dtype=np.int8)
    for rank in range(n):
        got = run_network(inputs, selection_network(n, rank))[:, rank]
        assert np.array_equal(got, np.sort(inputs, axis=1)[:, rank]), (n, rank)


@pytest.mark.parametrize(("n", "rank"), [(27, 13), (27, 6), (25, 12), (125, 62), (49, 10), (343, 171)])
def test_selection_network_on_random_values(n: int, rank: int) -> None:
    rng = np.random.default_rng(n * 1000 + rank)
    values = rng.integers(0, 5, (2000, n))
    got = run_network(values, selection_network(n, rank))[:, rank]
    assert np.array_equal(got, np.sort(values, axis=1)[:, rank])


def test_pruned_network_is_smaller_than_sorting() -> None:
    assert len(selection_network(27, 13)) < len(selection_network(27, 0)) + len(selection_network(27, 26)) + 100
    assert len(selection_network(27, 13)) <= 130


def compiled(fn, a: np.ndarray, chunks, **params) -> np.ndarray:
    with dask.config.set({"batchproc.kernels": "compiled"}):
        return fn(da.from_array(a, chunks=chunks), **params).compute(scheduler="synchronous")


# Not minimum/maximum with NaN: scipy's own moving extreme then depends on where
# each line starts (scipy on a slice differs from scipy on the whole array), so no
# chunked result can equal it; docs/concepts/exactness.md lists this with uniform_filter's rounding.
@pytest.mark.parametrize(
    ("name", "special"),
    [(n, s) for n in ("median_filter", "percentile_filter", "rank_filter") for s in ("nan", "negative zero", "inf")]
    + [(n, s) for n in ("minimum_filter", "maximum_filter") for s in ("negative zero", "inf")],
)
def test_order_filters_with_special_floats_equal_scipy(name: str, special: str) -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1, (9, 12, 14)).astype(np.float32)
    value = {"nan": np.nan, "negative zero": -0.0, "inf": np.inf}[special]
    a[rng.random(a.shape) < 0.2] = value
    a[rng.random(a.shape) < 0.2] = 0.0
    extra = {"percentile_filter": {"percentile": 40}, "rank_filter": {"rank": 9}}.get(name, {})
    got = compiled(getattr(batchproc.ndimage, name), a, (5, 6, 7), size=3, **extra)
    want = getattr(ndi, name)(a, size=3, **extra)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))  # bits: -0.0 is not 0.0


@pytest.mark.parametrize("name", ["median_filter", "minimum_filter", "maximum_filter"])
def test_order_filters_with_a_negative_zero_cval_bit_for_bit(name: str) -> None:
    a = np.random.default_rng(5).choice(np.array([0.0, 1.0, -1.0], np.float32), (8, 10, 12))
    got = compiled(getattr(batchproc.ndimage, name), a, (4, 5, 6), size=3, mode="constant", cval=-0.0)
    want = getattr(ndi, name)(a, size=3, mode="constant", cval=-0.0)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("dtype", ["uint8", "int16", "float32"])
@pytest.mark.parametrize("size", [(5, 7, 9), (2, 11, 4), (1, 1, 30), (10, 9, 12)])
def test_minimum_maximum_van_herk_sizes_equal_scipy(dtype: str, size: tuple[int, ...]) -> None:
    # From size 9 on a line, the moving extreme runs in segments (van Herk/Gil-Werman):
    # windows that straddle two segments, segments cut by the line's end, origins.
    rng = np.random.default_rng(6)
    a = rng.integers(-100, 100, (12, 23, 37)).astype(dtype) if dtype != "uint8" else rng.integers(0, 255, (12, 23, 37)).astype(dtype)
    for name, mode, shift in (
        ("minimum_filter", "reflect", 0),
        ("maximum_filter", "nearest", -1),
        ("maximum_filter", "constant", 1),
        ("minimum_filter", "wrap", 0),
    ):
        origin = [min(max(shift, -(n // 2)), (n - 1) // 2) for n in size]  # within each window
        got = compiled(getattr(batchproc.ndimage, name), a, (6, 11, 19), size=size, mode=mode, origin=origin, cval=3)
        want = getattr(ndi, name)(a, size=size, mode=mode, origin=origin, cval=3)
        assert np.array_equal(got, want), (name, mode, origin)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16"])
@pytest.mark.parametrize(
    ("shape", "size"), [((9, 20, 33), (5, 5, 5)), ((9, 20, 33), (2, 7, 3)), ((30, 41), (9, 9)), ((6, 8, 40), (3, 3, 12)), ((30, 41), (21, 21))]
)
def test_integer_rank_filters_over_large_boxes_equal_scipy(dtype: str, shape: tuple[int, ...], size: tuple[int, ...]) -> None:
    # The sliding histogram (16-bit: from 65 voxels on, with coarse bins of 16
    # values, for blocks spanning fewer than 4096 values, here at the top of the
    # dtype; 21x21 is beyond the networks): every rank from the smallest to the
    # largest, the boundary modes (cval inside the dtype), origins at the window's
    # ends, values over the whole range (8-bit) and the extremes.
    from batchproc.kernels.rank import HISTOGRAM_SPAN_16, histogram_pays

    info = np.iinfo(dtype)
    low = info.min if info.bits == 8 else info.max - HISTOGRAM_SPAN_16 + 1
    a = np.random.default_rng(7).integers(low, info.max + 1, shape).astype(dtype)
    a[: shape[0] // 3] = info.max  # long runs of one value: the selected value stays put
    a[-2:, :3] = low
    count = int(np.prod(size))
    if count > (27 if info.bits == 8 else 64) and size[-1] >= 3:
        assert histogram_pays(a, count // 2, count, np.ones(size, bool))
    chunks = tuple(max(1, n // 2) for n in shape)
    for rank, mode, shift in ((0, "reflect", 0), (count // 2, "constant", 0), (count - 1, "wrap", -1), (count // 3, "nearest", 1), (count // 2, "mirror", 0)):
        origin = [min(max(shift, -(n // 2)), (n - 1) // 2) for n in size]
        got = compiled(batchproc.ndimage.rank_filter, a, chunks, rank=rank, size=size, mode=mode, cval=-5 if dtype == "int8" else 5, origin=origin)
        want = ndi.rank_filter(a, rank, size=size, mode=mode, cval=-5 if dtype == "int8" else 5, origin=origin)
        assert np.array_equal(got, want), (rank, mode, shift)
    got = compiled(batchproc.ndimage.median_filter, a, chunks, size=size)
    assert np.array_equal(got, ndi.median_filter(a, size=size))


def test_16bit_histogram_only_where_it_pays() -> None:
    # A selected value jumping across a wide range (a 0/65535 mask) passes up to
    # 4096 coarse bins per voxel, slower than the network; the smallest and largest
    # ranks are scipy's separable minimum and maximum; a box 1 voxel wide along the
    # rows is new at every step. Those keep the other kernels.
    from batchproc.kernels.rank import histogram_pays

    box = np.ones((5, 5, 5), bool)
    narrow = np.random.default_rng(1).integers(100, 4000, (6, 8, 9)).astype(np.uint16)
    assert histogram_pays(narrow, 62, 125, box)
    mask = narrow.copy()
    mask[0, 0, 0], mask[1, 1, 1] = 0, 65535
    assert not histogram_pays(mask, 62, 125, box)
    assert not histogram_pays(narrow, 0, 125, box) and not histogram_pays(narrow, 124, 125, box)
    assert not histogram_pays(narrow, 40, 81, np.ones((9, 9, 1), bool))
    assert not histogram_pays(narrow, 31, 64, np.ones((4, 4, 4), bool))
    assert histogram_pays(mask.astype(np.uint8), 13, 28, np.ones((4, 7, 1), bool))  # 8-bit: any full box over 27


def test_unrolled_networks_are_the_generated_source() -> None:
    from pathlib import Path

    written = (Path(rank_kernels.__file__).parent / "unrolled.py").read_text()
    assert written == rank_kernels.unrolled_source(), "regenerate batchproc/kernels/unrolled.py (see rank.unrolled_source)"


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32"])
@pytest.mark.parametrize("shape", [(9, 20, 33), (1, 1, 1), (2, 3, 5), (40, 57)])
def test_unrolled_networks_equal_scipy(dtype: str, shape: tuple[int, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    # The 3x3x3 and 3x3 medians and other ranks run as straight-line networks (rank.UNROLLED):
    # all eight boundary modes, origins at the window's ends, blocks smaller than
    # the window, many equal values, the dtype's extremes (and inf) in the data
    # and as cval.
    from batchproc.kernels import unrolled

    runs = {name: 0 for name in rank_kernels.UNROLLED.values()}
    for name in runs:
        kernel = getattr(unrolled, name)
        monkeypatch.setattr(
            unrolled, name, lambda padded, rank, out, name=name, kernel=kernel: (runs.__setitem__(name, runs[name] + 1), kernel(padded, rank, out))
        )
    rng = np.random.default_rng(11)
    if dtype == "float32":
        a = rng.normal(0, 1e3, shape).astype(dtype)
        low, high = -np.inf, np.float32(np.finfo(np.float32).max)
    else:
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
        low, high = info.min, info.max
    a.reshape(-1)[: a.size // 4] = a.reshape(-1)[0]  # long runs of one value
    tail = a.reshape(-1)[-3:]
    tail[:] = np.array((low, high, low), dtype)[: tail.size]
    chunks = tuple(max(1, n // 2) for n in shape)
    size = (3,) * len(shape)
    modes = ("reflect", "constant", "wrap", "nearest", "mirror", "grid-wrap", "grid-mirror", "grid-constant")
    for k, mode in enumerate(modes):
        origin = [(k % 3) - 1] * len(shape)
        cval = (high if k % 2 else low) if dtype != "float32" else (3.5 if k % 2 else float(high))
        got = compiled(batchproc.ndimage.median_filter, a, chunks, size=size, mode=mode, origin=origin, cval=cval)
        want = ndi.median_filter(a, size=size, mode=mode, origin=origin, cval=cval)
        assert np.array_equal(got, want), (mode, origin, cval)
    assert runs["median_3x3x3" if len(shape) == 3 else "median_3x3"] > 0, runs
    if len(shape) == 3:  # each plane's 3x3 median, and the 50th percentile (also rank 13 of 27)
        got = compiled(batchproc.ndimage.median_filter, a, chunks, size=(1, 3, 3), mode="nearest")
        assert np.array_equal(got, ndi.median_filter(a, size=(1, 3, 3), mode="nearest"))
        got = compiled(batchproc.ndimage.percentile_filter, a, chunks, percentile=50, size=3)
        assert np.array_equal(got, ndi.percentile_filter(a, 50, size=3))
        assert runs["median_3x3"] > 0, runs
    # Every other rank inside the window: the whole network, then the rank asked for.
    count = 3 ** len(shape)
    for rank, mode in ((1, "reflect"), (count // 4, "constant"), (count - 2, "wrap"), (count // 2 + 1, "mirror")):
        got = compiled(batchproc.ndimage.rank_filter, a, chunks, rank=rank, size=size, mode=mode, cval=high)
        assert np.array_equal(got, ndi.rank_filter(a, rank, size=size, mode=mode, cval=high)), (rank, mode)
    got = compiled(batchproc.ndimage.percentile_filter, a, chunks, percentile=-30, size=size)
    assert np.array_equal(got, ndi.percentile_filter(a, -30, size=size))
    assert runs["rank_3x3x3" if len(shape) == 3 else "rank_3x3"] > 0, runs


@pytest.mark.parametrize("cval", [0.5, -1.0, 300.0, 7.0])
def test_median_with_a_cval_outside_the_dtype_equals_scipy(cval: float) -> None:
    a = np.random.default_rng(2).integers(0, 256, (6, 20, 20)).astype(np.uint8)
    got = compiled(batchproc.ndimage.median_filter, a, (3, 10, 10), size=(3, 5, 5), mode="constant", cval=cval)
    assert np.array_equal(got, ndi.median_filter(a, size=(3, 5, 5), mode="constant", cval=cval))


@pytest.mark.parametrize("dtype", ["uint8", "int16", "float32"])
def test_convolve_whose_sums_leave_the_dtype_equals_scipy(dtype: str) -> None:
    # Negative and overflowing sums: their C cast is scipy's, so those blocks go to scipy.
    a = np.random.default_rng(3).integers(0, 120, (8, 16, 16)).astype(dtype)
    weights = np.array([[[-3.0, 0.0, 5.0]]]) * np.ones((3, 3, 1))
    got = compiled(batchproc.ndimage.convolve, a, (4, 8, 8), weights=weights, mode="mirror")
    assert np.array_equal(got, ndi.convolve(a, weights, mode="mirror"))


def test_sobel_magnitude_float32_with_inf_nan_and_signed_zeros_bit_for_bit() -> None:
    rng = np.random.default_rng(4)
    a = rng.normal(0, 100, (7, 9, 11)).astype(np.float32)
    a.flat[rng.integers(0, a.size, 12)] = [np.inf, -np.inf, np.nan, -0.0] * 3
    for mode, cval in (("reflect", 0.0), ("constant", -0.0), ("wrap", 0.0), ("constant", 2.5)):
        got = compiled(batchproc.sobel_magnitude, a, (3, 4, 5), mode=mode, cval=cval)
        want = sobel_magnitude_block(a, axes=None, mode=mode, cval=cval, output=None)
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), mode


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
@pytest.mark.parametrize(("shape", "chunks"), [((40, 37), (13, 11)), ((14, 19, 23), (6, 7, 9)), ((5, 9, 8, 11), (3, 4, 5, 6))])
def test_gaussian_cut_for_the_next_step_equals_scipy(dtype: str, shape: tuple[int, ...], chunks: tuple[int, ...]) -> None:
    # A gaussian followed by another step computes only what that step reads, its
    # later passes packed over the earlier ones in one buffer.
    a = np.random.default_rng(8).integers(0, 4000, shape).astype(dtype)
    sigma = [1.5, 0.7, 2.0, 1.0][: len(shape)]
    steps = [{"op": "gaussian_filter", "sigma": sigma, "mode": "mirror"}, {"op": "sobel_magnitude"}]
    with dask.config.set({"batchproc.kernels": "compiled"}):
        got = Pipeline(steps).apply(da.from_array(a, chunks=chunks)).compute(scheduler="synchronous")
    want = sobel_magnitude_block(ndi.gaussian_filter(a, sigma, mode="mirror"), axes=None, mode="reflect", cval=0.0, output=None)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("dtype", ["float32", "uint16", "float64"])
@pytest.mark.parametrize("sigma", [(1.0, 1.75, 2.5), (1.25, 1.5, 2.0)])
def test_gaussian_long_kernels_equal_scipy(dtype: str, sigma: tuple[float, ...]) -> None:
    # Kernels of 9 taps and more sum four tap pairs per sweep, then the rest one by
    # one: radii 4 to 10 cover no remainder and remainders of 1, 2 and 3.
    rng = np.random.default_rng(7)
    a = (rng.random((20, 33, 41)) * 4000).astype(dtype)
    for mode in ("reflect", "constant", "nearest", "mirror", "wrap"):
        got = compiled(batchproc.ndimage.gaussian_filter, a, (9, 16, 20), sigma=sigma, mode=mode, cval=7.5)
        assert np.array_equal(got, ndi.gaussian_filter(a, sigma, mode=mode, cval=7.5)), mode


@pytest.mark.parametrize("mode", ["reflect", "mirror", "wrap", "constant", "nearest"])
def test_sobel_magnitude_written_over_its_input_equals_scipy(mode: str) -> None:
    # Over its input, plane z's result lands once plane z + 1 is done: every part
    # kept (from the first plane or later, cut in y and x) equals scipy's, and
    # wrap along z (whose last plane reads the first) gets memory of its own.
    from batchproc.kernels.sobel import sobel_magnitude

    a = np.random.default_rng(8).random((9, 12, 11)).astype(np.float32)
    want = np.sqrt(sum(np.square(ndi.sobel(a, axis, mode=mode, cval=0.25)) for axis in range(3)))
    for keep in (
        (slice(0, 9), slice(0, 12), slice(0, 11)),
        (slice(1, 8), slice(1, 11), slice(2, 10)),
        (slice(0, 7), slice(3, 12), slice(0, 5)),
        (slice(2, 9), slice(0, 12), slice(1, 11)),
    ):
        x = a.copy()
        got = sobel_magnitude(x, (mode,) * 3, 0.25, np.dtype(np.float32), keep, overwrite_input=True)
        assert np.array_equal(got, want[keep]), keep
        assert np.shares_memory(got, x) == (not (mode == "wrap" and keep[0].stop == 9)), keep


@pytest.mark.parametrize("dtype", ["float32", "uint16", "float64"])
@pytest.mark.parametrize("mode", ["reflect", "mirror", "nearest", "wrap", "constant", "grid-constant"])
def test_line_correlation_read_from_the_block_equals_scipy(dtype: str, mode: str) -> None:
    # Along the first axes the taps are rows of the block, the mode picking the row;
    # an output with cval taps gathers them (a cval the dtype cannot hold
    # included). Written beside the input or over it, packed from its start, for
    # every output or those from ``lo`` on, on lines longer and shorter than the
    # weights; symmetric, antisymmetric and other weights, with an origin.
    from batchproc.kernels.lines import correlate1d

    rng = np.random.default_rng(5)
    weights = {
        "symmetric 11": np.array([0.5, 1, 2, 3, 4, 5, 4, 3, 2, 1, 0.5]) / 7,
        "symmetric 5": np.array([1.0, 4, 6, 4, 1]) / 16,
        "antisymmetric": np.array([-1.0, -2, 0, 2, 1]),
        "other": np.array([0.25, -1, 3, 0.5]),
    }
    # (Along the first axis of 5x52x53, rows wider than a sweep: two sweeps a row.)
    for shape in ((13, 7, 9), (3, 5, 4), (2, 3, 24), (5, 52, 53)):
        a = (rng.random(shape) * 4000).astype(dtype)
        for name, w in weights.items():
            for axis in range(3):
                # (Outputs 5 and on, or 6 and on, to 5 or 6 from the end: every tap
                # inside the line, which the last axis reads without a line buffer.)
                for origin, lo, cut in ((0, 0, 0), (0, 1, 2), (1, 2, 1), (-1, 0, 1), (0, 5, 6), (1, 6, 5)):
                    if abs(origin) > len(w) // 2 - (1 - len(w) % 2) or lo + cut >= shape[axis]:
                        continue
                    want = ndi.correlate1d(a, w, axis, mode=mode, cval=7.5, origin=origin)
                    want = want[tuple(slice(lo, shape[axis] - cut) if k == axis else slice(None) for k in range(3))]
                    beside = np.empty(want.shape, dtype)
                    correlate1d(a, w, axis, beside, mode, 7.5, origin, lo)
                    x = a.copy()
                    over = x.reshape(-1)[: want.size].reshape(want.shape)
                    correlate1d(x, w, axis, over, mode, 7.5, origin, lo)
                    where = (shape, name, axis, origin, lo, cut)
                    assert np.array_equal(beside, want), where
                    assert np.array_equal(over, want), where


def test_line_correlation_of_an_empty_array_equals_scipy() -> None:
    from batchproc.kernels.lines import correlate1d

    a = np.zeros((3, 4, 0), np.float32)
    for axis in range(3):
        out = np.empty_like(a)
        correlate1d(a, np.ones(3) / 3, axis, out, "reflect", 0.0)
        assert out.shape == ndi.correlate1d(a, np.ones(3) / 3, axis).shape


@pytest.mark.parametrize("dtype", [">u2", ">i4", ">f4"])
def test_big_endian_input_equals_scipy(dtype: str) -> None:
    # Arrays of the other byte order (a file written on another machine, given to
    # the API as it is) reach the compiled kernels as native numbers: numba typing
    # failed on them before.
    a = np.random.default_rng(3).integers(0, 1000, (7, 12, 15)).astype(dtype)
    for name, params in (("median_filter", {"size": 3}), ("maximum_filter", {"size": 3}), ("gaussian_filter", {"sigma": 1.0}), ("uniform_filter", {"size": 3})):
        got = compiled(getattr(batchproc.ndimage, name), a, (4, 6, 8), **params)
        assert got.dtype.isnative and np.array_equal(got, getattr(ndi, name)(a, **params)), name
    with dask.config.set({"batchproc.kernels": "compiled"}):
        got = Pipeline([{"op": "median_filter", "size": 3}]).apply(da.from_array(a, chunks=(4, 6, 8))).compute(scheduler="synchronous")
    assert np.array_equal(got, ndi.median_filter(a, size=3))


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
@pytest.mark.parametrize("cval", [np.inf, -np.inf, np.nan])
def test_a_non_finite_cval_equals_scipy(dtype: str, cval: float) -> None:
    # scipy takes cval=-inf (the edges then never win a maximum) and NaN; the
    # kernels keep it in float64 or, where the dtype cannot hold it or its order is
    # the algorithm's (NaN in a rank), leave the block to scipy.
    a = np.random.default_rng(4).integers(0, 200, (6, 9, 11)).astype(dtype)
    cases = (
        ("maximum_filter", {"size": 3}),
        ("median_filter", {"size": 3}),
        ("gaussian_filter", {"sigma": 1.0}),
        ("uniform_filter", {"size": 3}),
        ("sobel", {}),
        ("correlate", {"weights": np.ones((3, 3, 3)) / 27}),
    )
    with np.errstate(invalid="ignore"):
        for name, params in cases:
            got = compiled(getattr(batchproc.ndimage, name), a, (3, 4, 5), mode="constant", cval=cval, **params)
            want = getattr(ndi, name)(a, mode="constant", cval=cval, **params)
            assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True), name
    with pytest.raises(BatchprocError, match="cval.*a number"):
        batchproc.ndimage.maximum_filter(a, size=3, cval="-inf")


_BINARY = ("binary_erosion", "binary_dilation", "binary_opening", "binary_closing")


def _counting_binary(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    from batchproc.kernels import morphology

    runs = {"packed": 0}
    kernel = morphology.binary_morphology
    monkeypatch.setattr(morphology, "binary_morphology", lambda *a, **k: (runs.__setitem__("packed", runs["packed"] + 1), kernel(*a, **k))[1])
    return runs


@pytest.mark.parametrize("name", _BINARY)
@pytest.mark.parametrize(
    ("shape", "chunks"),
    [((9, 11, 130), (2, 3, 50)), ((3, 200), (1, 7)), ((2, 3, 4, 70), (1, 2, 2, 33)), ((150,), (4,)), ((6, 1, 64), (2, 1, 64))],
)
def test_binary_morphology_packed_equals_scipy(name: str, shape: tuple[int, ...], chunks: tuple[int, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    # Rows of 64-bit words: rows across word boundaries (130, 70, 200 voxels) and
    # exactly one word; structures of every size to 4 (even ones included) with
    # origins at their ends, one reaching over more than a word along the rows;
    # iterations (until nothing changes, too), masks, both border values, and
    # chunks smaller than the halo (iterations x reach), where each block repeats
    # its passes over its neighbours' voxels.
    runs = _counting_binary(monkeypatch)
    rng = np.random.default_rng(len(shape) * 100 + shape[-1])
    a = rng.random(shape) < 0.55
    fn = getattr(batchproc.ndimage, name)
    wide = np.zeros((1,) * (len(shape) - 1) + (69,), bool)
    wide[..., [0, 5, 66, 68]] = True
    cases = [
        {},
        {"iterations": 3, "border_value": 1},
        {"iterations": 0},
        {"structure": np.ones((2,) * len(shape), bool), "origin": -1, "iterations": 2},
        {"structure": rng.random((4,) * len(shape)) < 0.5, "origin": [1] * len(shape), "border_value": 1},
        {"structure": rng.random((3,) * len(shape)) < 0.4, "iterations": 2, "mask": rng.random(shape) < 0.7, "origin": [-1] + [0] * (len(shape) - 1)},
        {"structure": wide, "origin": [0] * (len(shape) - 1) + [-30], "mask": rng.random(shape) < 0.5},
        {"structure": ndi.generate_binary_structure(len(shape), len(shape)), "iterations": 4, "border_value": 1, "mask": rng.random(shape) < 0.5},
        {"structure": np.zeros((3,) * len(shape), bool)},
    ]
    for params in cases:
        if params.get("iterations", 1) != 1:
            params = {**params, "brute_force": True}  # scipy's other path can corrupt its heap
        want = getattr(ndi, name)(a, **params)
        got = compiled(fn, a, chunks, **params)
        assert got.dtype == bool and np.array_equal(got, want), params
    assert runs["packed"] > 0


@pytest.mark.parametrize("name", _BINARY)
def test_binary_morphology_of_any_dtype_equals_scipy(name: str) -> None:
    # scipy's C code tests each value as `v ? 1 : 0`: any non-zero byte of a bool
    # (a bool array written by a C filter may hold 2 or 255), NaN true, -0.0 false;
    # a mask of another dtype the same way; `axes` filters along some axes only.
    rng = np.random.default_rng(9)
    raw = rng.choice(np.array([0, 1, 2, 255], np.uint8), (7, 10, 67))
    floats = rng.choice(np.array([0.0, -0.0, np.nan, 1.5, -2.0], np.float32), raw.shape)
    mask = rng.choice(np.array([0, 3, -1], np.int16), raw.shape)
    for a in (raw.view(bool), raw, raw.astype(np.int16) - 1, floats):
        for params in ({"iterations": 2, "brute_force": True}, {"mask": mask, "border_value": 1}, {"axes": (0, 2), "iterations": 2, "brute_force": True}):
            want = getattr(ndi, name)(a, **params)
            got = compiled(getattr(batchproc.ndimage, name), a, (3, 4, 30), **params)
            assert np.array_equal(got, want), (a.dtype, params)


def test_binary_morphology_until_settled_with_a_false_centre_is_the_operations_own() -> None:
    # iterations < 1 with the structure's centre false: scipy's loop need not end,
    # so the operation's own block runs (it stops a cycle with an error).
    from batchproc.kernels.filters import fast_binary

    params = {"structure": np.array([True, False, True]), "iterations": 0, "origin": 0, "mask": None, "border_value": 0}
    assert fast_binary("binary_dilation")(np.dtype(bool), params) is None
    assert fast_binary("binary_dilation")(np.dtype(bool), {**params, "iterations": 2}) is not None
    assert fast_binary("binary_dilation")(np.dtype(bool), {**params, "structure": np.array([True, True, False])}) is not None


_EDGE_MODES = ("reflect", "constant", "nearest", "mirror", "wrap", "grid-wrap", "grid-constant", "grid-mirror")


@pytest.mark.parametrize(
    ("dtype", "output"),
    [
        ("uint16", None),
        ("uint8", None),
        ("int16", None),
        ("int8", None),
        ("uint8", "int16"),
        ("int16", "uint16"),
        ("uint16", "float32"),
        ("float32", None),
        ("float64", None),
        ("int32", "float64"),
    ],
)
@pytest.mark.parametrize("shape", [(7, 9, 70), (1, 5, 3), (13,), (3, 40), (2, 3, 4, 5)])
def test_sobel_prewitt_laplace_three_tap_passes_equal_scipy(dtype: str, output: str | None, shape: tuple[int, ...]) -> None:
    # 8- and 16-bit outputs of integer inputs run in integers modulo the output's
    # range (scipy's cast of its float64 sums wraps: negative derivatives, sums past
    # the top, a cval beyond the dtype); float outputs in float64 as scipy's C
    # loop. Every mode (one for all axes and one per axis), each axis, a cval that
    # is no integer (integer outputs: scipy's own then), lines of 1 and 2 voxels.
    from batchproc.kernels.filters import fast_edges, fast_laplace

    rng = np.random.default_rng(len(shape) * 7 + shape[-1])
    if dtype.startswith("float"):
        a = rng.normal(0, 1000, shape).astype(dtype)
        a.flat[:3] = [np.inf, -0.0, np.nan][: a.size]
    else:
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
    ran = 0
    for k, mode in enumerate(_EDGE_MODES):
        modes = mode if k % 2 else tuple(_EDGE_MODES[(k + j) % 8] for j in range(len(shape)))
        for cval in (0.0, 70001.0, -3.0, 2.5):
            for kind in ("sobel", "prewitt"):
                params = {"axis": (k + int(cval)) % len(shape) - len(shape) * (k % 2), "output": output, "mode": modes, "cval": cval}
                block = fast_edges(kind)(a.dtype, params)
                if block is not None:
                    ran += 1
                    got, want = block(a, **params), getattr(ndi, kind)(a, **params)
                    assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True), (kind, params)
            axes = None if k % 3 else tuple(range(len(shape)))[k % len(shape) :]
            laplace_modes = modes if axes is None or isinstance(modes, str) else modes[: len(axes)]
            params = {"output": output, "mode": laplace_modes, "cval": cval, "axes": axes}
            block = fast_laplace(a.dtype, params)
            if block is not None:
                ran += 1
                got, want = block(a, **params), ndi.laplace(a, **params)
                assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True), ("laplace", params)
    assert ran >= 40


def test_integer_edge_filters_go_to_scipy_where_its_cast_is_no_wrap(monkeypatch: pytest.MonkeyPatch) -> None:
    from batchproc.kernels import stencil
    from batchproc.kernels.filters import fast_edges, fast_laplace

    assert stencil.scipy_wraps(np.dtype(np.uint16))  # this build's scipy, asked once
    params = {"axis": 0, "output": None, "mode": "reflect", "cval": 0.0, "axes": None}
    assert fast_edges("sobel")(np.dtype(np.uint16), params) is not None
    assert fast_edges("sobel")(np.dtype(np.int32), params) is None  # sums past 16 bits: scipy's
    assert fast_edges("sobel")(np.dtype(np.uint16), {**params, "mode": "constant", "cval": 0.5}) is None
    assert fast_edges("sobel")(np.dtype(np.uint16), {**params, "mode": "wrap", "cval": 0.5}) is not None
    monkeypatch.setattr(stencil, "scipy_wraps", lambda dtype: False)
    assert fast_edges("prewitt")(np.dtype(np.uint16), params) is None
    assert fast_laplace(np.dtype(np.uint8), params) is None
    assert fast_laplace(np.dtype(np.uint8), {**params, "output": "float32"}) is not None


@pytest.mark.parametrize("dtype", ["uint8", "int16", "float32", "float64"])
@pytest.mark.parametrize(("shape", "wshape"), [((9, 20, 33), (4, 3, 2)), ((2, 5, 300), (3, 3, 3)), ((30, 41), (5, 2)), ((3, 4, 5), (5, 1, 6))])
def test_dense_correlation_on_float64_planes_equals_scipy(dtype: str, shape: tuple[int, ...], wshape: tuple[int, ...]) -> None:
    # Each plane is read once into a ring of float64 planes extended by the mode;
    # a constant edge adds weight * cval in float64 whatever the dtype (a cval the
    # dtype cannot hold included); weights deeper than the block, weights below
    # DBL_EPSILON left out as scipy does, origins at the window's ends.
    rng = np.random.default_rng(sum(shape))
    a = (rng.normal(0, 60, shape) + (100 if dtype == "uint8" else 0)).clip(-1000, 255 if dtype == "uint8" else 1000).astype(dtype)
    w = rng.normal(0, 1, wshape) * (rng.random(wshape) < 0.7)
    w.flat[0] = 1e-17
    for k, mode in enumerate(("reflect", "mirror", "nearest", "wrap", "constant", "grid-mirror")):
        origin = tuple((-(s // 2), (s - 1) // 2, 0)[(k + j) % 3] for j, s in enumerate(wshape))
        for cval in (-3.5, 300.0):
            for fn in ("correlate", "convolve"):
                got = compiled(
                    getattr(batchproc.ndimage, fn),
                    a,
                    tuple(max(1, n // 2) for n in shape),
                    weights=w,
                    mode=mode,
                    cval=cval,
                    origin=origin,
                    output="float64" if k % 2 else None,
                )
                want = getattr(ndi, fn)(a, w, mode=mode, cval=cval, origin=origin, output="float64" if k % 2 else None)
                assert got.dtype == want.dtype and np.array_equal(got, want), (fn, mode, cval, origin)


@pytest.mark.parametrize("dtype", ["int32", "uint32", "uint8", "float32"])
@pytest.mark.parametrize("shape", [(5, 3000), (701, 3), (37, 64)])
def test_last_axis_correlation_in_groups_of_lines_equals_scipy(dtype: str, shape: tuple[int, ...]) -> None:
    # Along the last axis the lines go side by side in groups (one line when a line
    # is longer than a group; a last group cut short), integer lines in their own
    # dtype where it holds cval, their pairs of taps summed in integers: the
    # extremes of 32-bit integers, whose pair sums pass 2^31, included.
    from batchproc.kernels.lines import correlate1d

    rng = np.random.default_rng(shape[0])
    if dtype == "float32":
        a = rng.normal(0, 1e3, shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
        a[:, ::3] = info.max
        a[:, 1::5] = info.min
    weights = {"symmetric": np.array([1.0, 4, 6, 4, 1]) / 16, "antisymmetric": np.array([-1.0, -2, 0, 2, 1]), "other": np.array([0.25, -1, 3, 0.5])}
    for name, w in weights.items():
        for mode, cval in (("reflect", 0.0), ("constant", 7.0), ("constant", 7.5), ("wrap", 0.0), ("mirror", 0.0), ("nearest", 0.0)):
            for lo, cut in ((0, 0), (1, 2), (3, 2)):
                if lo + cut >= shape[1]:
                    continue
                want = ndi.correlate1d(a, w, 1, output=np.float64, mode=mode, cval=cval)[:, lo : shape[1] - cut]
                got = np.empty(want.shape, np.float64)
                correlate1d(a, w, 1, got, mode, cval, 0, lo)
                assert np.array_equal(got, want), (name, mode, cval, lo, cut)
