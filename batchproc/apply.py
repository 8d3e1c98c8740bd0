"""From a registry declaration to a lazy dask array: input coercion, validation at
the edge, and the dask graph of one step: the one ``map_overlap`` (local ops), or
a global op's passes and voxel-wise finish."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dask.array as da
import numpy as np

from batchproc.errors import BatchprocError
from batchproc.ops import Context, Operation
from batchproc.ops.measure import lazy_partials, located_blocks
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
        raise BatchprocError(f"{where}: the input must be a boolean, integer or float array; got dtype {value.dtype}.")
    if not np.dtype(value.dtype).isnative:
        # Big-endian data (from a file written on another machine) as this
        # machine's numbers, block by block: the compiled kernels take native
        # dtypes only, and the values are the same.
        value = value.astype(np.dtype(value.dtype).newbyteorder("="))
    return value


def global_apply(x: da.Array, op: Operation, params: dict[str, Any]) -> da.Array:
    """A global step on a dask array, lazily: each of its passes reduces every
    block and combines the partials; then its finish runs on every block with
    all the passes' results."""
    assert op.passes is not None and op.finish is not None
    if op.located:
        return located_apply(x, op, params)[0]
    dtype = np.dtype(x.dtype)
    results: list[da.Array] = []
    blocks = tuple(range(x.ndim))
    from batchproc import kernels

    for one in op.passes(dtype, params, kernels.for_input(x.size)):
        parts = lazy_partials(x, one.partial, one.shape, scalars=tuple(results))
        if one.combine == "sum":
            results.append(parts.sum(axis=blocks))
        else:
            results.append(da.stack([parts[..., 0].min(axis=blocks), parts[..., 1].max(axis=blocks)]))
    finish = op.finish(dtype, params)
    out = np.dtype(op.dtype(dtype, params))
    args: list[Any] = [x, blocks]
    for k, result in enumerate(results):
        args += [result.rechunk(-1), tuple(range(100 + k * 8, 100 + k * 8 + result.ndim))]
    return da.blockwise(finish, blocks, *args, dtype=out, concatenate=True, meta=np.empty((0,) * x.ndim, out))


def located_apply(x: da.Array, op: Operation, params: dict[str, Any]) -> tuple[da.Array, list[Any]]:
    """A global step whose passes and finish need each block's place (``label``),
    lazily: each pass's partials go to its ``reduce`` as one delayed task, and the
    finish runs on the same blocks, told where each lies. Also the passes' lazy
    results."""
    import dask

    from batchproc import kernels

    assert op.passes is not None and op.finish is not None
    dtype = np.dtype(x.dtype)
    blocks, boxes = located_blocks(x)
    results: list[Any] = []
    for one in op.passes(dtype, params, kernels.for_input(x.size)):
        assert one.located and one.combine == "collect" and one.reduce is not None
        parts = [dask.delayed(one.partial)(block, *results, where=box, shape=x.shape) for block, box in zip(blocks, boxes, strict=True)]
        results.append(dask.delayed(one.reduce)(parts, x.shape))
    finish = op.finish(dtype, params)
    out = np.dtype(op.dtype(dtype, params))

    def per_block(block: np.ndarray, *found: Any, block_info: Any = None) -> np.ndarray:
        where = tuple(tuple(int(v) for v in edge) for edge in block_info[0]["array-location"])
        return finish(block, *found, where=where)

    return x.map_blocks(per_block, *results, dtype=out, meta=np.empty((0,) * x.ndim, out)), results


def apply_step(x: da.Array, op: Operation, params: dict[str, Any]) -> Any:
    """One validated step on a dask array, lazily (an op that returns counts, not
    an image, gives its lazy counts and the function that makes scipy's result)."""
    if op.kind != "global":
        return map_stage(x, [(op, params)])
    if op.apply is not None:
        return op.apply(x, **params)
    if op.also is not None:  # an array, and more from the passes (label's count), lazily
        import dask
        import dask.array as da

        out, results = located_apply(x, op, params) if op.located else (global_apply(x, op, params), [])
        value, dtype = op.also
        return out, da.from_delayed(dask.delayed(value)(*results), shape=(), dtype=dtype)
    return global_apply(x, op, params)


def make_function(op: Operation, module: str) -> Callable[..., Any]:
    """A function with scipy's name, signature, defaults and docstring for ``op``."""
    from batchproc.ops._describe import numpydoc

    signature = op.signature()

    def function(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as err:
            raise TypeError(f"{op.name}(): {err}") from None
        given = dict(bound.arguments)
        x = as_array(given.pop("input"), op.name)
        params = op.validate(given, Context(op.name, x.ndim, np.dtype(x.dtype), size=int(np.prod(x.shape))))
        result = apply_step(x, op, params)
        if op.returns_array:
            return result
        # Counts, not an image: computed now and returned as numpy, as scipy does.
        from batchproc.engine import compute

        lazy, finish = result
        return finish(compute([lazy])[0])

    function.__name__ = function.__qualname__ = op.name
    function.__module__ = module
    function.__doc__ = numpydoc(op)
    function.__signature__ = signature  # type: ignore[attr-defined]
    return function
