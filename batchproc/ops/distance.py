"""``distance_transform_edt``: scipy's exact Euclidean distance transform, lazily
and in chunks.

The squared distance is separable: a pass along each axis in turn, each over whole
lines (:mod:`batchproc.kernels.edt`), the array rechunked between passes so that
the axis of the next pass is whole and the blocks stay about
:data:`~batchproc.io.readers.TARGET_BLOCK_BYTES`. Squared distances are summed in
scipy's order, so without ``sampling`` (or with integer sampling) they are exact
integers and the distances equal scipy's bit for bit; with other spacings, where
two background voxels are all but equally near, the one taken may differ from
scipy's by the last bit (docs/concepts/exactness.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from batchproc.ops import _checks as c
from batchproc.ops._registry import Operation, Param, register


def _spacing(sampling: Any, ndim: int) -> tuple[float, ...]:
    if sampling is None:
        return (1.0,) * ndim
    values = np.atleast_1d(np.asarray(sampling, dtype=np.float64))
    if values.size == 1:
        return (float(values[0]),) * ndim
    return tuple(float(v) for v in values)


def _first_pass(block: np.ndarray, found: Any, *, s: float, block_info: Any = None) -> np.ndarray:
    """Along axis 0 (whole), from the input: 0 at background voxels. Where the
    array has no background at all, scipy's feature transform points every voxel
    at (-1, 0, ..., 0): the same here."""
    from batchproc.kernels.edt import envelope

    f = np.where(block == 0, 0.0, np.inf)
    out = envelope(f, 0, s)
    if not bool(found) and block.size:
        origin = [lo for lo, _ in block_info[0]["array-location"]]
        if all(o == 0 for o in origin[1:]):
            line = ((np.arange(block.shape[0], dtype=np.float64) + 1) * s)
            out[(slice(None), *([0] * (block.ndim - 1)))] = line * line
    return out


def _next_pass(block: np.ndarray, *, axis: int, s: float) -> np.ndarray:
    from batchproc.kernels.edt import envelope

    return envelope(block, axis, s)


def edt_apply(x: Any, sampling: Any = None, return_distances: bool = True, return_indices: bool = False, distances: Any = None, indices: Any = None) -> Any:
    """scipy.ndimage.distance_transform_edt on a dask array, lazily."""
    import dask.array as da

    from batchproc.plan import block_bytes

    spacing = _spacing(sampling, x.ndim)
    limit = block_bytes()

    def whole(array: Any, axis: int) -> Any:
        return array.rechunk({a: (-1 if a == axis else "auto") for a in range(array.ndim)}, block_size_limit=limit)

    found = ~(x != 0).all()  # any background voxel, lazily
    source = whole(x, 0)
    f = da.map_blocks(_first_pass, source, found, s=spacing[0], dtype=np.float64, meta=np.empty((0,) * x.ndim, np.float64))
    for axis in range(1, x.ndim):
        f = whole(f, axis).map_blocks(_next_pass, axis=axis, s=spacing[axis], dtype=np.float64, meta=np.empty((0,) * x.ndim, np.float64))
    return da.sqrt(f).rechunk(x.chunks)


def _relate(params: dict[str, Any], ctx: c.Context) -> None:
    if not params["return_distances"] or params["return_indices"] or params["distances"] is not None or params["indices"] is not None:
        raise ctx.fail("return_indices", "False, with return_distances True and no output arrays (the distances are returned; the feature transform is not offered yet)",
                       {k: params[k] for k in ("return_distances", "return_indices")})
    sampling = params.get("sampling")
    if sampling is not None and ctx.ndim is not None:
        values = np.atleast_1d(np.asarray(sampling, dtype=float))
        if values.size not in (1, ctx.ndim):
            raise ctx.fail("sampling", f"one spacing, or one per axis ({ctx.ndim})", sampling)


def _sampling(name: str, v: Any, ctx: c.Context) -> Any:
    if v is None:
        return None
    try:
        values = np.atleast_1d(np.asarray(v, dtype=float))
    except (TypeError, ValueError):
        raise ctx.fail(name, "a positive spacing or a list of them", v) from None
    if values.ndim != 1 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ctx.fail(name, "a positive spacing or a list of them", v)
    return v if np.isscalar(v) else tuple(float(s) for s in values)


def _tolerance(a: np.ndarray, want: np.ndarray) -> float:
    """Exact for unit or integer spacings; one part in 10**15 of the distance otherwise."""
    return 1e-15 * max(1.0, float(np.abs(want[np.isfinite(want)]).max(initial=0)))


register(
    Operation(
        name="distance_transform_edt",
        summary="Exact Euclidean distance of every non-zero voxel to the nearest zero voxel, as scipy computes it.",
        doc=__import__("scipy.ndimage").ndimage.distance_transform_edt.__doc__ or "",
        params=(
            Param("sampling", c.described(_sampling, {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}}, {"type": "null"}]}), None,
                  "voxel spacing per axis (default 1)"),
            Param("return_distances", c.boolean(), True, "must be True: the distances are returned"),
            Param("return_indices", c.boolean(), False, "must be False: the feature transform is not offered yet"),
            Param("distances", c.anything(), None, "must be None"),
            Param("indices", c.anything(), None, "must be None"),
        ),
        kind="global",
        apply=edt_apply,
        relate=_relate,
        tolerance=_tolerance,
        scipy=True,
        in_pipeline=False,
        returns_array=True,
        dtype=lambda dtype, params: np.dtype(np.float64),
    )
)
