"""Reads held back behind writes: the result is unchanged, and the input alive at
any moment stays within about two layers of blocks, however deep the volume."""

from __future__ import annotations

import shutil
from collections.abc import Hashable
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
import zarr
from dask.callbacks import Callback

import batchproc
from batchproc.engine import layers, progress, scheduler
from batchproc.engine.layers import gated_graph, slabs
from batchproc.ops.filters import sobel_magnitude_block
from batchproc.pipeline import Pipeline
from batchproc.plan import layer_axis

SHAPE, BLOCK = (120, 24, 20), (8, 12, 10)  # 15 layers of 2 x 2 blocks
BLOCK_BYTES = int(np.prod(BLOCK)) * 4


@pytest.fixture
def stored(tmp_path, rng) -> tuple[np.ndarray, da.Array]:
    data = rng.normal(100, 20, SHAPE).astype(np.float32)
    store = zarr.open_array(str(tmp_path / "in.zarr"), mode="w", shape=SHAPE, chunks=BLOCK, dtype=data.dtype)
    store[...] = data
    return data, da.from_zarr(store)


def test_layer_axis_is_the_one_with_most_blocks():
    assert layer_axis((3, 7, 7)) == 1
    assert layer_axis((15, 2, 2)) == 0
    assert layer_axis((1, 1, 4)) == 2


@pytest.mark.parametrize("name", ["threads", "synchronous", "processes"])  # processes: not gated, one computation
def test_write_equals_scipy_on_each_local_scheduler(stored, tmp_path, name):
    data, x = stored
    with scheduler(name):
        batchproc.write(Pipeline([{"op": "gaussian_filter", "sigma": 2}]).apply(x), tmp_path / "out.zarr")
    written = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["0"][...]
    np.testing.assert_array_equal(written, ndi.gaussian_filter(data, 2))


def test_every_read_after_the_first_layer_waits_for_the_layer_before(stored):
    _, x = stored
    y = Pipeline([{"op": "uniform_filter", "size": 3}]).apply(x)
    blocks = list(np.ndindex(*y.numblocks))
    graph, targets = gated_graph(y, blocks)
    tokens = {k: v for k, v in graph.items() if isinstance(k, tuple) and k[0] == "batchproc-layer-written"}
    # The last layer's blocks are first needed, as halo, by the layer before it.
    assert sorted(k[1] for k in tokens) == list(range(y.numblocks[0] - 2))
    for (_, layer), task in tokens.items():
        written = {dep[1:] for dep in task.dependencies}
        assert written == {(layer, j, k) for j in range(2) for k in range(2)}
    gated = [k for k, task in graph.items() if any(dep in tokens for dep in task.dependencies)]
    # Every input block but the first two layers' (layer 0 needs them at once).
    assert len(gated) == 4 * (y.numblocks[0] - 2)
    assert len(targets) == len(blocks)


class _AliveArrays(Callback):
    """The most array bytes the scheduler holds at once (views counted by the
    array they look into), sampled after every task."""

    def __init__(self) -> None:
        super().__init__()
        self.peak = 0

    def _posttask(self, key: Hashable, result: Any, dsk: Any, state: dict[str, Any], worker_id: Any) -> None:
        held = {}
        for value in state["cache"].values():
            if isinstance(value, np.ndarray):
                base = value if not isinstance(value.base, np.ndarray) else value.base
                held[id(base)] = base.nbytes
        self.peak = max(self.peak, sum(held.values()))


def _layers_alive(y: da.Array, target: Any) -> float:
    """The most arrays held at once while writing ``y``, in layers of input."""
    watch = _AliveArrays()
    with dask.config.set(scheduler="threads", num_workers=2), watch:
        batchproc.write(y, target, chunks=BLOCK)
    return watch.peak / (4 * BLOCK_BYTES)


def test_arrays_alive_stay_within_a_few_layers(stored, tmp_path):
    _, x = stored
    alive = _layers_alive(Pipeline([{"op": "uniform_filter", "size": 3}]).apply(x), tmp_path / "out.zarr")
    # Measured 2.9-3.4 layers (input blocks, halo slices, results not yet
    # written), of the volume's 15.
    assert 1 <= alive <= 4.5, alive


def test_slabs_cover_every_layer_once_within_the_budget():
    for numblocks, budget in (((60, 8, 4), 512), ((15, 8, 4), 512), ((7, 3, 1), 4), ((3, 1, 1), 1), ((1, 5, 5), 2)):
        axis = layer_axis(numblocks)
        ranges = slabs(numblocks, axis, budget)
        assert ranges[0][0] == 0 and ranges[-1][1] == numblocks[axis]
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
        per_layer = int(np.prod(numblocks)) // numblocks[axis]
        assert all((hi - lo) * per_layer <= max(budget, per_layer) for lo, hi in ranges)


