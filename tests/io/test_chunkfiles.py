"""zarr v3 arrays read chunk file by chunk file equal zarr's own reading of them;
the arrays this reader does not handle are read by zarr."""

from __future__ import annotations

import pickle
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, GzipCodec, ZstdCodec

import batchproc
from batchproc.errors import BatchprocError
from batchproc.io.chunkfiles import ChunkFiles, chunk_files

SHAPE, CHUNKS = (13, 30, 22), (4, 16, 8)  # edge chunks cut on every axis


def store(path: Path, data: np.ndarray, **options) -> zarr.Array:
    z = zarr.create_array(str(path), shape=data.shape, dtype=data.dtype, chunks=CHUNKS, **options)
    z[...] = data
    return z


@pytest.mark.parametrize(
    ("dtype", "options"),
    [
        ("uint16", {}),
        ("float32", {"compressors": ZstdCodec(level=3, checksum=True)}),
        ("int8", {"compressors": GzipCodec()}),
        ("float64", {"compressors": BloscCodec(cname="lz4", shuffle="bitshuffle")}),
        ("int32", {"compressors": None}),
        (">u2", {"serializer": BytesCodec(endian="big")}),
        ("bool", {}),
    ],
)
def test_reads_equal_zarr_for_any_blocks(tmp_path: Path, dtype: str, options: dict) -> None:
    data = (np.random.default_rng(1).random(SHAPE) * 100).astype(dtype)
    z = store(tmp_path / "a.zarr", data, **options)
    files = chunk_files(z)
    assert isinstance(files, ChunkFiles)
    files = pickle.loads(pickle.dumps(files))  # what a cluster's worker receives
    want = z[...]
    # one chunk, chunks cut at the edges, blocks across chunks, a single voxel
    for key in (np.s_[4:8, 16:30, 8:16], np.s_[12:13, 16:30, 16:22], np.s_[1:11, 3:29, 0:22], np.s_[5:6, 7:8, 9:10], np.s_[0:13, 0:30, 0:22]):
        got = files[key]
        assert got.dtype == want.dtype.newbyteorder("=") and np.array_equal(got, want[key]), key
    for chunks in (CHUNKS, (5, 9, 22), None):
        assert np.array_equal(batchproc.open(tmp_path / "a.zarr", chunks=chunks).compute(), want), chunks


def test_chunks_never_written_read_as_the_fill_value(tmp_path: Path) -> None:
    z = zarr.create_array(str(tmp_path / "a.zarr"), shape=SHAPE, dtype="float32", chunks=CHUNKS, fill_value=-7.5)
    z[0:4, 0:16, 0:8] = 1.0
    assert np.array_equal(chunk_files(z)[0:13, 0:30, 0:22], z[...])


def test_ome_zarr_written_by_batchproc_reads_back(tmp_path: Path) -> None:
    data = np.random.default_rng(2).integers(0, 4000, SHAPE).astype(np.uint16)
    batchproc.write(data, tmp_path / "out.zarr", chunks=CHUNKS)
    assert chunk_files(zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["0"]) is not None
    assert np.array_equal(batchproc.open(tmp_path / "out.zarr").compute(), data)


@pytest.mark.parametrize(
    "options",
    [
        {"compressors": (ZstdCodec(), Crc32cCodec())},
        {"shards": {"shape": (8, 32, 16), "index_location": "start"}},
    ],
    ids=["checksum codec", "shard index first"],
)
def test_other_arrays_are_read_by_zarr(tmp_path: Path, options: dict) -> None:
    data = np.random.default_rng(3).random(SHAPE).astype(np.float32)
    z = store(tmp_path / "a.zarr", data, **options)
    assert chunk_files(z) is None
    assert np.array_equal(batchproc.open(tmp_path / "a.zarr", chunks=(5, 9, 22)).compute(), data)


