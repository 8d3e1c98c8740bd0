"""Setting up where a computation runs (``--scheduler``).

The local schedulers are named in ``dask.config``; everything beyond one process
goes through a ``distributed.Client`` (a LocalCluster, an existing ``dask
scheduler``, or a job-queue cluster from dask-jobqueue). batchproc adds no
scheduler of its own: :mod:`batchproc.engine.runner` runs its tasks on whichever
is set here.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask

from batchproc.errors import BatchprocError

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")
#: dask-jobqueue's cluster managers, by the name ``--scheduler`` takes.
JOBQUEUE = {
    "slurm": "SLURMCluster",
    "pbs": "PBSCluster",
    "sge": "SGECluster",
    "lsf": "LSFCluster",
    "htcondor": "HTCondorCluster",
    "moab": "MoabCluster",
    "oar": "OARCluster",
}
#: Keys a job-queue configuration file may hold besides dask-jobqueue's own
#: keyword arguments: how many jobs to start, or an adaptive range.
JOBQUEUE_KEYS = ("jobs", "adaptive")
CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Session:
    """The scheduler the enclosed work runs on."""

    name: str
    client: Any = None  # a distributed.Client, or None for the local schedulers

    @property
    def dashboard(self) -> str | None:
        return getattr(self.client, "dashboard_link", None) if self.client is not None else None


def scheduler_names() -> str:
    return ", ".join([*LOCAL_SCHEDULERS, "local", "tcp://HOST:PORT", *JOBQUEUE])


@contextlib.contextmanager
def scheduler(
    name: str | None = None,
    *,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    memory_limit: str | None = None,
    cluster_config: str | Path | None = None,
    timeout: float = CONNECT_TIMEOUT,
    on_dashboard: Callable[[str], None] | None = None,
) -> Iterator[Session]:
    """Run the enclosed dask computations on ``name``.

    Parameters
    ----------
    name : str, optional
        ``threads`` (default; or ``BATCHPROC_SCHEDULER``), ``processes``,
        ``synchronous``, ``local`` (a LocalCluster on this machine),
        ``tcp://host:port`` (a running ``dask scheduler``), or a job-queue system
        (``slurm``, ``pbs``, ``sge``, ``lsf``, ``htcondor``, ``moab``, ``oar``)
        configured by ``cluster_config``.
    workers, threads_per_worker, memory_limit : optional
        The LocalCluster's size (default: one worker per core, one thread each;
        ``memory_limit`` such as ``"4GiB"`` per worker).
    cluster_config : path, optional
        YAML file for a job-queue cluster: dask-jobqueue's keyword arguments
        (``cores``, ``memory``, ``queue``, ``walltime``, ``job_extra_directives``, …)
        plus ``jobs: N`` or ``adaptive: {minimum: A, maximum: B}``.
    timeout : float
        Seconds to wait for a scheduler to answer before giving up with an error.
    on_dashboard : callable, optional
        Called with the dashboard address when there is one.
    """
    chosen = name or os.environ.get("BATCHPROC_SCHEDULER") or "threads"
    if chosen in LOCAL_SCHEDULERS:
        # "tasks" is what dask's rechunk picks when no client exists; saying so
        # keeps it from importing distributed (half a second) to find that out.
        with dask.config.set({"scheduler": chosen, "array.rechunk.method": "tasks"}):
            yield Session(chosen)
        return
    with contextlib.ExitStack() as stack:
        if chosen == "local":
            cluster = stack.enter_context(_local_cluster(workers, threads_per_worker, memory_limit))
            address: Any = cluster
        elif chosen.startswith("tcp://"):
            address = _reachable(chosen, timeout)
        elif chosen in JOBQUEUE:
            cluster = stack.enter_context(jobqueue_cluster(chosen, cluster_config))
            address = cluster
        else:
            raise BatchprocError(f"--scheduler must be one of {scheduler_names()}; got {chosen!r}.")
        client = stack.enter_context(_client(address, chosen, timeout))
        session = Session(chosen, client)
        if on_dashboard is not None and session.dashboard:
            on_dashboard(session.dashboard)
        with dask.config.set(scheduler=client):
            yield session


def _reachable(address: str, timeout: float) -> str:
    """Fail fast, with a message, when nothing listens at ``address``."""
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    if not host or not port.isdigit():
        raise BatchprocError(f"--scheduler {address!r}: expected tcp://HOST:PORT, such as tcp://127.0.0.1:8786.")
    try:
        with socket.create_connection((host, int(port)), timeout=min(timeout, 5.0)):
            pass
    except OSError as error:
        raise BatchprocError(
            f"--scheduler {address!r}: no dask scheduler answers there ({error.strerror or error}). Start one with `dask scheduler` or check the address."
        ) from None
    return address


@contextlib.contextmanager
def _client(address: Any, name: str, timeout: float) -> Iterator[Any]:
    from distributed import Client

    try:
        client = Client(address, timeout=f"{timeout}s")
    except (OSError, TimeoutError) as error:
        raise BatchprocError(f"--scheduler {name!r}: could not connect within {timeout:g} s ({error}).") from None
    try:
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def _local_cluster(workers: int | None, threads_per_worker: int | None, memory_limit: str | None) -> Iterator[Any]:
    from distributed import LocalCluster

    count = workers if workers is not None else os.cpu_count() or 1
    if count < 1 or (threads_per_worker is not None and threads_per_worker < 1):
        raise BatchprocError(f"--workers and --threads-per-worker must be at least 1; got {workers} and {threads_per_worker}.")
    try:
        cluster = LocalCluster(
            n_workers=count,
            threads_per_worker=threads_per_worker or 1,
            memory_limit=memory_limit or "auto",
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            processes=True,
        )
    except ValueError as error:
        raise BatchprocError(f"--memory-limit: {error}") from None
    try:
        yield cluster
    finally:
        cluster.close()


def load_cluster_config(path: str | Path | None) -> dict[str, Any]:
    """Read a job-queue YAML file: a mapping of dask-jobqueue's keyword arguments."""
    import yaml

    if path is None:
        return {}
    source = Path(path)
    try:
        loaded = yaml.safe_load(source.read_text())
    except OSError as error:
        raise BatchprocError(f"--cluster-config: cannot read {str(source)!r}: {error.strerror or error}.") from None
    except yaml.YAMLError as error:
        raise BatchprocError(f"--cluster-config: {str(source)!r} is not valid YAML: {error}.") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise BatchprocError(f"--cluster-config: {str(source)!r} must hold a mapping of settings; got {type(loaded).__name__}.")
    return loaded


