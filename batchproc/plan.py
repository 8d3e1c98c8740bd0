"""A plan: a pipeline bound once to its input, and everything a run needs to know
before it reads a voxel.

:func:`bind` validates each step against the input's ndim and dtype (the only
validation that needs the input; the rest happened when the pipeline was built).
:func:`make_plan` then fixes the run: each step's reach and how it reads beyond
the array's edges, the passes that global steps need, the output's dtype and
chunks, the compute blocks, and the memory one block takes. The engine, the
writer and ``--dry-run`` read the plan; nothing validates again.

Compute blocks are not output chunks: a block is a whole number of output chunks,
grown towards :data:`~batchproc.io.readers.TARGET_BLOCK_BYTES` (dask config
``batchproc.block-bytes``, or ``DASK_BATCHPROC__BLOCK_BYTES``) at the widest dtype
it passes through, and writes each of its chunks. So ``--chunks 16,64,64`` makes
small files, not small tasks.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batchproc.errors import BatchprocError
from batchproc.io.readers import TARGET_BLOCK_BYTES, auto_chunks
from batchproc.ops import REGISTRY, Context, Operation
from batchproc.ops._registry import Edge, reaching_edges

#: The most input a process keeps for halos: beyond it, a chunk some blocks share
#: is read again (slower, never more memory).
CACHE_LIMIT = 512 * 2**20


@dataclass(frozen=True)
class BoundStep:
    """One step validated against the input it will receive."""

    name: str
    params: Mapping[str, Any]
    dtype: np.dtype  # what reaches the step
    out: np.dtype  # what it gives
    reach: tuple[int, ...]
    edges: tuple[Edge, ...]

    @property
    def op(self) -> Operation:
        return REGISTRY[self.name]

    @property
    def is_global(self) -> bool:
        return self.op.kind == "global"


def bind(steps: Sequence[Any], ndim: int, dtype: np.dtype, size: int | None = None, kernels: str | None = None) -> tuple[BoundStep, ...]:
    """Each step (a pipeline's ``Step``: ``op``, ``given``, ``number``) validated
    against the ``ndim``-dimensional ``dtype`` input of ``size`` voxels it will
    receive, in order, for a run on the kernel set ``kernels`` (where known)."""
    bound = []
    dtype = np.dtype(dtype)
    for step in steps:
        op: Operation = step.op
        params = op.validate(step.given, Context(op.name, ndim, dtype, step=step.number, size=size, kernels=kernels))
        out = np.dtype(op.dtype(dtype, params))
        reach = tuple(op.halo(params, ndim)) if op.kind != "global" else (0,) * ndim
        bound.append(BoundStep(op.name, params, dtype, out, reach, tuple(op.edges(params, ndim))))
        dtype = out
    return tuple(bound)


def combined_edges(steps: Sequence[BoundStep], shape: tuple[int, ...]) -> tuple[Edge, ...]:
    """Per axis, how a block of the whole run reads beyond the array's edges:
    ``none`` (each step's own mode at the array's edge), ``periodic`` (every step
    that reaches along the axis wraps), or ``whole`` (the axis is one block, with no
    halo: a step asks for it, steps disagree on wrapping, or the reach spans the axis)."""
    edges: list[Edge] = []
    for axis, (n, seen) in enumerate(zip(shape, reaching_edges([(s.reach, s.edges) for s in steps], len(shape)), strict=True)):
        reach = sum(step.reach[axis] for step in steps)
        if "whole" in seen or len(seen) > 1 or (reach and reach >= n):
            edges.append("whole")
        else:
            edges.append(seen.pop() if seen else "none")
    return tuple(edges)


@dataclass(frozen=True)
class Source:
    """What a plan reads: an array-like that reads any box of voxels (a reader's;
    it pickles), with what is known of it."""

    reader: Any
    shape: tuple[int, ...]
    dtype: np.dtype  # as read, native byte order
    native: tuple[int, ...] | None  # the reader's own chunks
    name: str
    axes: str
    spacing: tuple[float, ...]
    format: str = "?"
    token: str = ""
    units: tuple[str | None, ...] | None = None

    @classmethod
    def of(cls, image: Any) -> Source:
        """The source of an opened :class:`~batchproc.io.Image`."""
        if image.reader is None:
            raise BatchprocError(f"input: {image.source!r} has no reader to plan a run on; write its dask array with batchproc.write.")
        native = tuple(int(c) for c in image.native) if image.native else None
        # Unique to this opening: the chunk cache must never serve a file read
        # before it changed (an input rewritten in place between two runs).
        token = _token([image.source, image.shape, uuid.uuid4().hex])
        return cls(
            image.reader,
            tuple(image.shape),
            np.dtype(image.dtype).newbyteorder("="),
            native,
            image.source,
            image.axes,
            tuple(image.spacing),
            str(image.meta.get("format", "?")),
            token,
            tuple(image.units),
        )


@dataclass(frozen=True)
class Plan:
    """A pipeline bound to its input: the whole run, fixed before it starts.

    ``chunks`` are the output's chunks; ``shards``, when it is sharded, the shards
    that hold them, one file each; ``blocks`` the compute blocks, each a whole
    number of files (:attr:`file_shape`). ``edges`` says per axis how a block's halo (the
    steps' total reach, :meth:`reach`) is taken at the array's edges (see
    :func:`combined_edges`)."""

    source: Source
    steps: tuple[BoundStep, ...]
    chunks: tuple[int, ...]
    blocks: tuple[int, ...]
    edges: tuple[Edge, ...]
    kernels: str
    token: str = field(default="", compare=False)
    shards: tuple[int, ...] | None = None

    # ------------------------------------------------------------ shapes

    @property
    def shape(self) -> tuple[int, ...]:
        return self.source.shape

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.steps[-1].out if self.steps else self.source.dtype

    @property
    def grid(self) -> tuple[int, ...]:
        """Blocks per axis."""
        return tuple(-(-n // b) for n, b in zip(self.shape, self.blocks, strict=True))

    @property
    def chunk_grid(self) -> tuple[int, ...]:
        """Output chunks per axis."""
        return tuple(-(-n // c) for n, c in zip(self.shape, self.chunks, strict=True))

    @property
    def file_shape(self) -> tuple[int, ...]:
        """The shape of one output file: a shard, or a chunk when not sharded."""
        return self.shards or self.chunks

    @property
    def file_grid(self) -> tuple[int, ...]:
        """Output files per axis."""
        return tuple(-(-n // u) for n, u in zip(self.shape, self.file_shape, strict=True))

    @property
    def file_count(self) -> int:
        return math.prod(self.file_grid)

    @property
    def block_count(self) -> int:
        return math.prod(self.grid)

    @property
    def chunk_count(self) -> int:
        return math.prod(self.chunk_grid)

    @property
    def itemsize(self) -> int:
        """The widest item a block holds on its way through the steps."""
        return max([self.source.dtype.itemsize, *(s.out.itemsize for s in self.steps)])

    def ordered_blocks(self) -> list[tuple[int, ...]]:
        """Every block, in the order they go out: C order with the axis of most
        blocks outermost (:func:`layer_axis`), so that the blocks around a halo
        chunk run close together."""
        grid = self.grid
        axis = layer_axis(grid)
        order = [axis, *(a for a in range(len(grid)) if a != axis)]
        inverse = np.argsort(order)
        return [tuple(int(i) for i in np.asarray(index)[inverse]) for index in np.ndindex(*(grid[a] for a in order))]

    def box(self, index: Sequence[int]) -> tuple[tuple[int, int], ...]:
        """The block's voxels, per axis ``(start, stop)``."""
        return tuple((i * b, min(n, (i + 1) * b)) for i, b, n in zip(index, self.blocks, self.shape, strict=True))

    def files_of(self, index: Sequence[int]) -> Iterator[tuple[int, ...]]:
        """The output files (chunks, or shards) inside block ``index``."""
        ranges = [range(start // u, -(-stop // u)) for (start, stop), u in zip(self.box(index), self.file_shape, strict=True)]
        return itertools.product(*ranges)

    # ------------------------------------------------------------ halos and passes

    def reach(self, upto: int | None = None) -> tuple[int, ...]:
        """The total reach of the first ``upto`` steps (default all), per axis;
        none along ``whole`` axes, where a block holds the whole axis."""
        steps = self.steps if upto is None else self.steps[:upto]
        return tuple(0 if edge == "whole" else sum(s.reach[axis] for s in steps) for axis, edge in enumerate(self.edges))

    def region(self, index: Sequence[int], upto: int | None = None) -> tuple[tuple[int, ...], tuple[int, ...], list[tuple[int, int]]]:
        """What block ``index`` reads to run the first ``upto`` steps: per axis the
        first and last+1 voxel (beyond the array along periodic axes, where the far
        side is read), and the halo that gives on either side of the block."""
        lo, hi, have = [], [], []
        for (start, stop), reach, edge, n in zip(self.box(index), self.reach(upto), self.edges, self.shape, strict=True):
            if edge == "periodic":
                a, b = start - reach, stop + reach
            else:
                a, b = max(0, start - reach), min(n, stop + reach)
            lo.append(a)
            hi.append(b)
            have.append((start - a, b - stop))
        return tuple(lo), tuple(hi), have

    def chunk_readers(self, index: Sequence[int], reach: Sequence[int]) -> int:
        """How many blocks read the input's own chunk ``index`` when each reads
        ``reach`` around it: per axis, the blocks whose region meets the chunk."""
        assert self.source.native is not None
        count = 1
        for i, c, b, r, n, edge in zip(index, self.source.native, self.blocks, reach, self.shape, self.edges, strict=True):
            first, last = (i * c - r) // b, (min(n, (i + 1) * c) - 1 + r) // b
            blocks = -(-n // b)
            count *= min(blocks, last - first + 1) if edge == "periodic" else min(blocks - 1, last) - max(0, first) + 1
        return count

    def chunk_faces(self, index: Sequence[int], reach: Sequence[int]) -> list[list[tuple[int, int]]] | None:
        """The parts of the input's own chunk ``index`` that blocks other than its
        own read when each reads ``reach`` around it: per axis, the slabs within
        reach of its block's faces (in the chunk's coordinates); None when the
        chunk is not inside one block (then any part of it may be read), or when
        the slabs hold as much as the chunk."""
        assert self.source.native is not None
        chunk = [(i * c, min(n, (i + 1) * c)) for i, c, n in zip(index, self.source.native, self.shape, strict=True)]
        block = [(a // b * b, min(n, a // b * b + b)) for (a, _), b, n in zip(chunk, self.blocks, self.shape, strict=True)]
        if any(hi > top for (_, hi), (_, top) in zip(chunk, block, strict=True)):
            return None
        boxes = []
        for axis, ((lo, hi), (start, stop), r) in enumerate(zip(chunk, block, reach, strict=True)):
            for a, b in ((start, start + r), (stop - r, stop)) if r else ():
                a, b = max(a, lo), min(b, hi)
                if a < b:
                    box = [(0, h - l_) for l_, h in chunk]
                    box[axis] = (a - lo, b - lo)
                    boxes.append(box)
        if sum(math.prod(b - a for a, b in box) for box in boxes) >= math.prod(hi - lo for lo, hi in chunk):
            return None
        return boxes

    def passes(self) -> list[tuple[int, int]]:
        """The passes to run before the blocks are written, in order: ``(step,
        pass)`` for each pass of each global step."""
        out = []
        for k, step in enumerate(self.steps):
            if step.is_global and step.op.passes is not None:
                out += [(k, j) for j in range(len(step.op.passes(step.dtype, step.params, self.kernels)))]
        return out

    # ------------------------------------------------------------ memory and files

    def block_bytes(self) -> int:
        """An estimate of the memory one block takes while it runs: its region as
        read, two arrays of the widest dtype (a step's input and result) and the
        block's output."""
        block = math.prod(min(b, n) for b, n in zip(self.blocks, self.shape, strict=True))
        region = math.prod(min(b, n) + 2 * h for b, n, h in zip(self.blocks, self.shape, self.reach(), strict=True))
        return region * (self.source.dtype.itemsize + 2 * self.itemsize) + block * self.dtype.itemsize

    def cache_bytes(self, window: int, processes: bool = False) -> int:
        """How much of the input a process keeps for halos (see
        :mod:`batchproc.io.regions`): of the input of the blocks in flight and of
        two layers of blocks around them (the blocks a halo chunk serves go out
        within about two layers of each other), twice the part other blocks read (a
        block's shell, its halo deep): room for the faces, and for whole chunks
        until the blocks they lie in come. Where several ``processes`` each keep
        their own (cluster workers), the faces only: a block that comes after its
        chunk was cut reads it again. At most :data:`CACHE_LIMIT`; none when no
        step reaches beyond its voxel or the input has no chunks of its own."""
        reach = self.reach()
        if not any(reach) or self.source.native is None:
            return 0
        grid = sorted(self.grid)
        layer = math.prod(grid[:-1]) if len(grid) > 1 else 1
        sizes = [min(b, n) for b, n in zip(self.blocks, self.shape, strict=True)]
        shell = 1 - math.prod(max(0, s - 2 * r) for s, r in zip(sizes, reach, strict=True)) / math.prod(sizes)
        region = math.prod(s + 2 * r for s, r in zip(sizes, reach, strict=True)) * self.source.dtype.itemsize
        native = math.prod(self.source.native) * self.source.dtype.itemsize
        return min(CACHE_LIMIT, int((2 * layer + window) * max(region, native) * min(1.0, (1 if processes else 2) * shell)))

    def output_bytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    # ------------------------------------------------------------ for people

    def stages(self) -> list[str]:
        """The run in words: runs of local steps (one read of the input per block)
        and the global steps between them."""
        lines, run = [], []
        for step in [*self.steps, None]:
            if step is None or step.is_global:
                if run:
                    halo = tuple(sum(s.reach[a] for s in run) for a in range(self.ndim))
                    lines.append(f"local: {' -> '.join(s.name for s in run)} (reach {_shape(halo)})")
                    run = []
                if step is not None:
                    count = len(step.op.passes(step.dtype, step.params, self.kernels)) if step.op.passes else 0
                    lines.append(f"global: {step.name} ({count} pass{'es' if count != 1 else ''} over the whole input first, then voxel by voxel)")
            else:
                run.append(step)
        return lines or ["copy (no steps)"]

    def describe(self, output: str | None = None, threads: int | None = None, processes: bool = False) -> list[tuple[str, str]]:
        """The plan as (label, text) rows, for ``--dry-run`` (``threads``: per
        process; ``processes``: the blocks run in processes of their own)."""
        src = self.source
        rows = [
            (
                "input",
                f"{src.name} ({src.format}) {_shape(src.shape)} {src.dtype}, {_mib(math.prod(src.shape) * src.dtype.itemsize)}"
                + (f", chunks {_shape(src.native)}" if src.native else ""),
            ),
        ]
        for k, step in enumerate(self.steps, start=1):
            shown = ", ".join(f"{name}={_brief(value)}" for name, value in step.params.items() if value is not None and value is not False)
            rows.append(("step" if k == 1 else "", f"{k}. {step.name}({shown}) {step.dtype} -> {step.out}, reach {_shape(step.reach)}"))
        for k, line in enumerate(self.stages()):
            rows.append(("stages" if k == 0 else "", line))
        edges = ", ".join(f"{a}: {e}" for a, e in zip(src.axes, self.edges, strict=True) if e != "none") or "none periodic or whole"
        rows += [
            ("halo", f"{_shape(self.reach())} voxels per side ({edges})"),
            ("blocks", f"{_shape(self.blocks)}, {self.block_count:,} in all ({_shape(self.grid)}), kernels {self.kernels}"),
            ("output", (f"{output} " if output else "") + f"{_shape(self.shape)} {self.dtype}, {_mib(self.output_bytes())} before compression"),
            ("files", _files_text_of(self)),
        ]
        memory = f"about {_mib(self.block_bytes())} per block, per worker thread"
        if threads:
            memory += f"; {threads} thread(s): about {_mib(self.block_bytes() * threads)}"
        cache = self.cache_bytes(2 * (threads or 1), processes)
        if cache:
            memory += f"; input kept for halos: at most {_mib(cache)} per process"
        rows.append(("memory", memory))
        return rows


def _files_text_of(plan: Plan) -> str:
    chunk = f"chunks of {_shape(plan.chunks)} ({_mib(math.prod(plan.chunks) * plan.dtype.itemsize)} each before compression)"
    if plan.shards is None:
        return f"{plan.chunk_count:,} {chunk}"
    per = math.prod(s // c for s, c in zip(plan.shards, plan.chunks, strict=True))
    return f"{plan.file_count:,} shards of {_shape(plan.shards)}, each up to {per:,} {chunk}; {plan.chunk_count:,} chunks in all"


def layer_axis(numblocks: Sequence[int]) -> int:
    """The axis with most blocks (the first of equals): blocks go out in layers
    across it, each layer a small cross-section of the volume."""
    return max(range(len(numblocks)), key=lambda axis: (numblocks[axis], -axis))


def make_plan(pipeline: Any, image: Any, chunks: Sequence[int] | None = None, kernels: str | None = None, shards: Sequence[int] | bool | None = None) -> Plan:
    """``pipeline`` bound to the opened ``image``: the plan of a run.

    ``chunks``: the output's chunks (default: blocks of about
    :data:`TARGET_BLOCK_BYTES` at the widest dtype, whole multiples of the input's
    own chunks). ``shards``: the shards that hold them (whole multiples of the
    chunks); None: the blocks', where the output would have more than
    :data:`SHARD_ABOVE` chunk files (:func:`choose_shards`); False: none."""
    from batchproc import kernels as kernel_sets

    source = Source.of(image)
    chosen = kernels or kernel_sets.for_input(math.prod(source.shape), [step.op.name for step in pipeline.steps])
    steps = bind(pipeline.steps, len(source.shape), source.dtype, math.prod(source.shape), chosen)
    for step in steps:
        arrays = [name for name in step.op.aligned if hasattr(step.params.get(name), "shape")]
        if arrays:
            raise BatchprocError(f"{step.name}: parameter {arrays[0]!r} as an array works with Pipeline.apply, not with a run.")
    for k, step in enumerate(steps):
        reaching = [later.name for later in steps[k + 1 :] if any(later.reach)]
        if step.op.located and reaching:
            raise BatchprocError(
                f"step {k + 1} ({step.name}): the steps after it must work voxel by voxel, as its blocks are numbered "
                f"one by one; {reaching[0]!r} reaches its neighbours. Run it as a pipeline of its own on {step.name}'s output."
            )
    ndim = len(source.shape)
    itemsize = max([source.dtype.itemsize, *(s.out.itemsize for s in steps)])
    target = block_bytes()
    edges = combined_edges(steps, source.shape)
    halo = tuple(0 if e == "whole" else sum(s.reach[a] for s in steps) for a, e in enumerate(edges))
    if chunks is None:
        chunks = auto_chunks(source.shape, source.dtype, source.native, itemsize, target, halo)
    elif len(chunks) != ndim:
        raise BatchprocError(f"--chunks: give one size per axis ({ndim} for {_shape(source.shape)}); got {','.join(map(str, chunks))}.")
    chunks = tuple(max(1, min(int(c), n)) if n else 1 for c, n in zip(chunks, source.shape, strict=True))
    if shards is None:
        shards = choose_shards(source.shape, chunks, itemsize, halo, edges, target, source.native)
    elif shards is not False:
        shards = _checked_shards(tuple(shards), chunks, source.shape)  # type: ignore[arg-type]
    blocks = choose_blocks(source.shape, shards or chunks, itemsize, halo, edges, target, source.native)
    token = _token([source.token, [(s.name, repr(dict(s.params))) for s in steps], chunks, shards, blocks, chosen])
    return Plan(source, steps, chunks, blocks, edges, chosen, token, shards or None)


#: An output of more chunks than this is sharded unless asked otherwise: file
#: counts are what parallel filesystems limit first (inode quotas, slow listings).
SHARD_ABOVE = 10_000


def choose_shards(
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    itemsize: int,
    halo: tuple[int, ...],
    edges: Sequence[Edge],
    target: int = TARGET_BLOCK_BYTES,
    native: Sequence[int] | None = None,
) -> tuple[int, ...] | None:
    """The shards of an output of more than :data:`SHARD_ABOVE` ``chunks``, else
    None: the compute blocks the chunks alone would make (so that each block writes
    its own shards, whole), rounded up to whole chunks, and doubled along the axis
    of most shards while there are still more than :data:`SHARD_ABOVE` (an output
    of hundreds of GB, whose blocks then grow with its shards)."""
    count = math.prod(-(-n // c) for n, c in zip(shape, chunks, strict=True))
    if count <= SHARD_ABOVE:
        return None
    block = choose_blocks(shape, chunks, itemsize, halo, edges, target, native)
    shards = [-(-b // c) * c for b, c in zip(block, chunks, strict=True)]
    grid = [-(-n // s) for n, s in zip(shape, shards, strict=True)]
    while math.prod(grid) > SHARD_ABOVE:
        axis = max(range(len(grid)), key=lambda a: (grid[a], -a))
        shards[axis] *= 2
        grid[axis] = -(-shape[axis] // shards[axis])
    return tuple(shards)


def _checked_shards(shards: tuple[int, ...], chunks: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """``shards`` as given, if each is a whole multiple of its chunk (as zarr
    requires); at most the array, rounded up to whole chunks."""
    if len(shards) != len(chunks):
        raise BatchprocError(f"--shards: give one size per axis ({len(chunks)} for {_shape(shape)}); got {','.join(map(str, shards))}.")
    for axis, (s, c) in enumerate(zip(shards, chunks, strict=True)):
        if s < 1 or s % c:
            raise BatchprocError(
                f"--shards: each size must be a whole multiple of the chunks {_shape(chunks)} (zarr's rule); "
                f"got {','.join(map(str, shards))} (axis {axis}: {s} is not a multiple of {c})."
            )
    return tuple(min(s, -(-n // c) * c) for s, c, n in zip(shards, chunks, shape, strict=True))


def block_bytes() -> int:
    """The size of a compute block: :data:`TARGET_BLOCK_BYTES` unless dask's
    config says ``batchproc.block-bytes``."""
    import dask

    value = dask.config.get("batchproc.block-bytes", None)
    if value is None:
        return TARGET_BLOCK_BYTES
    try:
        size = int(dask.utils.parse_bytes(value) if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise BatchprocError(f"batchproc.block-bytes (dask config) must be a size such as 32MiB; got {value!r}.") from None
    if size < 1:
        raise BatchprocError(f"batchproc.block-bytes (dask config) must be positive; got {value!r}.")
    return size


def choose_blocks(
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    itemsize: int,
    halo: tuple[int, ...],
    edges: Sequence[Edge],
    target: int = TARGET_BLOCK_BYTES,
    native: Sequence[int] | None = None,
) -> tuple[int, ...]:
    """Compute blocks: whole numbers of ``chunks`` (or whole axes), at least the
    halo deep (a block mostly of halo computes little), grown up to ``target``
    bytes at ``itemsize`` along the axis where the halo adds least (of equals the
    last, contiguous in memory). Where a whole number of the input's own chunks
    (``native``) fits the target, blocks are whole numbers of those too: no input
    chunk is then read by two blocks, but for the halo."""
    unit = list(chunks)
    if native is not None:
        common = [math.lcm(c, k) for c, k in zip(chunks, native, strict=True)]
        if math.prod(min(u, n) for u, n in zip(common, shape, strict=True)) * itemsize <= target:
            unit = common
    block = [n if edge == "whole" else min(u, n) for u, n, edge in zip(unit, shape, edges, strict=True)]
    for axis, (u, n) in enumerate(zip(unit, shape, strict=True)):
        if block[axis] < halo[axis]:
            block[axis] = min(n, -(-halo[axis] // u) * u)

    def overhead(axis: int) -> float:
        trial = [min(shape[a], b * 2) if a == axis else b for a, b in enumerate(block)]
        return math.prod(min(n, b + 2 * h) for b, n, h in zip(trial, shape, halo, strict=True)) / math.prod(trial)

    while math.prod(block) * itemsize * 2 <= target:
        room = [a for a in range(len(shape)) if block[a] < shape[a]]
        if not room:
            break
        axis = min(room, key=lambda a: (overhead(a), -a))
        block[axis] = min(shape[axis], block[axis] * 2)
    # A block ends on a chunk's edge (or the array's): no chunk is written by two blocks.
    return tuple(b if b >= n or b % c == 0 else -(-b // c) * c for b, c, n in zip(block, chunks, shape, strict=True))


def _token(parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()[:16]


def _shape(values: Sequence[int]) -> str:
    return "(" + ", ".join(str(v) for v in values) + ")"


def _mib(n: float) -> str:
    if n >= 2**30:
        return f"{n / 2**30:.1f} GiB"
    if n < 2**20:
        return f"{n / 2**10:.1f} KiB"
    return f"{n / 2**20:.1f} MiB"


def _brief(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array{_shape(value.shape)}"
    if isinstance(value, np.dtype):
        return str(value)
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
