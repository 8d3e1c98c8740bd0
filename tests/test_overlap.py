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
