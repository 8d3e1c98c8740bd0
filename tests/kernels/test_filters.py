"""The pieces of :mod:`batchproc.kernels.filters` that replay scipy outside a
kernel: the gaussian's weights, and which kernels a choice of one imports."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage._filters import _gaussian_kernel1d

from batchproc.kernels.filters import gaussian_weights


@settings(max_examples=300, deadline=None)
@given(
    sigma=st.one_of(st.floats(0.05, 40.0), st.integers(1, 40), st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0])),
    truncate=st.floats(0.5, 8.0),
    order=st.integers(0, 3),
)
def test_gaussian_weights_are_scipys_bit_for_bit(sigma: float, truncate: float, order: int) -> None:
    radius = int(truncate * float(sigma) + 0.5)
    got = gaussian_weights(sigma, order, radius)
    want = _gaussian_kernel1d(sigma, order, radius)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got.view(np.uint64), want.view(np.uint64))


def test_choosing_a_kernel_imports_neither_numba_nor_scipy_ndimage() -> None:
    # A plan (and a cluster's client) asks which kernel covers each step; the
    # answer must not load numba, nor scipy.ndimage for the steps it covers.
    script = (
        "import sys, numpy as np\n"
        "from batchproc.pipeline import Pipeline\n"
        "from batchproc.plan import bind\n"
        "steps = Pipeline([{'op': 'gaussian_filter', 'sigma': 2}, {'op': 'sobel_magnitude', 'output': 'float32'}, {'op': 'threshold', 'above': 40}]).steps\n"
        "bound = bind(steps, 3, np.dtype('uint16'), 2**27, 'compiled')\n"
        "from batchproc.ops import REGISTRY\n"
        "assert all(REGISTRY[b.name].kernel(b.dtype, b.params, 'compiled') is not REGISTRY[b.name].block for b in bound[:2])\n"
        "print(sorted(m for m in ('numba', 'scipy.ndimage') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
