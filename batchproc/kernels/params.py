"""Per-axis parameters as scipy normalizes them: the two rules every operation
and kernel shares, the boundary modes' numbers, and scipy's own functions where a
block runs them (kept here, in the kernels' own package, which imports nothing of
the rest of batchproc; and without numba, so that choosing a kernel does not load
it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: scipy's boundary modes as the compiled kernels number them.
MODE_CODES = {
    "reflect": 0,
    "grid-mirror": 0,
    "mirror": 1,
    "nearest": 2,
    "wrap": 3,
    "grid-wrap": 3,
    "constant": 4,
    "grid-constant": 4,
}


def expand(value: Any, n: int) -> tuple:
    """A per-axis parameter as a tuple of length ``n`` (scipy's _normalize_sequence)."""
    if isinstance(value, tuple):
        return value
    return (value,) * n


def axes_tuple(axes: Any, ndim: int) -> tuple[int, ...]:
    """scipy's ``axes`` argument as a tuple of non-negative axis numbers."""
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, int):
        axes = (axes,)
    return tuple(a % ndim for a in axes)


def scipy_function(name: str) -> Callable[..., Any]:
    """scipy.ndimage's function ``name``, imported when a block first runs it: a run
    on the compiled kernels never imports scipy.ndimage (a fifth of a second)."""
    import scipy.ndimage

    return getattr(scipy.ndimage, name)
