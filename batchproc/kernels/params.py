"""Per-axis parameters as scipy normalizes them: the two rules every operation
and kernel shares (kept here, in the kernels' own package, which imports nothing
of the rest of batchproc)."""

from __future__ import annotations

from typing import Any


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
