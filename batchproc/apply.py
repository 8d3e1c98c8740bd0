"""From a registry declaration to a callable: input coercion, validation at the edge,
and dispatch to the one ``map_overlap`` (local ops) or the op's own graph (global)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dask.array as da
import numpy as np

from batchproc.errors import BatchprocError
from batchproc.ops import Context, Operation
from batchproc.overlap import map_stage


def as_array(value: Any, where: str) -> da.Array:
    """The input as a dask array of native byte order (a numpy array is wrapped
    lazily, never copied)."""
    if not isinstance(value, da.Array):
        if not hasattr(value, "shape") or not hasattr(value, "dtype"):
            try:
                value = np.asarray(value)
            except (TypeError, ValueError):
                raise BatchprocError(f"{where}: the input must be an array; got {type(value).__name__}.") from None
        value = da.from_array(value, chunks="auto") if value.ndim else da.asarray(value)
    if value.ndim == 0:
        raise BatchprocError(f"{where}: the input must have at least one dimension; got a scalar.")
    if np.dtype(value.dtype).kind not in "biuf":
        raise BatchprocError(
            f"{where}: the input must be a boolean, integer or float array; got dtype {value.dtype}."
        )
    if not np.dtype(value.dtype).isnative:
        # Big-endian data (from a file written on another machine) as this
        # machine's numbers, block by block: the compiled kernels take native
        # dtypes only, and the values are the same.
        value = value.astype(np.dtype(value.dtype).newbyteorder("="))
    return value


def apply_step(x: da.Array, op: Operation, params: dict[str, Any]) -> Any:
    """Apply one validated step to a dask array, lazily (histogram excepted: it
    returns counts, like scipy)."""
    if op.kind == "global":
        assert op.apply is not None
        return op.apply(x, **params)
    return map_stage(x, [(op, params)])


def make_function(op: Operation, module: str) -> Callable[..., Any]:
    """A function with scipy's name, signature, defaults and docstring for ``op``."""
    signature = op.signature()

    def function(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as err:
            raise TypeError(f"{op.name}(): {err}") from None
        given = dict(bound.arguments)
        x = as_array(given.pop("input"), op.name)
        params = op.validate(given, Context(op.name, x.ndim, np.dtype(x.dtype)))
        return apply_step(x, op, params)

    function.__name__ = function.__qualname__ = op.name
    function.__module__ = module
    function.__doc__ = op.doc or op.summary
    function.__signature__ = signature  # type: ignore[attr-defined]
    return function
