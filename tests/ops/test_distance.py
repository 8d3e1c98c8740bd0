"""distance_transform_edt out of core: the two passes through a scratch file on
disk, in tiles and slabs much smaller than the array, equal to scipy."""

from __future__ import annotations

import glob
import os

import dask
import dask.array as da
import numpy as np
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_strategies import chunkings

import batchproc
from batchproc.ops import REGISTRY


def _scratch_files(folder: str) -> list[str]:
    return glob.glob(os.path.join(folder, "batchproc-scratch-*"))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_distances_in_small_tiles_and_slabs_equal_scipy(tmp_path_factory, data: st.DataObject) -> None:
    ndim = data.draw(st.integers(2, 4), label="ndim")
    shape = tuple(data.draw(st.lists(st.integers(1, {2: 24, 3: 10, 4: 6}[ndim]), min_size=ndim, max_size=ndim), label="shape"))
    chunks = data.draw(chunkings(shape), label="chunks")
    seed = data.draw(st.integers(0, 2**32 - 1))
    fill = data.draw(st.sampled_from([0.3, 0.8, 0.97, 1.0]), label="foreground")
    a = (np.random.default_rng(seed).random(shape) < fill).astype(data.draw(st.sampled_from(["uint8", "bool", "float32"])))
    sampling = data.draw(st.sampled_from([None, 2, 0.7, "per-axis"]), label="sampling")
    if sampling == "per-axis":
        sampling = data.draw(st.lists(st.sampled_from([1, 3, 0.5, 1.3]), min_size=ndim, max_size=ndim))
    # blocks of a few dozen voxels: many tiles, several columns and slabs
    budget = data.draw(st.sampled_from([64, 256, 1024, 2**20]), label="block bytes")
    folder = str(tmp_path_factory.mktemp("scratch"))
    want = ndi.distance_transform_edt(a, sampling=sampling)
    with dask.config.set({"batchproc.block-bytes": budget, "temporary-directory": folder}):
        lazy = batchproc.ndimage.distance_transform_edt(da.from_array(a, chunks=chunks), sampling=sampling)
        assert _scratch_files(folder) == []  # nothing made while the graph is built
        got = lazy.compute(scheduler="threads")
    assert got.dtype == want.dtype and got.shape == want.shape
    if all(float(s).is_integer() for s in np.atleast_1d(sampling if sampling is not None else 1)):
        assert np.array_equal(got, want), np.abs(got - want).max()  # exact integer squares
    else:  # where two zeros are all but equally near, the last bit may differ (declared)
        bound = REGISTRY["distance_transform_edt"].tolerance(a, want)
        assert np.abs(got - want).max() <= bound, (np.abs(got - want).max(), bound)
        assert np.mean(got != want) < 0.05, np.mean(got != want)  # ties are rare, not the rule
    assert _scratch_files(folder) == []  # the last slab removed the scratch


def test_distances_of_a_volume_many_tiles_wide_written_to_a_store(tmp_path) -> None:
    rng = np.random.default_rng(7)
    a = ndi.gaussian_filter(rng.random((24, 40, 56)), 2) > 0.5
    with dask.config.set({"batchproc.block-bytes": 24 * 8 * 8 * 8, "temporary-directory": str(tmp_path)}):
        lazy = batchproc.ndimage.distance_transform_edt(da.from_array(a, chunks=(8, 16, 16)), sampling=(2.0, 1.0, 0.5))
        assert lazy.numblocks[0] > 1
        batchproc.write(lazy, tmp_path / "edt.zarr")
    assert np.array_equal(batchproc.open(tmp_path / "edt.zarr").compute(), ndi.distance_transform_edt(a, sampling=(2.0, 1.0, 0.5)))
    assert _scratch_files(str(tmp_path)) == []


def test_columns_narrower_than_the_input_blocks_go_through_a_staging_scratch(tmp_path, monkeypatch) -> None:
    """Input blocks wider than a column allows (a deep volume in wide chunks) are
    written once to a staging scratch and read back a column at a time: equal to
    scipy, and both scratch files removed at the end."""
    from batchproc.ops import distance

    staged, original = [], distance._stage
    monkeypatch.setattr(distance, "_stage", lambda block, box, staging: staged.append(box) or original(block, box, staging))
    a = np.random.default_rng(4).random((40, 24, 36)) < 0.9
    with dask.config.set({"batchproc.block-bytes": 2000, "temporary-directory": str(tmp_path)}):
        got = batchproc.ndimage.distance_transform_edt(da.from_array(a, chunks=(9, 24, 36))).compute(scheduler="threads")
    assert len(staged) == 5  # every input block, once
    assert np.array_equal(got, ndi.distance_transform_edt(a))
    assert _scratch_files(str(tmp_path)) == []
