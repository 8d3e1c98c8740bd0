"""``label``: connected components numbered exactly as ``scipy.ndimage.label``
numbers them, block by block.

scipy numbers objects in the order their first voxel comes in C order. Here each
block is labelled on its own (:func:`label_partial`: its labels, the C-order
position of each label's first voxel, and the labels on its faces); the client
joins labels that touch across block faces (the structure's offsets between the
two layers of voxels on either side of each boundary between blocks), and numbers
each object by the smallest first position of its parts (:func:`label_reduce`);
then each block is labelled again and its labels looked up (:func:`label_finish`).
What the client holds grows with the objects and the block faces, not with the
volume.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from batchproc.ops import _checks as c
from batchproc.ops._registry import Operation, Param, Pass, register

Box = tuple[tuple[int, int], ...]


def structure_of(params: Mapping[str, Any], ndim: int) -> np.ndarray:
    """The structure in force: the one given, or scipy's default (the faces only)."""
    from scipy import ndimage as ndi

    given = params.get("structure")
    return np.asarray(given, bool) if given is not None else ndi.generate_binary_structure(ndim, 1)


def _local(block: np.ndarray, structure: np.ndarray) -> tuple[np.ndarray, int]:
    from scipy import ndimage as ndi

    # A block's own labels fit in int32 below 2**31 voxels: half the memory of int64.
    labels, count = ndi.label(block, structure, output=np.int32 if block.size < LABELS_64 else np.int64)
    return labels, int(count)


def _first_voxels(labels: np.ndarray, count: int) -> np.ndarray:
    """The C-order index of each label's first voxel in ``labels``. scipy numbers
    labels in the order their first voxels come, so a label's first voxel is where
    the running maximum of the labels rises (one pass, no sort)."""
    flat = labels.ravel()
    rising = np.maximum.accumulate(flat)
    firsts = np.flatnonzero(rising[1:] != rising[:-1]) + 1
    if flat.size and flat[0] != 0:
        firsts = np.concatenate(([0], firsts))
    if firsts.size != count:  # not scipy's order after all: find them by sorting
        values, first = np.unique(flat, return_index=True)
        firsts = first[values > 0]
    return firsts


@dataclass(frozen=True)
class LabelPart:
    """One block's labelling: where the block is, how many labels it has, the
    C-order position (in the whole array) of each label's first voxel, and its
    labels on its first and last layer along each axis."""

    box: Box
    count: int
    firsts: np.ndarray
    faces: tuple[tuple[np.ndarray, np.ndarray], ...]


def label_partial(block: np.ndarray, *, where: Box, shape: Sequence[int], structure: np.ndarray) -> LabelPart:
    """The partial of one block (its exact voxels, at ``where`` in an array of ``shape``)."""
    labels, count = _local(block, structure)
    # Block C order is the array's C order restricted to the block: a label's first
    # voxel in the block is its first in the array.
    coords = np.unravel_index(_first_voxels(labels, count), block.shape)
    firsts = np.ravel_multi_index(tuple(c + lo for c, (lo, _) in zip(coords, where, strict=True)), tuple(shape)).astype(np.int64)
    faces = tuple((np.array(labels.take(0, axis=a)), np.array(labels.take(-1, axis=a))) for a in range(block.ndim))
    return LabelPart(tuple((int(a), int(b)) for a, b in where), count, firsts, faces)


@dataclass(frozen=True)
class LabelMap:
    """What turns each block's own labels into scipy's: the offset of each block's
    labels among all of them (by the block's first voxel), and the final label of
    each (``table[offset + local]``)."""

    offsets: dict[tuple[int, ...], int]
    table: np.ndarray
    count: int


