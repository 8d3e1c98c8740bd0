"""Shared fixtures and settings for the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import dask
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# One hypothesis profile for the suite; BATCHPROC_EXAMPLES raises the example count
# for a long local run (the closing notes quote such runs).
settings.register_profile(
    "batchproc",
    max_examples=int(os.environ.get("BATCHPROC_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
    # CI replays the same examples every run (a red CI is then reproducible);
    # local runs explore new ones.
    derandomize=bool(os.environ.get("CI")),
)
settings.load_profile("batchproc")


class ComputeForbidden(AssertionError):
    """Raised by the ``no_compute`` scheduler: something computed while it should not."""


def _forbidden_scheduler(dsk, keys, **kwargs):  # pragma: no cover - its call is the failure
    raise ComputeForbidden(f"a computation was started for keys {list(keys)[:3]}")


@pytest.fixture
def no_compute():
    """A dask scheduler that raises if anything computes: building a graph is fine."""
    with dask.config.set(scheduler=_forbidden_scheduler):
        yield


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261124)


# ------------------------------------------------------------ a real dask cluster


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DaskCluster:
    """A ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1, as a user
    starts them; always torn down, every wait bounded."""

    def __init__(self, workers: int, tmp: Path, nanny: bool = True) -> None:
        import subprocess
        import sys

        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        dask_cli = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
        self.scheduler = subprocess.Popen(
            [*dask_cli, "--host", "127.0.0.1", "--port", str(self.port), "--dashboard-address", f"127.0.0.1:{free_port()}"],
            stdout=subprocess.DEVNULL,
            stderr=(tmp / "scheduler.log").open("w"),
        )
        self.workers = [
            subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", self.address, "--host", "127.0.0.1", "--nthreads", "1",
                 "--memory-limit", "2GiB", "--no-dashboard", "--nanny" if nanny else "--no-nanny", "--name", f"w{i}",
                 "--local-directory", str(tmp / f"w{i}")],
                stdout=subprocess.DEVNULL,
                stderr=(tmp / f"worker{i}.log").open("w"),
            )
            for i in range(workers)
        ]

    def wait(self, workers: int, timeout: float = 60.0) -> None:
        from distributed import Client

        with Client(self.address, timeout="30s") as client:
            client.wait_for_workers(workers, timeout=timeout)

    def close(self) -> None:
        import subprocess

        for proc in [*self.workers, self.scheduler]:
            proc.terminate()
        for proc in [*self.workers, self.scheduler]:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory):
    """Two single-thread workers behind a scheduler, shared by a test module."""
    cluster = DaskCluster(2, tmp_path_factory.mktemp("cluster"))
    try:
        cluster.wait(2)
        yield cluster
    finally:
        cluster.close()
