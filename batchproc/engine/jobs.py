"""Jobs: a plan, or any dask array, computed into an output store.

The store's life (lock, create, resume, replace, commit) is :mod:`batchproc.io.store`'s;
the computing is :mod:`batchproc.engine.runner`'s. Here the two meet: which
chunks a run still has to write, what a failed run says, and the pyramid levels.
"""

from __future__ import annotations

import ctypes
import gc
import time
from pathlib import Path
from typing import Any

import numpy as np

from batchproc._version import __version__
from batchproc.engine.runner import compute_blocks, run_plan
from batchproc.errors import BatchprocError, SchedulerLost
from batchproc.io.chunkfiles import ChunkFiles
from batchproc.io.readers import Image, auto_chunks, input_stamp, open_image
from batchproc.io.store import Output, open_output, store_chunks
from batchproc.plan import Plan, choose_shards, make_plan


def plan_run(pipeline: Any, input: Any, chunks: tuple[int, ...] | None = None, shards: tuple[int, ...] | bool | None = None) -> Plan:
    """The plan of running ``pipeline`` on ``input`` (opened here, lazily: only
    metadata is read), writing chunks of ``chunks`` (default: about 32 MiB) in
    ``shards`` (see :func:`~batchproc.plan.make_plan`)."""
    return make_plan(pipeline, open_image(input), chunks, shards=shards)


def measure_objects(input: Any, labels: Any, chunks: Any = None) -> dict[str, np.ndarray]:
    """One row per object of the label image ``labels``, measured on ``input``
    (:func:`batchproc.ops.objects.object_table`), both opened from their files.

    The image is read in the labels' blocks: no rechunk task holds blocks of
    either, and a block's size is set by the wider labels. Where the labels are
    larger than a few blocks, what the job before (the labels, made in this
    process) freed goes back to the system first; on small images the collection
    would cost more than the measurement."""
    from batchproc.ops.objects import object_table
    from batchproc.plan import block_bytes

    image, found = open_image(input, chunks), open_image(labels, chunks)
    if found.shape != image.shape:
        raise BatchprocError(f"measure: the labels {str(labels)!r} are {found.shape}, the image {image.shape}; they must have the same shape.")
    if found.dtype.kind not in "biu":
        raise BatchprocError(f"measure: the labels {str(labels)!r} must be integers; got {found.dtype}.")
    if found.data.nbytes > 4 * block_bytes():
        give_back_memory()
    image = open_image(input, found.data.chunks)
    return object_table(image.data, found.data, image.spacing, image.axes, image.units)