def label_reduce(parts: Sequence[LabelPart], shape: Sequence[int], structure: np.ndarray) -> LabelMap:
    """Join the blocks' labels across their faces and number the objects as scipy
    does (see the module)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    parts = sorted(parts, key=lambda p: tuple(lo for lo, _ in p.box))
    offsets, total = {}, 0
    for part in parts:
        offsets[tuple(lo for lo, _ in part.box)] = total
        total += part.count
    firsts = np.empty(total + 1, np.int64)
    firsts[0] = -1
    for part in parts:
        start = offsets[tuple(lo for lo, _ in part.box)]
        firsts[start + 1 : start + 1 + part.count] = part.firsts
    ndim = len(shape)
    # The structure's offsets that cross a boundary forwards along each axis (it is
    # symmetric: the backward ones join the same pairs).
    steps = [tuple(int(i) - 1 for i in index) for index in zip(*np.nonzero(structure), strict=True)]
    pairs: list[np.ndarray] = []
    for axis in range(ndim):
        crossing = [s[:axis] + s[axis + 1 :] for s in steps if s[axis] == 1]
        if not crossing:
            continue
        bounds = sorted({p.box[axis][0] for p in parts} - {0})
        plane_shape = tuple(n for a, n in enumerate(shape) if a != axis)
        for bound in bounds:
            lower = np.zeros(plane_shape, np.int64)
            upper = np.zeros(plane_shape, np.int64)
            for part in parts:
                start = offsets[tuple(lo for lo, _ in part.box)]
                where = tuple(slice(lo, hi) for a, (lo, hi) in enumerate(part.box) if a != axis)
                if part.box[axis][1] == bound:
                    face = part.faces[axis][1]
                    lower[where] = np.where(face > 0, face + start, 0)
                elif part.box[axis][0] == bound:
                    face = part.faces[axis][0]
                    upper[where] = np.where(face > 0, face + start, 0)
            for rest in crossing:
                a_cut = tuple(slice(max(0, -r), n - max(0, r)) for r, n in zip(rest, plane_shape, strict=True))
                b_cut = tuple(slice(max(0, r), n - max(0, -r)) for r, n in zip(rest, plane_shape, strict=True))
                a, b = lower[a_cut].ravel(), upper[b_cut].ravel()
                both = (a > 0) & (b > 0)
                if both.any():
                    pairs.append(np.unique(np.stack([a[both], b[both]], axis=1), axis=0))
    edges = np.concatenate(pairs) if pairs else np.empty((0, 2), np.int64)
    graph = coo_matrix((np.ones(len(edges), np.int8), (edges[:, 0], edges[:, 1])), shape=(total + 1, total + 1))
    count, component = connected_components(graph, directed=False)
    # Each object's first voxel: the first of its parts'; objects numbered in that order.
    first = np.full(count, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first, component[1:], firsts[1:])
    order = np.argsort(first, kind="stable")
    rank = np.empty(count, np.int64)
    rank[order] = np.arange(count)
    background = component[0]
    number = rank - (rank > rank[background]) + 1  # the background's own component takes no number
    table = number[component]
    table[0] = 0
    return LabelMap(offsets, table, count - 1)


def label_finish(block: np.ndarray, labels: LabelMap, *, where: Box | None, structure: np.ndarray, output: np.dtype) -> np.ndarray:
    """The block's labels as scipy numbers them (``where``: the block's box; None
    for a trial block that only loads kernels)."""
    local, count = _local(block, structure)
    if where is None:
        return local.astype(output)
    offset = labels.offsets[tuple(lo for lo, _ in where)]
    # The block's slice of the table, its own label 0 the background: one take from
    # a small table, in the output's dtype.
    own = np.empty(count + 1, output)
    own[0] = 0
    own[1:] = labels.table[offset + 1 : offset + count + 1]
    return np.take(own, local)


# ---------------------------------------------------------------- the declaration


#: scipy labels inputs of this many voxels or more in int64 (intp), smaller ones in int32.
LABELS_64 = 2**31 - 2


def _relate_label(params: dict[str, Any], ctx: c.Context) -> None:
    if params.get("output") is None and ctx.size is not None and ctx.size >= LABELS_64:
        params["output"] = np.dtype(np.intp)
    structure = params.get("structure")
    if structure is None or ctx.ndim is None:
        return
    if structure.ndim != ctx.ndim:
        raise ctx.fail(
            "structure",
            f"an array of {ctx.ndim} dimensions, like the input (scipy: 'structure and input must have equal rank')",
            f"{structure.ndim} dimensions",
            RuntimeError,
        )
    if structure.shape != (3,) * ctx.ndim:
        raise ctx.fail("structure", f"of shape {(3,) * ctx.ndim} (scipy: 'structure dimensions must be equal to 3')", f"shape {structure.shape}")
    if not np.array_equal(structure, structure[(slice(None, None, -1),) * ctx.ndim]):
        raise ctx.fail("structure", "symmetric about its centre (scipy: 'Structuring element is not symmetric')", structure.astype(int).tolist())


def _label_passes(dtype: np.dtype, params: Mapping[str, Any], kernels: str = "scipy") -> tuple[Pass, ...]:
    """One pass: each block labelled on its own; the client joins and numbers them."""

    def partial(block: np.ndarray, *, where: Box, shape: Sequence[int]) -> LabelPart:
        return label_partial(block, where=where, shape=shape, structure=structure_of(params, block.ndim))

    def reduce(parts: list[LabelPart], shape: tuple[int, ...]) -> LabelMap:
        return label_reduce(parts, shape, structure_of(params, len(shape)))

    return (Pass(partial, (), "collect", located=True, reduce=reduce),)


def _label_finish(dtype: np.dtype, params: Mapping[str, Any]) -> Any:
    """Each block labelled again, its labels looked up in the joined numbering."""
    output = np.dtype(params.get("output") or np.int32)

    def finish(block: np.ndarray, labels: LabelMap, *, where: Box | None) -> np.ndarray:
        return label_finish(block, labels, where=where, structure=structure_of(params, block.ndim), output=output)

    return finish


def _label_dtype(dtype: np.dtype, params: Mapping[str, Any]) -> np.dtype:
    return np.dtype(params.get("output") or np.int32)


def _structure(name: str, v: Any, ctx: c.Context) -> Any:
    """A structuring element of booleans (or 0/1); its rank and shape are checked
    against the input (:func:`_relate_label`), as scipy does, with scipy's classes."""
    if v is None:
        return None
    arr = np.asarray(v)
    if arr.ndim == 0:
        raise ctx.fail(name, f"an array of {ctx.ndim or 'the input'}'s dimensions (scipy: 'structure and input must have equal rank')", v, RuntimeError)
    return c.array(kind="bool", what="a structuring element (3 in every dimension, symmetric)")(name, v, ctx)


def _integer_dtype(name: str, v: Any, ctx: c.Context) -> Any:
    dt = c.dtype_()(name, v, ctx)
    if dt is not None and dt.kind not in "iu":
        raise ctx.fail(name, "an integer dtype (int32 by default, as scipy)", v)
    return dt


register(
    Operation(
        name="label",
        summary_text="Connected components of the non-zero voxels, numbered as scipy.ndimage.label numbers them (first voxel in C order).",
        doc_text=__doc__ or "",
        params=(
            Param(
                "structure",
                c.described(_structure, c.schema_of(c.array(kind="bool", what="a structuring element (3 in every dimension, symmetric)"))),
                None,
                "which neighbours connect (default: those sharing a face)",
            ),
            Param(
                "output",
                c.described(_integer_dtype, {"anyOf": [{"enum": ["int32", "int64", "uint16", "uint32", "uint64"]}, {"type": "null"}]}),
                None,
                "dtype of the labels (default int32)",
            ),
        ),
        kind="global",
        passes=_label_passes,
        finish=_label_finish,
        relate=_relate_label,
        dtype=_label_dtype,
        scipy=True,
        located=True,
        also=(lambda labels: labels.count, np.int64),
    )
)
