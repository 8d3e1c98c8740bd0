"""Object stores: reading and writing s3:// through a real S3-compatible server
(moto's, on 127.0.0.1), with the writer's promises kept where there is no rename."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi
from typer.testing import CliRunner

import batchproc
from batchproc.cli import app


def cli(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def upload(server, bucket_url: str, local: Path, key: str) -> str:
    """``local`` (a file, or a folder's files) put under ``key``; its URL."""
    client, bucket = server.client(), bucket_url.split("//", 1)[1]
    if local.is_file():
        client.upload_file(str(local), bucket, key)
    else:
        for path in local.rglob("*"):
            if path.is_file():
                client.upload_file(str(path), bucket, f"{key}/{path.relative_to(local).as_posix()}")
    return f"{bucket_url}/{key}"


@pytest.fixture
def volume() -> np.ndarray:
    return (np.random.default_rng(18).random((8, 64, 64)) * 1000).astype(np.uint16)


def test_reads_zarr_tiled_tiff_png_stacks_and_patterns_from_s3(tmp_path: Path, s3, s3_server, volume: np.ndarray) -> None:
    import imageio.v3 as iio
    import tifffile

    store = upload(s3_server, s3, Path(batchproc.write(volume, tmp_path / "v.ome.zarr", chunks=(4, 32, 32))), "data/v.ome.zarr")
    tifffile.imwrite(tmp_path / "v.tif", volume, tile=(32, 32))
    tiff = upload(s3_server, s3, tmp_path / "v.tif", "data/v.tif")
    (tmp_path / "pngs").mkdir()
    for i, plane in enumerate(volume):
        iio.imwrite(tmp_path / "pngs" / f"s{i + 1}.png", plane)
    stack = upload(s3_server, s3, tmp_path / "pngs", "data/pngs")
    for url in (store, tiff, stack, f"{stack}/s*.png", f"{stack}/s1.png"):
        image = batchproc.open_image(url)
        want = volume[0] if url.endswith("s1.png") else volume
        assert np.array_equal(image.data.compute(), want), url
    assert batchproc.open_image(store).spacing == (1.0, 1.0, 1.0)
    # file:// is a local path
    assert np.array_equal(batchproc.open(f"file://{tmp_path / 'v.tif'}").compute(), volume)


def test_a_tiled_tiff_is_read_tile_by_tile(tmp_path: Path, s3, s3_server) -> None:
    # A 16 MiB tiled TIFF: one 64x64 tile needs far less than the file.
    import tifffile

    big = (np.random.default_rng(1).random((4, 1024, 2048)) * 1000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "big.tif", big, tile=(256, 256), photometric="minisblack")
    url = upload(s3_server, s3, tmp_path / "big.tif", "big.tif")
    before = len(s3_server.requests())
    reader = batchproc.open_image(url).reader
    assert np.array_equal(reader[1:2, 256:320, 512:576], big[1:2, 256:320, 512:576])
    gets = [r for r in s3_server.requests()[before:] if r[0] == "GET"]
    assert 0 < len(gets) < 40  # the headers and one tile, in ranges; the file is 16 MiB of 256 KiB reads


def test_a_run_from_s3_to_s3_equals_scipy_and_is_marked_complete(tmp_path: Path, s3, s3_server, volume: np.ndarray) -> None:
    source = upload(s3_server, s3, Path(batchproc.write(volume, tmp_path / "v.zarr", chunks=(4, 32, 32))), "in/v.zarr")
    out = f"{s3}/out/result.ome.zarr"
    before = len(s3_server.requests())
    result = cli("run", source, out, "--step", "gaussian_filter:sigma=1", "--chunks", "2,32,32", "-q")
    assert result.exit_code == 0, result.output
    requests = s3_server.requests()[before:]
    info = batchproc.read_store_info(out)
    assert info["complete"] is True
    assert np.array_equal(batchproc.open(out).compute(), ndi.gaussian_filter(volume, 1))
    # Requests, from the server's own log: one GET per input chunk read (the
    # halo chunks from a cache), one PUT per output chunk, and a listing or two
    # for the whole run (is the output there? a replacement left beside it?).
    chunk_gets = [r for r in requests if r[0] == "GET" and "/in/v.zarr/0/c/" in r[1]]
    chunk_puts = [r for r in requests if r[0] == "PUT" and "/out/result.ome.zarr/0/c/" in r[1]]
    assert len(chunk_gets) <= 2 * 2 * 2 and len(chunk_puts) == 4 * 2 * 2
    assert len([r for r in requests if r[0] == "GET" and "list-type" in r[1]]) <= 2


def test_sharded_output_on_s3_is_one_put_a_shard(tmp_path: Path, s3, s3_server, volume: np.ndarray) -> None:
    out = f"{s3}/sharded.ome.zarr"
    before = len(s3_server.requests())
    assert (
        cli(
            "run", Path(batchproc.write(volume, tmp_path / "v.zarr")), out, "--step", "threshold:above=500", "--chunks", "2,16,16", "--shards", "4,64,64", "-q"
        ).exit_code
        == 0
    )
    puts = [r for r in s3_server.requests()[before:] if r[0] == "PUT" and "/sharded.ome.zarr/0/c/" in r[1]]
    assert len(puts) == 2
    import zarr
    from obstore.store import from_url
    from zarr.storage import ObjectStore

    array = zarr.open_array(ObjectStore(from_url(out), read_only=True), path="0", mode="r")
    assert array.shards == (4, 64, 64) and np.array_equal(array[...], volume > 500)


def test_resume_on_s3_writes_only_missing_files_with_one_listing(tmp_path: Path, s3, s3_server, volume: np.ndarray) -> None:
    out = f"{s3}/resumed.ome.zarr"
    steps = ["--step", "gaussian_filter:sigma=1", "--chunks", "2,32,32", "-q"]
    assert cli("run", Path(batchproc.write(volume, tmp_path / "v.zarr")), out, *steps).exit_code == 0
    client, bucket = s3_server.client(), s3.split("//", 1)[1]
    whole = {
        o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        for o in client.list_objects_v2(Bucket=bucket, Prefix="resumed.ome.zarr/0/c/")["Contents"]
    }
    # As a killed run leaves it: incomplete, some chunks missing.
    from batchproc.io.remote import RemotePath
    from batchproc.io.store import _set_info

    _set_info(RemotePath(out), complete=False)
    gone = sorted(whole)[::3]
    for key in gone:
        client.delete_object(Bucket=bucket, Key=key)
    again = cli("run", tmp_path / "v.zarr", out, *steps)
    assert again.exit_code == 2 and "--resume" in again.output
    before = len(s3_server.requests())
    import dask

    with dask.config.set({"batchproc.block-bytes": 2 * 32 * 64 * 8}):  # a block a chunk: many blocks, still one listing
        assert cli("run", tmp_path / "v.zarr", out, *steps, "--resume").exit_code == 0
    requests = s3_server.requests()[before:]
    assert len([r for r in requests if r[0] == "PUT" and "/0/c/" in r[1]]) == len(gone)
    assert not [r for r in requests if r[0] == "HEAD" and "/0/c/" in r[1]]  # a listing, not a request per chunk
    assert len([r for r in requests if r[0] == "GET" and "list-type" in r[1] and "prefix=resumed.ome.zarr/0/" in r[1]]) == 1
    assert batchproc.read_store_info(out)["complete"] is True
    assert {
        o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        for o in client.list_objects_v2(Bucket=bucket, Prefix="resumed.ome.zarr/0/c/")["Contents"]
    } == whole


def test_overwrite_on_s3_keeps_the_old_output_until_the_new_one_is_complete(
    tmp_path: Path, s3, s3_server, volume: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batchproc.io import remote_store

    source = batchproc.write(volume, tmp_path / "v.zarr")
    out = f"{s3}/over.ome.zarr"
    assert cli("run", source, out, "--step", "threshold:above=500", "-q").exit_code == 0
    assert cli("run", source, out, "--step", "threshold:above=100", "-q").exit_code == 2  # not without --overwrite
    # A failed replacement leaves the old output as it was.
    (tmp_path / "bad.zarr").mkdir()
    damaged = batchproc.write(volume, tmp_path / "bad.zarr" / "v.zarr", chunks=(4, 32, 32))
    (Path(damaged) / "0" / "c" / "1" / "1" / "1").write_bytes(b"garbage")
    failed = cli("run", damaged, out, "--step", "threshold:above=100", "--overwrite", "-q")
    assert failed.exit_code == 2 and "unchanged" in failed.output
    assert np.array_equal(batchproc.open(out).compute(), volume > 500)
    # A kill in the middle of the copy: the next run finishes it.
    calls = []
    real = remote_store.RemotePath.copy_to

    def killed(self, target):  # the third copy never happens
        calls.append(self)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real(self, target)

    monkeypatch.setattr(remote_store.RemotePath, "copy_to", killed)
    with pytest.raises(KeyboardInterrupt):
        batchproc.Pipeline([{"op": "threshold", "above": 100}]).run(source, out, overwrite=True)
    monkeypatch.setattr(remote_store.RemotePath, "copy_to", real)
    assert batchproc.read_store_info(out)["complete"] is False  # never taken for the old output, nor the new
    assert cli("info", out).exit_code in (0, 2)
    assert cli("run", source, out, "--step", "threshold:above=100", "--resume", "-q").exit_code == 0
    assert batchproc.read_store_info(out)["complete"] is True
    assert np.array_equal(batchproc.open(out).compute(), volume > 100)
    assert not [p for p in remote_store.RemotePath(s3).iterdir() if ".batchproc-" in p.name]


def test_one_run_at_a_time_per_output_on_s3(tmp_path: Path, s3, volume: np.ndarray) -> None:
    from batchproc.io.remote import RemotePath

    out = f"{s3}/locked.ome.zarr"
    RemotePath(f"{s3}/.locked.ome.zarr.batchproc.lock").write_text("1 another-host 2026-12-06T00:00:00Z")
    result = cli("run", Path(batchproc.write(volume, tmp_path / "v.zarr")), out, "--step", "threshold:above=1", "-q")
    assert result.exit_code == 2 and "another batchproc run" in result.output and "another-host" in result.output
    assert not RemotePath(out).exists()


def test_bad_credentials_a_missing_bucket_and_read_only_https_exit_2_without_secrets(
    tmp_path: Path, s3, s3_server, monkeypatch: pytest.MonkeyPatch, volume: np.ndarray
) -> None:
    from batchproc.io import remote

    source = upload(s3_server, s3, Path(batchproc.write(volume, tmp_path / "v.zarr")), "v.zarr")
    secret = "wrong-secret-" + "x" * 20
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setattr(remote, "_CLIENTS", {})
    result = cli("run", source, tmp_path / "o.zarr", "--step", "threshold:above=1", "-q")
    assert result.exit_code == 2 and "access denied" in result.output, result.output
    assert secret not in result.output and s3_server.env["AWS_ACCESS_KEY_ID"] not in result.output
    assert "Traceback" not in result.output
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.env["AWS_SECRET_ACCESS_KEY"])
    monkeypatch.setattr(remote, "_CLIENTS", {})
    result = cli("run", source, "s3://no-such-bucket-here/o.zarr", "--step", "threshold:above=1", "-q")
    assert result.exit_code == 2 and "bucket 'no-such-bucket-here' does not exist" in result.output, result.output
    result = cli("run", source, "https://example.org/o.zarr", "--step", "threshold:above=1", "-q")
    assert result.exit_code == 2 and "read-only" in result.output


def _free_port_among(ports: range) -> int | None:
    import socket

    for port in ports:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return None


def test_an_object_store_that_does_not_answer_fails_within_bounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from daskcluster import free_port

    from batchproc.io import remote

    # nothing listens there; a port with "403" in it once read as an HTTP 403
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port_among(range(40300, 40400)) or free_port()}")
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-value-1234")
    monkeypatch.setattr(remote, "_CLIENTS", {})
    started = time.monotonic()
    result = cli("info", "s3://bucket/v.zarr")
    assert result.exit_code == 2 and "did not answer" in result.output, result.output
    assert time.monotonic() - started < 60 and "secret-value-1234" not in result.output


