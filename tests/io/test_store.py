"""The OME-Zarr writer: read back with ome-zarr and plain zarr; overwrite and
resume rules; nothing existing lost."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
import zarr

import batchproc
from batchproc.errors import BatchprocError


def test_round_trip_with_ome_zarr_and_zarr(tmp_path: Path, volume: np.ndarray) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    image = batchproc.Image(da.from_array(volume, chunks=(2, 20, 30)), "zyx", (2.5, 0.5, 0.5), "test")
    out = batchproc.write(image, tmp_path / "out.zarr", chunks=(3, 32, 32), levels=1, provenance={"pipeline": ["x"]})
    group = zarr.open_group(out, mode="r")
    assert np.array_equal(group["0"][:], volume) and group["0"].dtype == volume.dtype
    ome = group.attrs["ome"]
    assert ome["version"] == "0.5"
    assert ome["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] == [2.5, 0.5, 0.5]
    nodes = list(Reader(parse_url(out))())
    levels = nodes[0].data
    assert np.array_equal(np.asarray(levels[0]), volume) and np.asarray(levels[1]).shape == (3, 25, 35)
    info = batchproc.read_store_info(out)
    assert info["complete"] and info["provenance"] == {"pipeline": ["x"]}
    back = batchproc.open_image(out)
    assert back.spacing == (2.5, 0.5, 0.5) and back.axes == "zyx"


def test_existing_output_is_kept_without_overwrite(tmp_path: Path, volume: np.ndarray) -> None:
    out = batchproc.write(volume, tmp_path / "out.zarr")
    before = {p: p.read_bytes() for p in Path(out).rglob("*") if p.is_file()}
    with pytest.raises(BatchprocError, match="already exists.*--overwrite"):
        batchproc.write(volume + 1, out)
    assert before == {p: p.read_bytes() for p in Path(out).rglob("*") if p.is_file()}
    batchproc.write(volume + 1, out, overwrite=True)
    assert np.array_equal(zarr.open_array(out + "/0")[:], volume + 1)


def _store_bytes(store: str | Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(Path(store).rglob("*")) if p.is_file()}


def _fails_at_block(index: int):
    def block(x: np.ndarray, block_info=None) -> np.ndarray:
        if block_info[0]["chunk-location"][0] == index:
            raise BatchprocError("input: block 3 cannot be read.")
        return x + 1

    return block


@pytest.mark.parametrize("name", ["out.zarr", "run[1].zarr"])
def test_a_failed_overwrite_leaves_the_old_output(tmp_path: Path, volume: np.ndarray, name: str) -> None:
    """The replacement is computed beside the old store: blocks written before the
    failure never reach it, and the next write sweeps the leftovers."""
    out = batchproc.write(volume, tmp_path / name, chunks=(1, 25, 35))
    before = _store_bytes(out)
    failing = da.from_array(volume, chunks=(1, 25, 35)).map_blocks(_fails_at_block(3), dtype=volume.dtype)
    with pytest.raises(BatchprocError, match="block 3") as failed:
        batchproc.write(failing, out, chunks=(1, 25, 35), overwrite=True)
    # The message says what is left, the hidden replacement included, and how to go on.
    (staged,) = [p for p in tmp_path.iterdir() if p.name != name]
    assert f"{str(tmp_path / name)!r} is unchanged; its unfinished replacement stays in {str(staged)!r}" in str(failed.value)
    assert str(failed.value).endswith("--resume finishes it if the input and the steps stay the same; --overwrite starts again and removes it.")
    assert _store_bytes(out) == before
    assert batchproc.read_store_info(out)["complete"]
    batchproc.write(volume + 1, out, overwrite=True)
    assert np.array_equal(zarr.open_array(out + "/0")[:], volume + 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_a_failed_new_output_says_it_can_be_resumed(tmp_path: Path, volume: np.ndarray) -> None:
    failing = da.from_array(volume, chunks=(1, 25, 35)).map_blocks(_fails_at_block(3), dtype=volume.dtype)
    with pytest.raises(BatchprocError, match=r"block 3.* is left incomplete: --resume finishes it if the input and the steps stay the same\.$"):
        batchproc.write(failing, tmp_path / "new.zarr", chunks=(1, 25, 35))
    assert not batchproc.read_store_info(tmp_path / "new.zarr")["complete"]


def test_an_output_name_too_long_for_its_staging_is_refused_before_the_run(tmp_path: Path, volume: np.ndarray) -> None:
    # The swap of an --overwrite renames the staging store aside, 29 bytes longer
    # than the output's name: a name that leaves no room for that failed with a
    # plain OSError after the whole run, the finished replacement left hidden.
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    longest = "b" * (limit - 29 - len(".zarr")) + ".zarr"
    out = batchproc.write(volume, tmp_path / longest)
    batchproc.write(volume + 1, out, overwrite=True)
    assert np.array_equal(zarr.open_array(out + "/0")[:], volume + 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [longest]
    # A new output needs only its staging folder's 20 bytes; replacing it, 29.
    newest = "c" * (limit - 20 - len(".zarr")) + ".zarr"
    batchproc.write(volume, tmp_path / newest)
    with pytest.raises(BatchprocError, match=f"too long \\({limit - 20} bytes\\).*at most {limit - 29} bytes"):
        batchproc.write(volume + 1, tmp_path / newest, overwrite=True)
    with pytest.raises(BatchprocError, match=f"too long \\({limit - 19} bytes\\).*at most {limit - 20} bytes"):
        batchproc.write(volume, tmp_path / ("d" + newest))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([longest, newest])
    assert np.array_equal(zarr.open_array(str(tmp_path / newest / "0"))[:], volume)
    # Killed, it resumes: a resume adds only the lock beside it.
    from batchproc.io.store import _set_info

    _set_info(tmp_path / newest, complete=False)
    batchproc.write(volume, tmp_path / newest, resume=True)
    assert batchproc.read_store_info(tmp_path / newest)["complete"]


def test_an_interrupted_overwrite_resumes_then_replaces(tmp_path: Path, volume: np.ndarray) -> None:
    out = batchproc.write(volume, tmp_path / "out.zarr", layout_key="job-1")
    before = _store_bytes(out)
    batchproc.write(volume + 1, out, layout_key="job-2", overwrite=True, compute=False)
    assert _store_bytes(out) == before  # the old output stays until its replacement is whole
    with pytest.raises(BatchprocError, match="different job"):
        batchproc.write(volume + 2, out, layout_key="job-3", resume=True)
    batchproc.write(volume + 1, out, layout_key="job-2", resume=True)
    assert np.array_equal(zarr.open_array(out + "/0")[:], volume + 1)
    assert batchproc.read_store_info(out)["complete"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]


def _killed_in_replace(monkeypatch: pytest.MonkeyPatch, after_renames: int) -> None:
    """Make the swap of an --overwrite stop (as a kill would) after that many renames."""
    from batchproc.io import store as io_store

    real = io_store.os.rename
    done = []

    def rename(a, b):
        if len(done) >= after_renames:
            raise KeyboardInterrupt("killed")
        done.append(b)
        real(a, b)

    def replace(target, store):
        monkeypatch.setattr(io_store.os, "rename", rename)
        try:
            real_replace(target, store)
        finally:
            monkeypatch.setattr(io_store.os, "rename", real)

    real_replace = io_store._replace
    monkeypatch.setattr(io_store, "_replace", replace)


@pytest.mark.parametrize("after_renames", [0, 1])
def test_a_kill_in_the_swap_loses_neither_output(tmp_path: Path, volume: np.ndarray, monkeypatch: pytest.MonkeyPatch, after_renames: int) -> None:
    """Killed once the new store is complete: before the old one is moved aside
    (resume swaps them), or between the two renames (the next write of that output,
    whatever it is, first puts the complete new store in place)."""
    out = str(tmp_path / "out.zarr")
    batchproc.write(volume, out, chunks=(1, 25, 35), layout_key="job-1")
    _killed_in_replace(monkeypatch, after_renames)
    with pytest.raises(KeyboardInterrupt):
        batchproc.write(volume + 1, out, chunks=(1, 25, 35), layout_key="job-2", overwrite=True)
    monkeypatch.undo()
    assert Path(out).exists() == (after_renames == 0)
    # Nothing is left to compute: data that cannot be computed proves it.
    failing = da.from_array(volume + 1, chunks=(1, 25, 35)).map_blocks(_fails_at_block(0), dtype=volume.dtype)
    batchproc.write(failing, out, chunks=(1, 25, 35), layout_key="job-2", resume=True)
    assert np.array_equal(zarr.open_array(out + "/0")[:], volume + 1)
    assert batchproc.read_store_info(out)["complete"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]


def test_an_old_output_moved_aside_comes_back_when_its_replacement_is_gone(tmp_path: Path, volume: np.ndarray) -> None:
    out = batchproc.write(volume, tmp_path / "out.zarr")
    before = _store_bytes(out)
    Path(out).rename(tmp_path / ".out.zarr.batchproc-0123abcd-replaced")  # the new store never made it
    with pytest.raises(BatchprocError, match="already exists"):
        batchproc.write(volume + 1, out)
    assert _store_bytes(out) == before


def test_an_interrupted_overwrite_of_an_empty_folder_resumes(tmp_path: Path, volume: np.ndarray) -> None:
    (tmp_path / "out.zarr").mkdir()
    batchproc.write(volume, tmp_path / "out.zarr", overwrite=True, compute=False)
    assert not batchproc.read_store_info(tmp_path / "out.zarr")["complete"]
    batchproc.write(volume, tmp_path / "out.zarr", resume=True)
    assert np.array_equal(zarr.open_array(str(tmp_path / "out.zarr" / "0"))[:], volume)


def test_a_second_run_on_the_same_output_is_refused(tmp_path: Path, volume: np.ndarray) -> None:
    # Two runs on one store would delete each other's staging folder or mix their
    # chunks: a lock names the run that holds it; a dead run's lock is taken over.
    import socket
    import subprocess
    import sys

    out = tmp_path / "out.zarr"
    lock = tmp_path / ".out.zarr.batchproc.lock"
    lock.write_text(f"{os.getpid()} {socket.gethostname()}")  # a live run: this very process
    with pytest.raises(BatchprocError, match="being written by another batchproc run"):
        batchproc.write(volume, out)
    assert not out.exists()
    from typer.testing import CliRunner

    from batchproc.cli import app

    source = batchproc.write(volume, tmp_path / "in.zarr")
    result = CliRunner().invoke(app, ["run", source, str(out), "--step", "gaussian_filter:sigma=1", "-q"])
    assert result.exit_code == 2 and "another batchproc run" in result.output and "Traceback" not in result.output
    assert not out.exists()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, timeout=60)
    lock.write_text(f"{gone.stdout.strip()} {socket.gethostname()}")
    batchproc.write(volume, out)
    assert np.array_equal(zarr.open_array(str(out / "0"))[:], volume)
    assert not lock.exists()


def test_overwrite_may_read_the_output_it_replaces(tmp_path: Path, volume: np.ndarray) -> None:
    out = batchproc.write(volume, tmp_path / "out.zarr", chunks=(2, 25, 35))
    batchproc.write(batchproc.ndimage.gaussian_filter(batchproc.open(out), 1.0), out, overwrite=True)
    assert np.array_equal(zarr.open_array(out + "/0")[:], ndi.gaussian_filter(volume, 1.0))


def test_overwrite_never_deletes_a_foreign_folder(tmp_path: Path, volume: np.ndarray) -> None:
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("do not delete")
    with pytest.raises(BatchprocError, match="not a batchproc store; refusing"):
        batchproc.write(volume, precious, overwrite=True)
    assert (precious / "chapter1.tex").read_text() == "do not delete"


def test_unwritable_output_folder(tmp_path: Path, volume: np.ndarray) -> None:
    with pytest.raises(BatchprocError, match="does not exist"):
        batchproc.write(volume, tmp_path / "nope" / "out.zarr")


def test_resume_writes_only_missing_chunks(tmp_path: Path, volume: np.ndarray) -> None:
    out = tmp_path / "out.zarr"
    x = da.from_array(volume, chunks=(1, 25, 35))
    batchproc.write(x, out, chunks=(1, 25, 35), layout_key="job-1")
    chunk_files = sorted((out / "0" / "c").rglob("*"))
    chunk_files = [p for p in chunk_files if p.is_file()]
    # Simulate an interruption: half the chunks lost, the store not complete.
    for p in chunk_files[::2]:
        p.unlink()
    from batchproc.io.store import _set_info

    _set_info(out, complete=False)
    untouched = {p: p.stat().st_mtime_ns for p in chunk_files[1::2]}
    batchproc.write(x, out, chunks=(1, 25, 35), layout_key="job-1", resume=True)
    info = batchproc.read_store_info(out)
    assert info["complete"] and info["files_written"] == len(chunk_files[::2])
    assert untouched == {p: p.stat().st_mtime_ns for p in untouched}
    assert np.array_equal(zarr.open_array(str(out / "0"))[:], volume)


def test_resume_after_a_kill_while_writing_a_pyramid_level(tmp_path: Path, volume: np.ndarray) -> None:
    # Killed while level 1 was being written: every level-0 chunk on disk, level 1
    # half there, the store not complete. Resume writes the levels again (they
    # come from level 0); it failed on zarr's "array exists".
    out = tmp_path / "out.zarr"
    batchproc.write(volume, out, chunks=(2, 16, 16), levels=2, layout_key="job-1")
    want = [zarr.open_array(str(out / str(level)))[:] for level in range(3)]
    from batchproc.io.store import _set_info

    _set_info(out, complete=False)
    shutil.rmtree(out / "2")
    level1 = [p for p in sorted((out / "1" / "c").rglob("*")) if p.is_file()]
    for p in level1[::2]:
        p.unlink()
    level1[1].write_bytes(b"torn")  # a level's chunks are rewritten, not trusted
    batchproc.write(volume, out, chunks=(2, 16, 16), levels=2, layout_key="job-1", resume=True)
    info = batchproc.read_store_info(out)
    assert info["complete"] and info["files_written"] == 0
    assert all(np.array_equal(zarr.open_array(str(out / str(level)))[:], w) for level, w in enumerate(want))
    assert len(zarr.open_group(str(out)).attrs["ome"]["multiscales"][0]["datasets"]) == 3
    # Resumed with fewer levels than the killed run asked for: its higher levels go.
    _set_info(out, complete=False)
    batchproc.write(volume, out, chunks=(2, 16, 16), levels=1, layout_key="job-1", resume=True)
    assert sorted(p.name for p in out.iterdir()) == ["0", "1", "zarr.json"]
    assert len(zarr.open_group(str(out)).attrs["ome"]["multiscales"][0]["datasets"]) == 2
    _set_info(out, complete=False)
    batchproc.write(volume, out, chunks=(2, 16, 16), levels=0, layout_key="job-1", resume=True)
    assert sorted(p.name for p in out.iterdir()) == ["0", "zarr.json"]
    assert len(zarr.open_group(str(out)).attrs["ome"]["multiscales"][0]["datasets"]) == 1
    assert batchproc.read_store_info(out)["complete"]


def test_resume_refuses_another_job(tmp_path: Path, volume: np.ndarray) -> None:
    out = tmp_path / "out.zarr"
    batchproc.write(volume, out, layout_key="job-1")
    with pytest.raises(BatchprocError, match="different job"):
        batchproc.write(volume, out, layout_key="job-2", resume=True)


def test_bad_codec(tmp_path: Path, volume: np.ndarray) -> None:
    with pytest.raises(BatchprocError, match="codec"):
        batchproc.write(volume, tmp_path / "o.zarr", codec="gzip9000")


def _chunk_bytes(store: Path) -> dict[str, bytes]:
    """The store's chunk files (a write a kill cut short leaves a ``.partial`` file, not a chunk)."""
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted((store / "0" / "c").rglob("*")) if p.is_file() and not p.name.endswith(".partial")}


