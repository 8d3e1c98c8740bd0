"""The one place that calls ``dask.array.map_overlap``: the lazy dask form of local
operations (``batchproc.ndimage``, ``Pipeline.apply``). A run (``batchproc run``,
``Pipeline.run``) reads its blocks' halos itself (:mod:`batchproc.engine.runner`);
both take each block through :func:`batchproc.blocks.run_links`.

Every local operation, alone (``batchproc.ndimage.gaussian_filter``) or fused with its
neighbours in a pipeline stage, runs through :func:`map_stage`. The rules that make
chunk seams invisible in a dask graph:

* Each block is extended by the stage's halo: the sum of its steps' reaches, per axis.
  Inside the array the halo is real neighbouring data, so scipy's result on the
  kept part of the block only ever reads real data.
* At the array's true edges no halo is added (``boundary='none'``): the block edge
  *is* the array edge there, so scipy's own ``mode``/``cval`` (or ``border_value``)
  produces exactly what it produces on the whole array. No emulation of modes.
* Periodic modes (``wrap``/``grid-wrap``) read from the far side of the array, which a
  block does not hold: on those axes the halo is taken periodically
  (``boundary='periodic'``), after which scipy's result is again exact.
* Where the halo reaches across the whole axis (a kernel as large as the array,
  ``iterations < 1`` in morphology), or an operation reads one axis's edges both
  periodically and not (gaussian_gradient_magnitude with a mode list mixing wrap
  and others), the axis is made a single chunk with no halo, so scipy sees the
  whole axis.
* Chunks smaller than the halo are merged by dask before overlapping.
"""

from __future__ import annotations

import operator
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import dask.array as da
import numpy as np
from dask.array.core import concatenate_shaped
from dask.array.overlap import ensure_minimum_chunksize
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer
from dask.layers import ArrayOverlapLayer

from batchproc import dispatch, kernels
from batchproc.blocks import Link, run_links
from batchproc.errors import BatchprocError
from batchproc.ops._registry import Edge, Operation, reaching_edges

Step = tuple[Operation, Mapping[str, Any]]


def stage_halo(steps: Sequence[Step], ndim: int) -> tuple[int, ...]:
    """The per-axis halo of a fused stage: the sum of its steps' reaches."""
    total = [0] * ndim
    for op, params in steps:
        for axis, reach in enumerate(op.halo(params, ndim)):
            total[axis] += reach
    return tuple(total)


def stage_edges(steps: Sequence[Step], ndim: int) -> tuple[Edge, ...] | None:
    """Per axis, how the stage's halo is taken at the array's edges (see
    :meth:`Operation.edges`); ``None`` when two steps read one axis's edges
    differently (one wraps, the other does not), in which case they cannot share
    one ``map_overlap`` and must be separate stages."""
    seen = reaching_edges([(op.halo(params, ndim), op.edges(params, ndim)) for op, params in steps], ndim)
    if any(len(edges) > 1 for edges in seen):
        return None
    return tuple(next(iter(edges)) if edges else "none" for edges in seen)


def _as_aligned(value: Any, x: da.Array, name: str, where: str) -> da.Array:
    arr = value if isinstance(value, da.Array) else da.asarray(np.asarray(value))
    if arr.shape != x.shape:
        raise BatchprocError(f"{where}: parameter '{name}' must be an array of the input's shape {x.shape}; got shape {arr.shape}.")
    return arr.rechunk(x.chunks)


