"""Output stores: OME-Zarr (NGFF 0.5, zarr v3), created, locked, resumed and
committed honestly. Nothing here computes: the engine writes the chunks.

A store is marked complete (``attrs["batchproc"]["complete"] = True``) only after
its last chunk is written; an interrupted store keeps ``complete: false`` and the
layout it was started with, so a resume finishes it by writing only the chunks
missing on disk (pyramid levels, made from level 0, are written again whole), and
refuses to mix in a different job.

:func:`open_output` takes the output for this run alone (a lock file beside it),
decides what the run does (a new store, a resume, a replacement beside the old
store) and hands back an :class:`Output`: where the chunks go, which are missing,
and :meth:`Output.commit` once they are all written.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from batchproc._version import __version__
from batchproc.errors import BatchprocError
from batchproc.io.chunkfiles import DATA_TYPES, ChunkFiles, open_chunk_files, read_metadata
from batchproc.io.readers import default_axes
from batchproc.io.remote import RemotePath, local_or_remote

#: Blosc LZ4 with bit-shuffle: several times faster to write than zarr's default
#: Zstd (docs/design/architecture.md, "Output format").
DEFAULT_CODEC = "blosc-lz4"
CODECS = ("blosc-lz4", "zstd", "none")

_AXIS_TYPES = {"t": "time", "c": "channel"}


def codec_metadata(codec: str, dtype: np.dtype) -> list[dict[str, Any]]:
    """The zarr v3 ``codecs`` of an array of ``dtype`` written with ``codec`` (one of
    :data:`CODECS`, or ``"default"``), as they stand in its ``zarr.json``."""
    dtype = np.dtype(dtype)
    codecs: list[dict[str, Any]] = [{"name": "bytes"} if dtype.itemsize == 1 else {"name": "bytes", "configuration": {"endian": "little"}}]
    if codec in ("default", "blosc-lz4"):
        codecs.append({"name": "blosc", "configuration": {"typesize": dtype.itemsize, "cname": "lz4", "clevel": 5, "shuffle": "bitshuffle", "blocksize": 0}})
    elif codec == "zstd":
        codecs.append({"name": "zstd", "configuration": {"level": 3, "checksum": False}})
    elif codec != "none":
        raise BatchprocError(f"write: codec must be one of {', '.join(CODECS)}; got {codec!r}.")
    return codecs


def compressors(codec: str, dtype: np.dtype) -> list[dict[str, Any]]:
    """zarr's ``compressors`` argument for ``codec`` (tests check that zarr then
    writes what :func:`codec_metadata` says)."""
    return codec_metadata(codec, dtype)[1:]


def _array_metadata(
    shape: tuple[int, ...], dtype: np.dtype, chunks: tuple[int, ...], codec: str, axes: str, shards: tuple[int, ...] | None = None
) -> dict[str, Any]:
    """The ``zarr.json`` of an array, as zarr writes it for these arguments
    (``shards``: zarr's ``shards=``)."""
    dtype = np.dtype(dtype)
    codecs = codec_metadata(codec, dtype)
    if shards is not None:
        codecs = [
            {
                "name": "sharding_indexed",
                "configuration": {
                    "chunk_shape": list(chunks),
                    "codecs": codecs,
                    "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
                    "index_location": "end",
                },
            }
        ]
    return {
        "shape": list(shape),
        "data_type": dtype.name,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(shards or chunks)}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": False if dtype.kind == "b" else (0.0 if dtype.kind == "f" else 0),
        "codecs": codecs,
        "attributes": {},
        "dimension_names": list(axes),
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    }


def _write_json(path: Path, document: dict[str, Any]) -> None:
    """``document`` written to ``path`` whole or not at all (a temporary file
    renamed), as standard JSON: an infinite or NaN number (a provenance's
    ``cval=-inf``) is written as zarr v3 writes one, "Infinity", "-Infinity" or
    "NaN" (Python's own -Infinity token stops strict readers, such as a browser's)."""
    text = json.dumps(_standard_json(document), indent=2, allow_nan=False)
    if isinstance(path, RemotePath):  # a put is whole or nothing
        path.write_text(text)
        return
    partial = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def _standard_json(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return "NaN" if np.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _standard_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_standard_json(v) for v in value]
    return value


