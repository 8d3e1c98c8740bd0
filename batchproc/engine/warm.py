"""Compiling the kernels ahead of the runs that use them (``batchproc warm``).

numba compiles a kernel the first time a process calls it with a new type, and
keeps the machine code in its cache (``NUMBA_CACHE_DIR``, else beside the
installed package). Running each operation's compiled kernels once, through the
engine, on small volumes of each common dtype fills that cache: an image or a
cluster node built this way starts its first run without waiting for numba.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

#: The operations whose compiled kernels are warmed, with the parameters they
#: are warmed with (one pipeline each: kernels are specialized by dtype, not by
#: most parameters).
WARM_STEPS: dict[str, list[dict[str, Any]]] = {
    "course pipeline": [{"op": "gaussian_filter", "sigma": 2}, {"op": "sobel_magnitude"}, {"op": "threshold", "above": 40}],
    "gaussian_filter": [{"op": "gaussian_filter", "sigma": 1.5, "mode": "nearest"}],
    "sobel": [{"op": "sobel", "axis": 0, "output": "float32"}],
    "sobel in the input's dtype": [{"op": "sobel", "axis": 1}],
    "laplace": [{"op": "laplace"}],
    "prewitt": [{"op": "prewitt", "axis": 1, "output": "float64"}],
    "uniform_filter": [{"op": "uniform_filter", "size": 5}],
    "minimum_filter": [{"op": "minimum_filter", "size": 3}],
    "maximum_filter": [{"op": "maximum_filter", "size": 5}],
    "median_filter": [{"op": "median_filter", "size": 3}],
    "percentile_filter": [{"op": "percentile_filter", "percentile": 25, "size": 3}],
    "rank_filter": [{"op": "rank_filter", "rank": 5, "size": 3}],
    "convolve": [{"op": "convolve", "weights": (np.ones((3, 3, 3)) / 27).tolist()}],
    "correlate": [{"op": "correlate", "weights": (np.arange(27.0).reshape(3, 3, 3) / 351).tolist()}],
    "equalize": [{"op": "equalize"}],
    "binary_dilation": [{"op": "binary_dilation", "iterations": 2}],
}
DTYPES = ("uint8", "uint16", "int16", "float32", "float64")


def warm(dtypes: Sequence[str] = DTYPES, names: Sequence[str] | None = None, on_done: Callable[[str, str], None] | None = None) -> int:
    """Run each chosen pipeline of :data:`WARM_STEPS` with the compiled kernels on a
    small 3-D volume of each dtype, in several blocks (edge and inner blocks take
    different paths), on the calling thread; the number of runs.

    The runs wait for their kernels (``batchproc.compile`` is ``wait``): compiled
    here, in this process, is what warming is for."""
    import dask

    from batchproc.engine.runner import InlinePool, run_plan
    from batchproc.io.readers import Image
    from batchproc.pipeline import Pipeline
    from batchproc.plan import make_plan

    chosen = list(WARM_STEPS) if names is None else list(names)
    runs = 0
    with dask.config.set({"batchproc.compile": "wait"}):
        for dtype in dtypes:
            volume = _volume(np.dtype(dtype))
            image = Image(None, "zyx", (1.0, 1.0, 1.0), f"warm-up {dtype}", {}, volume, (8, 24, 24))
            for name in chosen:
                plan = make_plan(Pipeline(WARM_STEPS[name]), image, (8, 24, 24), kernels="compiled")
                run_plan(plan, _Discard(), on=InlinePool())
                runs += 1
                if on_done is not None:
                    on_done(name, dtype)
    return runs


def _volume(dtype: np.dtype) -> np.ndarray:
    rng = np.random.default_rng(0)
    values = rng.normal(100, 40, size=(16, 48, 48)).clip(0, 250)
    return values.astype(dtype)


class _Discard:
    """A target that keeps nothing: warming needs the kernels run, not their output."""

    def write(self, index: tuple[int, ...], block: np.ndarray) -> None:
        pass