@pytest.mark.slow
@pytest.mark.parametrize("shards", [None, "16,96,96"], ids=["chunks", "shards"])
def test_run_killed_with_sigkill_resumes_to_identical_bytes(tmp_path: Path, shards: str | None) -> None:
    """SIGKILL the CLI when about half the files (chunks, or shards) are on disk;
    ``--resume`` writes only the missing ones, and every file equals an
    uninterrupted run's."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import tifffile

    tifffile.imwrite(tmp_path / "v.tif", np.random.default_rng(12).integers(0, 255, size=(64, 192, 192)).astype(np.uint8))
    base = [sys.executable, "-m", "batchproc.cli", "run", str(tmp_path / "v.tif")]
    steps = ["--step", "median_filter:size=5", "--step", "threshold:above=128", "--chunks", "8,48,48", "-q"]
    total = 8 * 4 * 4
    # A block a file: files are written one block at a time, each after its median
    # (one block of the whole volume writes all its files within milliseconds).
    env = {**os.environ, "DASK_BATCHPROC__BLOCK_BYTES": str(8 * 48 * 48)}
    if shards is not None:
        steps += ["--shards", shards]
        total = 4 * 2 * 2
        env["DASK_BATCHPROC__BLOCK_BYTES"] = str(16 * 96 * 96)
    job = subprocess.Popen([*base, str(tmp_path / "killed.zarr"), *steps], stderr=subprocess.PIPE, env=env)
    chunks = tmp_path / "killed.zarr" / "0" / "c"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and job.poll() is None:
        if chunks.exists() and sum(1 for p in chunks.rglob("*") if p.is_file() and not p.name.endswith(".partial")) >= total // 2:
            break
        time.sleep(0.005)
    assert job.poll() is None, "the run ended before it could be killed"
    os.kill(job.pid, signal.SIGKILL)
    job.wait(timeout=30)
    assert batchproc.io.read_store_info(tmp_path / "killed.zarr")["complete"] is False
    on_disk = len(_chunk_bytes(tmp_path / "killed.zarr"))
    assert total // 2 <= on_disk < total

    again = subprocess.run([*base, str(tmp_path / "killed.zarr"), *steps], capture_output=True, text=True, timeout=60, env=env)
    assert again.returncode == 2 and "--resume" in again.stderr  # an incomplete store is not silently replaced
    resumed = subprocess.run([*base, str(tmp_path / "killed.zarr"), *steps, "--resume"], capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr
    info = batchproc.io.read_store_info(tmp_path / "killed.zarr")
    assert info["complete"] is True
    assert info["files_written"] == total - on_disk
    whole = subprocess.run([*base, str(tmp_path / "whole.zarr"), *steps], capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr
    assert _chunk_bytes(tmp_path / "killed.zarr") == _chunk_bytes(tmp_path / "whole.zarr")
    assert not list((tmp_path / "killed.zarr").rglob("*.partial"))


@pytest.mark.parametrize("codec", ["blosc-lz4", "zstd", "none"])
@pytest.mark.parametrize("dtype", ["bool", "uint8", "int16", "uint16", "int64", "float32", "float64"])
def test_array_metadata_is_what_zarr_writes(tmp_path: Path, codec: str, dtype: str) -> None:
    # The writer makes its stores' zarr.json itself, without importing zarr (and
    # hands zarr the same codecs where zarr writes: pyramid levels, the benchmark).
    import json

    from zarr.codecs import BloscCodec, ZstdCodec

    from batchproc.io.store import _array_metadata, compressors

    # What each codec name means, said in zarr's own codec objects.
    meant = {"blosc-lz4": (BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle"),), "zstd": (ZstdCodec(level=3),), "none": ()}[codec]
    zarr.create_array(str(tmp_path / "z"), shape=(5, 6, 7), chunks=(2, 3, 7), dtype=dtype, compressors=meant, fill_value=0, dimension_names=list("zyx"))
    want = json.loads((tmp_path / "z" / "zarr.json").read_text())
    assert _array_metadata((5, 6, 7), np.dtype(dtype), (2, 3, 7), codec, "zyx") == want
    zarr.create_array(
        str(tmp_path / "w"), shape=(5, 6, 7), chunks=(2, 3, 7), dtype=dtype, compressors=compressors(codec, dtype), fill_value=0, dimension_names=list("zyx")
    )
    assert json.loads((tmp_path / "w" / "zarr.json").read_text()) == want
    # zarr v2 (OME-Zarr 0.4): the same codec as numcodecs names it.
    import numcodecs

    from batchproc.io.store import Ome

    meant_v2 = {"blosc-lz4": numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.BITSHUFFLE), "zstd": numcodecs.Zstd(level=3), "none": None}[codec]
    zarr.create_array(
        str(tmp_path / "v2"),
        shape=(5, 6, 7),
        chunks=(2, 3, 7),
        dtype=dtype,
        compressors=meant_v2,
        fill_value=0,
        zarr_format=2,
        chunk_key_encoding={"name": "v2", "separator": "/"},
    )
    Ome("0.4", "zyx", (1.0,) * 3).write_array(tmp_path / "ours", (5, 6, 7), np.dtype(dtype), (2, 3, 7), codec)
    assert json.loads((tmp_path / "ours" / ".zarray").read_text()) == json.loads((tmp_path / "v2" / ".zarray").read_text())


def test_a_zarr_to_zarr_run_does_not_import_zarr(tmp_path: Path, volume: np.ndarray, imported_after_cli) -> None:
    source = batchproc.write(volume, tmp_path / "in.zarr", chunks=(2, 25, 35))
    run = ["run", source, str(tmp_path / "out.zarr"), "--step", "gaussian_filter:sigma=1", "-q"]
    assert imported_after_cli([run], ["zarr"]) == {"zarr": False}
    assert np.array_equal(zarr.open_array(str(tmp_path / "out.zarr" / "0"))[:], ndi.gaussian_filter(volume, 1.0))
    assert batchproc.read_store_info(tmp_path / "out.zarr")["complete"]


def test_a_dtype_ome_zarr_cannot_hold_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(BatchprocError, match="complex64 cannot be written"):
        batchproc.write(np.zeros((3, 4), np.complex64), tmp_path / "c.zarr")
    assert not list(tmp_path.iterdir())


def test_write_shards_on_request_and_where_chunks_are_many(tmp_path: Path) -> None:
    data = np.random.default_rng(18).integers(0, 100, (32, 40, 48)).astype(np.uint8)
    asked = batchproc.write(data, tmp_path / "asked.zarr", chunks=(2, 8, 8), shards=(4, 16, 16))
    array = zarr.open_array(str(Path(asked) / "0"), mode="r")
    assert (array.chunks, array.shards) == ((2, 8, 8), (4, 16, 16)) and np.array_equal(array[...], data)
    many = batchproc.write(data, tmp_path / "many.zarr", chunks=(1, 2, 2))  # 15,360 chunks
    array = zarr.open_array(str(Path(many) / "0"), mode="r")
    files = sum(1 for p in (Path(many) / "0" / "c").rglob("*") if p.is_file())
    assert array.shards is not None and files <= 10_000 and np.array_equal(array[...], data)
    never = batchproc.write(data, tmp_path / "never.zarr", chunks=(1, 2, 2), shards=False, compute=False)  # the layout alone
    assert zarr.open_array(str(Path(never) / "0"), mode="r").shards is None


# ------------------------------------------------------------ OME-Zarr 0.4 and 0.5


def _cli(*args: object):
    from typer.testing import CliRunner

    from batchproc.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_both_ome_versions_open_in_ome_zarr_and_napari(tmp_path: Path, ct_series_folder: Path, version: str) -> None:
    """A real DICOM series through a run: axes z, y, x in millimetres at the
    series' spacing, two levels, read by ome-zarr's reader and by napari's
    OME-Zarr reader plugin (its reader function, no window)."""
    from napari_ome_zarr._reader import napari_get_reader
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    image = batchproc.open_image(ct_series_folder)
    want = ndi.gaussian_filter(image.data.compute(), 1)
    out = tmp_path / "ct.ome.zarr"
    result = _cli("run", ct_series_folder, out, "--step", "gaussian_filter:sigma=1", "--levels", "1", "--ome-version", version, "-q")
    assert result.exit_code == 0, result.output
    assert (out / ("zarr.json" if version == "0.5" else ".zgroup")).is_file() and (out / "0" / ("zarr.json" if version == "0.5" else ".zarray")).is_file()

    node = list(Reader(parse_url(str(out)))())[0]
    multiscales = node.metadata
    assert [a["name"] for a in multiscales["axes"]] == ["z", "y", "x"]
    assert [a.get("unit") for a in multiscales["axes"]] == ["millimeter"] * 3
    assert np.array_equal(np.asarray(node.data[0]), want) and len(node.data) == 2
    assert multiscales["coordinateTransformations"][0][0]["scale"] == list(image.spacing)  # per level, level 0

    read = napari_get_reader(str(out))
    assert read is not None
    (data, meta, kind), *_ = read(str(out))
    assert kind == "image" and len(data) == 2 and np.array_equal(np.asarray(data[0]), want)
    assert list(meta["scale"]) == list(image.spacing)

    back = batchproc.open_image(out)  # and batchproc reads its own 0.4 as it reads 0.5
    assert back.axes == "zyx" and back.units == ("millimeter",) * 3 and back.spacing == image.spacing
    assert np.array_equal(back.data.compute(), want)


def test_an_ome_0_4_store_resumes_and_its_levels_are_zarr_v2(tmp_path: Path, volume: np.ndarray) -> None:
    out = batchproc.write(volume, tmp_path / "v2.zarr", chunks=(2, 25, 35), ome_version="0.4", compute=False)
    assert batchproc.read_store_info(out)["complete"] is False
    batchproc.write(volume, out, chunks=(2, 25, 35), ome_version="0.4", resume=True, levels=1)
    group = zarr.open_group(out, mode="r")
    assert group.metadata.zarr_format == 2 and group["1"].metadata.zarr_format == 2
    assert np.array_equal(group["0"][...], volume) and group.attrs["multiscales"][0]["version"] == "0.4"
    assert batchproc.read_store_info(out)["complete"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shards", "6,50,70"], "no shards"),
        (["--ome-version", "0.3"], "--ome-version must be one of"),
    ],
)
def test_what_ome_0_4_cannot_hold_is_refused_before_writing(tmp_path: Path, volume: np.ndarray, args: list[str], message: str) -> None:
    source = batchproc.write(volume, tmp_path / "in.zarr")
    version = [] if "--ome-version" in args else ["--ome-version", "0.4"]
    result = _cli("run", source, tmp_path / "out.zarr", "--step", "gaussian_filter:sigma=1", *version, *args, "-q")
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out.zarr").exists()


def test_nifti_keeps_its_own_axis_order_named_and_its_units(tmp_path: Path, nibabel_data: Path) -> None:
    # x, y, z as the file stores them; NGFF 0.4 has no place for time after space.
    out = batchproc.write(batchproc.open_image(nibabel_data / "anatomical.nii"), tmp_path / "a.zarr", ome_version="0.4")
    axes = zarr.open_group(out, mode="r").attrs["multiscales"][0]["axes"]
    assert axes == [{"name": a, "type": "space", "unit": "millimeter"} for a in "xyz"]
    with pytest.raises(BatchprocError, match="time first"):
        batchproc.write(batchproc.open_image(nibabel_data / "example4d.nii.gz"), tmp_path / "b.zarr", ome_version="0.4")
    assert not (tmp_path / "b.zarr").exists()
