"""The scratch array on local disk (batchproc.io.scratch): chunks written and read
back whole, made on first use, removed by its last reader."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from batchproc.io.scratch import Scratch


def test_regions_on_the_grid_read_back_and_the_last_reader_removes_the_file(tmp_path: Path) -> None:
    data = np.arange(7 * 10 * 6, dtype=np.uint32).reshape(7, 10, 6)
    scratch = Scratch(data.shape, data.dtype, (3, 4, 6), readers=2, folder=str(tmp_path))
    assert not os.path.exists(scratch.path)  # nothing made until first used
    scratch.write((slice(0, 3), slice(0, 8), slice(None)), data[0:3, 0:8])
    scratch.write((slice(0, 3), slice(8, 10), slice(None)), data[0:3, 8:10])  # the edge chunk, short
    elsewhere = pickle.loads(pickle.dumps(scratch))  # as a worker process gets it
    elsewhere.write((slice(3, 7), slice(None), slice(None)), data[3:7])
    assert np.array_equal(scratch.read((slice(None), slice(None), slice(None))), data)
    assert np.array_equal(scratch.read((slice(3, 6), slice(4, 10), slice(None))), data[3:6, 4:10])
    scratch.release()
    assert os.path.exists(scratch.path)
    scratch.release()
    assert not os.path.exists(scratch.path)


def test_a_region_off_the_grid_is_refused(tmp_path: Path) -> None:
    scratch = Scratch((8, 8), np.float64, (4, 4), readers=1, folder=str(tmp_path))
    with pytest.raises(ValueError, match="not on the chunk grid"):
        scratch.write((slice(0, 2), slice(None)), np.zeros((2, 8)))
    scratch.remove()
    assert not os.path.exists(scratch.path)
