"""Building any operation computes nothing; global passes run only on compute."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

import batchproc
from batchproc.ops import REGISTRY

EXAMPLE_PARAMS = {
    "correlate": {"weights": np.ones((3, 3))},
    "convolve": {"weights": np.ones((3, 3))},
    "gaussian_filter": {"sigma": 2},
    "gaussian_gradient_magnitude": {"sigma": 2},
    "gaussian_laplace": {"sigma": 2},
    "percentile_filter": {"percentile": 20, "size": 3},
    "rank_filter": {"rank": 1, "size": 3},
    "median_filter": {"size": 3},
    "minimum_filter": {"size": 3},
    "maximum_filter": {"size": 3},
    "binary_dilation": {"iterations": -1},
    "equalize": {},
    "threshold": {"above": 3},
    "expression": {"expr": "(x > 3) & ~(x > 9)"},
    "where": {"condition": "x > 4"},
    "astype": {"dtype": "uint8", "rescale": True},
}
ARRAY_OPS = sorted(name for name, op in REGISTRY.items() if op.returns_array)


@pytest.mark.parametrize("name", ARRAY_OPS)
def test_building_computes_nothing(name: str, no_compute: None) -> None:
    x = da.random.randint(0, 20, size=(64, 48), chunks=(16, 16)).astype(np.uint16)
    fn = getattr(batchproc.ndimage, name) if REGISTRY[name].scipy else getattr(batchproc, name)
    result = fn(x, **EXAMPLE_PARAMS.get(name, {}))
    if REGISTRY[name].also is not None:  # an array and more, all lazy (label: the count)
        result, more = result
        assert isinstance(more, da.Array)
    assert isinstance(result, da.Array)
    assert result.shape == x.shape


def test_the_guard_does_catch_a_computation(no_compute: None) -> None:
    x = da.ones((8, 8), chunks=4)
    with pytest.raises(AssertionError, match="computation was started"):
        batchproc.equalize(x.astype(np.uint8)).compute()
