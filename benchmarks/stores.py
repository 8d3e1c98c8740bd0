"""Stores: write and read throughput of a 3-D uint16 volume stored as a zarr v3 array
on the local disk, four ways, each without and with sharding:

  batchproc    batchproc's own chunk files (``batchproc.io.chunkfiles``): the
               array's zarr.json made by zarr-python, then
               ``open_chunk_files(root).write(index, block)`` per file (each
               chunk encoded with numcodecs in the calling thread; sharded, the
               whole shard by one task) and numpy-style reads.
  zarr         zarr-python 3, its default codec pipeline.
  zarrs        zarr-python with the ``zarrs`` codec pipeline (Rust), strict (no
               silent fall-back to zarr-python's pipeline).
  tensorstore  tensorstore's zarr3 driver (``sharding_indexed`` when sharded), its
               default context (the file kvstore fsyncs every write).
  tensorstore-nosync  the same with ``file_io_sync: false`` (no fsync, as the others).

Every path writes the same codecs (batchproc's default: bytes little-endian, blosc
lz4 clevel 5 bitshuffle; sharded: that inside ``sharding_indexed`` with a
bytes+crc32c index at the end, as zarr-python writes it) and fill value 0.

Volume: 128x1024x1024 uint16 (256 MiB), a smooth random field (gaussian σ=4, std
1000 around 8000) plus noise (σ=4), seed 0, made once and kept in memory. Layouts:
  default  chunks 32x256x256 (batchproc's default blocks here), shards 128x512x512
  small    chunks 16x64x64, shards 64x256x256
Writes: whole units (a shard when sharded, a chunk when not), contiguous numpy
blocks cut beforehand, from 2 threads (ThreadPoolExecutor(2)), one unit per task,
as batchproc's engine writes: ``array[box] = block`` for zarr-python and
tensorstore. Only the unit writes are timed (not creating the array's zarr.json),
each run into a fresh folder. Reads: the whole array in 32x256x256 boxes from 2
threads into one numpy array, right after the write (the files are in the page
cache: nothing is dropped). Every read is checked equal to what was written, and
zarr-python must read what batchproc's chunk files wrote. Within each repeat the
paths alternate (the machine is shared); the tables give medians.

The large variant (not with --small-only): 512x2048x2048 uint16 (4 GiB), default
layout, each write task makes its unit from the 256 MiB volume (tiled, a different
offset per tile), so memory stays small; the reads are timed into a discarded
block and then checked in a second, untimed pass.

zarrs and tensorstore are not batchproc's dependencies: run it from an environment
that has them (a path whose package is missing is reported as not installed):

    python3 -m venv /tmp/storebench && /tmp/storebench/bin/pip install -e . zarrs tensorstore
    /tmp/storebench/bin/python benchmarks/stores.py                  # 256 MiB, 3 repeats, then 4 GiB once
    /tmp/storebench/bin/python benchmarks/stores.py --small-only --repeat 5
    /tmp/storebench/bin/python benchmarks/stores.py --paths zarr,zarrs --layouts small

Writes results.md and results.json to --out (default benchmarks/results/stores).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

SHAPE = (128, 1024, 1024)
LARGE_SHAPE = (512, 2048, 2048)
READ_BOX = (32, 256, 256)
THREADS = 2
LAYOUTS = {"default": ((32, 256, 256), (128, 512, 512)), "small": ((16, 64, 64), (64, 256, 256))}
PATHS = ["batchproc", "zarr", "zarrs", "tensorstore", "tensorstore-nosync"]
AXES = ["z", "y", "x"]
BYTES_CODEC = {"name": "bytes", "configuration": {"endian": "little"}}
BLOSC = {"name": "blosc", "configuration": {"typesize": 2, "cname": "lz4", "clevel": 5, "shuffle": "bitshuffle", "blocksize": 0}}
ZARRS_CONFIG = {"codec_pipeline.path": "zarrs.ZarrsCodecPipeline", "codec_pipeline.strict": True}
ZARR_CONFIG = {"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}


class NotYet(Exception):
    """A path that cannot do this (yet): its row says why."""


# --------------------------------------------------------------------------- data


def make_volume(shape: tuple[int, ...] = SHAPE, seed: int = 0) -> np.ndarray:
    """A smooth random field (gaussian σ=4, std 1000 around 8000) plus noise (σ=4),
    uint16: compresses like measured data rather than like noise or constants."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    field = rng.standard_normal(shape, dtype=np.float32)
    ndimage.gaussian_filter(field, sigma=4, output=field)
    field *= np.float32(1000 / field.std())
    field += np.float32(8000)
    field += rng.normal(0, 4, shape).astype(np.float32)
    return np.clip(np.rint(field), 0, 65535).astype(np.uint16)