@pytest.mark.parametrize(
    ("dtype", "options"),
    [
        ("int16", {}),
        ("uint16", {"compressors": numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.BITSHUFFLE)}),
        (">f4", {"compressors": numcodecs.GZip(level=1), "chunk_key_encoding": {"name": "v2", "separator": "/"}}),
        ("bool", {"compressors": None}),
    ],
)
def test_zarr_v2_arrays_are_read_here_as_zarr_reads_them(tmp_path: Path, dtype: str, options: dict) -> None:
    data = (np.arange(np.prod(SHAPE)) % 97).astype(dtype).reshape(SHAPE)
    z = zarr.create_array(str(tmp_path / "a.zarr"), shape=SHAPE, dtype=data.dtype, chunks=CHUNKS, zarr_format=2, fill_value=0, **options)
    z[...] = data
    files = chunk_files(z)
    assert files is not None
    assert np.array_equal(files[0:13, 0:30, 0:22], z[...]) and np.array_equal(batchproc.open(tmp_path / "a.zarr").compute(), data)


def test_zarr_v2_arrays_with_filters_are_read_by_zarr(tmp_path: Path) -> None:
    data = np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE)
    z = zarr.create_array(str(tmp_path / "a.zarr"), shape=SHAPE, dtype=data.dtype, chunks=CHUNKS, zarr_format=2, filters=[numcodecs.Delta(dtype="i2")])
    z[...] = data
    assert chunk_files(z) is None
    assert np.array_equal(batchproc.open(tmp_path / "a.zarr").compute(), data)


def test_any_numpy_index_as_dask_fuses_it_into_the_read(tmp_path: Path) -> None:
    # A preview's plane (an int), steps, negative steps, Ellipsis, lists, None.
    data = np.random.default_rng(4).random(SHAPE).astype(np.float32)
    files = chunk_files(store(tmp_path / "a.zarr", data))
    for key in (
        5,
        -1,
        (slice(None), 3),
        (Ellipsis, 2),
        (1, slice(2, 20, 3), slice(None, None, -1)),
        np.s_[2:9, ..., 4:5],
        (np.int64(3), 2, 1),
        np.s_[[1, 2]],
        np.s_[3:3],
        np.s_[None, 1],
    ):
        assert np.array_equal(files[key], data[key]), key


