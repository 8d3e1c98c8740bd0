"""Lazy readers: every format opens as a dask array plus its metadata, reading
nothing but headers until a block is computed. Inputs are opened read-only.
"""

from __future__ import annotations

import collections
import contextlib
import glob as globlib
import logging
import os
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from batchproc.errors import BatchprocError
from batchproc.io.remote import RemotePath, is_url, local_or_remote

if TYPE_CHECKING:
    import dask.array as da

#: Default in-memory size of one block: big enough to amortize task overhead,
#: small enough that (blocks in flight x halo) stays well inside memory.
TARGET_BLOCK_BYTES = 32 * 2**20

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif"}
DICOM_SUFFIXES = {".dcm", ".dicom", ".ima", ""}


class Image:
    """An opened image: its pixels (a lazy dask array) and what is known of them.

    Made by [`open_image`][batchproc.open_image]; rarely built by hand.

    Attributes
    ----------
    data : dask.array.Array
        The pixels; built on first use from ``reader`` when the image was opened
        from a file (until then, no dask graph exists).
    axes : str
        One letter per dimension (``"zyx"``, ``"yx"``, ``"xyzt"`` for NIfTI).
    spacing : tuple of float
        Physical size of a voxel per axis (1.0 where unknown).
    units : tuple of str or None
        The unit of each axis's spacing, as NGFF names it (``millimeter``,
        ``micrometer``, ``second``), or None where the input does not say.
    source : str
        Where the data came from; ``meta`` holds format-specific facts.
    reader : array-like or None
        What the pixels are read from (any box of voxels by slicing, in native
        byte order; it pickles, for the workers of a cluster).
    native : tuple of int or None
        The file's own chunks, the unit in which ``reader`` reads.
    chunks : tuple of int
        The blocks ``data`` is cut in (default: about 32 MiB, whole native chunks).

    Examples
    --------
    >>> import numpy as np, tifffile, batchproc
    >>> tifffile.imwrite("scan.tif", np.zeros((5, 8, 8), np.uint8))
    >>> image = batchproc.open_image("scan.tif")
    >>> image.units is None or len(image.units) == 3
    True
    """

    def __init__(
        self,
        data: da.Array | None,
        axes: str,
        spacing: tuple[float, ...],
        source: str,
        meta: dict[str, Any] | None = None,
        reader: Any = None,
        native: tuple[int, ...] | None = None,
        chunks: Any = None,
        dtype: Any = None,
        units: Sequence[str | None] | None = None,
    ) -> None:
        if data is None and reader is None:
            raise TypeError("Image needs data or a reader")
        self._units = tuple(units) if units is not None else None
        self._data, self.reader, self.native, self._chunks = data, reader, native, chunks
        self._dtype = np.dtype(dtype) if dtype is not None else None
        self.axes, self.spacing, self.source, self.meta = axes, tuple(spacing), source, dict(meta or {})

    @property
    def data(self) -> da.Array:
        if self._data is None:
            self._data = _chunked(self.reader, self.shape, self.dtype, self._chunks, self.native)
        return self._data

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in (self._data if self._data is not None else self.reader).shape)

    @property
    def dtype(self) -> np.dtype:
        """The dtype of the voxels as read (``reader`` may store another byte order)."""
        if self._data is not None:
            return np.dtype(self._data.dtype)
        return self._dtype if self._dtype is not None else np.dtype(self.reader.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def units(self) -> tuple[str | None, ...]:
        return self._units if self._units is not None and len(self._units) == self.ndim else (None,) * self.ndim

    def __repr__(self) -> str:
        return f"Image({self.source!r}, shape={self.shape}, dtype={self.dtype}, axes={self.axes!r})"


def default_axes(ndim: int) -> str:
    return "tczyx"[-ndim:] if ndim <= 5 else "".join(f"d{i}" for i in range(ndim))


def auto_chunks(
    shape: tuple[int, ...],
    dtype: np.dtype,
    native: tuple[int, ...] | None = None,
    working_itemsize: int | None = None,
    target: int = TARGET_BLOCK_BYTES,
    halo: tuple[int, ...] | None = None,
) -> tuple[int, ...]:
    """Blocks of about :data:`TARGET_BLOCK_BYTES`, whole multiples of the file's own
    chunks (``native``) so that no native chunk is read by two tasks, except where
    one native chunk alone is larger than the target: then it is split.

    ``working_itemsize``: the widest item a block becomes while processed (8 when
    a uint16 volume goes through float64 steps); blocks are sized by it, so the
    memory of a task, not only of its input, stays near the target. ``halo``: the
    voxels a block reads around it, per axis; the shape chosen is the one whose
    halo adds least (a thin slab under a deep halo is mostly halo)."""
    native = native or (1,) * len(shape)
    halo = halo or (0,) * len(shape)
    chunks = list(min(n, s) for n, s in zip(native, shape, strict=True))
    itemsize = max(np.dtype(dtype).itemsize, working_itemsize or 0)

    def overhead(axis: int, size: int) -> float:
        trial = [size if a == axis else c for a, c in enumerate(chunks)]
        return float(np.prod([min(n, c + 2 * h) for c, n, h in zip(trial, shape, halo, strict=True)]) / np.prod(trial))

    # Grow, doubling in native units, along the axis where the halo adds least;
    # of equals the last (contiguous in memory).
    while np.prod(chunks) * itemsize * 2 <= target:
        room = [a for a in range(len(shape)) if chunks[a] < shape[a]]
        if not room:
            break
        axis = min(room, key=lambda a: (overhead(a, min(shape[a], chunks[a] * 2)), -a))
        chunks[axis] = min(shape[axis], chunks[axis] * 2)
    # A native chunk larger than the target is split where the halo adds least; of
    # equals the longest leading axis (the last stays whole): half-size blocks of
    # large native chunks lower the peak at the same speed (docs/concepts/memory.md, "Measured choices").
    while np.prod(chunks) * itemsize > target and max(chunks) > 1:
        split = [a for a in range(len(chunks)) if chunks[a] > 1]
        axis = min(split, key=lambda a: (overhead(a, (chunks[a] + 1) // 2), a == len(chunks) - 1, -chunks[a]))
        chunks[axis] = (chunks[axis] + 1) // 2
    return tuple(int(c) for c in chunks)


def input_stamp(text: str) -> dict[str, Any]:
    """Size and modification time of an input (a folder: over its files), so a
    re-run notices an input that changed since it was processed (on an object
    store: the size of a single object; a store's prefix is not listed for it)."""
    if is_url(text) and not text.lower().startswith("file://"):
        remote = local_or_remote(text)
        try:
            meta = remote.stat() if remote.suffix.lower() in IMAGE_SUFFIXES else {}
        except (OSError, BatchprocError):
            return {}
        return {"bytes": int(meta["size"]), "etag": str(meta.get("e_tag"))} if meta else {}
    text = str(local_or_remote(text)) if is_url(text) else text
    path = Path(text.split(":/", 1)[0]) if ":/" in text else Path(text)
    try:
        if path.is_dir():
            stats = [p.stat() for p in path.rglob("*") if p.is_file()]
            return {"bytes": sum(s.st_size for s in stats), "mtime_ns": max((s.st_mtime_ns for s in stats), default=0)}
        stat = path.stat()
    except OSError:
        return {}
    return {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def is_zarr_store(path: Path) -> bool:
    """A folder holding a zarr v2 or v3 array or group."""
    return path.is_dir() and any((path / name).exists() for name in ("zarr.json", ".zarray", ".zgroup"))


def natural_key(path: str | Path) -> list[Any]:
    """Sort key where ``img2`` comes before ``img10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(path))]


def open_image(path: Any, chunks: Any = None, **options: Any) -> Image:
    """Open ``path`` lazily.

    Parameters
    ----------
    path : str, Path or list
        A file (TIFF/OME-TIFF, NIfTI ``.nii``/``.nii.gz``, DICOM, PNG/JPEG), a folder
        (a DICOM series, a zarr/OME-Zarr store, or 2-D images stacked in natural
        order), a glob pattern or a list of 2-D image files, or ``file.h5:/dataset``.
    chunks : optional
        dask chunks; by default blocks of about 32 MiB aligned with the file's own.
    **options
        ``level`` (OME-Zarr), ``series`` (DICOM SeriesInstanceUID), ``rescale``
        (DICOM: apply RescaleSlope/Intercept, default False).

    Returns
    -------
    Image
        The pixels (lazy) with their axes, voxel spacing, units and source.

    Raises
    ------
    BatchprocError
        Missing path, empty folder, unreadable or mismatched files, naming the file.

    Examples
    --------
    >>> import numpy as np, tifffile, batchproc
    >>> tifffile.imwrite("scan.tif", np.zeros((5, 8, 8), np.uint8))
    >>> image = batchproc.open_image("scan.tif")
    >>> image.axes, image.spacing, image.data.shape
    ('zyx', (1.0, 1.0, 1.0), (5, 8, 8))
    """
    if isinstance(path, list | tuple):
        return _open_stack([local_or_remote(str(p)) for p in path], chunks, source=f"{len(path)} files")
    if is_url(str(path)):
        where = local_or_remote(str(path))
        if isinstance(where, RemotePath):
            return _open_remote(where, chunks, options)
        path = where
    text = str(path)
    h5 = re.match(r"^(.*\.(?:h5|hdf5|hdf))(?::(/.*))?$", text, re.IGNORECASE)
    if h5:
        return _open_hdf5(Path(h5.group(1)), h5.group(2), chunks)
    if any(ch in text for ch in "*?[") and not Path(text).exists():
        files = sorted(globlib.glob(text), key=natural_key)
        if not files:
            raise BatchprocError(f"input: no file matches the pattern {text!r}.")
        return _open_stack([Path(f) for f in files], chunks, source=text)
    p = Path(text)
    if not p.exists():
        raise BatchprocError(f"input: {text!r} does not exist.")
    if p.is_dir():
        if is_zarr_store(p):
            return _open_zarr(p, chunks, options.get("level", 0))
        files = sorted((f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")), key=natural_key)
        if not files:
            raise BatchprocError(f"input: the folder {text!r} is empty.")
        if _is_dicom(files[0]):
            return _open_dicom_series(files, chunks, options.get("series"), bool(options.get("rescale", False)), text)
        return _open_stack(files, chunks, source=text)
    name = p.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return _open_nifti(p, chunks)
    if name.endswith((".tif", ".tiff")):
        return _open_tiff(p, chunks)
    if name.endswith(".zarr"):
        return _open_zarr(p, chunks, options.get("level", 0))
    if p.suffix.lower() in IMAGE_SUFFIXES:
        return _open_stack([p], chunks, source=text, squeeze=True)
    if _is_dicom(p):
        return _open_dicom_series([p], chunks, options.get("series"), bool(options.get("rescale", False)), text)
    raise BatchprocError(
        f"input: cannot tell the format of {text!r}; expected a TIFF, NIfTI, DICOM, PNG/JPEG, zarr store, HDF5 (file.h5:/dataset) or a folder of images."
    )


def _open_remote(path: RemotePath, chunks: Any, options: dict[str, Any]) -> Image:
    """Open an object, a prefix or a pattern on an object store (see :func:`open_image`)."""
    text = str(path)
    if any(ch in path.key for ch in "*?["):
        files = sorted(path.matches(), key=natural_key)
        if not files:
            raise BatchprocError(f"input: no object matches the pattern {text!r}.")
        return _open_stack(files, chunks, source=text)
    name = path.name.lower()
    if name.endswith((".tif", ".tiff")):
        return _open_tiff(path, chunks)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return _open_stack([path], chunks, source=text, squeeze=True)
    if name.endswith((".nii", ".nii.gz", ".dcm", ".h5", ".hdf5")):
        raise BatchprocError(f"input: {text!r}: NIfTI, DICOM and HDF5 are read from local files only; copy it to a local path first.")
    from batchproc.io.chunkfiles import read_metadata

    if read_metadata(path) is not None:
        return _open_zarr(path, chunks, options.get("level", 0))
    entries = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key) if path.writable else []
    if entries:
        return _open_stack(entries, chunks, source=text)
    raise BatchprocError(f"input: {text!r} does not exist, or holds neither a zarr store nor images.")


def open(path: Any, chunks: Any = None, **options: Any) -> da.Array:  # noqa: A001 - the public name
    """Open ``path`` lazily: its pixels as a dask array, read only when computed.

    The array of [`open_image`][batchproc.open_image] (which also gives the axes, the voxel spacing
    and their units).

    Parameters
    ----------
    path : str, Path or list
        As for [`open_image`][batchproc.open_image]: a file (TIFF, NIfTI, DICOM, PNG/JPEG), a folder
        (a DICOM series, a zarr/OME-Zarr store, 2-D images), a glob pattern, a
        list of 2-D image files, ``file.h5:/dataset``, or an ``s3://``, ``gs://``
        or ``https://`` address.
    chunks : tuple of int, optional
        dask chunks; by default blocks of about 32 MiB aligned with the file's own.
    **options
        ``level`` (OME-Zarr), ``series`` (DICOM SeriesInstanceUID), ``rescale``
        (DICOM: apply RescaleSlope/Intercept, default False).

    Returns
    -------
    dask.array.Array
        The pixels; only the headers have been read.

    Raises
    ------
    BatchprocError
        Missing path, empty folder, unreadable or mismatched files, naming the file.

    Examples
    --------
    >>> import numpy as np, tifffile, batchproc
    >>> tifffile.imwrite("scan.tif", np.arange(5 * 8 * 8, dtype=np.uint16).reshape(5, 8, 8))
    >>> x = batchproc.open("scan.tif", chunks=(2, 8, 8))
    >>> x.shape, x.dtype.name, x.numblocks
    ((5, 8, 8), 'uint16', (3, 1, 1))
    >>> int(x.max().compute())
    319
    """
    return open_image(path, chunks, **options).data


def _chunked(array: Any, shape: tuple[int, ...], dtype: np.dtype, chunks: Any, native: tuple[int, ...] | None, **kw: Any) -> da.Array:
    import dask.array as da

    chosen = chunks if chunks is not None else auto_chunks(shape, dtype, native)
    return da.from_array(array, chunks=chosen, meta=np.empty((0,) * len(shape), dtype), **kw)


# ---------------------------------------------------------------- stacks of 2-D images


def _first_line(error: Exception) -> str:
    """A library's error in one line (imageio's run on with plugin advice)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextlib.contextmanager
def reading(name: Any) -> Iterator[None]:
    """A failure to read the file ``name`` (truncated, corrupt, gone) as a
    :class:`BatchprocError` that names it: bad input, not a bug of ours."""
    try:
        yield
    except (BatchprocError, MemoryError):
        raise
    except Exception as error:
        raise BatchprocError(f"input: cannot read {str(name)!r}: {_first_line(error)} ({type(error).__name__}).") from None


class Named:
    """An array-like whose reads name ``name`` when they fail (see :func:`reading`)."""

    def __init__(self, array: Any, name: str) -> None:
        self.array, self.name = array, name
        self.shape, self.dtype, self.ndim = tuple(array.shape), np.dtype(array.dtype), len(array.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        with reading(self.name):
            return np.asarray(self.array[key])


def _image_source(path: Path | RemotePath) -> Any:
    """What imageio reads: a local path, or an object's bytes."""
    return path.read_bytes() if isinstance(path, RemotePath) else path


def _read_slice(path: Path | RemotePath, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    import imageio.v3 as iio

    try:
        image = iio.imread(_image_source(path), extension=path.suffix.lower() or None)
    except Exception as err:
        raise BatchprocError(f"input: cannot read {str(path)!r} as an image: {_first_line(err)}") from None
    if image.shape != shape or image.dtype != dtype:
        raise BatchprocError(f"input: {str(path)!r} is {image.shape} {image.dtype}, unlike the first image ({shape} {dtype}).")
    return image


def _image_props(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    import imageio.v3 as iio

    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise BatchprocError(f"input: {str(path)!r} is not an image file (expected {', '.join(sorted(IMAGE_SUFFIXES))}).")
    try:
        props = iio.improps(_image_source(path), extension=path.suffix.lower() or None)
    except Exception as err:
        raise BatchprocError(f"input: cannot read {str(path)!r} as an image: {_first_line(err)}") from None
    return tuple(props.shape), np.dtype(props.dtype)


def _open_stack(files: Sequence[Any], chunks: Any, source: str, squeeze: bool = False) -> Image:
    remote = bool(files) and isinstance(files[0], RemotePath)
    for f in files if not remote else ():  # (listed on the object store: they exist)
        if not f.exists():
            raise BatchprocError(f"input: {str(f)!r} does not exist.")
    shape, dtype = _image_props(files[0])
    # On an object store a file's header costs a request of its own: the others
    # are checked as each is read (_read_slice).
    for f in files[1:] if not remote else ():
        other = _image_props(f)
        if other != (shape, dtype):
            raise BatchprocError(f"input: {str(f)!r} is {other[0]} {other[1]}, unlike the first image {str(files[0])!r} ({shape} {dtype}).")
    reader = Planes(tuple(files), _read_slice, (shape, dtype), shape, dtype, squeeze)
    ndim = len(reader.shape)
    return Image(None, default_axes(ndim), (1.0,) * ndim, source, {"format": "image stack", "files": len(files)}, reader, reader.native, chunks)


class Planes:
    """An array-like over files that each hold one plane (or, ``squeeze``d, the one
    file that holds the whole image): reading a box reads the files it spans.

    ``read(path, *args)`` returns one file's pixels; it and its arguments are all
    that travels to the workers of a cluster."""

    def __init__(self, files: tuple[Path, ...], read: Any, args: tuple[Any, ...], plane: tuple[int, ...], dtype: np.dtype, squeeze: bool = False) -> None:
        self.files, self.read, self.args, self.dtype = files, read, args, np.dtype(dtype)
        self.squeeze = squeeze and len(files) == 1
        self.shape = tuple(plane) if self.squeeze else (len(files), *plane)
        self.ndim = len(self.shape)
        self.native = self.shape if self.squeeze else (1, *plane)

    def __getitem__(self, key: Any) -> np.ndarray:
        if self.squeeze:
            return np.asarray(self.read(self.files[0], *self.args))[key]
        key = key if isinstance(key, tuple) else (key,)
        first, rest = key[0], key[1:]
        if isinstance(first, slice):
            planes = [np.asarray(self.read(self.files[i], *self.args))[rest] for i in range(*first.indices(len(self.files)))]
            return np.stack(planes) if planes else np.empty((0, *self.shape[1:]), self.dtype)[(slice(None), *rest)]
        return np.asarray(self.read(self.files[int(first)], *self.args))[rest]

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return ("batchproc-planes", tuple(map(str, self.files)), self.read.__name__, self.args[:0], self.shape, str(self.dtype))


# ---------------------------------------------------------------- TIFF, zarr, HDF5, NIfTI


class Reopening:
    """An array-like that opens its file again in each process that reads it.

    File handles (tifffile's store, h5py's dataset) cannot travel to the workers
    of a cluster; this object carries only how to open the file (a module-level
    function and its arguments), and each process keeps a few opened arrays."""

    _opened: collections.OrderedDict[tuple[Any, ...], Any] = collections.OrderedDict()
    _keep = 16  # open files per process: a batch over thousands of files must not run out of handles

    _locks: dict[tuple[Any, ...], threading.Lock] = collections.defaultdict(threading.Lock)

    def __init__(self, opener: Any, *args: Any, opened: Any = None, lock: bool = False) -> None:
        self.opener, self.args, self.lock = opener, args, lock
        array = opened if opened is not None else self._array()
        if opened is not None:
            self._remember(opened)
        self.shape, self.dtype, self.ndim = tuple(array.shape), np.dtype(array.dtype), len(array.shape)
        self.chunks = getattr(array, "chunks", None)

    def _key(self) -> tuple[Any, ...]:
        return (self.opener.__module__, self.opener.__name__, *map(str, self.args), os.getpid())

    def _remember(self, array: Any) -> Any:
        Reopening._opened[self._key()] = array
        while len(Reopening._opened) > Reopening._keep:
            Reopening._opened.popitem(last=False)
        return array

    def _array(self) -> Any:
        key = self._key()
        if key in Reopening._opened:
            Reopening._opened.move_to_end(key)
            return Reopening._opened[key]
        return self._remember(self.opener(*self.args))

    def __getitem__(self, key: Any) -> np.ndarray:
        with reading(self.args[0]):
            if not self.lock:
                return np.asarray(self._array()[key])
            # (h5py is not thread-safe: one read at a time per file.)
            with Reopening._locks[self._key()]:
                return np.asarray(self._array()[key])

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return (self._key()[:-1], self.shape, str(self.dtype))


def _tiff_array(path: Path | RemotePath) -> Any:
    import tifffile
    import zarr

    source = path.open_reader() if isinstance(path, RemotePath) else path  # only the tiles read are fetched
    return zarr.open(tifffile.imread(source, aszarr=True, level=0), mode="r")


def _hdf5_dataset(path: Path, dataset: str) -> Any:
    import h5py

    return h5py.File(path, "r")[dataset]


#: What tifffile logs, and reads past, when a file's structure is broken: a
#: truncated file then opens with fewer pages or another shape than it holds.
_TIFF_DAMAGE = ("invalid page offset", "failed to reshape", "corrupt", "truncat", "invalid tag", "beyond end of file")


class _Complaints(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record.getMessage())


def _open_tiff(path: Path | RemotePath, chunks: Any) -> Image:
    log = logging.getLogger("tifffile")
    complaints, propagate = _Complaints(), log.propagate
    log.addHandler(complaints)
    log.propagate = False  # said below, in one line, if it matters
    try:
        z = _tiff_array(path)
    except Exception as err:
        raise BatchprocError(f"input: cannot read {str(path)!r} as a TIFF: {_first_line(err)}") from None
    finally:
        log.removeHandler(complaints)
        log.propagate = propagate
    damage = [text for text in complaints.seen if any(word in text.lower() for word in _TIFF_DAMAGE)]
    if damage:
        said = re.sub(r"^<[^>]*>\s*", "", damage[0])
        raise BatchprocError(f"input: {str(path)!r} is truncated or corrupt: {said}.")
    if not hasattr(z, "shape"):
        raise BatchprocError(f"input: {str(path)!r} holds no image array.")
    reader = Reopening(_tiff_array, path, opened=z)
    axes, spacing, units = _tiff_axes_spacing(path, len(z.shape))
    return Image(None, axes, spacing, str(path), {"format": "tiff", "native_chunks": z.chunks}, reader, tuple(z.chunks), chunks, units=units)


def _tiff_axes_spacing(path: Path, ndim: int) -> tuple[str, tuple[float, ...], tuple[str | None, ...]]:
    """Axes, voxel size and units from OME-XML (PhysicalSizeX/Y/Z and their
    units, micrometer by OME's default) or ImageJ metadata (spacing,
    XResolution/YResolution, unit); 1.0 and no unit where the file says nothing."""
    import tifffile

    from batchproc.io.store import ngff_unit

    axes, size, unit = default_axes(ndim), {}, {}
    try:
        with tifffile.TiffFile(path.open_reader() if isinstance(path, RemotePath) else path) as tif:
            if not (tif.is_ome or tif.is_imagej):  # plain TIFF: say nothing, read no more headers
                return axes, (1.0,) * ndim, (None,) * ndim
            series_axes = tif.series[0].axes.lower() if tif.series else ""
            if tif.is_ome and tif.ome_metadata:
                import xml.etree.ElementTree as ET

                for element in ET.fromstring(tif.ome_metadata).iter():
                    if element.tag.endswith("Pixels"):
                        size = {a: float(element.get(f"PhysicalSize{a.upper()}")) for a in "zyx" if element.get(f"PhysicalSize{a.upper()}")}
                        unit = {a: ngff_unit(element.get(f"PhysicalSize{a.upper()}Unit", "µm")) for a in size}
                        break
            elif tif.is_imagej:
                page, meta = tif.pages[0], tif.imagej_metadata or {}
                for a, tag in (("x", "XResolution"), ("y", "YResolution")):
                    if tag in page.tags:
                        num, den = page.tags[tag].value
                        if num:
                            size[a] = den / num
                if meta.get("spacing"):
                    size["z"] = float(meta["spacing"])
                unit = {a: ngff_unit(str(meta.get("unit", ""))) for a in size}
    except Exception:  # metadata is a courtesy: the pixels opened already
        return axes, (1.0,) * ndim, (None,) * ndim
    if len(series_axes) == ndim and len(set(series_axes)) == ndim and set(series_axes) <= set("tczyxs"):
        axes = series_axes.replace("s", "c")
    return axes, tuple(size.get(a, 1.0) for a in axes), tuple(unit.get(a) for a in axes)


def _open_zarr(path: Path | RemotePath, chunks: Any, level: Any) -> Image:
    from batchproc.io.chunkfiles import open_chunk_files, read_metadata

    # A zarr v3 store on disk is read from its metadata documents without zarr
    # (whose import is slow to start a run); what they do not describe goes to zarr.
    meta = read_metadata(path)
    units = None
    if meta is not None and meta.get("node_type") == "group":
        attrs = meta.get("attributes") or {}
        dataset, axes, spacing, units = _multiscale(attrs.get("ome", attrs), path, level)
        files = open_chunk_files(path / dataset)
        if files is not None:
            files.complete = (attrs.get("batchproc") or {}).get("complete") is True
    else:
        axes, spacing = None, None
        files = open_chunk_files(path, meta) if meta is not None else None
    if files is not None:
        native, reader, ndim, dtype = files.chunks, files, len(files.shape), files.dtype.newbyteorder("=")
    else:
        import zarr

        try:
            node = zarr.open(_zarr_store(path), mode="r")
        except Exception as err:
            raise BatchprocError(f"input: cannot open {str(path)!r} as a zarr store: {err}") from None
        if not hasattr(node, "shape"):
            attrs = dict(node.attrs)
            dataset, axes, spacing, units = _multiscale(attrs.get("ome", attrs), path, level)
            node = node[dataset]
        # (A zarr v3 array on disk that chunk files could read was taken above.)
        native, reader, ndim, dtype = node.chunks, Named(node, str(path)), len(node.shape), node.dtype
    return Image(
        None,
        axes if axes and len(axes) == ndim else default_axes(ndim),
        spacing if spacing and len(spacing) == ndim else (1.0,) * ndim,
        str(path),
        {"format": "zarr", "native_chunks": native},
        reader,
        tuple(native),
        chunks,
        dtype,
        units=units if units and len(units) == ndim else None,
    )


def _zarr_store(path: Path | RemotePath) -> Any:
    """What zarr opens: a local path, or zarr's store over obstore's client."""
    if not isinstance(path, RemotePath):
        return str(path)
    from obstore.store import from_url
    from zarr.storage import ObjectStore

    return ObjectStore(from_url(str(path)), read_only=True)


def _multiscale(ome: dict[str, Any], path: Path, level: Any) -> tuple[str, str | None, tuple[float, ...] | None, tuple[str | None, ...] | None]:
    """The dataset path at ``level`` of a group's OME multiscales, its axes, spacing and units."""
    multiscales = ome.get("multiscales") if isinstance(ome, dict) else None
    if not multiscales:
        raise BatchprocError(f"input: {str(path)!r} is a zarr group without OME multiscales; name the array inside it.")
    ms = multiscales[0]
    datasets = ms["datasets"]
    if not isinstance(level, int) or not 0 <= level < len(datasets):
        raise BatchprocError(f"input: level must be from 0 to {len(datasets) - 1} for {str(path)!r}; got {level!r}.")
    dataset = datasets[level]
    axes = "".join(a["name"] if isinstance(a, dict) else a for a in ms.get("axes", [])) or None
    units = tuple(a.get("unit") if isinstance(a, dict) else None for a in ms.get("axes", [])) or None
    spacing = None
    for t in dataset.get("coordinateTransformations", []):
        if t.get("type") == "scale":
            spacing = tuple(float(s) for s in t["scale"])
    return dataset["path"], axes, spacing, units


def _open_hdf5(path: Path, dataset: str | None, chunks: Any) -> Image:
    import h5py

    if not path.exists():
        raise BatchprocError(f"input: {str(path)!r} does not exist.")
    try:
        f = h5py.File(path, "r")
    except Exception as err:
        raise BatchprocError(f"input: cannot open {str(path)!r} as HDF5: {err}") from None
    if dataset is None:
        names: list[str] = []
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        raise BatchprocError(f"input: name the dataset inside {str(path)!r} as file.h5:/path; it holds: {', '.join(names) or 'nothing'}.")
    if dataset not in f or not isinstance(f[dataset], h5py.Dataset):
        raise BatchprocError(f"input: {str(path)!r} has no dataset {dataset!r}.")
    d = f[dataset]
    # h5py is not thread-safe: one read at a time per file.
    reader = Reopening(_hdf5_dataset, path, dataset, opened=d, lock=True)
    ndim = len(d.shape)
    return Image(None, default_axes(ndim), (1.0,) * ndim, f"{path}:{dataset}", {"format": "hdf5"}, reader, tuple(d.chunks) if d.chunks else None, chunks)


def _open_nifti(path: Path, chunks: Any) -> Image:
    import nibabel

    try:
        img = nibabel.load(path)
        proxy = img.dataobj
        shape = tuple(int(s) for s in img.shape)
        header_dtype = img.get_data_dtype()
    except Exception as err:
        raise BatchprocError(f"input: cannot read {str(path)!r} as NIfTI: {err}") from None
    slope, inter = getattr(proxy, "slope", 1.0), getattr(proxy, "inter", 0.0)
    scaled = not (slope in (1.0, None) and inter in (0.0, None))
    dtype = np.dtype(np.float64) if scaled else np.dtype(header_dtype).newbyteorder("=")
    reader = _NativeOrder(proxy, dtype, shape, str(path))
    from batchproc.io.store import ngff_unit

    zooms = tuple(float(z) for z in img.header.get_zooms())
    try:
        space, when = (ngff_unit(u) for u in img.header.get_xyzt_units())
    except Exception:  # units are a courtesy
        space = when = None
    units = ((space,) * 3 + (when,))[: len(shape)] if len(shape) <= 4 else None
    # NIfTI's own axis order, stated in the names: x, y, z (and t).
    return Image(
        None, "xyzt"[: len(shape)] if len(shape) <= 4 else default_axes(len(shape)), zooms, str(path), {"format": "nifti"}, reader, None, chunks, units=units
    )


class _NativeOrder:
    """An array proxy whose slices come back in native byte order (dask and scipy
    want native arrays; ``anatomical.nii`` is big-endian)."""

    def __init__(self, proxy: Any, dtype: np.dtype, shape: tuple[int, ...], name: str = "") -> None:
        self.proxy, self.dtype, self.shape, self.ndim, self.name = proxy, dtype, shape, len(shape), name

    def __getitem__(self, key: Any) -> np.ndarray:
        with reading(self.name):
            return np.asarray(self.proxy[key]).astype(self.dtype, copy=False)


# ---------------------------------------------------------------- DICOM


def _is_dicom(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _open_dicom_series(files: Sequence[Path], chunks: Any, series: str | None, rescale: bool, source: str) -> Image:
    import pydicom

    headers = []
    for f in files:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except Exception as err:
            raise BatchprocError(f"input: {str(f)!r} is not a readable DICOM file: {err}") from None
        headers.append((f, ds))
    uids = sorted({str(getattr(ds, "SeriesInstanceUID", "")) for _, ds in headers})
    if series is not None:
        headers = [(f, ds) for f, ds in headers if str(getattr(ds, "SeriesInstanceUID", "")) == series]
        if not headers:
            raise BatchprocError(f"input: no DICOM series {series!r} in {source!r}; it holds: {', '.join(uids)}.")
    elif len(uids) > 1:
        raise BatchprocError(f"input: {source!r} holds {len(uids)} DICOM series; choose one with series=UID: {', '.join(uids)}.")
    first = headers[0][1]
    frames = int(getattr(first, "NumberOfFrames", 1) or 1)
    rows, cols = int(first.Rows), int(first.Columns)
    ordered = _order_slices(headers)
    dtype = _dicom_dtype(first, rescale)
    pixel = [float(v) for v in getattr(first, "PixelSpacing", [1.0, 1.0])]
    if frames > 1 and len(ordered) == 1:
        shape: tuple[int, ...] = (frames, rows, cols)
        reader = Planes((ordered[0][0],), _read_dicom, (shape, dtype, rescale), shape, dtype, squeeze=True)
        thickness = float(getattr(first, "SpacingBetweenSlices", getattr(first, "SliceThickness", 1.0)) or 1.0)
        spacing = (thickness, *pixel)
    else:
        shape = (rows, cols)
        reader = Planes(tuple(f for f, _ in ordered), _read_dicom, (shape, dtype, rescale), shape, dtype, squeeze=len(ordered) == 1)
        positions = [p for _, p in _positions(ordered)]
        if len(ordered) > 1:
            gaps = np.diff(positions) if None not in positions else []
            step = float(np.median(np.abs(gaps))) if len(gaps) else float(getattr(first, "SliceThickness", 1.0) or 1.0)
            spacing = (step or 1.0, *pixel)
        else:
            spacing = tuple(pixel)
    meta = {"format": "dicom", "series": str(getattr(first, "SeriesInstanceUID", "")), "files": len(ordered), "modality": str(getattr(first, "Modality", ""))}
    ndim = len(reader.shape)
    # DICOM's distances are in millimetres (PS3.3: PixelSpacing, SliceThickness);
    # a file without PixelSpacing (many radiographs) says nothing of its pixels' size.
    stated = getattr(first, "PixelSpacing", None) is not None
    units = ("millimeter",) * ndim if stated else None
    return Image(None, default_axes(ndim), tuple(float(s) for s in spacing), source, meta, reader, reader.native, chunks, units=units)


def _positions(headers: Sequence[tuple[Path, Any]]) -> list[tuple[Path, float | None]]:
    out = []
    for f, ds in headers:
        pos, orient = getattr(ds, "ImagePositionPatient", None), getattr(ds, "ImageOrientationPatient", None)
        if pos is not None and orient is not None:
            normal = np.cross(np.asarray(orient[:3], float), np.asarray(orient[3:], float))
            out.append((f, float(np.dot(normal, np.asarray(pos, float)))))
        else:
            out.append((f, None))
    return out


def _order_slices(headers: Sequence[tuple[Path, Any]]) -> list[tuple[Path, Any]]:
    """Sort by position along the slice normal; fall back to InstanceNumber."""
    positions = _positions(headers)
    by_path = dict(headers)
    if all(p is not None for _, p in positions):
        return [(f, by_path[f]) for f, _ in sorted(positions, key=lambda fp: fp[1])]
    return sorted(headers, key=lambda fd: int(getattr(fd[1], "InstanceNumber", 0) or 0))


def _dicom_dtype(ds: Any, rescale: bool) -> np.dtype:
    bits = int(getattr(ds, "BitsAllocated", 16))
    signed = int(getattr(ds, "PixelRepresentation", 0)) == 1
    stored = np.dtype(f"{'i' if signed else 'u'}{bits // 8}") if bits in (8, 16, 32) else np.dtype(np.float32)
    if not rescale:
        return stored
    slope, inter = float(getattr(ds, "RescaleSlope", 1) or 1), float(getattr(ds, "RescaleIntercept", 0) or 0)
    return stored if (slope, inter) == (1.0, 0.0) else np.dtype(np.float64)


def _read_dicom(path: Path, shape: tuple[int, ...], dtype: np.dtype, rescale: bool) -> np.ndarray:
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
    except Exception as err:
        raise BatchprocError(f"input: cannot read the pixels of {str(path)!r}: {err}") from None
    if pixels.shape != shape:
        raise BatchprocError(f"input: {str(path)!r} is {pixels.shape}, unlike the series' first slice {shape}.")
    if rescale:
        slope, inter = float(getattr(ds, "RescaleSlope", 1) or 1), float(getattr(ds, "RescaleIntercept", 0) or 0)
        if (slope, inter) != (1.0, 0.0):
            return pixels.astype(np.float64) * slope + inter
    return pixels.astype(dtype, copy=False)
