"""Real files for the reader and writer tests: shipped by pydicom and nibabel, or
written here with imageio, tifffile, h5py and zarr."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def volume() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 4000, size=(6, 50, 70)).astype(np.uint16)


@pytest.fixture
def png_stack(tmp_path: Path, volume: np.ndarray) -> Path:
    import imageio.v3 as iio

    folder = tmp_path / "stack"
    folder.mkdir()
    for i, plane in enumerate(volume):
        iio.imwrite(folder / f"slice{i + 1}.png", plane)  # slice10 would sort after slice9
    return folder


@pytest.fixture(scope="session")
def ct_series_folder() -> Path:
    from pydicom.data import get_testdata_file

    return Path(os.path.dirname(get_testdata_file("CT_small.dcm"))) / "dicomdirtests" / "98892001" / "CT5N"


@pytest.fixture(scope="session")
def nibabel_data() -> Path:
    from nibabel.testing import data_path

    return Path(data_path)
