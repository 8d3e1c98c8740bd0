"""The engine's exactness contract: for every operation a pipeline can hold, a run
of block tasks (each block read with its halo straight from the input, through
the chunk cache) equals scipy.ndimage on the whole array, over random shapes,
input chunks, output chunks and compute blocks (each a whole number of output
chunks: size-1 chunks, blocks smaller than the halo, blocks spanning the array),
dtypes, modes, origins and kernel sets; and global steps between local ones."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import dask
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from ops_strategies import CASES, arrays, reference
from test_contract import assert_same

from batchproc.engine.runner import run_plan
from batchproc.errors import BatchprocError
from batchproc.io.readers import Image
from batchproc.io.regions import CACHE
from batchproc.ops import REGISTRY
from batchproc.pipeline import Pipeline
from batchproc.plan import make_plan


class Chunked:
    """A reader over a numpy array that counts its reads (an input in memory)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.shape, self.dtype, self.reads = array, array.shape, array.dtype, 0

    def __getitem__(self, key: Any) -> np.ndarray:
        self.reads += 1
        return self.array[key]


class Target:
    """Where a run's chunks go, in memory; each chunk written once."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, chunks: tuple[int, ...]) -> None:
        self.array = np.zeros(shape, dtype)
        self.chunks, self.written = chunks, set()

    def write(self, index: tuple[int, ...], block: np.ndarray) -> None:
        assert index not in self.written, f"chunk {index} written twice"
        self.written.add(index)
        self.array[tuple(slice(i * c, i * c + n) for i, c, n in zip(index, self.chunks, block.shape, strict=True))] = block


def run(
    array: np.ndarray,
    steps: list[dict[str, Any]],
    native: tuple[int, ...],
    chunks: tuple[int, ...],
    per_block: tuple[int, ...],
    kernels: str,
    shards: tuple[int, ...] | None = None,
) -> np.ndarray:
    """``steps`` on ``array`` through the engine, on the calling thread
    (``shards``: chunks per shard along each axis)."""
    image = Image(None, "tczyx"[-array.ndim :] if array.ndim <= 5 else "abcdef"[: array.ndim], (1.0,) * array.ndim, "memory", {}, Chunked(array), native)
    given = False if shards is None else tuple(c * k for c, k in zip(chunks, shards, strict=True))
    plan = make_plan(Pipeline(steps), image, chunks, kernels=kernels, shards=given)
    # Blocks of ``per_block`` files each (whole axes where the plan needs them).
    blocks = tuple(min(n, u * k) for u, k, n in zip(plan.file_shape, per_block, array.shape, strict=True))
    plan = dataclasses.replace(plan, blocks=tuple(n if e == "whole" else b for b, n, e in zip(blocks, array.shape, plan.edges, strict=True)))
    target = Target(plan.shape, plan.dtype, plan.file_shape)  # each file (chunk, or shard) written once, by one block
    CACHE.clear()
    with dask.config.set(scheduler="synchronous"):
        run_plan(plan, target)
    assert len(target.written) == plan.file_count
    return target.array


PIPELINE_CASES = sorted(name for name, op in REGISTRY.items() if op.in_pipeline)


@st.composite
def layouts(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...] | None]:
    """Input chunks, output chunks, blocks (in output files) and, sometimes,
    shards (in chunks) for ``shape``."""
    native = tuple(draw(st.integers(1, n)) for n in shape)
    chunks = tuple(draw(st.sampled_from([1, 2, max(1, n // 2), n])) for n in shape)
    per_block = tuple(draw(st.integers(1, 3)) for _ in shape)
    shards = tuple(draw(st.integers(1, 3)) for _ in shape) if draw(st.booleans()) else None
    return native, chunks, per_block, shards


@pytest.mark.parametrize(("name", "kernels"), [(n, "scipy") for n in PIPELINE_CASES] + [(n, "compiled") for n in PIPELINE_CASES if REGISTRY[n].has_compiled])
def test_engine_result_equals_scipy_on_whole_array(name: str, kernels: str) -> None:
    op = REGISTRY[name]
    dtypes, params_for = CASES[name]

    @settings(max_examples=max(10, settings().max_examples // 2))
    @given(st.data())
    def check(data: st.DataObject) -> None:
        a, _ = data.draw(arrays(dtypes), label="array")
        params = params_for(data.draw, a)
        assume(not any(hasattr(params.get(p), "shape") for p in op.aligned))  # arrays: Python API only
        native, chunks, per_block, shards = data.draw(layouts(a.shape), label="layout")
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                want = reference(name, a, params)
            except Exception:
                with pytest.raises(BatchprocError):
                    run(a, [{"op": name, **params}], native, chunks, per_block, kernels, shards)
                return
            got = run(a, [{"op": name, **params}], native, chunks, per_block, kernels, shards)
            want = want[0] if isinstance(want, tuple) else want  # a run writes the array (label: not the count)
        assert_same(name, got, want, a)

    check()


@settings(max_examples=30)
@given(st.data())
def test_global_steps_between_local_ones(data: st.DataObject) -> None:
    """gaussian -> equalize -> median -> astype(rescale): the passes run on the
    prefix before each global step, and the steps after read its result with
    their halo."""
    import scipy.ndimage as ndi

    a, _ = data.draw(arrays(("uint8", "uint16", "float32")), label="array")
    mode = data.draw(st.sampled_from(["reflect", "wrap", "nearest"]))
    steps = [
        {"op": "gaussian_filter", "sigma": 1.0, "mode": mode},
        {"op": "equalize", **({} if a.dtype.kind == "u" else {"bins": 64})},
        {"op": "median_filter", "size": 3, "mode": mode},
        {"op": "astype", "dtype": "uint8", "rescale": True},
    ]
    native, chunks, per_block, shards = data.draw(layouts(a.shape), label="layout")
    g = ndi.gaussian_filter(a, 1.0, mode=mode)
    e = reference("equalize", g, {} if a.dtype.kind == "u" else {"bins": 64})
    m = ndi.median_filter(e, 3, mode=mode)
    want = reference("astype", m, {"dtype": "uint8", "rescale": True})
    got = run(a, steps, native, chunks, per_block, "compiled", shards)
    assert_same("astype", got, want, a)


def test_halo_chunks_are_read_once_with_the_cache() -> None:
    a = np.arange(40 * 30, dtype=np.uint16).reshape(40, 30)
    image = Image(None, "yx", (1.0, 1.0), "memory", {}, Chunked(a), (5, 30))
    plan = make_plan(Pipeline([{"op": "uniform_filter", "size": 5}]), image, (5, 30))
    plan = dataclasses.replace(plan, blocks=(5, 30))
    target = Target(a.shape, np.dtype(np.uint16), (5, 30))
    CACHE.clear()
    with dask.config.set(scheduler="synchronous"):
        run_plan(plan, target)
    import scipy.ndimage as ndi

    assert np.array_equal(target.array, ndi.uniform_filter(a, 5))
    # 8 blocks of one chunk each, every block reading the edge rows of the chunks
    # above and below: each chunk is read once (kept whole for its own block when
    # the block before it read it first, then its faces for the block after).
    # Without the cache: 8 + 7 + 7 reads.
    assert image.reader.reads == 8


def test_gaussian_laplace_with_every_axis_reordered_keeps_sigma_per_array_axis() -> None:
    # scipy maps sigma onto ``axes`` only when they are fewer than the array's
    # axes; given all of them in another order, sigma[i] is still axis i's. The
    # halo once followed ``axes`` there, and a chunked axis got none (61.0 against
    # scipy's -20.5 here).
    import scipy.ndimage as ndi

    a = np.array([25.0, -25.0], np.float32).reshape(1, 2, 1, 1)
    params = {"sigma": (0.0, 0.5, 0.0, 0.0), "axes": (0, 2, 1, 3)}
    want = ndi.gaussian_laplace(a, **params)
    for kernels in ("scipy", "compiled"):
        got = run(a, [{"op": "gaussian_laplace", **params}], (1, 1, 1, 1), (1, 1, 1, 1), (1, 1, 1, 1), kernels)
        assert np.array_equal(got, want), (kernels, got.ravel(), want.ravel())


#: Thresholds the magnitude's float32 holds exactly (the one-kernel path) and
#: some it does not (the two steps apart).
THRESHOLDS = st.sampled_from([0, 2, 40, 0.5, 7.25, -3, 1e6, 0.1, 1 / 3, 2**24 + 1, 1e300])


@settings(max_examples=30)
@given(st.data())
def test_sobel_magnitude_then_threshold_in_one_kernel_equals_scipy(data: st.DataObject) -> None:
    """The magnitude's mask made in the magnitude's kernel equals scipy's magnitude
    followed by the threshold, as the two steps apart do."""
    a, _ = data.draw(arrays(("uint8", "uint16", "int16", "float32", "float64")), label="array")
    magnitude = CASES["sobel_magnitude"][1](data.draw, a)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        values = reference("sobel_magnitude", a, magnitude)
    # Also the magnitude's own values: a voxel exactly at a bound is in neither mask.
    finite = values[np.isfinite(values)]
    bound = THRESHOLDS if finite.size == 0 else st.one_of(st.sampled_from(sorted({float(v) for v in finite.flat[:50]})), THRESHOLDS)
    which = data.draw(st.sampled_from([("above",), ("below",), ("above", "below")]), label="bounds")
    bounds = {k: data.draw(bound, label=k) for k in which}
    native, chunks, per_block, shards = data.draw(layouts(a.shape), label="layout")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        want = reference("threshold", values, bounds)
        got = run(a, [{"op": "sobel_magnitude", **magnitude}, {"op": "threshold", **bounds}], native, chunks, per_block, "compiled", shards)
    assert got.dtype == bool and np.array_equal(got, want)


@pytest.mark.parametrize(
    ("output", "bounds", "links_made"),
    [
        ("float32", {"above": 40}, 1),
        ("float32", {"above": 40.5, "below": 1000}, 1),
        ("float32", {"below": 0.1}, 2),  # float32 does not hold 0.1: two steps
        ("float64", {"below": 0.1}, 1),
        ("float32", {"above": 2**24 + 1}, 2),
    ],
)
def test_a_threshold_the_magnitude_holds_exactly_joins_its_kernel(output: str, bounds: dict[str, Any], links_made: int) -> None:
    from batchproc.engine.runner import Job, links

    a = np.zeros((6, 6, 6), np.uint16)
    image = Image(None, "zyx", (1.0,) * 3, "memory", {}, Chunked(a), (6, 6, 6))
    steps = [{"op": "sobel_magnitude", "output": output}, {"op": "threshold", **bounds}]
    plan = make_plan(Pipeline(steps), image, (6, 6, 6), kernels="compiled")
    assert len(links(Job(plan), 2)) == links_made
    assert len(links(Job(plan), 2, "scipy")) == 2


def test_read_ahead_hands_each_region_to_its_block_once() -> None:
    from batchproc.engine.runner import ReadAhead

    ahead = ReadAhead([(0,), (1,), (2,), (3,)])
    assert ahead.take((0,)) is None  # its task reads it
    ahead.read_next(lambda index: f"region {index}")  # (1,): the next no task has read
    assert ahead.take((2,)) is None
    ahead.read_next(lambda index: f"region {index}")  # (3,): (2,) is its task's
    ahead.read_next(lambda index: pytest.fail("nothing is left to read"))
    assert (ahead.take((1,)), ahead.take((3,)), ahead.taken) == ("region (1,)", "region (3,)", 2)

    def unreadable(index: tuple[int, ...]) -> Any:
        raise OSError(f"input: cannot read block {index}")

    failing = ReadAhead([(0,), (1,)])
    assert failing.take((0,)) is None
    failing.read_next(unreadable)  # a read ahead that fails ...
    with pytest.raises(OSError, match=r"block \(1,\)"):  # ... fails in the block's own task
        failing.take((1,))


def test_blocks_read_ahead_while_kernels_load_equal_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads whose kernels are loading read the next blocks' regions; the blocks
    that find theirs read ahead give the same result, each chunk still read once."""
    import scipy.ndimage as ndi

    from batchproc import dispatch
    from batchproc.engine import runner

    made: list[Any] = []

    class Recorded(runner.ReadAhead):
        def __init__(self, order: Any) -> None:
            super().__init__(order)
            made.append(self)

    monkeypatch.setattr(runner, "ReadAhead", Recorded)
    monkeypatch.setattr(dispatch, "loading", lambda trial: True)
    a = np.random.default_rng(3).integers(0, 4000, (12, 40, 30), dtype=np.uint16)
    image = Image(None, "zyx", (1.0,) * 3, "memory", {}, Chunked(a), (4, 10, 30))
    steps = [{"op": "gaussian_filter", "sigma": 1.0}, {"op": "sobel_magnitude", "output": "float32"}, {"op": "threshold", "above": 40}]
    plan = make_plan(Pipeline(steps), image, (4, 10, 30), kernels="compiled")
    plan = dataclasses.replace(plan, blocks=(4, 10, 30))
    target = Target(plan.shape, plan.dtype, plan.file_shape)
    CACHE.clear()
    with dask.config.set(scheduler="threads", num_workers=2):
        run_plan(plan, target)
    g = ndi.gaussian_filter(a, 1.0)
    want = np.sqrt(sum(np.square(ndi.sobel(g, axis, output=np.float32)) for axis in range(3))) > 40
    assert np.array_equal(target.array, want)
    assert len(made) == 1 and made[0].taken > 0
    assert image.reader.reads == 3 * 4  # every input chunk once