def layout_hash(shape: tuple[int, ...], chunks: tuple[int, ...], dtype: np.dtype, key: str | None, shards: tuple[int, ...] | None = None) -> str:
    text = json.dumps([list(shape), list(chunks), str(np.dtype(dtype)), key or ""] + ([list(shards)] if shards else []))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_store_info(path: str | Path | RemotePath) -> dict[str, Any] | None:
    """What batchproc recorded in a store it wrote.

    Parameters
    ----------
    path : str, Path or RemotePath
        An OME-Zarr store, local or on an object store.

    Returns
    -------
    dict or None
        ``complete`` (whether every chunk was written), ``layout``, ``shape``,
        ``dtype``, ``chunks``; None when ``path`` is not a store batchproc wrote.

    Examples
    --------
    >>> import numpy as np, batchproc
    >>> out = batchproc.write(np.ones((4, 8, 8), np.uint8), "ones.zarr", overwrite=True)
    >>> info = batchproc.read_store_info(out)
    >>> info["complete"], info["shape"], info["dtype"]
    (True, [4, 8, 8], 'uint8')
    """
    meta = read_metadata(local_or_remote(path) if isinstance(path, str) else path)
    attrs = meta.get("attributes") if meta is not None else None
    info = attrs.get("batchproc") if isinstance(attrs, dict) else None
    return dict(info) if isinstance(info, dict) else None


def _edit_attributes(path: Path | RemotePath, edit: Callable[[dict[str, Any]], None]) -> None:
    """The group attributes of the store at ``path``, changed in place by ``edit``
    and written back whole (zarr v3: in its ``zarr.json``; v2: its ``.zattrs``)."""
    try:
        meta = json.loads((path / "zarr.json").read_text())
    except FileNotFoundError:
        attrs = json.loads((path / ".zattrs").read_text())
        edit(attrs)
        _write_json(path / ".zattrs", attrs)
    else:
        edit(meta.setdefault("attributes", {}))
        _write_json(path / "zarr.json", meta)


def _set_info(path: Path | RemotePath, **updates: Any) -> None:
    _edit_attributes(path, lambda attrs: attrs.update(batchproc={**attrs.get("batchproc", {}), **updates}))


def _remove_partial_writes(array_path: Path) -> None:
    """zarr writes a chunk to ``<key>.<uuid>.partial`` and renames it into place; a
    process killed in between leaves the partial file, never a torn chunk."""
    for partial in array_path.rglob("*.partial"):
        partial.unlink(missing_ok=True)


#: A staging store is ".NAME" + this + _STAGING_ID hex digits, beside output NAME.
_STAGING = ".batchproc-"
_STAGING_ID = 8
#: The old output's name while its replacement is renamed into place.
_REPLACED = "-replaced"
#: The lock of output NAME is ".NAME" + this.
_LOCK = ".batchproc.lock"
#: Bytes the longest name a write puts beside output NAME adds to NAME: a new
#: output is made in its staging store and renamed into place; an --overwrite also
#: renames the old output aside; a resume puts only the lock there.
_ADDED_NEW = len(".") + len(_STAGING) + _STAGING_ID
_ADDED_OVERWRITE = _ADDED_NEW + len(_REPLACED)
_ADDED_RESUME = len(".") + len(_LOCK)


@contextlib.contextmanager
def _output_lock(target: Path | RemotePath) -> Iterator[None]:
    """The output ``target`` for this run alone: two runs writing one store would
    delete each other's staging folder or mix their chunks. A lock beside it (a
    file, or an object created only if absent) names the run (process, host,
    start); one left by a run that is gone (a dead process on this host) is taken
    over."""
    lock = target.parent / f".{target.name}{_LOCK}"
    host = socket.gethostname()
    mine = f"{os.getpid()} {host} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
    for _ in range(2):
        if _create_lock(lock, mine):
            break
        try:
            pid, holder, since = (lock.read_text().split(" ") + ["", "", ""])[:3]
        except FileNotFoundError:  # let go of meanwhile
            continue
        if holder == host and pid.isdigit() and not _alive(int(pid)):
            lock.unlink(missing_ok=True)
            continue
        raise BatchprocError(
            f"output: {str(target)!r} is being written by another batchproc run (process {pid or '?'} on {holder or '?'}"
            f"{', since ' + since if since else ''}); wait for it to finish, or delete {str(lock)!r} if that run is gone."
        )
    else:
        raise BatchprocError(f"output: {str(target)!r} is being written by another batchproc run; delete {str(lock)!r} if that run is gone.")
    try:
        yield
    finally:
        with contextlib.suppress(BatchprocError, FileNotFoundError):
            lock.unlink(missing_ok=True)


