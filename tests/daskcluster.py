"""A real dask cluster for the tests: a ``dask scheduler`` and ``dask worker``
processes on 127.0.0.1, started as a user starts them."""

from __future__ import annotations

from pathlib import Path


def die_with_parent() -> None:
    """In a child before it runs: end it (SIGTERM) when the process that started
    it ends, even killed (a test run stopped by its timeout leaves no servers)."""
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


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
            preexec_fn=die_with_parent,
        )
        self.workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_worker",
                    self.address,
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "1",
                    "--memory-limit",
                    "2GiB",
                    "--no-dashboard",
                    "--nanny" if nanny else "--no-nanny",
                    "--name",
                    f"w{i}",
                    "--local-directory",
                    str(tmp / f"w{i}"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=(tmp / f"worker{i}.log").open("w"),
                preexec_fn=die_with_parent,
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
