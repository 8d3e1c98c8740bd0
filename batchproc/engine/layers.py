"""Computing many blocks of one array with input reads held back, so that memory
stays bounded whatever the volume's depth.

Given the whole graph at once, dask's local schedulers start every task that is
ready, and reading an input block is always ready: on large volumes the threaded
scheduler read 80-120 input blocks ahead of the blocks that needed them, and the
peak grew by ±0.4 GB from run to run. Here reads are held back behind the
writes: the output blocks are grouped in *layers* (one index along the axis with
most blocks), and a read first needed by layer ``m`` starts once every block of
layer ``m - 1`` is written. About two layers of input are alive at any time,
whatever the volume's depth, and nothing is read twice. Large volumes run in slabs
of whole layers (:data:`SLAB_BLOCKS`) so the graph stays small too, and a global
reduction every layer needs (equalize's histogram) is computed first, on its own.

Only the local schedulers (``threads``, ``synchronous``) run this way; a
distributed cluster manages its workers' memory itself.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

import dask.array as da
import numpy as np
from dask._task_spec import DataNode, GraphNode, Task, TaskRef, convert_legacy_graph
from dask.base import collections_to_expr

from batchproc.plan import layer_axis

Key = Hashable


def gated_graph(
    array: da.Array, blocks: Sequence[tuple[int, ...]], axis: int | None = None, known: Mapping[Key, Any] | None = None
) -> tuple[dict[Key, GraphNode], list[Key]]:
    """The optimized graph of ``blocks`` of ``array``, and the blocks' keys. Every
    input read waits until the layer (along ``axis``, default :func:`layer_axis`)
    before the first layer that needs it is written. ``known``: results already
    computed, by key, which the graph uses instead of computing them."""
    graph, grid = _optimized(array)
    for key, value in (known or {}).items():
        if key in graph:
            graph[key] = DataNode(key, value)
    axis = layer_axis(array.numblocks) if axis is None else axis
    wanted = {tuple(index) for index in blocks}
    targets = [grid[index] for index in sorted(wanted)]
    by_layer: dict[int, list[Key]] = {}
    for index in sorted(wanted):
        by_layer.setdefault(index[axis], []).append(grid[index])
    order = sorted(by_layer)
    first: dict[Key, int] = {}  # read -> the first layer (its rank in ``order``) that needs it
    for rank, layer in enumerate(order):
        for key in by_layer[layer]:
            for read in _reads(key, graph):
                first.setdefault(read, rank)
    # Waiting for the layer just before (not two layers before) keeps about two
    # layers of input alive; waiting only for the one write behind each read lets
    # the fronts of the columns drift apart by several layers (docs/concepts/memory.md, "Measured choices").
    tokens: dict[int, Key] = {}
    for read, rank in first.items():
        if rank == 0:
            continue
        if rank not in tokens:
            tokens[rank] = ("batchproc-layer-written", order[rank - 1])
            graph[tokens[rank]] = Task(tokens[rank], _done, *(TaskRef(k) for k in by_layer[order[rank - 1]]))
        graph[read] = Task(read, _after, TaskRef(tokens[rank]), graph[read])
    return graph, targets


#: At most this many blocks are computed from one graph. The task graph and the
#: scheduler's bookkeeping grow with the number of blocks, so a large volume runs
#: in slabs of whole layers; the input layers on either side of a slab are read by
#: both slabs (docs/concepts/memory.md, "Measured choices").
SLAB_BLOCKS = 256


def compute_gated(
    array: da.Array,
    blocks: Sequence[tuple[int, ...]],
    schedule: Callable[..., Any],
    *,
    callbacks: Sequence[tuple[Any, ...]] | None = None,
    on_block: Callable[[], None] | None = None,
) -> None:
    """Compute ``blocks`` of ``array`` for their side effects (block writes) with
    the local scheduler ``schedule`` (``dask.threaded.get``, ``dask.local.get_sync``):
    slab by slab of at most :data:`SLAB_BLOCKS` blocks, reads held back as
    :func:`gated_graph` describes.

    ``callbacks`` (dask callback tuples) replace the active dask callbacks when
    given; ``on_block`` is called as each block is done."""
    if not blocks:
        return
    axis = layer_axis(array.numblocks)
    ranges = slabs(array.numblocks, axis, SLAB_BLOCKS)
    known = _shared_results(array, axis, schedule, callbacks)
    for lo, hi in ranges:
        inside = [tuple(b) for b in blocks if lo <= b[axis] < hi]
        if not inside:
            continue
        shifted = [(*b[:axis], b[axis] - lo, *b[axis + 1 :]) for b in inside]
        graph, targets = gated_graph(_layers(array, axis, lo, hi), shifted, axis, known)
        chosen = list(callbacks) if callbacks is not None else None
        if on_block is not None:
            chosen = [*(chosen if chosen is not None else _active()), _counter(set(targets), on_block)]
        schedule(graph, targets, callbacks=chosen)


def slabs(numblocks: Sequence[int], axis: int, budget: int) -> list[tuple[int, int]]:
    """Ranges of layers along ``axis`` of about equal size, each of at most
    ``budget`` blocks (at least one layer)."""
    layers = numblocks[axis]
    per_layer = int(np.prod(numblocks)) // max(layers, 1)
    per_slab = max(1, budget // max(per_layer, 1))
    count = -(-layers // per_slab)
    bounds = np.linspace(0, layers, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def _layers(array: da.Array, axis: int, lo: int, hi: int) -> da.Array:
    """The blocks of ``array`` in layers ``lo`` to ``hi`` along ``axis``."""
    if (lo, hi) == (0, array.numblocks[axis]):
        return array
    return array.blocks[(slice(None),) * axis + (slice(lo, hi),)]


def _optimized(array: da.Array) -> tuple[dict[Key, GraphNode], np.ndarray]:
    """``array``'s optimized task graph, and its blocks' keys by block index."""
    expr = collections_to_expr([array], True).optimize()
    graph: dict[Key, GraphNode] = dict(convert_legacy_graph(dict(expr.__dask_graph__())))
    return graph, _key_grid(expr.__dask_keys__()[0], array.ndim)


def _shared_results(array: da.Array, axis: int, schedule: Callable[..., Any], callbacks: Sequence[tuple[Any, ...]] | None) -> dict[Key, Any]:
    """The results both the first and the last layer need (a global reduction,
    such as equalize's histogram), computed once before the slabs. Otherwise every
    slab would compute it again, reading the whole input each time, and within a
    slab every input block would stay alive from the reduction until its own
    output block is written. A local pipeline's first and last layers share
    nothing once there are three layers."""
    count = array.numblocks[axis]
    if count < 3:
        return {}
    head, _ = _optimized(_layers(array, axis, 0, 1))
    tail, _ = _optimized(_layers(array, axis, count - 1, count))
    shared = head.keys() & tail.keys()
    # Needed outside the shared part by both layers: the reduction's result, not
    # the first layer's own input blocks (which the reduction also reads).
    needed = set.intersection(
        *({dep for key, node in graph.items() if key not in shared for dep in node.dependencies if dep in shared} for graph in (head, tail))
    )
    needed = {key for key in needed if not isinstance(head[key], DataNode)}  # data already (the zarr array)
    if not needed:
        return {}
    # In levels: results that need none of the others first (equalize's data range
    # before its histogram). Computed together, every input block would wait for
    # the range of all blocks before it could be counted and freed.
    known: dict[Key, Any] = {}
    while needed:
        level = sorted((k for k in needed if not (_closure([k], head) - {k}) & needed), key=str)
        values = schedule({k: head[k] for k in _closure(level, head)}, level, callbacks=None if callbacks is None else list(callbacks))
        for key, value in zip(level, values, strict=True):
            known[key] = value
            head[key] = DataNode(key, value)
        needed -= set(level)
    return known


def _closure(keys: Iterable[Key], graph: Mapping[Key, GraphNode]) -> set[Key]:
    """``keys`` and every task they depend on in ``graph``."""
    seen: set[Key] = set()
    stack = list(keys)
    while stack:
        key = stack.pop()
        if key not in seen:
            seen.add(key)
            stack.extend(graph[key].dependencies)
    return seen


def _active() -> list[tuple[Any, ...]]:
    from dask.callbacks import Callback

    return list(Callback.active)


def _counter(keys: set[Key], on_block: Callable[[], None]) -> tuple[Any, ...]:
    """A dask callback tuple calling ``on_block`` as each of ``keys`` finishes."""

    def posttask(key: Key, *_: Any) -> None:
        if key in keys:
            on_block()

    return (None, None, None, posttask, None)


def _done(*_: Any) -> None:
    return None


def _after(_: Any, value: Any) -> Any:
    return value


def _key_grid(keys: Any, ndim: int) -> np.ndarray:
    """A collection's nested key lists as an object array of keys."""
    shape = []
    probe = keys
    for _ in range(ndim):
        shape.append(len(probe))
        probe = probe[0]
    grid = np.empty(shape, dtype=object)
    for index in np.ndindex(*shape):
        entry = keys
        for i in index:
            entry = entry[i]
        grid[index] = entry
    return grid


def _reads(key: Key, graph: Mapping[Key, GraphNode]) -> Iterable[Key]:
    """The roots ``key`` depends on: tasks that depend on data only (block reads)."""
    for task in _closure([key], graph):
        node = graph[task]
        if not isinstance(node, DataNode) and all(isinstance(graph[dep], DataNode) for dep in node.dependencies):
            yield task
