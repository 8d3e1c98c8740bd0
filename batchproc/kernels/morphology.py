"""Binary erosion and dilation on bit-packed masks, equal to scipy.ndimage's.

scipy (NI_BinaryErosion) sets each voxel where the mask is true to the AND
(erosion) or OR (dilation: the erosion of the complement, run with the structure
reflected) of the input at the structure's offsets, a neighbour beyond the array
reading ``border_value``; elsewhere the voxel keeps its input. Repeated passes
(``iterations``) start from the previous pass's result. Here each voxel is one bit:
rows along the last axis are packed 64 voxels to a word, the array is padded with
``border_value`` words as far as the structure reaches, and one offset of the
structure is then a shifted read of the whole padded buffer, 64 voxels per word
operation. The result is scipy's bit for bit: AND and OR do not round, so the order
of the offsets does not matter.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from batchproc.kernels._jit import jit
from batchproc.kernels.params import axes_tuple, expand

#: Words per sweep: a sweep's output, merge words and source rows stay in the
#: first two cache levels while every offset of the structure passes over them.
CHUNK = 2048

_WORD = 64
_ONES = np.uint64(0xFFFF_FFFF_FFFF_FFFF)


@jit
def _pass(src, dst, merge, offsets, shifts, lo, hi, dilate):
    """One pass over the flat words ``lo`` to ``hi`` of ``src`` into ``dst``.

    Word ``f`` of the pass is the AND (erosion) or OR (dilation) over the
    structure's offsets ``e`` of the 64 bits starting ``shifts[e]`` bits into word
    ``f + offsets[e]``; it lands where ``merge`` has bits set (the mask, inside the
    array), and ``dst`` keeps ``src`` elsewhere (the unmasked voxels, the padding).
    Returns whether any word changed.
    """
    identity = np.uint64(0) if dilate else _ONES
    full = np.uint64(_WORD)
    diff = np.uint64(0)
    for c0 in range(lo, hi, CHUNK):
        c1 = min(hi, c0 + CHUNK)
        n = c1 - c0
        out = dst[c0:c1]
        for t in range(n):
            out[t] = identity
        for e in range(offsets.shape[0]):
            start = c0 + offsets[e]
            sh = shifts[e]
            a = src[start : start + n]
            if sh == 0:
                if dilate:
                    for t in range(n):
                        out[t] |= a[t]
                else:
                    for t in range(n):
                        out[t] &= a[t]
                continue
            b = src[start + 1 : start + 1 + n]
            back = full - sh
            if dilate:
                for t in range(n):
                    out[t] |= (a[t] >> sh) | (b[t] << back)
            else:
                for t in range(n):
                    out[t] &= (a[t] >> sh) | (b[t] << back)
        m = merge[c0:c1]
        s = src[c0:c1]
        for t in range(n):
            word = (out[t] & m[t]) | (s[t] & ~m[t])
            diff |= word ^ s[t]
            out[t] = word
    return diff != 0


def _truth(a: np.ndarray) -> np.ndarray:
    """Where ``a`` is non-zero, as scipy's C code tests each value (``v ? 1 : 0``:
    any non-zero byte of a bool, NaN true, -0.0 false); a byte view where one is
    the same test."""
    if a.dtype.itemsize == 1:
        return a.view(np.uint8)
    return a != 0


def _offsets_of(structure: np.ndarray, origin: list[int]) -> np.ndarray:
    """The structure's true elements as offsets from the voxel they compute (scipy's
    NI_InitFilterOffsets: element k of an axis of size s reads k - s // 2 - origin)."""
    where = np.argwhere(structure)
    centre = np.array([s // 2 + o for s, o in zip(structure.shape, origin, strict=True)], np.int64)
    return (where - centre).astype(np.int64).reshape(-1, structure.ndim)


class _Packed:
    """A mask's geometry as packed words: each axis but the last padded by the
    structure's reach (``offsets``: every offset any step uses), each row of the
    last axis packed into words with whole padding words on both sides."""

    def __init__(self, shape: tuple[int, ...], offsets: np.ndarray) -> None:
        self.shape = shape
        lead, nx = shape[:-1], shape[-1]
        reach_lo = np.maximum(0, -offsets.min(axis=0, initial=0))
        reach_hi = np.maximum(0, offsets.max(axis=0, initial=0))
        self.lo = tuple(int(v) for v in reach_lo[:-1])
        self.words = -(-nx // _WORD)
        self.left = -(-int(reach_lo[-1]) // _WORD)
        width = self.left + self.words + int(reach_hi[-1]) // _WORD + 1
        self.padded = (*(n + int(a) + int(b) for n, a, b in zip(lead, reach_lo[:-1], reach_hi[:-1], strict=True)), width)
        self.nbytes = -(-nx // 8)
        self.strides = np.cumprod((1, *self.padded[::-1]))[::-1][1:].astype(np.int64)  # in words
        first = sum(a * int(s) for a, s in zip(self.lo, self.strides, strict=False)) + self.left
        last = sum((a + n - 1) * int(s) for a, n, s in zip(self.lo, lead, self.strides, strict=False)) + self.left + self.words - 1
        self.range = (int(first), int(last) + 1)
        tail = nx % _WORD
        self.tail = np.uint64((1 << tail) - 1) if tail else _ONES

    def taps(self, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each offset as a word offset in the flat buffer and a shift in bits."""
        flat = offsets[:, :-1] @ self.strides[:-1] + offsets[:, -1] // _WORD
        return flat.astype(np.int64), (offsets[:, -1] % _WORD).astype(np.uint64)

    def interior(self, words: np.ndarray) -> np.ndarray:
        """The words of the array itself (no padding), an N-D view of ``words``."""
        inner = tuple(slice(a, a + n) for a, n in zip(self.lo, self.shape[:-1], strict=True))
        return words[(*inner, slice(self.left, self.left + self.words))]

    def pack(self, truth: np.ndarray, fill: np.uint64) -> np.ndarray:
        """``truth`` packed into a padded buffer of ``fill`` words; the bits past
        the last voxel of each row are ``fill``'s too."""
        words = np.full(self.padded, fill, np.uint64)
        inside = self.interior(words)
        inside.view(np.uint8)[..., : self.nbytes] = np.packbits(truth, axis=-1, bitorder="little")
        last = inside[..., -1]
        last[...] = (last & self.tail) | (fill & ~self.tail)
        return words

    def unpack(self, words: np.ndarray) -> np.ndarray:
        inside = self.interior(words).view(np.uint8)[..., : self.nbytes]
        return np.unpackbits(inside, axis=-1, count=self.shape[-1], bitorder="little").view(bool)


def _passes(
    words: np.ndarray, spare: np.ndarray, merge: np.ndarray, taps: tuple[np.ndarray, np.ndarray], span: tuple[int, int], dilate: bool, iterations: int
) -> tuple[np.ndarray, np.ndarray]:
    """``iterations`` passes (< 1: until one changes nothing), ping-ponging between
    ``words`` and ``spare``; the buffer holding the result, and the other."""
    count = 0
    while True:
        changed = _pass(words.reshape(-1), spare.reshape(-1), merge.reshape(-1), taps[0], taps[1], span[0], span[1], dilate)
        words, spare = spare, words
        count += 1
        if (iterations >= 1 and count >= iterations) or (iterations < 1 and not changed):
            return words, spare


def scipy_geometry(ndim: int, structure: Any, origin: Any, axes: Any, dilate: bool) -> tuple[np.ndarray, list[int]]:
    """The structure and origins over all ``ndim`` axes as scipy's ``_binary_erosion``
    uses them, for an erosion or (``dilate``) a dilation: the default structure
    (connectivity 1 over ``axes``), a dilation's structure reflected and its origins
    mirrored (one further along even sizes), both placed on the sorted ``axes``."""
    active = axes_tuple(axes, ndim)
    n = len(active)
    s = np.asarray(structure, dtype=bool) if structure is not None else _cross(n)
    origins = [int(o) for o in expand(origin, n)]
    if dilate:
        s = s[(slice(None, None, -1),) * s.ndim]
        origins = [-o - (0 if size & 1 else 1) for o, size in zip(origins, s.shape, strict=True)]
    full_shape, full_origin = [1] * ndim, [0] * ndim
    for axis, size, o in zip(sorted(active), s.shape, origins, strict=True):
        full_shape[axis], full_origin[axis] = size, o
    return np.ascontiguousarray(s).reshape(full_shape), full_origin


def _cross(n: int) -> np.ndarray:
    """scipy's generate_binary_structure(n, 1)."""
    grid = np.indices((3,) * n) - 1
    return np.abs(grid).sum(axis=0) <= 1


def binary_morphology(
    x: np.ndarray,
    steps: tuple[bool, ...],
    structure: Any,
    iterations: int,
    mask: np.ndarray | None,
    border_value: int,
    origin: Any,
    axes: Any,
) -> np.ndarray:
    """scipy's binary erosion/dilation of ``x``, one step per entry of ``steps``
    (True: dilation), each repeated ``iterations`` times (< 1: until nothing
    changes; the structure's centre must then be true), with scipy's ``mask``,
    ``border_value``, ``origin`` and ``axes``; a bool array.

    Parameters
    ----------
    x : ndarray
        The input; its non-zero voxels are the set.
    steps : tuple of bool
        ``(False,)`` erosion, ``(True,)`` dilation, ``(False, True)`` opening,
        ``(True, False)`` closing.
    structure, iterations, mask, border_value, origin, axes
        As scipy.ndimage.binary_erosion takes them (``axes`` sorted).

    Returns
    -------
    ndarray of bool
        Equal to scipy's result.
    """
    shapes = [scipy_geometry(x.ndim, structure, origin, axes, dilate) for dilate in steps]
    offsets = [_offsets_of(s, o) for s, o in shapes]
    geometry = _Packed(x.shape, np.concatenate(offsets))
    fill = _ONES if border_value else np.uint64(0)
    words = geometry.pack(_truth(np.ascontiguousarray(x)), fill)
    spare = words.copy()
    merge = np.zeros(geometry.padded, np.uint64)
    inside = geometry.interior(merge)
    if mask is None:
        inside[...] = _ONES
        inside[..., -1] = geometry.tail
    else:
        inside.view(np.uint8)[..., : geometry.nbytes] = np.packbits(_truth(np.ascontiguousarray(mask)), axis=-1, bitorder="little")
    for dilate, step_offsets in zip(steps, offsets, strict=True):
        words, spare = _passes(words, spare, merge, geometry.taps(step_offsets), geometry.range, dilate, iterations)
    return geometry.unpack(words)