def test_batch_from_an_s3_prefix_to_s3_keeps_its_manifest_beside_the_outputs(tmp_path: Path, s3, s3_server) -> None:
    import imageio.v3 as iio

    from batchproc.batch import MANIFEST, Manifest
    from batchproc.io.remote import RemotePath

    rng = np.random.default_rng(3)
    images = {f"scan{i}": (rng.random((40, 48)) * 255).astype(np.uint8) for i in range(5)}
    (tmp_path / "archive").mkdir()
    for name, image in images.items():
        iio.imwrite(tmp_path / "archive" / f"{name}.png", image)
    (tmp_path / "archive" / "scan9.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    upload(s3_server, s3, tmp_path / "archive", "archive")
    out = f"{s3}/results"
    steps = ["--step", "gaussian_filter:sigma=[1,1]", "--step", "threshold:above=120"]
    first = cli("batch", f"{s3}/archive/scan*.png", "--out", out, *steps)
    assert first.exit_code == 3, first.output  # scan9 failed alone
    state = Manifest(RemotePath(f"{out}/{MANIFEST}")).load()
    assert sorted(Path(k).name for k, v in state.items() if v["status"] == "done") == [f"{n}.png" for n in sorted(images)]
    assert [Path(k).name for k, v in state.items() if v["status"] == "failed"] == ["scan9.png"]
    for name, image in images.items():
        assert np.array_equal(batchproc.open(f"{out}/{name}.ome.zarr").compute(), ndi.gaussian_filter(image, [1, 1]) > 120), name
    # The same command again: what is done is skipped; a prefix stands for what is under it.
    again = cli("batch", f"{s3}/archive", "--out", out, *steps)
    assert again.exit_code == 3 and "5 skipped" in again.output, again.output


def test_anonymous_access_sends_unsigned_requests(tmp_path: Path, s3, s3_server, monkeypatch: pytest.MonkeyPatch, volume: np.ndarray) -> None:
    # This server checks signatures and fails on a request without one (moto
    # answers 500, its log says why): --anonymous sent unsigned requests, as public
    # buckets take them.
    from batchproc.io import remote

    source = upload(s3_server, s3, Path(batchproc.write(volume, tmp_path / "v.zarr")), "v.zarr")
    monkeypatch.setattr(remote, "_CLIENTS", {})
    monkeypatch.setenv("BATCHPROC_ANONYMOUS", "0")  # restored after the test, whatever the CLI sets
    seen = len(s3_server.log.read_text(errors="replace"))
    result = cli("--anonymous", "info", source)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert os.environ["BATCHPROC_ANONYMOUS"] == "1" and remote._client("s3", s3.split("//")[1]).config.get("skip_signature") in (True, "true")
    assert "HTTP_AUTHORIZATION" in s3_server.log.read_text(errors="replace")[seen:]  # no Authorization header came


def test_a_chunk_object_missing_or_garbled_exits_2_naming_it(tmp_path: Path, s3, s3_server, volume: np.ndarray) -> None:
    source = upload(s3_server, s3, Path(batchproc.write(volume, tmp_path / "v.zarr", chunks=(4, 32, 32))), "v.zarr")
    client, bucket = s3_server.client(), s3.split("//", 1)[1]
    client.delete_object(Bucket=bucket, Key="v.zarr/0/c/1/0/1")
    result = cli("run", source, tmp_path / "o.zarr", "--step", "gaussian_filter:sigma=1", "-q")
    assert result.exit_code == 2 and "v.zarr/0/c/1/0/1" in result.output and "missing" in result.output, result.output
    client.put_object(Bucket=bucket, Key="v.zarr/0/c/1/0/1", Body=b"garbage")
    result = cli("run", source, tmp_path / "p.zarr", "--step", "gaussian_filter:sigma=1", "-q")
    assert result.exit_code == 2 and "v.zarr/0/c/1/0/1" in result.output and "is not" in result.output, result.output


def test_https_stores_are_read_only_and_read(tmp_path: Path, volume: np.ndarray) -> None:
    # A plain HTTP server on 127.0.0.1 serving a folder: obstore's HTTP client, as for https://.
    import functools
    import http.server
    import threading

    (tmp_path / "site").mkdir()
    batchproc.write(volume, tmp_path / "site" / "v.ome.zarr", chunks=(4, 32, 32))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "site"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v.ome.zarr"
        assert np.array_equal(batchproc.open(url).compute(), volume)
        result = cli("run", url, f"http://127.0.0.1:{server.server_address[1]}/out.zarr", "--step", "threshold:above=1", "-q")
        assert result.exit_code == 2 and "read-only" in result.output
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_info_histogram_preview_and_bench_take_urls(tmp_path: Path, s3, s3_server, volume: np.ndarray) -> None:
    source = upload(s3_server, s3, Path(batchproc.write(volume, tmp_path / "v.zarr", chunks=(4, 32, 32))), "v.zarr")
    info = cli("info", source)
    assert info.exit_code == 0 and "(8, 64, 64)" in info.output, info.output
    histogram = cli("histogram", source, "--bins", "16", "--csv", tmp_path / "h.csv")
    assert histogram.exit_code == 0, histogram.output
    counts = [int(line.split(",")[-1]) for line in (tmp_path / "h.csv").read_text().splitlines()[1:]]
    assert sum(counts) == volume.size
    preview = cli("preview", source, "-o", tmp_path / "p.png")
    assert preview.exit_code == 0 and (tmp_path / "p.png").stat().st_size > 0, preview.output
    bench = cli("bench", source, "--step", "gaussian_filter:sigma=1", "--engines", "batchproc,scipy", "--repeat", "1")
    assert bench.exit_code == 0, bench.output


def test_credentials_from_an_aws_profile(tmp_path: Path, s3, s3_server, monkeypatch: pytest.MonkeyPatch, volume: np.ndarray) -> None:
    # ~/.aws/credentials and config, as the AWS tools write them; no keys in the environment.
    from batchproc.io import remote

    source = upload(s3_server, s3, Path(batchproc.write(volume, tmp_path / "v.zarr")), "v.zarr")
    (tmp_path / "credentials").write_text(
        f"[lab]\naws_access_key_id = {s3_server.env['AWS_ACCESS_KEY_ID']}\naws_secret_access_key = {s3_server.env['AWS_SECRET_ACCESS_KEY']}\n"
    )
    (tmp_path / "config").write_text(f"[profile lab]\nregion = us-east-1\nendpoint_url = {s3_server.endpoint}\n")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_PROFILE", "lab")
    monkeypatch.setattr(remote, "_CLIENTS", {})
    assert np.array_equal(batchproc.open(source).compute(), volume)
    result = cli("run", source, f"{s3}/from-profile.ome.zarr", "--step", "threshold:above=500", "-q")
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("AWS_PROFILE", "nobody")
    monkeypatch.setattr(remote, "_CLIENTS", {})
    result = cli("info", source)
    assert result.exit_code == 2 and "profile 'nobody'" in result.output and s3_server.env["AWS_SECRET_ACCESS_KEY"] not in result.output, result.output


@pytest.mark.slow
def test_a_cluster_reads_and_writes_s3_itself_with_the_same_bytes(tmp_path: Path, s3, s3_server, volume: np.ndarray) -> None:
    """Workers started with the user's environment read their input chunks and
    write their output files on the object store themselves; the bytes equal a
    threaded run's."""
    from daskcluster import DaskCluster

    source = upload(s3_server, s3, Path(batchproc.write(volume, tmp_path / "v.zarr", chunks=(2, 32, 32))), "v.zarr")
    steps = ["--step", "gaussian_filter:sigma=1", "--chunks", "2,32,32", "--shards", "4,64,64", "-q"]
    assert cli("run", source, f"{s3}/threads.ome.zarr", *steps).exit_code == 0
    cluster = DaskCluster(2, tmp_path)  # after the s3 fixture set the environment: the workers inherit it
    try:
        cluster.wait(2)
        result = cli("run", source, f"{s3}/cluster.ome.zarr", *steps, "--scheduler", cluster.address)
        assert result.exit_code == 0, result.output
    finally:
        cluster.close()
    client, bucket = s3_server.client(), s3.split("//", 1)[1]

    def files(name: str) -> dict[str, bytes]:
        listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{name}/0/c/")["Contents"]
        return {o["Key"][len(name) :]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}

    assert files("cluster.ome.zarr") == files("threads.ome.zarr") and len(files("threads.ome.zarr")) == 2


@pytest.mark.slow
def test_a_run_to_s3_killed_with_sigkill_resumes_to_identical_bytes(tmp_path: Path, s3, s3_server) -> None:
    """SIGKILL the CLI when about half the shards are on the object store;
    ``--resume`` writes only the missing ones, and every object equals an
    uninterrupted run's."""
    import signal
    import subprocess
    import sys
    import time

    import tifffile

    tifffile.imwrite(tmp_path / "v.tif", np.random.default_rng(12).integers(0, 255, size=(64, 192, 192)).astype(np.uint8))
    base = [sys.executable, "-m", "batchproc.cli", "run", str(tmp_path / "v.tif")]
    steps = ["--step", "median_filter:size=5", "--step", "threshold:above=128", "--chunks", "8,48,48", "--shards", "16,96,96", "-q"]
    env = {**os.environ, "DASK_BATCHPROC__BLOCK_BYTES": str(16 * 96 * 96)}  # a block a shard: written one by one
    client, bucket = s3_server.client(), s3.split("//", 1)[1]

    def objects(name: str) -> dict[str, bytes]:
        listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{name}/0/c/").get("Contents", [])
        return {o["Key"][len(name) :]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}

    total = 4 * 2 * 2
    job = subprocess.Popen([*base, f"{s3}/killed.zarr", *steps], stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and job.poll() is None:
        if client.list_objects_v2(Bucket=bucket, Prefix="killed.zarr/0/c/").get("KeyCount", 0) >= total // 2:
            break
        time.sleep(0.01)
    assert job.poll() is None, "the run ended before it could be killed"
    os.kill(job.pid, signal.SIGKILL)
    job.wait(timeout=30)
    assert batchproc.read_store_info(f"{s3}/killed.zarr")["complete"] is False
    on_disk = len(objects("killed.zarr"))
    assert total // 2 <= on_disk < total
    again = subprocess.run([*base, f"{s3}/killed.zarr", *steps], capture_output=True, text=True, timeout=60, env=env)
    assert again.returncode == 2 and "--resume" in again.stderr  # the lock a dead process left is taken over
    resumed = subprocess.run([*base, f"{s3}/killed.zarr", *steps, "--resume"], capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr
    info = batchproc.read_store_info(f"{s3}/killed.zarr")
    assert info["complete"] is True and info["files_written"] == total - on_disk
    whole = subprocess.run([*base, f"{s3}/whole.zarr", *steps], capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr
    assert objects("killed.zarr") == objects("whole.zarr")


def test_the_python_api_writes_and_reads_s3(s3, volume: np.ndarray) -> None:
    out = batchproc.write(volume, f"{s3}/api.ome.zarr", chunks=(4, 32, 32), levels=1)
    assert out == f"{s3}/api.ome.zarr" and batchproc.read_store_info(out)["complete"] is True
    assert np.array_equal(batchproc.open(out).compute(), volume)
    assert batchproc.open(out, level=1).shape == (4, 32, 32)
    mask = batchproc.Pipeline([{"op": "threshold", "above": 500}]).run(out, f"{s3}/mask.ome.zarr")
    assert np.array_equal(batchproc.open(mask).compute(), volume > 500)