def _jobqueue_class(kind: str) -> Any:
    try:
        import dask_jobqueue
    except ImportError:
        raise BatchprocError(f"--scheduler {kind}: needs dask-jobqueue (pip install 'batchproc[cluster]').") from None
    return getattr(dask_jobqueue, JOBQUEUE[kind])


def _jobqueue_kwargs(kind: str, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a configuration into the cluster's keyword arguments and the scaling."""
    import inspect

    cls = _jobqueue_class(kind)
    accepted = set()
    for klass in cls.__mro__ + (cls.job_cls,) + cls.job_cls.__mro__:
        with contextlib.suppress(TypeError, ValueError):
            accepted |= {p for p in inspect.signature(klass.__init__).parameters if p not in ("self", "args", "kwargs")}
    unknown = sorted(set(config) - accepted - set(JOBQUEUE_KEYS))
    if unknown:
        raise BatchprocError(
            f"--cluster-config: unknown setting(s) {', '.join(unknown)} for {kind}; valid: {', '.join(sorted(accepted | set(JOBQUEUE_KEYS)))}."
        )
    scaling = {k: config[k] for k in JOBQUEUE_KEYS if k in config}
    kwargs = {k: v for k, v in config.items() if k not in JOBQUEUE_KEYS}
    # The scheduler listens where the jobs can reach it; tests and laptops keep it local.
    kwargs.setdefault("scheduler_options", {"dashboard_address": ":0"})
    return kwargs, scaling


def _new_jobqueue(kind: str, kwargs: dict[str, Any]) -> Any:
    try:
        return _jobqueue_class(kind)(**kwargs)
    except (TypeError, ValueError) as error:
        raise BatchprocError(f"--cluster-config: {kind} refused the settings: {error}") from None


@contextlib.contextmanager
def jobqueue_cluster(kind: str, config_path: str | Path | None) -> Iterator[Any]:
    """A dask-jobqueue cluster of ``kind`` from the YAML file at ``config_path``,
    scaled to ``jobs`` or made adaptive between ``adaptive.minimum`` and ``.maximum``."""
    kwargs, scaling = _jobqueue_kwargs(kind, load_cluster_config(config_path))
    cluster = _new_jobqueue(kind, kwargs)
    try:
        adaptive = scaling.get("adaptive")
        if isinstance(adaptive, dict):
            cluster.adapt(minimum=int(adaptive.get("minimum", 0)), maximum=int(adaptive.get("maximum", 1)))
        else:
            cluster.scale(jobs=int(scaling.get("jobs", 1)))
        yield cluster
    finally:
        cluster.close()


def job_script(kind: str, config_path: str | Path | None) -> str:
    """The batch script dask-jobqueue would submit for one worker job (for review,
    and for systems where submission happens elsewhere). Starts no job."""
    kwargs, _ = _jobqueue_kwargs(kind, load_cluster_config(config_path))
    # The scheduler this starts only fills in the script's address: keep it on loopback.
    kwargs["scheduler_options"] = {"host": "127.0.0.1", **kwargs["scheduler_options"]}
    cluster = _new_jobqueue(kind, kwargs)
    try:
        return str(cluster.job_script())
    finally:
        cluster.close()
