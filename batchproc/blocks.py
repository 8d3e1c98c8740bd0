"""One block through a run of steps: the per-block half of every computation.

A block arrives with part of its halo (``have``: per axis, the voxels present on
either side of the part to compute); each step's result is exact as far in as the
steps after it still need, so the block is cut to that before the next step. The
same function serves the engine (blocks read with their halo straight from the
input) and :func:`batchproc.overlap.map_stage` (blocks joined with their halo by
dask), so the two agree by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Halo = list[tuple[int, int]]


@dataclass(frozen=True)
class Link:
    """One step ready to run on blocks: its kernel, the parameters it is called
    with, the names of the aligned arrays it takes (Python API only) and its reach
    per axis. For :func:`fused`: ``then``, how the step takes in the pointwise
    step after it (:meth:`batchproc.ops.Operation.then`), and ``pointwise``, the
    name of a pointwise step."""

    kernel: Callable[..., np.ndarray]
    params: Mapping[str, Any]
    present: tuple[str, ...]
    reach: tuple[int, ...]
    then: Callable[[str, Mapping[str, Any]], Callable[..., np.ndarray] | None] | None = None
    pointwise: str | None = None


def fused(chain: Sequence[Link]) -> list[Link]:
    """``chain`` with each step that can take in the pointwise step after it made
    one link with it (one kernel: the sobel magnitude's mask, say, without the
    magnitude's array). Every list of links that blocks run goes through here:
    the engine's, and the trial's that loads their kernels."""
    out: list[Link] = []
    k = 0
    while k < len(chain):
        link, after = chain[k], chain[k + 1] if k + 1 < len(chain) else None
        if link.then is not None and after is not None and after.pointwise is not None and not link.present and not after.present:
            kernel = link.then(after.pointwise, after.params)
            if kernel is not None:
                out.append(Link(kernel, link.params, (), tuple(a + b for a, b in zip(link.reach, after.reach, strict=True))))
                k += 2
                continue
        out.append(link)
        k += 1
    return out


def still_needed(links: Sequence[Link], ndim: int) -> list[tuple[int, ...]]:
    """Per step, the halo the steps after it still need around the block."""
    return [tuple(sum(link.reach[axis] for link in links[k + 1 :]) for axis in range(ndim)) for k in range(len(links))]


def run_links(
    block: np.ndarray,
    links: Sequence[Link],
    have: Halo,
    aligned_blocks: Sequence[np.ndarray] = (),
    own: bool = False,
    origin: Sequence[int] | None = None,
) -> np.ndarray:
    """``block`` (with ``have`` halo on each side of each axis) through ``links``,
    cut at each step to what the steps after it need; the result holds no halo
    beyond what ``have`` exceeded the links' total reach by (none when ``have``
    is the reach or less, or at the array's edges).

    ``own``: the block belongs to this call (no one else holds it), so a step that
    can (``overwrites``) writes its result over it instead of new memory.
    ``origin``: where the block as given starts in the array; a step that asks
    (``located``) gets its part's box as ``where`` (None without an origin)."""
    ndim = block.ndim
    needed = still_needed(links, ndim)
    region = tuple(slice(None) for _ in range(ndim))  # of the block as given, what ``block`` is now
    position = 0
    foreign = [*([] if own else [block]), *aligned_blocks]
    for link, after in zip(links, needed, strict=True):
        extra = [a[region] for a in aligned_blocks[position : position + len(link.present)]]
        position += len(link.present)
        # Local kernels keep the block's shape: the cut is known before the step,
        # and a kernel that can (``crops``) computes only that part.
        cut = tuple(
            slice(left - min(left, n), block.shape[axis] - (right - min(right, n))) for axis, ((left, right), n) in enumerate(zip(have, after, strict=True))
        )
        mine: dict[str, Any] = {"overwrite_input": True} if own and getattr(link.kernel, "overwrites", False) else {}
        if getattr(link.kernel, "located", False):
            mine["where"] = (
                None if origin is None else tuple((o + (r.start or 0), o + (r.start or 0) + n) for o, r, n in zip(origin, region, block.shape, strict=True))
            )
        if getattr(link.kernel, "crops", False):
            block = link.kernel(block, *extra, keep=cut, **mine, **link.params)
        else:
            block = link.kernel(block, *extra, **mine, **link.params)[cut]
        own = not any(np.may_share_memory(block, other) for other in foreign)
        region = tuple(_compose(r, c) for r, c in zip(region, cut, strict=True))
        have = [(min(left, n), min(right, n)) for (left, right), n in zip(have, after, strict=True)]
    return block


def _compose(outer: slice, inner: slice) -> slice:
    """``outer`` then ``inner`` as one slice (both with step 1, non-negative bounds)."""
    start = (outer.start or 0) + (inner.start or 0)
    return slice(start, start + (inner.stop - (inner.start or 0)))
