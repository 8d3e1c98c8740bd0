"""Reading and writing a zarr v3 array on a local disk chunk file by chunk file.

zarr-python reads and writes every chunk through its one event-loop thread, where
decoding each file in the thread that asks for it, straight into the block, reads
and writes in parallel (docs/design/architecture.md, "Output format", has the figures). For the
arrays that are simple enough (a regular grid, little- or big-endian bytes and at
most one of zstd, gzip, blosc, optionally inside zarr's ``sharding_indexed``
codec, no storage transformers) :func:`open_chunk_files` returns such a reader
and writer, from the array's ``zarr.json`` alone (zarr is not even imported);
anything else goes through zarr.

A sharded array keeps many chunks in one file (a shard) with an index of where
each lies at its end: a shard is read chunk by chunk (its index once, then only
the bytes of the chunks asked for) and written whole, by one writer.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from batchproc.errors import BatchprocError
from batchproc.io.remote import RemotePath

#: zarr v3 bytes-to-bytes codecs read here, by name, and the numcodecs codec that
#: decodes each (its stream describes itself: no configuration needed to decode).
_DECODERS = {"zstd": "Zstd", "gzip": "GZip", "blosc": "Blosc"}


class ChunkFiles:
    """An array-like over the chunk files of a zarr v3 array (see the module), which
    also writes them (:meth:`write`).

    ``chunks`` are the array's chunks, the unit it is read in; ``shards``, when it
    is sharded, the shape of the shards that hold them; ``file_shape`` the shape of a
    file either way, the unit it is written in. Only paths and numbers travel
    with it, so it pickles for the workers of a cluster."""

    def __init__(
        self,
        root: Path | RemotePath,
        shape: tuple[int, ...],
        dtype: np.dtype,
        chunks: tuple[int, ...],
        fill_value: Any,
        codec: str | None,
        key_prefix: str,
        separator: str,
        codec_config: dict[str, Any] | None = None,
        shards: tuple[int, ...] | None = None,
        index_checksum: bool = True,
    ) -> None:
        self.root, self.shape, self.dtype, self.chunks, self.shards = root, shape, dtype, chunks, shards
        self.ndim = len(shape)
        self.fill_value, self.codec, self.codec_config = fill_value, codec, codec_config or {}
        self.key_prefix, self.separator = key_prefix, separator
        self.index_checksum = index_checksum
        #: Every chunk was written (a store batchproc completed): one missing is damage, not the fill value.
        self.complete = False
        self._indexes: dict[tuple[int, ...], np.ndarray | None] = {}

    @property
    def file_shape(self) -> tuple[int, ...]:
        """The shape of one file: a shard, or a chunk when the array is not sharded."""
        return self.shards or self.chunks

    @property
    def per_shard(self) -> tuple[int, ...]:
        assert self.shards is not None
        return tuple(s // c for s, c in zip(self.shards, self.chunks, strict=True))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_indexes": {}}  # shard indexes are read again where it goes

    def write(self, index: tuple[int, ...], block: np.ndarray) -> None:
        """Write ``block`` as the file at ``index`` (a chunk, or a whole shard), whole
        or not at all: through a ``.partial`` file renamed into place, as zarr does.
        A block cut by the array's edge is padded with the fill value, as zarr
        stores it."""
        payload = self._encode_shard(block) if self.shards is not None else self._encode(block)
        path = self.file_path(index)
        if isinstance(path, RemotePath):  # one put: an object appears whole or not at all
            path.write_bytes(b"".join(payload) if isinstance(payload, list) else bytes(payload))
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
        with open(partial, "wb") as file:
            for part in payload if isinstance(payload, list) else [payload]:
                file.write(part)
        os.replace(partial, path)

    def _encode(self, chunk: np.ndarray) -> Any:
        """One chunk's bytes as stored (``chunk`` may be cut by the array's edge)."""
        if chunk.shape != self.chunks:
            full = np.full(self.chunks, self.fill_value, self.dtype)
            full[tuple(slice(0, n) for n in chunk.shape)] = chunk
            chunk = full
        data = np.ascontiguousarray(chunk, dtype=self.dtype)
        return _encoder(self.codec, self.codec_config).encode(data) if self.codec is not None else data.tobytes()

    def _encode_shard(self, block: np.ndarray) -> list[Any]:
        """A shard's bytes: its chunks one after the other in C order, then the
        index (offset and size of each, little-endian uint64) and its CRC-32C.
        Chunks wholly beyond the array's edge are left out (offset and size all
        ones, as zarr marks an absent chunk)."""
        import google_crc32c

        per = self.per_shard
        index = np.full((*per, 2), np.iinfo(np.uint64).max, "<u8")
        parts, offset = [], 0
        for local in np.ndindex(*per):
            lo = [i * c for i, c in zip(local, self.chunks, strict=True)]
            if any(a >= n for a, n in zip(lo, block.shape, strict=True)):
                continue
            data = self._encode(block[tuple(slice(a, a + c) for a, c in zip(lo, self.chunks, strict=True))])
            size = memoryview(data).nbytes
            index[local] = (offset, size)
            parts.append(data)
            offset += size
        table = index.tobytes()
        parts.append(table)
        if self.index_checksum:
            parts.append(np.uint32(google_crc32c.value(table)).astype("<u4").tobytes())
        return parts

    def file_path(self, index: tuple[int, ...]) -> Path:
        """The file at ``index`` of the grid of :attr:`file_shape`."""
        return self.root / (self.key_prefix + self.separator.join(map(str, index)))

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if Ellipsis in key:
            at = key.index(Ellipsis)
            key = key[:at] + (slice(None),) * (self.ndim - len(key) + 1) + key[at + 1 :]
        key = key + (slice(None),) * (self.ndim - len(key))
        if len(key) != self.ndim or not all(isinstance(k, (slice, int, np.integer)) for k in key):
            return self._box((slice(None),) * self.ndim)[key]  # fancy indexing: rare, read all
        # dask fuses slicing into the read (an int for a plane, a step): the box
        # around the selection is read, then indexed.
        box, rest = [], []
        for k, n in zip(key, self.shape, strict=True):
            if isinstance(k, slice):
                start, stop, step = k.indices(n)
                box.append(slice(start, max(start, stop)) if step > 0 else slice(0, n))
                rest.append(slice(None, None, step) if step > 0 else k)
            else:
                i = int(k) + n if k < 0 else int(k)
                box.append(slice(i, i + 1))
                rest.append(0)
        got = self._box(tuple(box))
        return got if all(r == slice(None, None, 1) for r in rest) else got[tuple(rest)]

    def _box(self, key: tuple[slice, ...]) -> np.ndarray:
        box = [k.indices(n)[:2] for k, n in zip(key, self.shape, strict=True)]
        out = np.empty([stop - start for start, stop in box], self.dtype.newbyteorder("="))
        spans = [range(start // c, -(-stop // c)) for (start, stop), c in zip(box, self.chunks, strict=True)]
        for index in itertools.product(*spans):
            lo = [i * c for i, c in zip(index, self.chunks, strict=True)]
            inside = tuple(slice(max(start, a) - a, min(stop, a + c) - a) for (start, stop), a, c in zip(box, lo, self.chunks, strict=True))
            into = tuple(slice(s.start + a - start, s.stop + a - start) for s, a, (start, _) in zip(inside, lo, box, strict=True))
            whole = all(s.stop - s.start == c for s, c in zip(inside, self.chunks, strict=True))
            self._read(index, out[into], inside, whole)
        return out

    def _read(self, index: tuple[int, ...], into: np.ndarray, inside: tuple[slice, ...], whole: bool) -> None:
        direct = whole and into.flags.c_contiguous and self.dtype.isnative
        if self.shards is None:
            path, span = self.file_path(index), None
        else:
            shard = tuple(i // p for i, p in zip(index, self.per_shard, strict=True))
            path, table = self.file_path(shard), self._shard_index(shard)
            local = tuple(i % p for i, p in zip(index, self.per_shard, strict=True))
            span = None if table is None else tuple(int(v) for v in table[local])
            if span is not None and span[0] == np.iinfo(np.uint64).max:  # absent from its shard: the fill value
                into[...] = self.fill_value
                return
        try:
            if isinstance(path, RemotePath):  # one request for the chunk
                raw = memoryview(path.read_bytes() if span is None else path.read_range(span[0], span[1]))
            else:
                with open(path, "rb", buffering=0) as file:
                    size = os.fstat(file.fileno()).st_size if span is None else span[1]
                    if span is not None:
                        file.seek(span[0])
                    if direct and self.codec is None and size == into.nbytes:
                        if len(_read_into(file, into.reshape(-1).view(np.uint8))) == size:  # straight into the block
                            return
                        file.seek(0 if span is None else span[0])
                    raw = _read_into(file, _read_buffer(size))
        except FileNotFoundError:  # never written: the fill value
            if self.complete:
                raise BatchprocError(
                    f"input: chunk file {str(path)!r} is missing from a store batchproc wrote and marked complete; the store is damaged."
                ) from None
            into[...] = self.fill_value
            return
        where = str(path) if span is None else f"{path}' (chunk {index}, bytes {span[0]}-{span[0] + span[1]})'"
        try:
            if span is not None and len(raw) != span[1]:
                raise ValueError(f"the shard ends after {len(raw)} of the chunk's {span[1]} bytes")
            if direct and self.codec is not None:
                _decode_whole(self.codec, raw, into.reshape(-1).view(np.uint8))  # straight into the block
                return
            data = _decoder(self.codec).decode(raw) if self.codec is not None else raw
            chunk = np.frombuffer(data, self.dtype).reshape(self.chunks)
        except Exception as error:  # a damaged or foreign file: name it
            kind = f"{self.codec} data" if self.codec else f"{np.prod(self.chunks)} {self.dtype} values"
            raise BatchprocError(f"input: chunk file {where!r} is not {kind} of a {self.chunks} chunk ({error}).") from None
        into[...] = chunk[inside]

    def _shard_index(self, shard: tuple[int, ...]) -> np.ndarray | None:
        """Where each chunk of ``shard`` lies in its file: ``(offset, size)`` per
        chunk; None when the shard was never written. Kept: a block reads many
        chunks of one shard."""
        if shard in self._indexes:
            return self._indexes[shard]
        path = self.file_path(shard)
        per = self.per_shard
        size = math.prod(per) * 16 + (4 if self.index_checksum else 0)
        try:
            if isinstance(path, RemotePath):  # one request: the object's last bytes
                raw, end = path.read_suffix(size)
            else:
                with open(path, "rb", buffering=0) as file:
                    end = os.fstat(file.fileno()).st_size
                    file.seek(max(0, end - size))
                    raw = bytes(_read_into(file, memoryview(bytearray(min(size, end)))))
            if end < size:
                raise BatchprocError(f"input: shard file {str(path)!r} is {end} bytes, too short for its index of {size} bytes; it is damaged.")
        except FileNotFoundError:
            if self.complete:
                raise BatchprocError(
                    f"input: shard file {str(path)!r} is missing from a store batchproc wrote and marked complete; the store is damaged."
                ) from None
            table = None
        else:
            table = np.frombuffer(raw[: math.prod(per) * 16], "<u8").reshape(*per, 2)
            if self.index_checksum:
                import google_crc32c

                if google_crc32c.value(raw[:-4]) != int(np.frombuffer(raw[-4:], "<u4")[0]):
                    raise BatchprocError(f"input: shard file {str(path)!r} has an index whose checksum does not match; it is damaged.")
            spans = table.reshape(-1, 2)
            present = spans[:, 0] != np.iinfo(np.uint64).max
            if present.any() and int((spans[present, 0] + spans[present, 1]).max()) > end - size:
                raise BatchprocError(f"input: shard file {str(path)!r} has an index that points past its end; it is damaged.")
        if len(self._indexes) >= 256:
            self._indexes.pop(next(iter(self._indexes)))
        self._indexes[shard] = table
        return table

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return ("batchproc-chunk-files", str(self.root), self.shape, str(self.dtype), self.chunks, self.shards)


#: Each thread's buffer for the chunk files it reads, kept: a new buffer per file
#: costs its page faults again (docs/concepts/memory.md, "Measured choices").
_BUFFERS = threading.local()


def _read_buffer(size: int) -> memoryview:
    buffer = getattr(_BUFFERS, "buffer", None)
    if buffer is None or len(buffer) < size:
        # numpy's memory (huge pages, where the system allows: one fault per 2 MB)
        buffer = _BUFFERS.buffer = np.empty(size, np.uint8)
    return memoryview(buffer)[:size]


def _read_into(file: Any, view: memoryview) -> memoryview:
    """``view`` filled from ``file`` as far as the file goes; what was read."""
    done = 0
    while done < len(view):
        got = file.readinto(view[done:])
        if not got:
            break
        done += got
    return view[:done]


#: Two marks for a block's last bytes: a stream that decodes to fewer bytes than the
#: block leaves the mark there (the decoders check only that it does not overflow).
_MARKS = (b"\xa5\x5a\xc3\x3c\x96\x69\x0f\xf0", b"\x5a\xa5\x3c\xc3\x69\x96\xf0\x0f")


def _decode_whole(codec: str, raw: Any, out: np.ndarray) -> None:
    """Decode ``raw`` into all of ``out`` (bytes), or raise: a short stream is named
    rather than leaving the end of the block as it was."""
    tail = out[-min(8, out.shape[0]) :]
    for mark in _MARKS:  # a block whose last bytes are the first mark is decoded again
        tail[:] = np.frombuffer(mark[: tail.shape[0]], np.uint8)
        _decoder(codec).decode(raw, out=out)
        if tail.tobytes() != mark[: tail.shape[0]]:
            return
    raise ValueError(f"it decodes to fewer than {out.shape[0]} bytes")


_CODECS: dict[Any, Any] = {}
_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


def _decoder(name: str) -> Any:
    if name not in _CODECS:
        import numcodecs

        _CODECS[name] = getattr(numcodecs, _DECODERS[name])()
    return _CODECS[name]


def _encoder(name: str, config: dict[str, Any]) -> Any:
    """numcodecs' codec writing what zarr's ``name`` codec with ``config`` reads."""
    key = (name, tuple(sorted(config.items())))
    if key not in _CODECS:
        import numcodecs

        if name == "blosc":
            codec = numcodecs.Blosc(cname=config["cname"], clevel=config["clevel"], shuffle=_SHUFFLE[config["shuffle"]], blocksize=config.get("blocksize", 0))
        elif name == "zstd":
            codec = numcodecs.Zstd(level=config["level"], checksum=config["checksum"])
        else:
            codec = numcodecs.GZip(level=config["level"])
        _CODECS[key] = codec
    return _CODECS[key]


#: zarr v3 data types read here (the core names, which are numpy's).
DATA_TYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64"}


def chunk_files(array: Any) -> ChunkFiles | None:
    """A :class:`ChunkFiles` reader for the zarr ``array``, or None when it is not
    one this module reads (then zarr reads it)."""
    from zarr.storage import LocalStore

    meta = getattr(array, "metadata", None)
    if getattr(meta, "zarr_format", None) not in (2, 3) or not isinstance(array.store, LocalStore):
        return None
    return open_chunk_files(Path(array.store.root) / array.path if array.path else Path(array.store.root))


def read_metadata(root: Path | RemotePath) -> dict[str, Any] | None:
    """The zarr metadata at ``root`` as a zarr v3 document: its ``zarr.json``, or a
    zarr v2 node's ``.zarray``/``.zgroup`` and ``.zattrs`` in v3 terms (with
    ``"zarr_format": 2`` kept, so the writer knows where attributes go); None when
    ``root`` holds neither."""
    import json

    try:
        meta = json.loads((root / "zarr.json").read_text())
    except (OSError, ValueError):  # (missing: FileNotFoundError, locally and on object stores)
        meta = None
    if isinstance(meta, dict) and meta.get("zarr_format") == 3:
        return meta
    for name, node in ((".zarray", "array"), (".zgroup", "group")):
        try:
            v2 = json.loads((root / name).read_text())
        except (OSError, ValueError):
            continue
        try:
            attrs = json.loads((root / ".zattrs").read_text())
        except (OSError, ValueError):
            attrs = {}
        if not isinstance(v2, dict) or v2.get("zarr_format") != 2:
            return None
        if node == "group":
            return {"zarr_format": 2, "node_type": "group", "attributes": attrs if isinstance(attrs, dict) else {}}
        return _v3_terms(v2, attrs if isinstance(attrs, dict) else {})
    return None


def _v3_terms(v2: dict[str, Any], attrs: dict[str, Any]) -> dict[str, Any] | None:
    """A zarr v2 array's ``.zarray`` as the v3 document of the same array, where
    this module can read it (C order, no filters, one of its compressors)."""
    try:
        dtype = np.dtype(v2["dtype"])
        compressor = v2.get("compressor")
        if v2.get("order", "C") != "C" or v2.get("filters") or dtype.name not in DATA_TYPES:
            return None
        codecs: list[dict[str, Any]] = [{"name": "bytes", "configuration": {"endian": "big" if dtype.byteorder == ">" else "little"}}]
        if compressor is not None:
            name = compressor.get("id")
            if name == "blosc":
                shuffle = {0: "noshuffle", 1: "shuffle", 2: "bitshuffle", -1: "shuffle"}[int(compressor.get("shuffle", 1))]
                config = {
                    "cname": compressor["cname"],
                    "clevel": compressor["clevel"],
                    "shuffle": shuffle,
                    "typesize": dtype.itemsize,
                    "blocksize": compressor.get("blocksize", 0),
                }
            elif name == "zstd":
                config = {"level": compressor.get("level", 0), "checksum": bool(compressor.get("checksum", False))}
            elif name == "gzip":
                config = {"level": compressor.get("level", 1)}
            else:
                return None
            codecs.append({"name": name, "configuration": config})
        return {
            "zarr_format": 2,
            "node_type": "array",
            "shape": v2["shape"],
            "data_type": dtype.name,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": v2["chunks"]}},
            "chunk_key_encoding": {"name": "v2", "configuration": {"separator": v2.get("dimension_separator", ".")}},
            "fill_value": v2.get("fill_value"),
            "codecs": codecs,
            "attributes": attrs,
        }
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def open_chunk_files(root: Path | RemotePath, meta: dict[str, Any] | None = None) -> ChunkFiles | None:
    """A :class:`ChunkFiles` for the zarr array at ``root`` (its metadata read
    here, without zarr, unless given: :func:`read_metadata`), or None when it is
    not one this module reads."""
    meta = read_metadata(root) if meta is None else meta
    try:
        if meta is None or meta.get("node_type") != "array" or meta.get("storage_transformers"):
            return None
        grid, encoding = meta["chunk_grid"], meta["chunk_key_encoding"]
        if grid.get("name") != "regular" or encoding.get("name") not in ("default", "v2") or meta["data_type"] not in DATA_TYPES:
            return None
        codecs = meta["codecs"]
        shape = tuple(int(n) for n in meta["shape"])
        chunks = tuple(int(n) for n in grid["configuration"]["chunk_shape"])
        shards, checksum = None, True
        if len(codecs) == 1 and codecs[0]["name"] == "sharding_indexed":
            sharding = codecs[0]["configuration"]
            index_names = [codec["name"] for codec in sharding.get("index_codecs", [])]
            index_endian = ((sharding.get("index_codecs") or [{}])[0].get("configuration") or {}).get("endian", "little")
            if sharding.get("index_location", "end") != "end" or index_names not in (["bytes"], ["bytes", "crc32c"]) or index_endian != "little":
                return None
            shards, chunks, checksum = chunks, tuple(int(n) for n in sharding["chunk_shape"]), index_names == ["bytes", "crc32c"]
            if len(shards) != len(chunks) or any(c < 1 or s % c for s, c in zip(shards, chunks, strict=True)):
                return None
            codecs = sharding["codecs"]
        names = [codec["name"] for codec in codecs]
        if not names or names[0] != "bytes" or len(names) > 2 or (len(names) == 2 and names[1] not in _DECODERS):
            return None
        dtype = np.dtype(meta["data_type"])
        if dtype.itemsize > 1:
            endian = (codecs[0].get("configuration") or {}).get("endian", "little")
            if endian not in ("little", "big"):
                return None
            dtype = dtype.newbyteorder("<" if endian == "little" else ">")
        separator = (encoding.get("configuration") or {}).get("separator", "/" if encoding["name"] == "default" else ".")
        fill = _fill_value(meta.get("fill_value"), dtype)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):  # not a document this module understands: zarr decides
        return None
    if not shape or len(chunks) != len(shape):
        return None
    prefix = "c" + separator if encoding["name"] == "default" else ""
    codec = codecs[1] if len(names) == 2 else {}
    return ChunkFiles(root, shape, dtype, chunks, fill, codec.get("name"), prefix, separator, codec.get("configuration"), shards, checksum)


def _fill_value(value: Any, dtype: np.dtype) -> Any:
    """A zarr v3 ``fill_value`` as a value of ``dtype`` (numbers, booleans, and for
    floats "NaN", "Infinity", "-Infinity" or the bits as "0x..." hex)."""
    if value is None:
        return dtype.type(0)
    if dtype.kind == "f" and isinstance(value, str):
        if value.startswith("0x"):
            if len(value) != 2 + 2 * dtype.itemsize:
                raise ValueError(value)
            return np.frombuffer(bytes.fromhex(value[2:]), dtype.newbyteorder(">"))[0].astype(dtype)
        return dtype.type({"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}[value])
    if dtype.kind == "b":
        if not isinstance(value, bool):
            raise ValueError(value)
        return np.bool_(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(value)
    if dtype.kind in "iu":  # a whole number the dtype holds, or zarr decides
        info = np.iinfo(dtype)
        if not isinstance(value, int) or not info.min <= value <= info.max:
            raise ValueError(value)
    return dtype.type(value)
