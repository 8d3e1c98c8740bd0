"""The boundary rules of the one map_overlap."""

from __future__ import annotations

import re
from pathlib import Path

import dask.array as da
import numpy as np
import scipy.ndimage as ndi

import batchproc
import batchproc.overlap


def test_exactly_one_function_calls_map_overlap() -> None:
    package = Path(batchproc.__file__).parent
    callers = [p.relative_to(package).as_posix() for p in package.rglob("*.py") if re.search(r"map_overlap\(", p.read_text())]
    assert callers == ["overlap.py"]
    assert len(re.findall(r"map_overlap\(", (package / "overlap.py").read_text())) == 1


def test_halo_larger_than_chunks_merges_blocks_and_stays_exact() -> None:
    a = np.random.default_rng(1).normal(size=(50, 40))
    x = da.from_array(a, chunks=3)
    y = batchproc.ndimage.gaussian_filter(x, sigma=4)  # radius 16 > chunk 3
    assert np.array_equal(y.compute(), ndi.gaussian_filter(a, 4))


def test_kernel_larger_than_array_uses_the_whole_axis() -> None:
    a = np.random.default_rng(2).normal(size=(9, 300))
    x = da.from_array(a, chunks=(2, 50))
    y = batchproc.ndimage.uniform_filter(x, size=(25, 3), mode="wrap")
    assert y.chunks[0] == (9,)  # the axis the kernel spans became one chunk
    assert y.chunks[1] != (300,)  # the other keeps its blocks
    assert np.allclose(y.compute(), ndi.uniform_filter(a, size=(25, 3), mode="wrap"), rtol=0, atol=1e-12 * np.abs(a).max())


def test_iterations_until_stable_sees_the_whole_array() -> None:
    a = np.zeros((40, 40), bool)
    a[20, 20] = True
    x = da.from_array(a, chunks=7)
    got = batchproc.ndimage.binary_dilation(x, iterations=0, mask=da.from_array(np.tri(40, dtype=bool), chunks=7))
    assert np.array_equal(got.compute(), ndi.binary_dilation(a, iterations=0, mask=np.tri(40, dtype=bool)))


def test_a_single_op_is_one_overlap_task_layer() -> None:
    x = da.zeros((64, 64), chunks=16)
    y = batchproc.ndimage.gaussian_filter(x, 2)
    names = [name for name in y.dask.layers if name.startswith("batchproc-")]
    assert len(names) == 1 and names[0].startswith("batchproc-gaussian_filter")


def test_fused_stage_equals_steps_one_after_another() -> None:
    from batchproc.ops import get

    a = np.random.default_rng(3).integers(0, 255, size=(33, 47)).astype(np.uint8)
    steps = []
    for name, given in [("gaussian_filter", {"sigma": 1.5, "output": "float32"}), ("sobel_magnitude", {}), ("threshold", {"above": 40})]:
        op = get(name)
        steps.append((op, op.validate(given, batchproc.ops.Context(name, 2, None))))
    fused = batchproc.overlap.map_stage(da.from_array(a, chunks=(5, 9)), steps)
    want = ndi.gaussian_filter(a, 1.5, output=np.float32)
    want = np.sqrt(np.square(ndi.sobel(want, 0)) + np.square(ndi.sobel(want, 1))) > 40
    assert np.array_equal(fused.compute(), want)


def test_halo_slices_are_copies_so_neighbour_blocks_can_be_freed() -> None:
    # dask cuts halos as views (operator.getitem), which keep the whole neighbouring
    # block alive; map_stage turns those cuts into copies. This fails loudly if a
    # dask release changes the overlap layer's tasks, instead of silently losing it.
    import operator

    from batchproc.overlap import _copy_slice

    a = np.random.default_rng(0).integers(0, 100, (12, 12, 12)).astype(np.uint16)
    y = batchproc.ndimage.gaussian_filter(da.from_array(a, chunks=6), sigma=1)
    tasks = [t for layer in y.dask.layers.values() for t in layer.values() if isinstance(t, tuple) and t]
    assert any(t[0] is _copy_slice for t in tasks)
    assert not any(t[0] is operator.getitem for t in tasks)
    assert np.array_equal(y.compute(scheduler="synchronous"), ndi.gaussian_filter(a, sigma=1))


def test_steps_write_over_the_joined_block_never_over_the_input() -> None:
    # The gaussian and the sobel magnitude write over their input when it is the
    # task's own (a block joined from its halo, or an earlier step's result), which
    # saves a whole block per step; the caller's array, and dask's blocks of it,
    # must come out unchanged, on one block and on many, and the result exact.
    from batchproc.pipeline import Pipeline

    steps = [{"op": "gaussian_filter", "sigma": 1.5}, {"op": "sobel_magnitude"}, {"op": "sobel_magnitude"}]
    a = np.random.default_rng(4).random((24, 30, 28)).astype(np.float32)
    keep = a.copy()
    want = ndi.gaussian_filter(a, 1.5)
    for _ in range(2):
        want = np.sqrt(sum(np.square(ndi.sobel(want, axis)) for axis in range(3)))
    for chunks in ((24, 30, 28), (8, 15, 28), (5, 7, 9)):
        for scheduler in ("synchronous", "threads"):
            got = Pipeline(steps).apply(da.from_array(a, chunks=chunks)).compute(scheduler=scheduler)
            assert np.array_equal(got, want), (chunks, scheduler)
            assert np.array_equal(a, keep), (chunks, scheduler)