def map_stage(x: da.Array, steps: Sequence[Step]) -> da.Array:
    """Run local/pointwise ``steps`` in order on every block of ``x``, in one
    ``map_overlap``, and return the lazy result.

    Each block goes through all steps in memory; its intermediate results never
    leave the task. The output has the chunks of ``x`` (or coarser ones where the
    halo forced blocks to merge).
    """
    if not steps:
        return x
    ndim = x.ndim
    names = "-".join(op.name for op, _ in steps)
    for op, _ in steps:
        if op.kind == "global" or op.block is None:
            raise RuntimeError(f"{op.name} is not a local operation")
    edges = stage_edges(steps, ndim)
    if edges is None:
        raise RuntimeError(f"steps {names} disagree on periodic axes; split the stage")
    halo = stage_halo(steps, ndim)

    aligned: list[da.Array] = []
    layout: list[tuple[str, ...]] = []
    for op, params in steps:
        present = tuple(n for n in op.aligned if hasattr(params.get(n), "shape"))
        layout.append(present)
        aligned.extend(_as_aligned(params[n], x, n, op.name) for n in present)

    depth: dict[int, int] = {}
    boundary: dict[int, str] = {}
    single = {}
    for axis in range(ndim):
        if halo[axis] >= x.shape[axis] or edges[axis] == "whole":
            # The kernel spans the axis: scipy must see the whole axis at once.
            single[axis] = -1
            depth[axis], boundary[axis] = 0, "none"
        else:
            depth[axis] = halo[axis]
            boundary[axis] = "periodic" if edges[axis] == "periodic" and halo[axis] else "none"
    if single:
        x = x.rechunk(single)
    # Chunks smaller than the halo are merged here (as dask's map_overlap would do
    # itself), so that the block grid below is the one the blocks really have.
    merged = tuple(ensure_minimum_chunksize(depth[axis], c) if depth[axis] else c for axis, c in enumerate(x.chunks))
    if merged != x.chunks:
        x = x.rechunk(merged)
    aligned = [a.rechunk(x.chunks) for a in aligned]

    # Each step's kernels are chosen now, from the dtype that reaches it; which
    # set runs a block is decided as it runs (batchproc.dispatch).
    kernel_set = kernels.for_input(x.size, [op.name for op, _ in steps])
    dtype = np.dtype(x.dtype)
    fixed, described = [], []
    for (op, params), present in zip(steps, layout, strict=True):
        kwargs = {k: v for k, v in params.items() if k not in present}
        fixed.append(Link(op.kernel(dtype, params, "scipy"), kwargs, present, op.halo(params, ndim)))
        described.append((op.name, kwargs, dtype.str, tuple((n, np.dtype(params[n].dtype).str) for n in present)))
        dtype = np.dtype(op.dtype(dtype, params))
    numblocks = tuple(len(c) for c in x.chunks)
    compiled = _Compiled(steps, layout, np.dtype(x.dtype), ndim) if kernel_set == "compiled" and any(op.fast is not None for op, _ in steps) else None
    trial = None
    if compiled is not None and dispatch.compile_mode() == "wait":
        kernels.active()  # numba's set-up, in the background while the graph is built
        fixed = compiled.links()  # compiled where first called
    elif compiled is not None:
        blocks = tuple(min(c) for c in x.chunks)
        trial = dispatch.chain_trial(x.dtype, described, dispatch.layouts(x.shape, [depth[a] for a in range(ndim)], blocks, owns=(True, False)))
        if _runs_here():
            dispatch.prepare(trial)  # while the graph is built

    def run_block(block: np.ndarray, *aligned_blocks: np.ndarray, block_info: Any = None) -> np.ndarray:
        where = block_info[None]["chunk-location"]
        # The halo this block really has on each side: none at a true edge ('none').
        have = [
            (0, 0)
            if not depth[axis]
            else (
                depth[axis] if boundary[axis] == "periodic" or where[axis] > 0 else 0,
                depth[axis] if boundary[axis] == "periodic" or where[axis] < numblocks[axis] - 1 else 0,
            )
            for axis in range(ndim)
        ]
        # The block joined from its halo is this task's own: a step may write over it.
        if trial is None:
            return run_links(block, fixed, have, aligned_blocks, own=_is_joined(block))
        with dispatch.turn(trial) as ready:
            return run_links(block, compiled.links() if ready else fixed, have, aligned_blocks, own=_is_joined(block))

    result = da.map_overlap(
        run_block,
        x,
        *aligned,
        depth=depth,
        boundary=boundary,
        trim=False,
        align_arrays=False,
        chunks=x.chunks,
        dtype=dtype,
        meta=np.empty((0,) * ndim, dtype=dtype),
        token=f"batchproc-{names}",
    )
    return _copied_halos(result)