def run_pipeline(
    pipeline: Any,
    input: Any,
    output: str | Path,
    *,
    chunks: tuple[int, ...] | None = None,
    shards: tuple[int, ...] | bool | None = None,
    plan: Plan | None = None,
    ome_version: str = "0.5",
    label_image: bool = False,
    codec: str = "default",
    levels: int = 0,
    overwrite: bool = False,
    resume: bool = False,
    compute: bool = True,
) -> str:
    """Open ``input``, plan ``pipeline`` on it and write the result as OME-Zarr at
    ``output`` (see :meth:`batchproc.Pipeline.run`)."""
    plan = plan if plan is not None else plan_run(pipeline, input, chunks, shards)
    src = plan.source
    label_image = label_image or bool(plan.steps and plan.steps[-1].name == "label")  # objects numbered: viewers show them as labels
    provenance = {
        "batchproc": __version__,
        "pipeline": pipeline.to_dict(),
        "input": src.name,
        "input_shape": list(src.shape),
        "input_dtype": str(src.dtype),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    stamp = input_stamp(str(input)) if isinstance(input, (str, Path)) else {}
    # The job: pipeline, input (where, and its size and mtime), shape and dtype.
    key = f"{pipeline.fingerprint()}:{src.name}:{sorted(stamp.items())}:{src.shape}:{src.dtype}"
    with open_output(
        output,
        shape=plan.shape,
        dtype=plan.dtype,
        chunks=plan.chunks,
        shards=plan.shards,
        axes=src.axes,
        spacing=src.spacing,
        units=src.units,
        ome_version=ome_version,
        codec=codec,
        label_image=label_image,
        overwrite=overwrite,
        resume=resume,
        provenance=provenance,
        layout_key=key,
    ) as out:
        if out.done or not compute:
            return str(out.target)
        todo = []
        for index in plan.ordered_blocks():
            missing = out.missing(list(plan.files_of(index)))
            if missing:
                todo.append((index, missing))
        _computing(out, lambda: run_plan(plan, out.files, todo))
        _write_levels(out, levels)
        return out.commit(files_written=sum(len(files) for _, files in todo))


def give_back_memory() -> None:
    """Return what a finished job freed to the system: glibc keeps freed blocks in
    its arenas, and the next job of the process (the measurements after their
    labels) would start from that high-water mark."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def write(
    data: Any,
    path: str | Path,
    *,
    spacing: tuple[float, ...] | None = None,
    axes: str | None = None,
    units: tuple[str | None, ...] | None = None,
    chunks: tuple[int, ...] | None = None,
    shards: tuple[int, ...] | bool | None = None,
    ome_version: str = "0.5",
    codec: str = "default",
    levels: int = 0,
    overwrite: bool = False,
    resume: bool = False,
    provenance: dict[str, Any] | None = None,
    layout_key: str | None = None,
    compute: bool = True,
) -> str:
    """Write ``data`` as an OME-Zarr image at ``path`` (full resolution at ``0``).

    Parameters
    ----------
    data : dask array, Image or numpy array
        What to write; an [`Image`][batchproc.Image] carries its axes and spacing.
    path : str or Path
        Where the store goes: a local folder, or ``s3://``, ``gs://``, ``https://``.
    spacing, axes, units : optional
        Voxel size, axis names and units (NGFF names such as ``micrometer``; default:
        the Image's, else 1.0, ``zyx``-like, and none).
    chunks : tuple of int, optional
        Chunks on disk (default: the data's blocks; blocks under 1 MiB are merged
        into ~32 MiB chunks). Writes are aligned to them.
    shards : tuple of int or bool, optional
        zarr shards holding the chunks (whole multiples of them), each written
        whole by one task. Default: shards of about 32 MiB when the store would
        have more than 10,000 chunk files; False: never.
    ome_version : {"0.5", "0.4"}
        OME-Zarr 0.5 on zarr v3, or 0.4 on zarr v2 (no shards) for viewers that
        read only that.
    codec : {"default", "blosc-lz4", "zstd", "none"}
    levels : int
        Extra pyramid levels, each half the size along the spatial axes (mean for
        numbers, nearest for booleans), for viewers.
    overwrite : bool
        Replace an existing store (only one batchproc wrote, or an empty folder).
        The new store is computed beside it and takes its place once complete: a
        run that fails leaves the old store as it was, and an interrupted one can
        be finished with ``resume``.
    resume : bool
        Finish an interrupted store: write only the level-0 chunks missing on disk
        (then the pyramid levels, whole). Refused when shape, chunks, dtype or
        ``layout_key`` (the job: pipeline and input) differ.
    provenance : dict, optional
        Recorded under ``attrs["batchproc"]["provenance"]``.
    layout_key : str, optional
        What the job was (pipeline and input), recorded so that ``resume``
        refuses to finish a store with another job's chunks.
    compute : bool
        With False, create the store (marked incomplete) and return without
        writing pixels; the same call with ``resume=True`` writes them later.

    Returns
    -------
    str
        The store's path.

    Examples
    --------
    >>> import numpy as np, batchproc, tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "ones.zarr")
    >>> batchproc.write(np.ones((4, 8, 8), np.uint8), out)  # doctest: +ELLIPSIS
    '...ones.zarr'
    """
    import dask.array as da

    if isinstance(data, Image):
        axes = axes or data.axes
        spacing = spacing or data.spacing
        units = units or (data.units if axes == data.axes else None)
        data = data.data
    if not isinstance(data, da.Array):
        data = da.asarray(np.asarray(data))
    # By default a store chunk is one of the data's blocks (or, for small blocks,
    # a whole number of them): cutting blocks across several store chunks
    # keeps them alive longer.
    if chunks is None:
        one_block = int(np.prod(data.chunksize)) * data.dtype.itemsize
        chunks = data.chunksize if one_block >= 2**20 else auto_chunks(data.shape, data.dtype, data.chunksize)
    chunks = store_chunks(data.shape, tuple(chunks))
    if shards is None and ome_version != "0.4":
        shards = choose_shards(data.shape, chunks, data.dtype.itemsize, (0,) * data.ndim, ("none",) * data.ndim)
    with open_output(
        path,
        shape=data.shape,
        dtype=data.dtype,
        chunks=chunks,
        shards=shards or None,
        axes=axes,
        spacing=spacing,
        units=units,
        ome_version=ome_version,
        codec=codec,
        overwrite=overwrite,
        resume=resume,
        provenance=provenance,
        layout_key=layout_key,
    ) as out:
        if out.done or not compute:
            return str(out.target)
        source = data.rechunk(out.files.file_shape)
        blocks = out.missing(list(np.ndindex(*source.numblocks)))
        _computing(out, lambda: compute_blocks(block_writes(source, out.files), blocks))
        _write_levels(out, levels)
        return out.commit(files_written=len(blocks))


def _computing(out: Output, work: Any) -> None:
    """Run ``work``; an error says what is left on disk, and how to go on."""
    try:
        work()
    except BatchprocError as error:
        raise BatchprocError(out.explain(error)) from None
    except SchedulerLost as error:
        raise SchedulerLost(out.explain(error)) from None


def block_writes(source: Any, array: Any) -> Any:
    """One write task per block of ``source`` (chunked exactly like ``array``'s
    files, a :class:`ChunkFiles` or a zarr array): no two tasks touch one file
    (chunk, or shard), so no locks are needed and any subset can be redone.

    The tasks are the blocks of one ``map_blocks`` array, computed together so
    that they share the graph (a ``delayed`` per block made dask read the
    neighbours' halos again for every block)."""
    return source.map_blocks(_write_block, array=array, dtype=np.int64, chunks=tuple((1,) * n for n in source.numblocks))


def _write_block(block: np.ndarray, array: Any, block_info: Any = None) -> np.ndarray:
    if isinstance(array, ChunkFiles):  # each block is one file (chunk, or shard): encoded and written here
        array.write(tuple(block_info[0]["chunk-location"]), block)
    else:
        region = tuple(slice(start, stop) for start, stop in block_info[0]["array-location"])
        array[region] = block
    return np.full((1,) * block.ndim, block.nbytes, dtype=np.int64)


def _write_levels(out: Output, levels: int) -> None:
    """The pyramid: each level half the size of the one before along the spatial
    axes (mean for numbers, rounded for integers; nearest for booleans)."""
    out.prepare_levels(levels)
    if not levels:
        return
    import dask.array as da

    prev = da.from_array(out.files, chunks=out.files.chunks)
    spatial = [a not in ("t", "c") for a in out.axes]
    for level in range(1, levels + 1):
        factors = {i: (2 if spatial[i] and prev.shape[i] >= 2 else 1) for i in range(prev.ndim)}
        if prev.dtype == bool:
            down = prev[tuple(slice(None, None, factors[i]) for i in range(prev.ndim))]
        else:
            down = da.coarsen(np.mean, prev, factors, trim_excess=True)
            down = (da.rint(down) if prev.dtype.kind in "iu" else down).astype(prev.dtype)
        chunks = store_chunks(down.shape, tuple(prev.chunksize))
        writer = out.create_level(level, down.shape, chunks, down.dtype)
        source = down.rechunk(chunks)
        compute_blocks(block_writes(source, writer), list(np.ndindex(*source.numblocks)))
        out.level_done(level)
        prev = da.from_array(writer, chunks=chunks)