@pytest.mark.parametrize("budget", [4, 12])
def test_slab_by_slab_write_equals_scipy(stored, tmp_path, monkeypatch, budget):
    # Slabs of one and three layers: every slab edge has a halo from the next slab.
    monkeypatch.setattr(layers, "SLAB_BLOCKS", budget)
    data, x = stored
    with scheduler("threads"):
        batchproc.write(Pipeline([{"op": "gaussian_filter", "sigma": 1.5}, {"op": "sobel_magnitude"}]).apply(x), tmp_path / "out.zarr", chunks=BLOCK)
    written = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["0"][...]
    want = sobel_magnitude_block(ndi.gaussian_filter(data, 1.5), axes=None, mode="reflect", cval=0.0, output=None)
    np.testing.assert_array_equal(written, want)


def test_resume_of_blocks_in_later_slabs_only(stored, tmp_path, monkeypatch):
    monkeypatch.setattr(layers, "SLAB_BLOCKS", 4)
    data, x = stored
    y = Pipeline([{"op": "uniform_filter", "size": 3}]).apply(x)
    target = tmp_path / "out.zarr"
    batchproc.write(y, target, chunks=BLOCK)
    # An interrupted run: the chunks of layers 9 to 14 never reached the disk.
    for layer in range(9, 15):
        shutil.rmtree(target / "0" / "c" / str(layer))
    group = zarr.open_group(str(target), mode="r+")
    group.attrs["batchproc"] = {**group.attrs["batchproc"], "complete": False}
    batchproc.write(y, target, chunks=BLOCK, resume=True)
    np.testing.assert_array_equal(zarr.open_group(str(target), mode="r")["0"][...], ndi.uniform_filter(data, 3))


def test_one_progress_bar_counts_blocks_across_slabs(stored, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(layers, "SLAB_BLOCKS", 8)  # 8 slabs of two layers
    _, x = stored
    y = Pipeline([{"op": "uniform_filter", "size": 3}]).apply(x)
    with scheduler("threads"), progress("writing out.zarr"):
        batchproc.write(y, tmp_path / "out.zarr", chunks=BLOCK)
    shown = capsys.readouterr().out
    assert shown.count("writing out.zarr") == 1, shown
    assert "60/60" in shown or "100%" in shown, shown


class _Reads(Callback):
    """Counts the input reads run (tasks named after the zarr source)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name, self.count = name, 0

    def _posttask(self, key: Hashable, *_: Any) -> None:
        if isinstance(key, tuple) and key[0] == self.name:
            self.count += 1


def test_a_global_reduction_is_computed_once_for_all_slabs(stored, tmp_path, monkeypatch):
    # equalize's histogram is needed by every block: computed once before the
    # slabs, not once per slab (which would read the whole input each time).
    _, x = stored
    y = Pipeline([{"op": "gaussian_filter", "sigma": 1}, {"op": "equalize", "bins": 64}]).apply(x)
    with scheduler("threads"):
        batchproc.write(y, tmp_path / "whole.zarr", chunks=BLOCK)
    monkeypatch.setattr(layers, "SLAB_BLOCKS", 8)  # 8 slabs
    reads = _Reads(x.name)
    with scheduler("threads"), reads:
        batchproc.write(y, tmp_path / "slabs.zarr", chunks=BLOCK)
    whole = zarr.open_group(str(tmp_path / "whole.zarr"), mode="r")["0"][...]
    np.testing.assert_array_equal(zarr.open_group(str(tmp_path / "slabs.zarr"), mode="r")["0"][...], whole)
    blocks = int(np.prod(x.numblocks))
    # Once for the data's range, once for the histogram, once for the output, and
    # the layers beside each slab (8 x 60 reads, each slab on its own).
    assert blocks * 3 <= reads.count <= blocks * 3 + 2 * 8 * 4, (reads.count, blocks)


def test_a_global_reduction_does_not_keep_the_input_alive(stored, tmp_path):
    # One slab: the histogram first, then the blocks layer by layer; not every
    # input block held from the histogram until its own output is written.
    _, x = stored
    alive = _layers_alive(Pipeline([{"op": "equalize", "bins": 64}]).apply(x), tmp_path / "out.zarr")
    assert alive <= 4.5, alive  # of 15 layers (all 15 before)