def _runs_here() -> bool:
    """Will this process's threads run the blocks (dask's local threads or the
    calling thread; not a cluster's workers, nor a process pool)?"""
    import sys

    import dask

    scheduler = dask.config.get("scheduler", None)
    if scheduler is None:
        return "distributed" not in sys.modules
    return isinstance(scheduler, str) and scheduler.lower() in ("threads", "threading", "sync", "synchronous", "single-threaded")


class _Compiled:
    """A stage's compiled links, made in the process that runs its blocks when
    first asked (making them loads numba, which a process that only builds the
    graph need not)."""

    def __init__(self, steps: Sequence[Step], layout: Sequence[tuple[str, ...]], dtype: np.dtype, ndim: int) -> None:
        self.steps, self.layout, self.dtype, self.ndim = list(steps), list(layout), dtype, ndim
        self._links: list[Link] | None = None

    def links(self) -> list[Link]:
        if self._links is None:
            dtype, made = self.dtype, []
            for (op, params), present in zip(self.steps, self.layout, strict=True):
                kwargs = {k: v for k, v in params.items() if k not in present}
                made.append(Link(op.kernel(dtype, params, "compiled"), kwargs, present, op.halo(params, self.ndim)))
                dtype = np.dtype(op.dtype(dtype, params))
            self._links = made
        return self._links

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_links": None}  # each process makes its own


def _copy_slice(block: Any, index: tuple[slice, ...]) -> Any:
    return block[index].copy()


#: Blocks joined from their halo by :func:`_joined`, by id, while they are alive.
_JOINED: weakref.WeakValueDictionary[int, np.ndarray] = weakref.WeakValueDictionary()


def _joined(pieces: Any, shape: Any) -> Any:
    """dask's join of a block and its halo, marked when it is a new numpy array:
    its one reader (the stage's task) may then write over it."""
    block = concatenate_shaped(pieces, shape)
    # For numpy blocks dask fills a new array; other types may come back as a piece.
    if type(block) is np.ndarray and not any(block is piece for piece in _flat(pieces)):
        _JOINED[id(block)] = block
    return block


def _is_joined(block: Any) -> bool:
    # A module function, so that a pickled task refers to it by name (the
    # processes scheduler) rather than carrying the registry along.
    return _JOINED.get(id(block)) is block


def _flat(pieces: Any) -> list[Any]:
    return [p for item in pieces for p in _flat(item)] if isinstance(pieces, list) else [pieces]


def _copied_halos(result: da.Array) -> da.Array:
    """``result`` with dask's overlap slices copied instead of kept as views, and
    each joined block marked as the stage's own (:func:`_joined`).

    dask cuts each neighbour's halo with ``block[slices]``, a view: the whole
    neighbouring input block stays alive until the last block that reads its halo
    has run. Copied, an input block is freed once its own block and its slices are
    done (float32 bench: 24 of 32 input blocks alive at the peak with views)."""
    layers = dict(result.dask.layers)
    changed = False
    for name, layer in layers.items():
        if isinstance(layer, ArrayOverlapLayer):
            layers[name] = MaterializedLayer({k: _rewritten(v) for k, v in layer.items()})
            changed = True
    if not changed:
        return result
    return da.Array(HighLevelGraph(layers, result.dask.dependencies), result.name, result.chunks, meta=result._meta)


def _rewritten(task: Any) -> Any:
    if type(task) is tuple and task and task[0] is operator.getitem:
        return (_copy_slice, *task[1:])
    if type(task) is tuple and task and task[0] is concatenate_shaped:
        return (_joined, *task[1:])
    return task
