"""Schedulers beyond one process: a real ``dask scheduler`` with ``dask worker``
processes on 127.0.0.1, a LocalCluster, dask-jobqueue's job scripts, and the
faults users meet there (a worker killed mid-run, an address nobody answers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from compiles import COMPILES_SO_FAR, COUNT_COMPILES
from daskcluster import DaskCluster
from typer.testing import CliRunner

from batchproc.cli import app
from batchproc.engine import job_script, scheduler
from batchproc.errors import BatchprocError

runner = CliRunner()
STEPS = ["--step", "gaussian_filter:sigma=2", "--step", "sobel_magnitude", "--step", "threshold:above=40"]


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("input") / "volume.tif"
    tifffile.imwrite(path, np.random.default_rng(5).integers(0, 255, size=(24, 96, 80)).astype(np.uint8))
    return path


def pixels(store: Path) -> np.ndarray:
    return zarr.open_array(str(store / "0"), mode="r")[:]


def wait_for_chunks(job: subprocess.Popen, store: Path, count: int, timeout: float = 120) -> None:
    """Until ``count`` chunk files of ``store`` exist while ``job`` runs (bounded)."""
    chunks = store / "0" / "c"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and job.poll() is None:
        if chunks.exists() and sum(1 for p in chunks.rglob("*") if p.is_file()) >= count:
            return
        time.sleep(0.02)


def test_tcp_cluster_result_equals_threads(tmp_path: Path, volume: Path, dask_cluster: DaskCluster) -> None:
    threads = invoke("run", volume, tmp_path / "threads.zarr", *STEPS, "--chunks", "8,32,32", "-q")
    assert threads.exit_code == 0, threads.output
    cluster = invoke("run", volume, tmp_path / "cluster.zarr", *STEPS, "--chunks", "8,32,32", "--scheduler", dask_cluster.address)
    assert cluster.exit_code == 0, cluster.output
    assert "dashboard: http://127.0.0.1:" in cluster.output
    assert np.array_equal(pixels(tmp_path / "cluster.zarr"), pixels(tmp_path / "threads.zarr"))
    assert pixels(tmp_path / "cluster.zarr").any()


def test_tcp_cluster_reads_hdf5_and_histogram(tmp_path: Path, dask_cluster: DaskCluster) -> None:
    # h5py handles cannot be pickled: each worker opens the file itself.
    import h5py
    import scipy.ndimage as ndi

    data = np.random.default_rng(2).integers(0, 4000, size=(12, 40, 40)).astype(np.uint16)
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f.create_dataset("scan/raw", data=data, chunks=(4, 20, 20))
    source = f"{tmp_path / 'v.h5'}:/scan/raw"
    result = invoke("run", source, tmp_path / "out.zarr", "--step", "median_filter:size=3", "--scheduler", dask_cluster.address, "-q")
    assert result.exit_code == 0, result.output
    assert np.array_equal(pixels(tmp_path / "out.zarr"), ndi.median_filter(data, 3))
    hist = invoke("histogram", source, "--bins", "8", "--min", "0", "--max", "4000", "--json", "--scheduler", dask_cluster.address)
    assert hist.exit_code == 0, hist.output
    assert '"counts": ' + str(ndi.histogram(data, 0, 4000, 8).tolist()) in hist.output


def test_local_cluster_result_equals_threads(tmp_path: Path, volume: Path) -> None:
    local = invoke(
        "run", volume, tmp_path / "local.zarr", *STEPS, "--chunks", "8,32,32", "--scheduler", "local", "--workers", "2", "--memory-limit", "1GiB", "-q"
    )
    assert local.exit_code == 0, local.output
    threads = invoke("run", volume, tmp_path / "threads.zarr", *STEPS, "--chunks", "8,32,32", "-q")
    assert threads.exit_code == 0, threads.output
    assert np.array_equal(pixels(tmp_path / "local.zarr"), pixels(tmp_path / "threads.zarr"))


def test_unreachable_scheduler_is_a_quick_clear_error(tmp_path: Path, volume: Path) -> None:
    from daskcluster import free_port

    started = time.monotonic()
    result = invoke("run", volume, tmp_path / "o.zarr", *STEPS, "--scheduler", f"tcp://127.0.0.1:{free_port()}")
    assert result.exit_code == 2
    assert "no dask scheduler answers there" in result.output
    assert time.monotonic() - started < 30
    assert not (tmp_path / "o.zarr").exists()


@pytest.mark.parametrize(
    ("name", "message"),
    [("tcp://nohostport", "expected tcp://HOST:PORT"), ("kubernetes", "must be one of threads, processes"), ("local", "at least 1")],
)
def test_bad_scheduler_names(name: str, message: str) -> None:
    with pytest.raises(BatchprocError, match=message), scheduler(name, workers=0):
        pass


def test_slurm_job_script_from_yaml(tmp_path: Path) -> None:
    config = tmp_path / "slurm.yaml"
    config.write_text(
        "cores: 4\nmemory: 16GiB\nqueue: short\nwalltime: '02:00:00'\n"
        "job_extra_directives: ['--constraint=avx2']\nadaptive: {minimum: 0, maximum: 8}\n"
        "scheduler_options: {host: 127.0.0.1, dashboard_address: '127.0.0.1:0'}\n"
    )
    script = job_script("slurm", config)
    for line in ("#SBATCH -p short", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=16G", "#SBATCH -t 02:00:00", "#SBATCH --constraint=avx2"):
        assert line in script
    assert "distributed.cli.dask_worker tcp://127.0.0.1:" in script
    result = invoke("jobscript", "pbs", "--cluster-config", config)
    assert result.exit_code == 0, result.output
    assert "#PBS -q short" in result.output and "walltime=02:00:00" in result.output


def test_jobqueue_config_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("cores: 4\nnodes_please: 3\n")
    result = invoke("jobscript", "slurm", "--cluster-config", tmp_path / "bad.yaml")
    assert result.exit_code == 2 and "unknown setting(s) nodes_please" in result.output and "walltime" in result.output
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    result = invoke("jobscript", "slurm", "--cluster-config", tmp_path / "list.yaml")
    assert result.exit_code == 2 and "must hold a mapping" in result.output
    result = invoke("jobscript", "kubernetes")
    assert result.exit_code == 2 and "slurm, pbs" in result.output


@pytest.mark.slow
def test_worker_killed_mid_run_job_completes_identically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL one of two workers while the job writes: the scheduler reschedules its
    tasks on the other and the output equals the threaded run."""
    monkeypatch.setenv("DASK_BATCHPROC__BLOCK_BYTES", "64KiB")  # many blocks: both workers busy
    data = np.random.default_rng(8).integers(0, 255, size=(48, 192, 192)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "v.tif", data)
    args = ["run", str(tmp_path / "v.tif"), "--step", "median_filter:size=5", "--chunks", "8,48,48", "-q"]
    cluster = DaskCluster(2, tmp_path, nanny=False)
    try:
        cluster.wait(2)
        job = subprocess.Popen(
            [sys.executable, "-m", "batchproc.cli", *args[:2], str(tmp_path / "cluster.zarr"), *args[2:], "--scheduler", cluster.address],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_chunks(job, tmp_path / "cluster.zarr", 4)
        assert job.poll() is None, "the job ended before a worker could be killed"
        os.kill(cluster.workers[0].pid, signal.SIGKILL)
        stdout, stderr = job.communicate(timeout=300)
        assert job.returncode == 0, stderr
    finally:
        cluster.close()
    threads = invoke(*args[:2], tmp_path / "threads.zarr", *args[2:])
    assert threads.exit_code == 0, threads.output
    assert np.array_equal(pixels(tmp_path / "cluster.zarr"), pixels(tmp_path / "threads.zarr"))


def test_bad_local_cluster_and_bench_options_exit_2(tmp_path: Path, volume: Path) -> None:
    result = invoke("run", volume, tmp_path / "o.zarr", *STEPS, "--scheduler", "local", "--workers", "1", "--memory-limit", "lots")
    assert result.exit_code == 2 and "--memory-limit" in result.output and "lots" in result.output
    assert not (tmp_path / "o.zarr").exists()
    result = invoke("bench", volume, *STEPS[:2], "--max-mb", "0")
    assert result.exit_code == 2 and "--max-mb must be positive" in result.output


def test_local_runs_do_not_import_distributed(tmp_path: Path, volume: Path, imported_after_cli) -> None:
    # dask imports distributed (half a second) just to look for a client; a run on
    # the local schedulers has none to find, and should not pay for the search.
    run = ["run", str(volume), str(tmp_path / "o.zarr"), *STEPS, "--chunks", "8,32,32", "-q"]
    histogram = ["histogram", str(volume), "--bins", "4", "--json"]
    assert imported_after_cli([run, histogram], ["distributed"]) == {"distributed": False}
    assert pixels(tmp_path / "o.zarr").any()


def test_a_default_client_still_gets_the_work(tmp_path: Path, dask_cluster: DaskCluster) -> None:
    # No batchproc scheduler set: a distributed Client made the default is used, as
    # dask itself would use it.
    import dask.array as da
    from distributed import Client, get_task_stream

    import batchproc

    data = np.random.default_rng(3).random((16, 40, 40)).astype(np.float32)
    with Client(dask_cluster.address, timeout=30) as client, get_task_stream(client) as stream:
        batchproc.write(batchproc.ndimage.uniform_filter(da.from_array(data, chunks=8), 3), tmp_path / "o.zarr")
        counts = batchproc.ndimage.histogram(da.from_array(data, chunks=8), 0, 1, 4)
    assert stream.data, "no task ran on the cluster"
    import scipy.ndimage as ndi

    assert np.array_equal(pixels(tmp_path / "o.zarr"), ndi.uniform_filter(data, 3))
    assert np.array_equal(counts, ndi.histogram(data, 0, 1, 4))


def test_local_computations_run_with_the_collector_frozen_and_release_it(tmp_path: Path) -> None:
    # A full collection walks every object numba, scipy and dask made (60-85 ms,
    # holding the GIL); during a local computation only new objects are walked.
    import gc
    import threading

    import dask.array as da

    import batchproc
    from batchproc.engine import collector_frozen

    seen: list[int] = []

    def probe(block: np.ndarray) -> np.ndarray:
        seen.append(gc.get_freeze_count())
        return block

    assert gc.get_freeze_count() == 0
    data = da.from_array(np.arange(4 * 8 * 8, dtype=np.float32).reshape(4, 8, 8), chunks=4)
    probed = data.map_blocks(probe, meta=data._meta)  # with its meta given, dask does not call probe to find it
    with scheduler("threads"):
        batchproc.write(batchproc.ndimage.uniform_filter(probed, 3), tmp_path / "o.zarr")
        assert batchproc.ndimage.histogram(probed, 0, 256, 4).sum() == data.size
    assert len(seen) >= 2 and all(count > 0 for count in seen), seen
    assert gc.get_freeze_count() == 0
    # Overlapping computations in two threads: the objects stay frozen until the
    # last one ends.
    entered, release = threading.Event(), threading.Event()

    def other() -> None:
        with collector_frozen():
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    assert entered.wait(10)
    with collector_frozen():
        pass
    assert gc.get_freeze_count() > 0
    release.set()
    thread.join(10)
    assert gc.get_freeze_count() == 0
    # Objects the program froze itself stay frozen after a computation.
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with scheduler("threads"):
            batchproc.write(batchproc.ndimage.uniform_filter(data, 3), tmp_path / "again.zarr")
        assert gc.get_freeze_count() > frozen // 2  # some may have died meanwhile; thawed, it would be 0
    finally:
        gc.unfreeze()


def _chunk_bytes(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted((store / "0" / "c").rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_outputs_are_byte_identical_on_every_scheduler(tmp_path: Path, dask_cluster: DaskCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads, the calling thread, processes, a LocalCluster and a tcp cluster:
    the same chunk files, byte for byte, for a pipeline with a global step between
    local ones, in small blocks (many tasks, many halos)."""
    import scipy.ndimage as ndi

    data = np.random.default_rng(21).integers(0, 4000, size=(20, 72, 64)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "v.tif", data)
    steps = ["--step", "gaussian_filter:sigma=1", "--step", "equalize", "--step", "median_filter:size=3", "--step", "threshold:above=2000"]
    monkeypatch.setenv("DASK_BATCHPROC__BLOCK_BYTES", "64KiB")  # many blocks: ~20 in flight windows, each with a halo
    stores = {}
    for name, extra in {
        "threads": [],
        "synchronous": ["--scheduler", "synchronous"],
        "processes": ["--scheduler", "processes"],
        "local": ["--scheduler", "local", "--workers", "2"],
        "tcp": ["--scheduler", dask_cluster.address],
    }.items():
        stores[name] = tmp_path / f"{name}.zarr"
        done = subprocess.run(
            [sys.executable, "-m", "batchproc.cli", "run", str(tmp_path / "v.tif"), str(stores[name]), *steps, "--chunks", "4,16,16", "-q", *extra],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, (name, done.stderr)
    reference = _chunk_bytes(stores["threads"])
    assert len(reference) == 5 * 5 * 4
    for name, store in stores.items():
        assert _chunk_bytes(store) == reference, name
    smooth = ndi.gaussian_filter(data, 1)
    hist = ndi.histogram(smooth, 0, 65535, 65536)
    equalized = (hist.cumsum() / hist.sum())[smooth] * 65535
    assert np.array_equal(pixels(stores["tcp"]), ndi.median_filter(equalized, 3) > 2000)


@pytest.mark.slow
def test_the_scheduler_never_holds_more_than_a_window_of_blocks(tmp_path: Path, dask_cluster: DaskCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a cluster, blocks go out a window at a time (about two per worker
    thread): the scheduler's task count stays near it however many blocks there are."""
    import threading

    from distributed import Client

    data = np.random.default_rng(4).integers(0, 255, size=(64, 96, 96)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "v.tif", data)
    monkeypatch.setenv("DASK_BATCHPROC__BLOCK_BYTES", "16KiB")
    seen: list[tuple[int, int]] = []  # (block tasks waiting or running, block tasks in all)
    stop = threading.Event()

    def count(dask_scheduler: object) -> tuple[int, int]:
        states = [ts.state for key, ts in dask_scheduler.tasks.items() if "task" in str(key)]  # type: ignore[attr-defined]
        return sum(1 for s in states if s not in ("memory", "released", "forgotten")), len(states)

    def watch() -> None:
        with Client(dask_cluster.address, timeout="30s") as client:
            while not stop.is_set():
                seen.append(client.run_on_scheduler(count))
                time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "batchproc.cli",
                "run",
                str(tmp_path / "v.tif"),
                str(tmp_path / "o.zarr"),
                "--step",
                "uniform_filter:size=3",
                "--chunks",
                "8,16,16",
                "-q",
                "--scheduler",
                dask_cluster.address,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        stop.set()
        watcher.join(30)
    assert done.returncode == 0, done.stderr
    import scipy.ndimage as ndi

    assert np.array_equal(pixels(tmp_path / "o.zarr"), ndi.uniform_filter(data, 3))
    blocks = 8 * 6 * 6
    in_flight, held = max(s[0] for s in seen), max(s[1] for s in seen)
    assert in_flight > 0, "no block task was seen on the scheduler"
    # The window: two blocks per worker thread; finished blocks linger until the
    # client has taken their result.
    assert in_flight <= 2 * 2, f"{in_flight} block tasks waiting or running at once, for {blocks} blocks"
    assert held <= 3 * 2 * 2, f"{held} block tasks on the scheduler at once, for {blocks} blocks"


@pytest.mark.slow
def test_scheduler_lost_mid_run_ends_with_exit_1_and_resume_finishes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL the scheduler while a job writes: the CLI ends within a bounded time
    with exit 1 and says that --resume finishes the output, and it does (here on
    threads), to the bytes an uninterrupted run writes."""
    data = np.random.default_rng(9).integers(0, 255, size=(64, 128, 128)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "v.tif", data)
    monkeypatch.setenv("DASK_BATCHPROC__BLOCK_BYTES", "32KiB")
    run = [
        sys.executable,
        "-m",
        "batchproc.cli",
        "run",
        str(tmp_path / "v.tif"),
        str(tmp_path / "o.zarr"),
        "--step",
        "median_filter:size=5",
        "--chunks",
        "4,32,32",
        "-q",
    ]
    cluster = DaskCluster(2, tmp_path)
    try:
        cluster.wait(2)
        job = subprocess.Popen([*run, "--scheduler", cluster.address], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for_chunks(job, tmp_path / "o.zarr", 8)
        assert job.poll() is None, "the job ended before its scheduler could be killed"
        cluster.scheduler.kill()
        killed = time.monotonic()
        _, stderr = job.communicate(timeout=120)
        waited = time.monotonic() - killed
    finally:
        cluster.close()
    assert job.returncode == 1, stderr
    assert "scheduler" in stderr and "--resume" in stderr and "Traceback" not in stderr
    assert waited < 90, f"the CLI took {waited:.0f} s to give up"
    resumed = subprocess.run([*run, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    whole = subprocess.run([*run[:5], str(tmp_path / "whole.zarr"), *run[6:]], capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr
    assert _chunk_bytes(tmp_path / "o.zarr") == _chunk_bytes(tmp_path / "whole.zarr")


@pytest.mark.slow
def test_a_kernel_compiles_once_per_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers of one machine with an empty numba cache, a two-step chain in
    small blocks (inner blocks and blocks at every edge; kernels that compile in
    seconds): one worker compiles the kernels while the other waits for it, then
    loads them from the cache."""
    from distributed import Client

    data = np.random.default_rng(9).integers(0, 4000, size=(32, 128, 128)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "v.tif", data)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba-cache"))  # the workers start with it
    monkeypatch.setenv("DASK_BATCHPROC__BLOCK_BYTES", "64KiB")
    cluster = DaskCluster(2, tmp_path)
    try:
        cluster.wait(2)
        with Client(cluster.address, timeout="30s") as client:
            client.run(exec, COUNT_COMPILES)  # as source: this module does not travel
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "batchproc.cli",
                    "--kernels",
                    "compiled",
                    "run",
                    str(tmp_path / "v.tif"),
                    str(tmp_path / "o.zarr"),
                    "--step",
                    "uniform_filter:size=3",
                    "--step",
                    "threshold:above=2000",
                    "--chunks",
                    "4,128,128",
                    "-q",
                    "--scheduler",
                    cluster.address,
                ],
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stderr
            counts = sorted(client.run(eval, COMPILES_SO_FAR).values())
            ran = client.run(eval, "len(__import__('batchproc.engine.runner', fromlist=['_STARTED'])._STARTED)")
    finally:
        cluster.close()
    import scipy.ndimage as ndi

    assert np.array_equal(pixels(tmp_path / "o.zarr"), ndi.uniform_filter(data, 3) > 2000)
    assert sorted(ran.values()) == [1, 1], "both workers should have run blocks"
    assert counts[0] == 0 and counts[1] > 0, counts