def boxes(shape: tuple[int, ...], unit: tuple[int, ...]) -> list[tuple[slice, ...]]:
    grid = [range(0, n, u) for n, u in zip(shape, unit, strict=True)]
    return [tuple(slice(a, min(a + u, n)) for a, u, n in zip(start, unit, shape, strict=True)) for start in itertools.product(*grid)]


def index_of(box: tuple[slice, ...], unit: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(s.start // u for s, u in zip(box, unit, strict=True))


class Tiled:
    """The large volume, never whole in memory: the base volume tiled, each tile
    plus its own offset (``tile number * 7``). A box must lie within one tile."""

    def __init__(self, base: np.ndarray, shape: tuple[int, ...]) -> None:
        self.base, self.shape, self.dtype = base, shape, base.dtype
        self.tiles = [n // b for n, b in zip(shape, base.shape, strict=True)]

    def __getitem__(self, box: tuple[slice, ...]) -> np.ndarray:
        tile = [s.start // b for s, b in zip(box, self.base.shape, strict=True)]
        local = tuple(slice(s.start - t * b, s.stop - t * b) for s, t, b in zip(box, tile, self.base.shape, strict=True))
        offset = int(np.ravel_multi_index(tile, self.tiles)) * 7
        return np.add(self.base[local], np.uint16(offset), dtype=np.uint16)


# --------------------------------------------------------------------------- paths
# Each path: create(folder, shape, chunks, shards) -> a writer; write(writer, box,
# block); open_reader(folder) -> a reader; read(reader, box) -> numpy array.


def zarr_create(folder: Path, shape: tuple[int, ...], chunks: tuple[int, ...], shards: tuple[int, ...] | None) -> Any:
    import zarr

    return zarr.create_array(
        store=str(folder), shape=shape, chunks=chunks, shards=shards, dtype="uint16", compressors=[BLOSC], fill_value=0, dimension_names=AXES
    )


def batchproc_create(folder: Path, shape: tuple[int, ...], chunks: tuple[int, ...], shards: tuple[int, ...] | None) -> Any:
    from batchproc.io.chunkfiles import open_chunk_files

    with _zarr_config(ZARR_CONFIG):
        zarr_create(folder, shape, chunks, None)
    files = open_chunk_files(folder)
    if files is None:
        raise RuntimeError(f"open_chunk_files does not take the zarr.json zarr-python wrote at {folder}")
    if getattr(files, "shards", None) is not None:
        raise RuntimeError(f"open_chunk_files reports shards {files.shards} for an unsharded array")
    return files


def batchproc_write(files: Any, box: tuple[slice, ...], block: np.ndarray) -> None:
    files.write(index_of(box, files.chunks), block)


def batchproc_sharded_create(folder: Path, shape: tuple[int, ...], chunks: tuple[int, ...], shards: tuple[int, ...] | None) -> Any:
    """The sharded array's zarr.json made by zarr-python, then batchproc's chunk
    files over it."""
    from batchproc.io.chunkfiles import open_chunk_files

    with _zarr_config(ZARR_CONFIG):
        zarr_create(folder, shape, chunks, shards)
    files = open_chunk_files(folder)
    if files is None or getattr(files, "shards", None) is None:
        raise NotYet("n/a (not yet)")
    if tuple(files.shards) != tuple(shards or ()):
        raise RuntimeError(f"open_chunk_files reports shards {files.shards}, the array has {shards}")
    return files


def batchproc_sharded_write(files: Any, box: tuple[slice, ...], block: np.ndarray) -> None:
    files.write(index_of(box, tuple(files.shards)), block)


def batchproc_open(folder: Path) -> Any:
    from batchproc.io.chunkfiles import open_chunk_files

    files = open_chunk_files(folder)
    if files is None:
        raise NotYet("n/a (not yet)")
    return files


def numpy_read(reader: Any, box: tuple[slice, ...]) -> np.ndarray:
    return reader[box]


@contextlib.contextmanager
def _zarr_config(config: dict[str, Any]) -> Iterator[None]:
    import zarr

    with zarr.config.set(config):
        yield


def zarr_path(config: dict[str, Any], pipeline: str) -> dict[str, Callable[..., Any]]:
    """zarr-python with the codec pipeline ``config`` names; the array objects are
    made (and so their pipeline chosen) inside it. The pipeline each array got is
    checked: a silent fall-back would measure the wrong thing."""

    def check(array: Any) -> Any:
        got = type(array._async_array.codec_pipeline).__name__
        if got != pipeline:
            raise RuntimeError(f"expected the {pipeline} codec pipeline, the array has {got}")
        return array

    def create(folder: Path, shape: tuple[int, ...], chunks: tuple[int, ...], shards: tuple[int, ...] | None) -> Any:
        with _zarr_config(config):
            return check(zarr_create(folder, shape, chunks, shards))

    def open_reader(folder: Path) -> Any:
        import zarr

        with _zarr_config(config):
            return check(zarr.open_array(str(folder), mode="r"))

    def write(array: Any, box: tuple[slice, ...], block: np.ndarray) -> None:
        array[box] = block

    return {"create": create, "write": write, "open": open_reader, "read": numpy_read, "config": lambda: config}


def ts_path(sync: bool | None) -> dict[str, Callable[..., Any]]:
    def kvstore(folder: Path) -> dict[str, Any]:
        spec: dict[str, Any] = {"driver": "file", "path": str(folder)}
        if sync is not None:
            spec["file_io_sync"] = sync
        return spec

    def create(folder: Path, shape: tuple[int, ...], chunks: tuple[int, ...], shards: tuple[int, ...] | None) -> Any:
        import tensorstore as ts

        inner = [BYTES_CODEC, BLOSC]
        if shards is None:
            grid, codecs = chunks, inner
        else:
            index = [BYTES_CODEC, {"name": "crc32c"}]
            sharding = {"chunk_shape": list(chunks), "codecs": inner, "index_codecs": index, "index_location": "end"}
            grid, codecs = shards, [{"name": "sharding_indexed", "configuration": sharding}]
        meta = {
            "shape": list(shape),
            "data_type": "uint16",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(grid)}},
            "chunk_key_encoding": {"name": "default"},
            "fill_value": 0,
            "codecs": codecs,
            "dimension_names": AXES,
        }
        return ts.open({"driver": "zarr3", "kvstore": kvstore(folder), "metadata": meta, "create": True, "delete_existing": True}).result()

    def write(store: Any, box: tuple[slice, ...], block: np.ndarray) -> None:
        store[box].write(block).result()  # the commit too

    def open_reader(folder: Path) -> Any:
        import tensorstore as ts

        return ts.open({"driver": "zarr3", "kvstore": kvstore(folder), "open": True}).result()

    def read(store: Any, box: tuple[slice, ...]) -> np.ndarray:
        return store[box].read().result()

    return {"create": create, "write": write, "open": open_reader, "read": read}


def path_functions(name: str, sharded: bool) -> dict[str, Callable[..., Any]]:
    if name == "batchproc":
        if sharded:
            return {"create": batchproc_sharded_create, "write": batchproc_sharded_write, "open": batchproc_open, "read": numpy_read}
        return {"create": batchproc_create, "write": batchproc_write, "open": batchproc_open, "read": numpy_read}
    if name == "zarr":
        return zarr_path(ZARR_CONFIG, "BatchedCodecPipeline")
    if name == "zarrs":
        return zarr_path(ZARRS_CONFIG, "ZarrsCodecPipeline")
    if name == "tensorstore":
        return ts_path(None)
    if name == "tensorstore-nosync":
        return ts_path(False)
    raise ValueError(name)


def missing_package(name: str) -> str | None:
    package = {"zarrs": "zarrs", "tensorstore": "tensorstore", "tensorstore-nosync": "tensorstore"}.get(name)
    if package is None:
        return None
    try:
        __import__(package)
    except ImportError:
        return f"n/a ({package} not installed)"
    return None


# --------------------------------------------------------------------------- runs


def files_and_bytes(folder: Path) -> tuple[int, int]:
    count = size = 0
    for top, _, names in os.walk(folder):
        for name in names:
            count += 1
            size += os.path.getsize(os.path.join(top, name))
    return count, size


def run_threads(function: Callable[[tuple[slice, ...]], Any], items: list[tuple[slice, ...]]) -> float:
    """``function`` over ``items`` on 2 threads; the wall seconds. Any error is raised."""
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        for _ in pool.map(function, items):
            pass
    return time.perf_counter() - start


def one_run(
    name: str,
    sharded: bool,
    folder: Path,
    data: Any,
    chunks: tuple[int, ...],
    shards: tuple[int, ...],
    units: dict[tuple[int, ...], np.ndarray] | None,
    check_zarr: bool,
) -> dict[str, Any]:
    """Write then read ``data`` through one path into ``folder`` (removed at the end).
    ``units``: the blocks to write, cut beforehand (None: each task cuts its own from
    ``data``, the large variant)."""
    fn = path_functions(name, sharded)
    unit = shards if sharded else chunks
    shape = tuple(data.shape)
    write_boxes = boxes(shape, unit)
    writer = fn["create"](folder, shape, chunks, shards if sharded else None)

    def write(box: tuple[slice, ...], writer: Any = writer) -> None:
        block = units[index_of(box, unit)] if units is not None else data[box]
        fn["write"](writer, box, block)

    write_s = run_threads(write, write_boxes)
    del writer
    count, size = files_and_bytes(folder)
    meta = json.loads((folder / "zarr.json").read_text())
    reader = fn["open"](folder)
    read_boxes = boxes(shape, READ_BOX)
    if isinstance(data, np.ndarray):
        out = np.empty(shape, np.uint16)

        def read(box: tuple[slice, ...]) -> None:
            out[box] = fn["read"](reader, box)

        read_s = run_threads(read, read_boxes)
        equal = bool(np.array_equal(out, data))
        del out
    else:  # the large volume: timed into a discarded block, then checked (untimed)
        read_s = run_threads(lambda box: fn["read"](reader, box), read_boxes)
        with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
            equal = all(pool.map(lambda box: bool(np.array_equal(fn["read"](reader, box), data[box])), read_boxes))
    result = {"write_s": write_s, "read_s": read_s, "files": count, "bytes": size, "equal": equal, "codecs": meta["codecs"], "chunk_grid": meta["chunk_grid"]}
    if check_zarr:  # what batchproc wrote, read by zarr-python
        import zarr

        with _zarr_config(ZARR_CONFIG):
            array = zarr.open_array(str(folder), mode="r")
            if isinstance(data, np.ndarray):
                result["zarr_reads_it"] = bool(np.array_equal(array[...], data))
            else:
                result["zarr_reads_it"] = all(bool(np.array_equal(array[box], data[box])) for box in read_boxes[:: max(1, len(read_boxes) // 64)])
    shutil.rmtree(folder, ignore_errors=True)
    if not equal:
        raise AssertionError(f"{name} {'sharded' if sharded else 'unsharded'}: what was read back differs from what was written")
    if result.get("zarr_reads_it") is False:
        raise AssertionError(f"{name}: zarr-python reads something else than what was written")
    return result


def measure(root: Path, data: Any, layouts: list[str], paths: list[str], repeat: int, cut_units: bool, label: str) -> list[dict[str, Any]]:
    """Every (layout, sharded, path) ``repeat`` times, the paths alternating within
    each repeat; a row per cell with the medians."""
    cells = [(layout, sharded, name) for layout in layouts for sharded in (False, True) for name in paths]
    runs: dict[tuple[str, bool, str], list[dict[str, Any]]] = {cell: [] for cell in cells}
    skipped: dict[tuple[str, bool, str], str] = {}
    for cell in cells:
        why = missing_package(cell[2])
        if why:
            skipped[cell] = why
    units_cache: dict[tuple[str, bool], dict[tuple[int, ...], np.ndarray]] = {}
    for rep in range(repeat):
        for layout, sharded in dict.fromkeys((c[0], c[1]) for c in cells):
            chunks, shards = LAYOUTS[layout]
            unit = shards if sharded else chunks
            units = None
            if cut_units:
                if (layout, sharded) not in units_cache:
                    units_cache.clear()  # one layout's blocks in memory at a time
                    units_cache[(layout, sharded)] = {index_of(box, unit): np.ascontiguousarray(data[box]) for box in boxes(data.shape, unit)}
                units = units_cache[(layout, sharded)]
            # the paths alternate; their order rotates from repeat to repeat
            order = paths[rep % len(paths) :] + paths[: rep % len(paths)]
            for name in order:
                cell = (layout, sharded, name)
                if cell in skipped:
                    continue
                folder = root / f"{label}-{layout}-{'sharded' if sharded else 'chunks'}-{name}-r{rep}"
                try:
                    got = one_run(name, sharded, folder, data, chunks, shards, units, check_zarr=(name == "batchproc" and rep == 0))
                except NotYet as why:
                    skipped[cell] = str(why)
                    shutil.rmtree(folder, ignore_errors=True)
                    continue
                runs[cell].append(got)
                print(
                    f"  [{label} r{rep}] {layout:7} {'sharded' if sharded else 'chunks ':7} {name:18} write {got['write_s']:6.2f} s  read {got['read_s']:6.2f} s  "
                    f"{got['files']} files",
                    flush=True,
                )
    mb = int(np.prod(data.shape)) * 2 / 1e6
    rows = []
    for layout, sharded, name in cells:
        chunks, shards = LAYOUTS[layout]
        row: dict[str, Any] = {
            "volume": label,
            "path": name,
            "layout": layout,
            "chunks": list(chunks),
            "shards": list(shards) if sharded else None,
            "sharded": sharded,
            "mb": mb,
        }
        got = runs[(layout, sharded, name)]
        if not got:
            row["skipped"] = skipped.get((layout, sharded, name), "n/a")
            rows.append(row)
            continue
        write_s = statistics.median(r["write_s"] for r in got)
        read_s = statistics.median(r["read_s"] for r in got)
        row.update(
            {
                "write_s": write_s,
                "write_mb_s": mb / write_s,
                "read_s": read_s,
                "read_mb_s": mb / read_s,
                "write_runs": [r["write_s"] for r in got],
                "read_runs": [r["read_s"] for r in got],
                "files": got[0]["files"],
                "bytes_on_disk": got[0]["bytes"],
                "ratio": mb * 1e6 / got[0]["bytes"],
                "equal": all(r["equal"] for r in got),
                "codecs": got[0]["codecs"],
                "chunk_grid": got[0]["chunk_grid"],
            }
        )
        if "zarr_reads_it" in got[0]:
            row["zarr_reads_it"] = got[0]["zarr_reads_it"]
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- report


def versions() -> dict[str, str]:
    got = {"python": platform.python_version()}
    for package in ("batchproc", "zarr", "zarrs", "tensorstore", "numcodecs", "numpy", "scipy"):
        try:
            got[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            got[package] = "not installed"
    here = Path(__file__).resolve().parent.parent
    with contextlib.suppress(Exception):
        head = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--", "batchproc"], capture_output=True, text=True, check=True).stdout.strip()
        got["batchproc_git"] = head + (" + uncommitted changes in batchproc/" if dirty else "")
    with contextlib.suppress(Exception):
        import hashlib

        from batchproc.io import chunkfiles

        source = Path(chunkfiles.__file__).read_bytes()
        got["batchproc_chunkfiles"] = f"sha256 {hashlib.sha256(source).hexdigest()[:12]}"
    return got


def normal_codecs(codecs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``codecs`` with the defaults a writer may leave out written in (sharding's
    ``index_location``), and the inner chunk shape left out (it differs by layout)."""
    got = []
    for codec in codecs:
        codec = json.loads(json.dumps(codec))
        if codec["name"] == "sharding_indexed":
            config = codec["configuration"]
            config.setdefault("index_location", "end")
            config.pop("chunk_shape", None)
            config["codecs"] = normal_codecs(config["codecs"])
            config["index_codecs"] = normal_codecs(config["index_codecs"])
        got.append(codec)
    return got


def machine() -> str:
    memory = ""
    with contextlib.suppress(Exception):
        import psutil

        memory = f", {psutil.virtual_memory().total / 2**30:.0f} GiB"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores{memory}, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def markdown(results: dict[str, Any]) -> str:
    v = results["versions"]
    lines = [
        f"Command: `{results['command']}`  ",
        f"Date: {results['date']}; {results['machine']}  ",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if k != "python") + "  ",
        f"zarr config: {json.dumps(results['zarr_config'])}",
        "",
        "Write: whole units (a chunk, or a shard when sharded) from 2 threads, one unit per task; read: the whole array in 32x256x256 boxes "
        "from 2 threads, right after the write (files in the page cache). Medians of the repeats; MB/s of uncompressed data (1 MB = 10^6 bytes). "
        "Files: every file under the array's folder, zarr.json included.",
        "",
    ]
    for label, rows in results["volumes"].items():
        lines += [
            f"{label}:",
            "",
            "| path | layout | sharded | write s | write MB/s | read s | read MB/s | files | on disk MB |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for row in rows:
            chunks = "x".join(map(str, row["chunks"]))
            layout = f"{row['layout']} ({chunks})"
            sharded = "x".join(map(str, row["shards"])) if row["sharded"] else "no"
            if "skipped" in row:
                sharded = "x".join(map(str, LAYOUTS[row["layout"]][1])) if row["sharded"] else "no"
                lines.append(f"| {row['path']} | {layout} | {sharded} | {row['skipped']} | | | | | |")
                continue
            lines.append(
                f"| {row['path']} | {layout} | {sharded} | {row['write_s']:.2f} | {row['write_mb_s']:.0f} | {row['read_s']:.2f} | {row['read_mb_s']:.0f} | "
                f"{row['files']} | {row['bytes_on_disk'] / 1e6:.0f} |"
            )
        lines.append("")
    checks = results.get("checks", [])
    if checks:
        lines += ["Checks:", ""] + [f"- {c}" for c in checks] + [""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell for the 256 MiB volume (medians)")
    parser.add_argument("--large-repeat", type=int, default=1, help="runs per cell for the 4 GiB volume")
    parser.add_argument("--small-only", action="store_true", help="the 256 MiB volume only (no 4 GiB variant)")
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--layouts", default="default,small")
    parser.add_argument("--shape", default="128,1024,1024", help="the in-memory volume (a smaller one for a quick try)")
    parser.add_argument("--dir", default=None, help="where the arrays are written (default: the temporary folder)")
    parser.add_argument("--out", default="benchmarks/results/stores")
    args = parser.parse_args()
    if args.repeat < 1 or args.large_repeat < 1:
        parser.error("--repeat and --large-repeat must be at least 1")
    paths = args.paths.split(",")
    layouts = args.layouts.split(",")
    for name in paths:
        if name not in PATHS:
            parser.error(f"--paths: {name!r} is not one of {', '.join(PATHS)}")
    for name in layouts:
        if name not in LAYOUTS:
            parser.error(f"--layouts: {name!r} is not one of {', '.join(LAYOUTS)}")
    import zarr

    results: dict[str, Any] = {
        "command": " ".join([sys.executable if "storebench" in sys.executable else "python", "benchmarks/stores.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "cpu_count": os.cpu_count(),
        "versions": versions(),
        "zarr_config": {k: zarr.config.get(k) for k in ("async.concurrency", "threading.max_workers", "array.write_empty_chunks")},
        "volumes": {},
    }
    print(f"{results['machine']}\n{results['versions']}", flush=True)
    root = Path(tempfile.mkdtemp(prefix="batchproc-stores-", dir=args.dir))
    started = time.perf_counter()
    try:
        t = time.perf_counter()
        shape = tuple(int(n) for n in args.shape.split(","))
        data = make_volume(shape)
        print(f"volume {shape} made in {time.perf_counter() - t:.1f} s", flush=True)
        label = f"{data.nbytes / 2**20:.0f} MiB ({'x'.join(map(str, shape))} uint16)"
        results["volumes"][label] = measure(root, data, layouts, paths, args.repeat, True, f"{data.nbytes >> 20}MiB")
        if not args.small_only:
            large = Tiled(data, LARGE_SHAPE)
            label = "4 GiB (512x2048x2048 uint16, default layout; each write task makes its unit)"
            results["volumes"][label] = measure(root, large, ["default"], paths, args.large_repeat, False, "4GiB")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = [row for rows in results["volumes"].values() for row in rows if "skipped" not in row]
    checks = [f"every path read back exactly what it wrote: {all(r['equal'] for r in rows)} ({len(rows)} cells)"]
    for row in rows:
        if "zarr_reads_it" in row:
            checks.append(
                f"zarr-python reads what batchproc's chunk files wrote ({row['volume']}, {row['layout']}, "
                f"{'sharded' if row['sharded'] else 'unsharded'}): {row['zarr_reads_it']}"
            )
    for sharded in (False, True):
        kinds = {json.dumps(normal_codecs(row["codecs"]), sort_keys=True) for row in rows if row["sharded"] == sharded}
        checks.append(f"{'sharded' if sharded else 'unsharded'}: the zarr.json codecs of every path are the same (defaults filled in): {len(kinds) <= 1}")
    results["checks"] = checks
    results["wall_s"] = time.perf_counter() - started
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "results.md").write_text(markdown(results))
    print(markdown(results))
    print(f"\nwritten to {out} ({results['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