@pytest.mark.parametrize(
    ("dtype", "options"),
    [
        ("uint16", {"compressors": BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")}),
        ("float32", {"compressors": ZstdCodec(level=3, checksum=True)}),
        ("int8", {"compressors": GzipCodec(level=1)}),
        ("float64", {"compressors": BloscCodec(cname="zstd", shuffle="shuffle")}),
        ("bool", {"compressors": None}),
        (">i4", {"serializer": BytesCodec(endian="big")}),
    ],
)
def test_chunks_written_here_read_back_by_zarr(tmp_path: Path, dtype: str, options: dict) -> None:
    data = (np.random.default_rng(5).random(SHAPE) * 100).astype(dtype)
    z = zarr.create_array(str(tmp_path / "a.zarr"), shape=SHAPE, dtype=dtype, chunks=CHUNKS, fill_value=0, **options)
    files = chunk_files(z)
    for index in np.ndindex(*(-(-s // c) for s, c in zip(SHAPE, CHUNKS, strict=True))):
        region = tuple(slice(i * c, min(s, (i + 1) * c)) for i, c, s in zip(index, CHUNKS, SHAPE, strict=True))
        files.write(index, data[region])
    assert np.array_equal(zarr.open_array(str(tmp_path / "a.zarr"), mode="r")[...], data)
    assert not list((tmp_path / "a.zarr").rglob("*.partial"))


@pytest.mark.parametrize("codec", ["default", "zstd", "none"])
def test_batchproc_writes_its_chunks_itself_and_zarr_reads_them(tmp_path: Path, codec: str) -> None:
    data = np.random.default_rng(6).integers(0, 4000, SHAPE).astype(np.uint16)
    batchproc.write(data, tmp_path / "out.zarr", chunks=CHUNKS, codec=codec)
    array = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["0"]
    assert chunk_files(array) is not None  # the stores batchproc makes are written here
    assert np.array_equal(array[...], data)


@pytest.mark.parametrize("options", [{}, {"compressors": None}], ids=["zstd", "raw"])
def test_a_damaged_chunk_file_is_named_with_exit_2(tmp_path: Path, options: dict) -> None:
    from typer.testing import CliRunner

    from batchproc.cli import app

    data = np.arange(np.prod(SHAPE), dtype=np.uint16).reshape(SHAPE)
    store(tmp_path / "in.zarr", data, **options)
    (tmp_path / "in.zarr" / "c" / "0" / "1" / "1").write_bytes(b"not a chunk")
    files = sorted(p.relative_to(tmp_path) for p in (tmp_path / "in.zarr").rglob("*"))
    result = CliRunner().invoke(app, ["run", str(tmp_path / "in.zarr"), str(tmp_path / "out.zarr"), "--step", "gaussian_filter:sigma=1", "-q"])
    assert result.exit_code == 2, result.output
    assert "c/0/1/1" in result.output and "is not" in result.output and "chunk" in result.output and "Traceback" not in result.output
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "in.zarr").rglob("*")) == files  # the input untouched
    # Over an existing output, --overwrite keeps it when the run fails.
    earlier = batchproc.write(np.ones(SHAPE, np.uint16), tmp_path / "earlier.zarr")
    kept = {p: p.read_bytes() for p in Path(earlier).rglob("*") if p.is_file()}
    result = CliRunner().invoke(app, ["run", str(tmp_path / "in.zarr"), earlier, "--step", "gaussian_filter:sigma=1", "--overwrite", "-q"])
    assert result.exit_code == 2, result.output
    assert {p: p.read_bytes() for p in Path(earlier).rglob("*") if p.is_file()} == kept


@pytest.mark.parametrize(
    ("data_type", "fill_value", "endian"),
    [("uint8", 300, "little"), ("uint16", -1, "little"), ("int16", 1.5, "little"), ("float32", "0x0000000000000000", "little"), ("float32", 0.0, "LITTLE")],
)
def test_metadata_this_reader_does_not_understand_goes_to_zarr(tmp_path: Path, data_type: str, fill_value, endian: str) -> None:
    # A fill value the dtype cannot hold, or an unknown byte order, is not guessed at.
    import json

    from batchproc.io.chunkfiles import open_chunk_files

    zarr.create_array(str(tmp_path / "a.zarr"), shape=(4, 4), chunks=(2, 2), dtype=data_type, compressors=None)
    meta = json.loads((tmp_path / "a.zarr" / "zarr.json").read_text())
    assert open_chunk_files(tmp_path / "a.zarr", meta) is not None
    meta["fill_value"] = fill_value
    meta["codecs"][0]["configuration"] = {"endian": endian}
    assert open_chunk_files(tmp_path / "a.zarr", meta) is None


@pytest.mark.parametrize("codec", ["zstd", "blosc", "gzip"])
def test_a_chunk_that_decodes_short_is_named(tmp_path: Path, codec: str) -> None:
    # A valid stream of half a chunk (a file from another array) would leave the
    # block's end as it was: the reader says so instead.
    import numcodecs

    compressors = {"zstd": ZstdCodec(), "blosc": BloscCodec(cname="lz4"), "gzip": GzipCodec()}[codec]
    data = np.arange(np.prod(SHAPE), dtype=np.uint16).reshape(SHAPE)
    z = store(tmp_path / "a.zarr", data, compressors=compressors)
    files = chunk_files(z)
    encoder = {"zstd": numcodecs.Zstd(), "blosc": numcodecs.Blosc(cname="lz4"), "gzip": numcodecs.GZip()}[codec]
    half = np.ones(int(np.prod(files.chunks)) // 2, np.uint16)
    files.file_path((0, 0, 0)).write_bytes(encoder.encode(half))
    with pytest.raises(BatchprocError, match="fewer than"):
        files[0 : files.chunks[0], 0 : files.chunks[1], 0 : files.chunks[2]]
    # A chunk whose last bytes happen to be the first mark reads whole.
    last = np.frombuffer(bytes.fromhex("a55ac33c96690ff0"), np.uint16)
    data[files.chunks[0] - 1, files.chunks[1] - 1, files.chunks[2] - 4 : files.chunks[2]] = last
    z = store(tmp_path / "b.zarr", data, compressors=compressors)
    box = tuple(slice(0, c) for c in files.chunks)
    assert np.array_equal(chunk_files(z)[box], data[box])


# ------------------------------------------------------------ shards

SHARDS = (8, 32, 16)  # 2 x 2 x 2 chunks; the array's edge cuts shards on every axis


@pytest.mark.parametrize(
    ("dtype", "options"),
    [
        ("uint16", {"compressors": BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")}),
        ("float32", {"compressors": ZstdCodec(level=3, checksum=False)}),
        ("int8", {"compressors": None}),
        (">i4", {"serializer": BytesCodec(endian="big")}),
        ("bool", {}),
    ],
)
def test_shards_written_here_read_back_by_zarr_and_here(tmp_path: Path, dtype: str, options: dict) -> None:
    data = (np.random.default_rng(7).random(SHAPE) * 100).astype(dtype)
    z = zarr.create_array(str(tmp_path / "a.zarr"), shape=SHAPE, dtype=dtype, chunks=CHUNKS, shards=SHARDS, fill_value=0, **options)
    files = chunk_files(z)
    assert files is not None and files.shards == SHARDS and files.chunks == CHUNKS and files.file_shape == SHARDS
    for index in np.ndindex(*(-(-s // u) for s, u in zip(SHAPE, SHARDS, strict=True))):
        region = tuple(slice(i * u, min(s, (i + 1) * u)) for i, u, s in zip(index, SHARDS, SHAPE, strict=True))
        files.write(index, data[region])
    assert len([p for p in (tmp_path / "a.zarr" / "c").rglob("*") if p.is_file()]) == 2 * 1 * 2  # one file a shard
    assert np.array_equal(zarr.open_array(str(tmp_path / "a.zarr"), mode="r")[...], data)
    reread = pickle.loads(pickle.dumps(files))
    for key in (np.s_[0:13, 0:30, 0:22], np.s_[3:9, 10:31, 5:17], np.s_[12:13, 29:30, 21:22]):
        assert np.array_equal(reread[key], data[key]), key


def test_shards_zarr_wrote_read_here_with_chunks_left_out(tmp_path: Path) -> None:
    # zarr leaves chunks equal to the fill value out of a shard (offset and size all ones).
    data = (np.random.default_rng(8).random(SHAPE) * 100).astype(np.float32)
    data[0:4, 0:16, 0:8] = -2.5
    z = zarr.create_array(str(tmp_path / "a.zarr"), shape=SHAPE, dtype="float32", chunks=CHUNKS, shards=SHARDS, fill_value=-2.5)
    z[...] = data
    files = chunk_files(z)
    assert files is not None and files.shards == SHARDS
    table = files._shard_index((0, 0, 0))
    assert int(table[0, 0, 0, 0]) == np.iinfo(np.uint64).max  # zarr did leave it out
    assert np.array_equal(files[0:13, 0:30, 0:22], data)
    assert np.array_equal(batchproc.open(tmp_path / "a.zarr", chunks=(5, 9, 22)).compute(), data)


@pytest.mark.parametrize("damage", ["cut", "index", "chunk"])
def test_a_damaged_shard_is_named(tmp_path: Path, damage: str) -> None:
    data = np.arange(np.prod(SHAPE), dtype=np.uint16).reshape(SHAPE)
    zarr.create_array(str(tmp_path / "a.zarr"), shape=SHAPE, dtype="uint16", chunks=CHUNKS, shards=SHARDS)[...] = data
    shard = tmp_path / "a.zarr" / "c" / "0" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    if damage == "cut":
        raw = raw[:40]
    elif damage == "index":
        raw[-10] ^= 0xFF
    else:
        raw[5:25] = b"x" * 20
    shard.write_bytes(bytes(raw))
    with pytest.raises(BatchprocError, match=r"c/0/0/0"):
        batchproc.open(tmp_path / "a.zarr").compute()