def _create_lock(lock: Path | RemotePath, text: str) -> bool:
    """Create ``lock`` holding ``text`` only if it does not exist; False if it does."""
    if isinstance(lock, RemotePath):
        return lock.create(text.encode())
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    except OSError as error:
        raise BatchprocError(f"output: cannot write in the folder {str(lock.parent)!r}: {error.strerror or error}.") from None
    with os.fdopen(fd, "w") as file:
        file.write(text)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _staged(parent: Path, name: str) -> list[Path]:
    """The hidden staging stores of output ``name`` (see :func:`write`)."""
    return sorted(parent.glob(f".{glob.escape(name)}{_STAGING}*"))


def _pending_replacement(parent: Path, name: str, layout: str) -> Path | None:
    """The staging store an interrupted ``--overwrite`` of ``name`` left for this
    job (same layout), if there is one."""
    for staged in _staged(parent, name):
        info = read_store_info(staged)
        if not staged.name.endswith(_REPLACED) and info is not None and info.get("layout") == layout:
            return staged
    return None


def _name_max(parent: Path) -> int:
    try:
        return os.pathconf(parent, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # no pathconf on Windows, or no folder yet
        return 255


def longest_output_name(parent: Path) -> int:
    """The longest output name, in bytes, that a write into ``parent`` takes
    whether it creates the output, replaces it (``overwrite``) or resumes it."""
    return _name_max(parent) - max(_ADDED_NEW, _ADDED_OVERWRITE, _ADDED_RESUME)


def _check_name_length(parent: Path, name: str, extra: int) -> None:
    """Refuse, before anything is written, an output name the folder cannot hold
    once ``extra`` bytes of a staging name are added (the rename would otherwise
    fail at the end of the run, after all of it was computed)."""
    limit = _name_max(parent)
    size = len(os.fsencode(name))
    if size + extra > limit:
        shown = name if len(name) <= 40 else name[:37] + "..."
        raise BatchprocError(
            f"output: the name {shown!r} is too long ({size} bytes): batchproc keeps folders beside the output whose names "
            f"add {extra} bytes to it, and {str(parent)!r} allows {limit}; use a name of at most {limit - extra} bytes."
        )


def _replace(target: Path, store: Path) -> None:
    """Put the finished ``store`` where ``target`` is: the old output is renamed
    aside first and removed last, so that it is lost only once its replacement is
    in place (a kill between the renames is mended by :func:`_mend_replacement`)."""
    old = store.with_name(store.name + _REPLACED)
    os.rename(target, old)
    os.rename(store, target)
    shutil.rmtree(old, ignore_errors=True)


def _mend_replacement(parent: Path, target: Path) -> None:
    """Finish a replacement a kill cut short: with the old output renamed aside and
    the new one not yet in place, the new one (complete) goes in, or else the old
    one comes back; an old output left over after a finished swap is removed."""
    for old in _staged(parent, target.name):
        if not old.name.endswith(_REPLACED):
            continue
        new = old.with_name(old.name[: -len(_REPLACED)])
        if not target.exists():
            info = read_store_info(new) if new.exists() else None
            if info is not None and info.get("complete"):
                os.rename(new, target)
            else:
                os.rename(old, target)
                continue
        shutil.rmtree(old, ignore_errors=True)


class Output:
    """A store this run writes: the level-0 files (chunks, or shards) go to
    ``files`` (one :meth:`~batchproc.io.chunkfiles.ChunkFiles.write` per file,
    any subset, in any order, from any process); :meth:`commit` marks it
    complete."""

    def __init__(
        self, target: Path | RemotePath, store: Path | RemotePath, files: ChunkFiles, *, resuming: bool, done: bool, ome: Ome, codec: str, started: float
    ) -> None:
        self.target, self.store, self.files = target, store, files
        self.resuming, self.done = resuming, done
        self.ome, self.codec, self.started = ome, codec, started
        self._listed: set[str] | None = None  # the files of a store on an object store, listed once

    @property
    def axes(self) -> str:
        return self.ome.axes

    @property
    def replacing(self) -> bool:
        """Is the store computed beside an output it replaces at the end?"""
        return self.store != self.target

    def missing(self, units: Iterator[tuple[int, ...]] | list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        """Of the files at ``units`` (chunks, or shards), those to write: all of
        them for a new store, those not on disk when resuming."""
        if not self.resuming:
            return list(units)
        if isinstance(self.store, RemotePath):  # one listing for the whole run, not a request per file
            from batchproc.io.remote_store import existing_files

            if self._listed is None:
                self._listed = existing_files(self.store / "0")
            prefix = str(self.store / "0") + "/"
            return [index for index in units if str(self.files.file_path(index))[len(prefix) :] not in self._listed]
        return [index for index in units if not self.files.file_path(index).exists()]

    def explain(self, error: Exception) -> str:
        """``error`` with what a failed run leaves on disk, and how to go on."""
        if self.replacing:
            left = f"{str(self.target)!r} is unchanged; its unfinished replacement stays in {str(self.store)!r}"
            again = "; --overwrite starts again and removes it"
        else:
            left, again = f"{str(self.target)!r} is left incomplete", ""
        said = str(error).rstrip()
        return f"{said}{'' if said.endswith(('.', '!', '?')) else '.'} {left}: --resume finishes it if the input and the steps stay the same{again}."

    def create_level(self, level: int, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: np.dtype) -> ChunkFiles:
        """A pyramid level's array, created empty (a level a killed run left half
        written is written again whole): where its chunks go."""
        path = self.store / str(level)
        if isinstance(path, RemotePath):
            path.remove_tree()
        else:
            shutil.rmtree(path, ignore_errors=True)
        self.ome.write_array(path, shape, dtype, chunks, self.codec)
        files = open_chunk_files(path)
        assert files is not None  # the metadata written just now
        return files

    def level_done(self, level: int) -> None:
        """List levels 0 to ``level`` in the OME metadata."""
        _edit_attributes(self.store, lambda attrs: attrs.update(self.ome.attributes(level)))

    def prepare_levels(self, levels: int) -> None:
        """Before the pyramid is written: a resumed store loses the levels above
        ``levels`` an interrupted run (asked for more) left, and lists level 0 only
        until its levels are written again."""
        if self.resuming:
            _drop_levels(self.store, above=levels, ome=self.ome)

    def commit(self, files_written: int) -> str:
        """Mark the store complete (every chunk written) and put it in place."""
        _set_info(
            self.store,
            complete=True,
            files_written=files_written,
            seconds=round(time.time() - self.started, 3),
            finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        if self.replacing and isinstance(self.target, RemotePath):
            from batchproc.io.remote_store import replace

            replace(self.target, self.store)
        elif self.replacing:
            _replace(self.target, self.store)
        return str(self.target)


def store_chunks(shape: tuple[int, ...], chunks: tuple[int, ...]) -> tuple[int, ...]:
    """``chunks`` as the store keeps them: at most the array, at least 1."""
    return tuple(min(int(c), s) if s else 1 for c, s in zip(chunks, shape, strict=True))


@contextlib.contextmanager
def open_output(
    path: str | Path,
    *,
    shape: tuple[int, ...],
    dtype: np.dtype,
    chunks: tuple[int, ...],
    shards: tuple[int, ...] | None = None,
    axes: str | None = None,
    spacing: tuple[float, ...] | None = None,
    units: tuple[str | None, ...] | None = None,
    ome_version: str = "0.5",
    codec: str = "default",
    overwrite: bool = False,
    resume: bool = False,
    provenance: dict[str, Any] | None = None,
    layout_key: str | None = None,
    label_image: bool = False,
) -> Iterator[Output]:
    """The output store at ``path``, for this run alone while the context lasts.

    Everything is checked before anything is written: the dtype, codec and axes,
    that the folder exists and takes the name, that an existing output may be
    replaced (``overwrite``: only one batchproc wrote, or an empty folder) or
    resumed (``resume``: same shape, chunks, dtype and ``layout_key``). A new
    output is created marked incomplete and renamed into place at once (so that a
    resume finds it); a replacement is made beside the old output, which stays as
    it was until :meth:`Output.commit`.
    """
    ndim = len(shape)
    axes = axes or default_axes(ndim)
    spacing = tuple(float(s) for s in (spacing or (1.0,) * ndim))
    if len(axes) != ndim or len(spacing) != ndim or (units is not None and len(units) != ndim):
        raise BatchprocError(f"write: axes {axes!r}, spacing {spacing} and units must have one entry per dimension ({ndim}).")
    if np.dtype(dtype).name not in DATA_TYPES:
        raise BatchprocError(f"write: data of dtype {dtype} cannot be written; OME-Zarr output holds {', '.join(sorted(DATA_TYPES))}.")
    codec_metadata(codec, dtype)  # checked before anything is written
    chunks = store_chunks(shape, chunks)
    if shards is not None:
        shards = tuple(int(s) for s in shards)
        if len(shards) != ndim or any(s < c or s % c for s, c in zip(shards, chunks, strict=True)):
            raise BatchprocError(f"write: shards {shards} must be whole multiples of the chunks {chunks}, one per dimension.")
    ome = Ome(ome_version, axes, spacing, units, label_image)
    ome.check(shards)
    layout = layout_hash(shape, chunks, dtype, layout_key, shards) + ("" if ome.version == "0.5" else "-v2")
    where = local_or_remote(str(path)) if not isinstance(path, RemotePath) else path
    if isinstance(where, RemotePath):
        from batchproc.io.remote_store import check_writable

        check_writable(where)
        with _output_lock(where):
            yield _prepare_remote(
                where, layout, shape, np.dtype(dtype), chunks, shards, ome=ome, codec=codec, overwrite=overwrite, resume=resume, provenance=provenance
            )
        return
    target = where
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.exists():
        raise BatchprocError(f"output: the folder {str(parent)!r} does not exist.")
    extra = _ADDED_NEW if not target.exists() else (_ADDED_OVERWRITE if overwrite else _ADDED_RESUME)
    _check_name_length(parent, target.name, extra)
    with _output_lock(target):
        yield _prepare(
            target, parent, layout, shape, np.dtype(dtype), chunks, shards, ome=ome, codec=codec, overwrite=overwrite, resume=resume, provenance=provenance
        )


def _prepare(
    target: Path,
    parent: Path,
    layout: str,
    shape: tuple[int, ...],
    dtype: np.dtype,
    chunks: tuple[int, ...],
    shards: tuple[int, ...] | None,
    *,
    ome: Ome,
    codec: str,
    overwrite: bool,
    resume: bool,
    provenance: dict[str, Any] | None,
) -> Output:
    """:func:`open_output`'s decisions on the store, once its arguments are
    checked and the output is this run's alone."""
    _mend_replacement(parent, target)
    existing = read_store_info(target) if target.exists() else None
    # What an interrupted --overwrite left: its staging store, next to the output
    # it was to replace. Resuming the same job finishes it and then replaces.
    pending = _pending_replacement(parent, target.name, layout) if resume and existing is not None else None
    started = time.time()
    if pending is not None and (read_store_info(pending) or {}).get("complete"):
        _replace(target, pending)  # killed after finishing, before the swap
        return Output(target, target, _files(target), resuming=True, done=True, ome=ome, codec=codec, started=started)
    if target.exists() and resume and pending is None:
        _check_resumable(target, existing, layout)
        if existing.get("complete"):
            return Output(target, target, _files(target), resuming=True, done=True, ome=ome, codec=codec, started=started)
    elif target.exists() and pending is None:
        if not overwrite:
            _refuse_existing(target, existing)
        if existing is None and not (target.is_dir() and not any(target.iterdir())):
            raise BatchprocError(f"output: {str(target)!r} exists and is not a batchproc store; refusing to delete it.")
        if existing is None:  # an empty folder: nothing to keep, so the store goes in now, resumable
            target.rmdir()
    # (open_output checked that the parent exists: the lock is in it.)
    if not (target.exists() and resume) and not os.access(parent, os.W_OK):
        raise BatchprocError(f"output: the folder {str(parent)!r} is not writable.")

    store = target if pending is None else pending
    if pending is None and not (resume and existing):
        # The store is made whole (metadata, attributes, "complete: false") in a
        # hidden sibling: a kill at any moment leaves either no store or one that
        # says what it is. A new output is renamed into place now, so that
        # --resume finds it; one that replaces an existing output is computed in
        # the sibling and renamed at the end, so that a run that fails or is killed
        # leaves the old output as it was.
        for stale in _staged(parent, target.name):  # left by a kill or a failed --overwrite
            shutil.rmtree(stale, ignore_errors=True)
        store = parent / f".{target.name}{_STAGING}{uuid.uuid4().hex[:_STAGING_ID]}"
        # The metadata documents are written here, as zarr writes them (tests
        # compare), without importing zarr.
        _create_store(store, layout, shape, dtype, chunks, shards, ome=ome, codec=codec, provenance=provenance)
        if not target.exists():
            os.rename(store, target)
            store = target
    resuming = pending is not None or (resume and existing is not None)
    files = _files(store)
    if resuming:
        _remove_partial_writes(store / "0")
    return Output(target, store, files, resuming=resuming, done=False, ome=ome, codec=codec, started=started)


def _check_resumable(target: Path | RemotePath, existing: dict[str, Any] | None, layout: str) -> None:
    """Refuse to resume an output batchproc did not write, or that another job started."""
    if existing is None:
        raise BatchprocError(f"output: {str(target)!r} exists but is not a batchproc store; nothing to resume.")
    if existing.get("layout") != layout:
        raise BatchprocError(
            f"output: {str(target)!r} was started by a different job (shape, chunks, dtype, pipeline or input "
            "differ); resume refuses to mix them. Use --overwrite to start again."
        )


def _refuse_existing(target: Path | RemotePath, existing: dict[str, Any] | None) -> None:
    """An existing output is replaced only with --overwrite: say what it is."""
    if existing is None:
        state = "not a batchproc store"
    elif existing.get("complete"):
        state = "a complete batchproc store"
    else:
        state = "an incomplete batchproc store (use --resume to finish it)"
    raise BatchprocError(f"output: {str(target)!r} already exists and is {state}; use --overwrite to replace it.")


def _prepare_remote(
    target: RemotePath,
    layout: str,
    shape: tuple[int, ...],
    dtype: np.dtype,
    chunks: tuple[int, ...],
    shards: tuple[int, ...] | None,
    *,
    ome: Ome,
    codec: str,
    overwrite: bool,
    resume: bool,
    provenance: dict[str, Any] | None,
) -> Output:
    """:func:`_prepare` on an object store (see :mod:`batchproc.io.remote_store`)."""
    from batchproc.io import remote_store

    remote_store.mend(target)
    existing = read_store_info(target)
    present = existing is not None or target.is_dir()
    started = time.time()
    if present and resume:
        if existing is None:
            _check_resumable(target, existing, layout)
        pending = [s for s in remote_store.staged(target) if (read_store_info(s) or {}).get("layout") == layout]
        if pending:  # an interrupted --overwrite: finish its replacement, then put it in place
            store = pending[0]
            if (read_store_info(store) or {}).get("complete"):
                remote_store.replace(target, store)
                return Output(target, target, _files(target), resuming=True, done=True, ome=ome, codec=codec, started=started)
            return Output(target, store, _files(store), resuming=True, done=False, ome=ome, codec=codec, started=started)
        _check_resumable(target, existing, layout)
        return Output(target, target, _files(target), resuming=True, done=bool(existing.get("complete")), ome=ome, codec=codec, started=started)
    if present and not overwrite:
        _refuse_existing(target, existing)
    if present and existing is None:
        raise BatchprocError(f"output: {str(target)!r} exists and is not a batchproc store; refusing to delete it.")
    for stale in remote_store.staged(target):  # left by a failed or killed --overwrite
        stale.remove_tree()
    store = remote_store.new_staging(target) if present else target
    _create_store(store, layout, shape, dtype, chunks, shards, ome=ome, codec=codec, provenance=provenance)
    return Output(target, store, _files(store), resuming=False, done=False, ome=ome, codec=codec, started=started)


def _create_store(
    store: Path | RemotePath,
    layout: str,
    shape: tuple[int, ...],
    dtype: np.dtype,
    chunks: tuple[int, ...],
    shards: tuple[int, ...] | None,
    *,
    ome: Ome,
    codec: str,
    provenance: dict[str, Any] | None,
) -> None:
    """A new store's metadata documents, the group's last: marked incomplete."""
    ome.write_array(store / "0", shape, dtype, chunks, codec, shards)
    info = {
        "version": __version__,
        "complete": False,
        "layout": layout,
        "shape": list(shape),
        "dtype": str(dtype),
        "chunks": list(chunks),
        **({"shards": list(shards)} if shards else {}),
        "provenance": provenance or {},
    }
    ome.write_group(store, {**ome.attributes(0), "batchproc": info})


def _files(store: Path | RemotePath) -> ChunkFiles:
    # Every chunk gets a file, even one equal to the fill value, so that a chunk
    # on disk means "done" and resume recomputes only what was really missing.
    files = open_chunk_files(store / "0")
    if files is None:
        raise BatchprocError(f"output: {str(store / '0')!r} is not an array this version of batchproc writes; nothing to resume.")
    return files


#: The OME-Zarr versions written: 0.5 on zarr v3 (the default), 0.4 on zarr v2
#: for the viewers that read only that.
OME_VERSIONS = ("0.5", "0.4")
#: The units NGFF names (a subset of UDUNITS-2), by the spellings inputs use.
UNITS = {
    "nm": "nanometer",
    "um": "micrometer",
    "µm": "micrometer",
    "micron": "micrometer",
    "microns": "micrometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
    "meter": "meter",
    "s": "second",
    "sec": "second",
    "ms": "millisecond",
    "msec": "millisecond",
    "us": "microsecond",
    "usec": "microsecond",
    **{u: u for u in ("angstrom", "nanometer", "micrometer", "millimeter", "centimeter", "second", "millisecond", "microsecond", "minute", "hour")},
}


def ngff_unit(text: str | None) -> str | None:
    """The NGFF name of a unit as an input spells it (``mm``, ``micron``, ``µm``), or None."""
    return UNITS.get(text.strip().lower() if text.strip() not in ("µm", "\u03bcm") else "um") if isinstance(text, str) and text.strip() else None


class Ome:
    """How an output is laid out as OME-Zarr: its ``version`` (NGFF 0.5 on zarr v3,
    or 0.4 on zarr v2) and its axes (names, voxel sizes and, where known, units)."""

    def __init__(self, version: str, axes: str, spacing: tuple[float, ...], units: tuple[str | None, ...] | None = None, label_image: bool = False) -> None:
        if version not in OME_VERSIONS:
            raise BatchprocError(f"--ome-version must be one of {', '.join(OME_VERSIONS)}; got {version!r}.")
        self.version, self.axes, self.spacing, self.label_image = version, axes, spacing, label_image
        self.units = tuple(units) if units is not None else (None,) * len(axes)

    @property
    def zarr_format(self) -> int:
        return 3 if self.version == "0.5" else 2

    def check(self, shards: tuple[int, ...] | None) -> None:
        """Refuse, before anything is written, what this version cannot hold."""
        if self.zarr_format == 2 and shards is not None:
            raise BatchprocError("--ome-version 0.4 writes zarr v2, which has no shards; use --shards none, or OME-Zarr 0.5.")
        kinds = [_AXIS_TYPES.get(a, "space") for a in self.axes]
        order = {"time": 0, "channel": 1, "space": 2}
        if self.zarr_format == 2 and (not 2 <= len(self.axes) <= 5 or not 2 <= kinds.count("space") <= 3 or kinds != sorted(kinds, key=order.get)):
            raise BatchprocError(
                f"--ome-version 0.4 holds 2 to 5 axes, time first, then channel, then 2 or 3 spatial ones; this output's axes are {self.axes!r}."
            )

    def attributes(self, levels: int) -> dict[str, Any]:
        """The OME metadata listing levels 0 to ``levels``, as it goes into the
        group's attributes (0.5: under ``ome``; 0.4: at the top)."""
        spatial = [a not in _AXIS_TYPES for a in self.axes]
        datasets = []
        for level in range(levels + 1):
            scale = [s * (2**level if sp else 1) for s, sp in zip(self.spacing, spatial, strict=True)]
            datasets.append({"path": str(level), "coordinateTransformations": [{"type": "scale", "scale": scale}]})
        axes = [{"name": a, "type": _AXIS_TYPES.get(a, "space"), **({"unit": u} if u else {})} for a, u in zip(self.axes, self.units, strict=True)]
        # A label image (objects numbered, 0 the background) says so, for viewers.
        label = {"image-label": {"version": self.version}} if self.label_image else {}
        if self.version == "0.4":
            return {"multiscales": [{"version": "0.4", "name": "batchproc", "axes": axes, "datasets": datasets}], **label}
        return {"ome": {"version": "0.5", "multiscales": [{"name": "batchproc", "axes": axes, "datasets": datasets}], **({"image-label": {}} if label else {})}}

    def write_group(self, path: Path, attributes: dict[str, Any]) -> None:
        """The group's metadata documents, with ``attributes``."""
        if self.zarr_format == 3:
            _write_json(path / "zarr.json", {"attributes": attributes, "zarr_format": 3, "node_type": "group"})
        else:
            _write_json(path / ".zgroup", {"zarr_format": 2})
            _write_json(path / ".zattrs", attributes)

    def write_array(
        self, path: Path, shape: tuple[int, ...], dtype: np.dtype, chunks: tuple[int, ...], codec: str, shards: tuple[int, ...] | None = None
    ) -> None:
        """An array's metadata documents, as zarr writes them for these arguments."""
        path.mkdir(parents=True, exist_ok=True)
        if self.zarr_format == 3:
            _write_json(path / "zarr.json", _array_metadata(shape, dtype, chunks, codec, self.axes, shards))
            return
        dtype = np.dtype(dtype)
        compressor = None
        codecs = codec_metadata(codec, dtype)[1:]
        if codecs and codecs[0]["name"] == "blosc":
            c = codecs[0]["configuration"]
            compressor = {
                "id": "blosc",
                "cname": c["cname"],
                "clevel": c["clevel"],
                "shuffle": {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[c["shuffle"]],
                "blocksize": c["blocksize"],
            }
        elif codecs:
            compressor = {"id": "zstd", "level": codecs[0]["configuration"]["level"]}
        _write_json(
            path / ".zarray",
            {
                "zarr_format": 2,
                "shape": list(shape),
                "chunks": list(chunks),
                "dtype": dtype.newbyteorder("<").str if dtype.itemsize > 1 else dtype.str,
                "compressor": compressor,
                "fill_value": False if dtype.kind == "b" else (0.0 if dtype.kind == "f" else 0),
                "order": "C",
                "filters": None,
                "dimension_separator": "/",
            },
        )
        _write_json(path / ".zattrs", {"_ARRAY_DIMENSIONS": list(self.axes)})


def _drop_levels(store: Path, *, above: int, ome: Ome) -> None:
    """Remove the pyramid levels above ``above`` that an interrupted run (asked for
    more levels) left, and list level 0 only until the levels are written again."""
    if isinstance(store, RemotePath):
        from batchproc.io.remote_store import remove_levels_above

        remove_levels_above(store, above)
    else:
        for path in store.iterdir():
            if path.name.isdigit() and int(path.name) > above and read_metadata(path) is not None:
                shutil.rmtree(path)
    _edit_attributes(store, lambda attrs: attrs.update(ome.attributes(0)))
