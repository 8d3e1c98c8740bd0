"""The one runner: computes a plan into an output, on every scheduler.

A run is a series of *block tasks*, each a plain function call: read the block's
region (its voxels and halo) straight from the input, take it through every step
(:func:`batchproc.blocks.run_links`), and either reduce it to a small array (a
global step's pass) or write its output chunks. A task needs only the plan (sent
once to each process) and the block's index, so nothing grows with the volume:
no task graph, no scheduler state beyond the blocks in flight.

Blocks go out in a window of about two per thread, in order along the axis with
most blocks, and each one that finishes lets the next in: memory stays bounded
by the window whatever the volume's size, and blocks that share halo chunks run
close together (:mod:`batchproc.io.regions` keeps those chunks while they are
needed). Where the work runs is chosen once, in :func:`pool`: a thread pool
(``threads``, the default), the calling thread (``synchronous``), a process
pool (``processes``), or a ``distributed`` client (LocalCluster, ``tcp://``,
job queues), whose workers read their own input and write their own chunks.

Dask arrays that do not come from a plan (``batchproc.write`` of any dask array,
pyramid levels) are computed by dask itself: :func:`compute_blocks`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import gc
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask
import numpy as np

from batchproc import dispatch
from batchproc.blocks import Link, fused, run_links
from batchproc.dispatch import Trial, chain_trial, compile_lock, compile_mode, layouts
from batchproc.engine.progress import block_bar, is_bar, shown
from batchproc.errors import BatchprocError, SchedulerLost
from batchproc.kernels import buffers
from batchproc.ops._registry import combine
from batchproc.plan import Plan

_THREAD = threading.local()


@contextlib.contextmanager
def in_this_thread() -> Iterator[None]:
    """Run this thread's computations one task at a time in this thread, whatever
    the global scheduler: for work that is itself one of many running in parallel
    (``dask.config.set`` is process-wide, so it cannot say this per thread)."""
    _THREAD.synchronous = True
    try:
        yield
    finally:
        _THREAD.synchronous = False


_FROZEN = {"depth": 0, "ours": False}
_FROZEN_LOCK = threading.Lock()


@contextlib.contextmanager
def collector_frozen() -> Iterator[None]:
    """Keep Python's cyclic garbage collector off the objects that exist before a
    local computation (``gc.freeze``) until the last one running ends.

    The collector holds the GIL while it walks every tracked object (about
    150,000 once numba, scipy and dask are imported), in which no task can start
    or hand back its block. Objects made during the computation are still
    collected as usual (see docs/concepts/memory.md)."""
    with _FROZEN_LOCK:
        if _FROZEN["depth"] == 0:
            # A program that froze objects itself (before forking, say) keeps
            # them frozen: unfreeze would thaw its objects with ours.
            _FROZEN["ours"] = gc.isenabled() and gc.get_freeze_count() == 0
            if _FROZEN["ours"]:
                gc.freeze()
        _FROZEN["depth"] += 1
    try:
        yield
    finally:
        with _FROZEN_LOCK:
            _FROZEN["depth"] -= 1
            if _FROZEN["depth"] == 0 and _FROZEN["ours"]:
                gc.unfreeze()


# ---------------------------------------------------------------- where tasks run


def local_schedule() -> Callable[..., Any] | None:
    """The local dask scheduler the enclosed work runs on (``dask.threaded.get``,
    ``dask.local.get_sync``, ``dask.multiprocessing.get``), or None for a client.

    Same choice as dask's ``get_scheduler``, made without importing ``distributed``:
    dask imports it only to look for a client, and no client can exist in a
    process that never imported it."""
    import dask.local
    import dask.threaded
    from dask.base import named_schedulers

    if getattr(_THREAD, "synchronous", False):
        return dask.local.get_sync
    chosen = dask.config.get("scheduler", None)
    if isinstance(chosen, str) and chosen.lower() in named_schedulers:
        return named_schedulers[chosen.lower()]
    if chosen is None and "distributed" not in sys.modules:
        return dask.threaded.get  # dask arrays' own default
    return None


def current_client() -> Any:
    """The ``distributed.Client`` the enclosed work runs on, or None."""
    if "distributed" not in sys.modules:
        return None
    chosen = dask.config.get("scheduler", None)
    try:
        from distributed import Client, default_client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    if isinstance(chosen, Client):
        return chosen
    if chosen is None:
        with contextlib.suppress(ValueError):
            return default_client()
    return None


class Pool:
    """Where block tasks run: ``submit`` a function, ``wait`` for one of the
    pending to finish, ``share`` a value every task reads (sent once)."""

    threads = 1
    #: Do its tasks run in processes other than this one?
    processes = False

    def share(self, value: Any) -> Any:
        return value

    def lanes(self, tasks: Sequence[tuple[Any, ...]]) -> Iterator[tuple[tuple[Any, ...], Any]]:
        """``tasks`` in the order they go out, each with where it should run (None:
        anywhere)."""
        return ((task, None) for task in tasks)

    def submit(self, fn: Callable[..., Any], *args: Any, where: Any = None) -> Any:
        raise NotImplementedError

    def wait(self, pending: set[Any]) -> tuple[set[Any], set[Any]]:
        done, rest = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
        return set(done), set(rest)

    def result(self, future: Any) -> Any:
        return future.result()

    def cancel(self, pending: Iterable[Any]) -> None:
        for future in pending:
            future.cancel()

    def release(self, run: str) -> None:
        """Free what ``run`` kept in this process (the input chunks kept for halos,
        the free block buffers)."""
        _release(run)


def _shared(value: Any) -> Any:
    return value


def _release(run: str) -> None:
    from batchproc.io.regions import CACHE

    CACHE.forget(run)
    buffers.release()


class InlinePool(Pool):
    """The calling thread: each task runs as it is submitted."""

    def submit(self, fn: Callable[..., Any], *args: Any, where: Any = None) -> Any:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args))
        except BaseException as error:
            future.set_exception(error)
        return future


class ExecutorPool(Pool):
    """A ``concurrent.futures`` executor: threads of this process, or processes
    (whose caches end with them)."""

    def __init__(self, executor: concurrent.futures.Executor, threads: int, processes: bool = False) -> None:
        self.executor, self.threads, self.processes = executor, threads, processes

    def submit(self, fn: Callable[..., Any], *args: Any, where: Any = None) -> Any:
        return self.executor.submit(fn, *args)


class ClientPool(Pool):
    """The workers of a ``distributed`` cluster. Waits are bounded: a scheduler
    that stops answering ends the run with :class:`SchedulerLost`."""

    #: Seconds without a connected scheduler before a run gives up.
    LOST_AFTER = 20.0
    processes = True

    def __init__(self, client: Any) -> None:
        self.client = client
        self.threads = max(1, sum(client.nthreads().values()))

    def share(self, value: Any) -> Any:
        # A task that returns the value, not scattered data: a worker lost with
        # the only copy (distributed keeps one replica of data nobody else needs)
        # makes the scheduler compute it again, where scattered data would be
        # gone, and every block task waiting for it with it.
        return self.client.submit(_shared, value, pure=False)

    def lanes(self, tasks: Sequence[tuple[Any, ...]]) -> Iterator[tuple[tuple[Any, ...], Any]]:
        """Each worker its own lane: a contiguous run of the tasks (so that the
        blocks sharing a halo chunk run in one process, which reads it once), the
        lanes taking turns. A lane is a preference: a busy or lost worker's blocks
        may run elsewhere."""
        try:
            workers = sorted(self.client.scheduler_info()["workers"])
        except Exception as error:
            raise self._lost(error) from None
        if len(workers) < 2:
            yield from ((task, None) for task in tasks)
            return
        bounds = np.linspace(0, len(tasks), len(workers) + 1).round().astype(int)
        parts = [tasks[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        for i in range(max(len(part) for part in parts)):
            for worker, part in zip(workers, parts, strict=True):
                if i < len(part):
                    yield part[i], worker

    def submit(self, fn: Callable[..., Any], *args: Any, where: Any = None) -> Any:
        if where is None:
            return self.client.submit(fn, *args, pure=False)
        return self.client.submit(fn, *args, pure=False, workers=[where], allow_other_workers=True)

    def wait(self, pending: set[Any]) -> tuple[set[Any], set[Any]]:
        from distributed import wait

        unreachable_since = None
        while True:
            try:
                done, rest = wait(list(pending), timeout=2.0, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done, rest = set(), pending
            except Exception as error:
                raise self._lost(error) from None
            if self.client.status != "running":
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since > self.LOST_AFTER:
                    raise self._lost(None)
            else:
                unreachable_since = None
            if done:
                return set(done), set(rest)

    def result(self, future: Any) -> Any:
        try:
            return future.result()
        except BatchprocError:
            raise
        except Exception as error:
            from distributed.comm.core import CommClosedError

            # A task's own error comes back as itself; these say the connection went.
            lost = isinstance(error, CommClosedError | concurrent.futures.CancelledError)
            if lost or future.status == "cancelled" or self.client.status != "running":
                raise self._lost(error) from None
            raise

    def cancel(self, pending: Iterable[Any]) -> None:
        with contextlib.suppress(Exception):
            self.client.cancel(list(pending))

    def release(self, run: str) -> None:
        if self.client.status == "running":
            with contextlib.suppress(Exception):
                self.client.run(_release, run)

    def _lost(self, error: BaseException | None) -> SchedulerLost:
        address = getattr(getattr(self.client, "scheduler", None), "address", None) or "of this run"
        return SchedulerLost(f"lost the connection to the dask scheduler {address}; every chunk written before stays on disk.")


@contextlib.contextmanager
def pool() -> Iterator[Pool]:
    """The pool of the scheduler in force (see :func:`batchproc.engine.scheduler`):
    the one place that tells schedulers apart."""
    import dask.local
    import dask.multiprocessing
    import dask.threaded

    schedule = local_schedule()
    client = current_client() if schedule is None else None
    if schedule is None and client is None:
        schedule = dask.threaded.get  # no client after all: dask's own default
    if schedule is dask.local.get_sync:
        yield InlinePool()
    elif schedule is dask.threaded.get:
        threads = int(dask.config.get("num_workers", None) or os.cpu_count() or 1)
        with concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="batchproc") as executor, collector_frozen():
            yield ExecutorPool(executor, threads)
    elif schedule is dask.multiprocessing.get:
        import multiprocessing

        threads = int(dask.config.get("num_workers", None) or os.cpu_count() or 1)
        context = multiprocessing.get_context(dask.config.get("multiprocessing.context", "spawn"))
        with concurrent.futures.ProcessPoolExecutor(threads, mp_context=context) as executor:
            yield ExecutorPool(executor, threads, processes=True)
    elif client is not None:
        yield ClientPool(client)
    else:
        raise BatchprocError(f"no scheduler: dask's scheduler is set to {dask.config.get('scheduler', None)!r}, which batchproc cannot run tasks on.")


def windowed(pool: Pool, tasks: Sequence[tuple[Any, ...]], window: int, on_done: Callable[[Any], None]) -> None:
    """Run ``tasks`` (``(fn, *args)``) with at most ``window`` in flight, refilling
    as each finishes, in the pool's lanes; ``on_done`` gets each result, in the
    order they finish. The first task that fails ends the run: the others are
    cancelled, its error raised."""
    todo = pool.lanes(tasks)
    pending: set[Any] = set()
    try:
        while True:
            while len(pending) < window:
                task, where = next(todo, (None, None))
                if task is None:
                    break
                pending.add(pool.submit(*task, where=where))
            if not pending:
                return
            done, pending = pool.wait(pending)
            for future in done:
                on_done(pool.result(future))
    except BaseException:
        pool.cancel(pending)
        raise


# ---------------------------------------------------------------- block tasks


class ReadAhead:
    """Blocks' regions read ahead, in the order the blocks go out, by block tasks
    of this process that would otherwise wait for the compiled kernels to load
    (their first loading takes a few tenths of a second, in which the threads have
    read their own blocks already). Each such task reads one block more, a block
    of the window in flight: memory stays within the window's bound."""

    def __init__(self, order: Sequence[tuple[int, ...]]) -> None:
        self._order = list(order)
        self._next = 0
        self._gone: set[tuple[int, ...]] = set()  # read by their task, or claimed
        self._found: dict[tuple[int, ...], concurrent.futures.Future[Any]] = {}
        self._lock = threading.Lock()
        self.taken = 0  # regions a task found read ahead

    def take(self, index: tuple[int, ...]) -> Any:
        """Block ``index``'s region if it was read ahead (waiting for a read under
        way), else None: its task reads it."""
        with self._lock:
            found = self._found.pop(index, None)
            self._gone.add(index)
            if found is not None:
                self.taken += 1
        return None if found is None else found.result()

    def read_next(self, read: Callable[[tuple[int, ...]], Any]) -> None:
        """Read the region of the next block no task has read yet with ``read``."""
        with self._lock:
            while self._next < len(self._order) and self._order[self._next] in self._gone:
                self._next += 1
            if self._next == len(self._order):
                return
            index = self._order[self._next]
            self._gone.add(index)
            found = self._found[index] = concurrent.futures.Future()
        try:
            found.set_result(read(index))
        except BaseException as error:  # raised in the block's own task
            found.set_exception(error)


@dataclass(frozen=True)
class Job:
    """What every block task of one pass (or of the writing) reads: the plan, the
    results of the passes done, and where the blocks' chunks go."""

    plan: Plan
    results: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    target: Any = None  # a ChunkFiles, or any array-like taking chunk writes
    cache_bytes: int = 0
    #: Several processes of a machine may run its blocks: their first compiles
    #: take turns (numba's own lock already covers the threads of one process).
    processes: bool = False
    #: Where this process's threads run the blocks: their regions read ahead.
    ahead: ReadAhead | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.plan.token, len(self.results))


#: Each process's links of the jobs it ran lately: kernels are chosen once per
#: job, kernel set and process, not per block.
_LINKS: OrderedDict[tuple[Any, ...], list[Link]] = OrderedDict()
_LINKS_LOCK = threading.Lock()


def links(job: Job, upto: int, kernels: str | None = None) -> list[Link]:
    """The first ``upto`` steps of ``job``'s plan, ready to run on blocks, with the
    kernel set ``kernels`` (default: the plan's)."""
    plan = job.plan
    kernels = kernels or plan.kernels
    key = (*job.key, upto, kernels)
    with _LINKS_LOCK:
        found = _LINKS.get(key)
    if found is not None:
        return found
    chain = []
    for k, step in enumerate(plan.steps[:upto]):
        op = step.op
        if step.is_global:
            finish = op.finish(step.dtype, step.params)
            count = len(op.passes(step.dtype, step.params, kernels)) if op.passes else 0
            results = tuple(job.results[(k, j)] for j in range(count))
            chain.append(Link(_Finished(finish, results, op.located), {}, (), step.reach))
        else:
            then = op.then(step.dtype, step.params, kernels)
            chain.append(Link(op.kernel(step.dtype, step.params, kernels), step.params, (), step.reach, then, op.name if op.kind == "pointwise" else None))
    chain = fused(chain)
    with _LINKS_LOCK:
        _LINKS[key] = chain
        while len(_LINKS) > 8:
            _LINKS.popitem(last=False)
    return chain


class _Finished:
    """A global step once its passes are done: voxel by voxel with their results."""

    def __init__(self, finish: Callable[..., np.ndarray], results: tuple[Any, ...], located: bool = False) -> None:
        self.finish, self.results, self.located = finish, results, located

    def __call__(self, block: np.ndarray, where: Any = None) -> np.ndarray:
        if self.located:  # (where: the block's box; None for a trial block that loads kernels)
            return self.finish(block, *self.results, where=where)
        return self.finish(block, *self.results)


#: Each process's trials of the jobs it ran lately (None: no step of theirs has
#: a compiled kernel), and in ``wait`` mode the trials it already ran.
_TRIALS: OrderedDict[tuple[Any, ...], Trial | None] = OrderedDict()
_STARTED: OrderedDict[tuple[Any, ...], None] = OrderedDict()
_STARTED_LOCK = threading.Lock()


def trial_of(plan: Plan, upto: int | None = None) -> Trial | None:
    """The :class:`~batchproc.dispatch.Trial` that loads the compiled kernels of
    the first ``upto`` steps of ``plan`` (default all); None where none of them
    has one. A global step's finish compiles nothing and is stood in for by its
    output dtype."""
    upto = len(plan.steps) if upto is None else upto
    steps = plan.steps[:upto]
    if not any(step.op.fast is not None for step in steps):
        return None
    described = tuple((None, {}, step.out.str, ()) if step.is_global else (step.name, dict(step.params), step.dtype.str, ()) for step in steps)
    return chain_trial(plan.source.dtype, described, layouts(plan.shape, plan.reach(upto), plan.blocks))


def _trial(job: Job, upto: int | None) -> Trial | None:
    """:func:`trial_of` ``job``'s plan, once per process."""
    key = (*job.key, upto)
    with _STARTED_LOCK:
        if key in _TRIALS:
            return _TRIALS[key]
        trial = _TRIALS[key] = trial_of(job.plan, upto)
        while len(_TRIALS) > 64:
            _TRIALS.popitem(last=False)
        return trial


@contextlib.contextmanager
def kernels_now(job: Job, upto: int | None) -> Iterator[str]:
    """The kernel set a block task of ``job`` runs here, now: the plan's, but
    scipy's while this process is still getting the compiled ones ready
    (:func:`batchproc.dispatch.turn`)."""
    plan = job.plan
    if plan.kernels != "compiled":
        yield plan.kernels
        return
    key = (*job.key, upto)
    trial = _trial(job, upto)
    if trial is None:
        yield plan.kernels
        return
    if compile_mode() != "wait":
        with dispatch.turn(trial) as compiled:
            yield plan.kernels if compiled else "scipy"
        return
    if job.processes and key not in _STARTED:
        # Several processes of a machine: their first compiles take turns, so a
        # kernel compiles once per machine and the others load it from the cache.
        with _STARTED_LOCK:
            if key not in _STARTED:
                with compile_lock():
                    trial.run()
                _STARTED[key] = None
                while len(_STARTED) > 256:
                    _STARTED.popitem(last=False)
    yield plan.kernels


def compute_block(job: Job, index: tuple[int, ...], upto: int | None = None) -> np.ndarray:
    """Block ``index`` through the first ``upto`` steps (default all): read with
    their halo from the input, exactly the block's voxels out. The block is read
    before its kernels are asked for: the first blocks' reads overlap the loading
    of the compiled kernels."""
    from batchproc.io.regions import CACHE, read_region

    plan = job.plan
    steps = len(plan.steps) if upto is None else upto
    if job.cache_bytes:
        CACHE.reserve(plan.source.token, job.cache_bytes)
    reach = plan.reach(steps)
    src = plan.source
    readers = (lambda chunk: plan.chunk_readers(chunk, reach)) if src.native is not None else None
    faces = (lambda chunk: plan.chunk_faces(chunk, reach)) if src.native is not None else None

    def read(index: tuple[int, ...]) -> tuple[np.ndarray, Any, Any]:
        lo, hi, have = plan.region(index, steps)
        exclusive = [(start + r, stop - r) for (start, stop), r in zip(plan.box(index), reach, strict=True)]
        return read_region(src.reader, src.shape, src.dtype, src.native, lo, hi, exclusive, (src.token, steps), readers, faces=faces), have, lo

    ahead = job.ahead if upto is None else None
    found = ahead.take(index) if ahead is not None else None
    block, have, lo = found if found is not None else read(index)
    if ahead is not None and plan.kernels == "compiled":
        trial = _trial(job, upto)
        if trial is not None and dispatch.loading(trial):
            ahead.read_next(read)
    with kernels_now(job, upto) as kernels:
        return run_links(block, links(job, steps, kernels), have, own=True, origin=lo)


def pass_task(job: Job, index: tuple[int, ...], step: int, number: int) -> np.ndarray:
    """Block ``index``'s partial result for pass ``number`` of global step ``step``."""
    plan = job.plan
    bound = plan.steps[step]
    one = bound.op.passes(bound.dtype, bound.params, plan.kernels)[number]
    block = compute_block(job, index, upto=step)
    earlier = [job.results[(step, j)] for j in range(number)]
    if one.located:
        return one.partial(block, *earlier, where=plan.box(index), shape=plan.shape)
    return np.asarray(one.partial(block, *earlier))


def write_task(job: Job, index: tuple[int, ...], files: Sequence[tuple[int, ...]]) -> int:
    """Compute block ``index`` and write its output ``files`` (chunks, or whole
    shards: all of the block's, or those a resumed run still misses); the bytes
    written, uncompressed."""
    plan = job.plan
    block = compute_block(job, index)
    box = plan.box(index)
    written = 0
    for unit in files:
        where = tuple(slice(u * size - start, min((u + 1) * size, stop) - start) for u, size, (start, stop) in zip(unit, plan.file_shape, box, strict=True))
        part = block[where]
        job.target.write(tuple(unit), part)
        written += part.nbytes
    return written


def run_plan(plan: Plan, target: Any, todo: Sequence[tuple[tuple[int, ...], Sequence[tuple[int, ...]]]] | None = None, *, on: Pool | None = None) -> int:
    """Compute ``plan`` into ``target`` (an array-like with ``write``) on the
    scheduler in force (or the pool ``on``): the passes of its global steps over
    every block, then the blocks of ``todo`` (``(block, files to write)``; default
    every block, all its files). Returns the bytes written, uncompressed."""
    if todo is None:
        todo = [(index, list(plan.files_of(index))) for index in plan.ordered_blocks()]
    with contextlib.nullcontext(on) if on is not None else pool() as workers:
        if plan.kernels == "compiled" and not isinstance(workers, ClientPool):
            _prepare_early(plan)
        window = max(2, 2 * workers.threads)
        cache = plan.cache_bytes(window, workers.processes)
        try:
            results = _passes(plan, workers, window, cache)
            # Threads of this process read ahead while its kernels load (a process
            # pool's or a cluster's workers each start from their own first block).
            threads_here = isinstance(workers, ExecutorPool) and not workers.processes
            ahead = ReadAhead([index for index, _ in todo]) if threads_here and plan.kernels == "compiled" else None
            shared = workers.share(Job(plan, results, target, cache, workers.processes, ahead))
            written = [0]
            with block_bar(len(todo)) as advance:

                def done(nbytes: int) -> None:
                    written[0] += nbytes
                    advance()

                windowed(workers, [(write_task, shared, index, chunks) for index, chunks in todo], window, done)
        finally:
            workers.release(plan.source.token)
    return written[0]


def _prepare_early(plan: Plan) -> None:
    """Start getting the compiled kernels ready in this process as the run starts,
    while the first blocks are read (``wait`` mode: numba's own set-up only)."""
    if compile_mode() == "wait":
        from batchproc.kernels import warm_up

        warm_up()
        return
    for upto in sorted({*(step for step, _ in plan.passes()), len(plan.steps)}):
        trial = trial_of(plan, upto)
        if trial is not None:
            dispatch.prepare(trial)


def _passes(plan: Plan, workers: Pool, window: int, cache: int) -> dict[tuple[int, int], np.ndarray]:
    """The results of every pass of the plan's global steps, in order (each pass
    reads the results of those before it)."""
    results: dict[tuple[int, int], np.ndarray] = {}
    passes = plan.passes()
    for number, (step, j) in enumerate(passes):
        bound = plan.steps[step]
        one = bound.op.passes(bound.dtype, bound.params, plan.kernels)[j]
        kind = one.combine
        shared = workers.share(Job(plan, dict(results), None, cache, workers.processes))
        total: list[Any] = []
        with block_bar(plan.block_count, f"pass {number + 1} of {len(passes)}: {bound.name}") as advance:

            def add(part: Any, total: list[Any] = total, kind: Any = kind, advance: Callable[[], None] = advance) -> None:
                if kind == "collect":
                    total.append(part)
                else:
                    total[:] = [combine(kind, [total[0], part]) if total else part]
                advance()

            windowed(workers, [(pass_task, shared, index, step, j) for index in plan.ordered_blocks()], window, add)
        results[(step, j)] = one.reduce(total, plan.shape) if kind == "collect" and one.reduce is not None else total[0]
    return results


# ---------------------------------------------------------------- dask collections


def compute(tasks: Sequence[Any]) -> list[Any]:
    """Compute dask collections ``tasks`` on the scheduler in force (a bar counts
    them on a cluster, inside :func:`~batchproc.engine.progress.progress`)."""
    local = local_schedule()
    if local is not None:
        with collector_frozen():
            return list(dask.compute(*tasks, scheduler=local))
    client = current_client()
    if client is None:
        return list(dask.compute(*tasks))
    from distributed import as_completed

    futures = client.compute(list(tasks))
    with block_bar(len(futures) if shown() else 0) as advance:
        for _ in as_completed(futures):
            advance()
    return client.gather(futures)


def compute_blocks(array: Any, blocks: Sequence[tuple[int, ...]]) -> None:
    """Compute the listed blocks of the dask array ``array`` for their side effects
    (writes), for dask arrays that do not come from a plan.

    On the local ``threads`` and ``synchronous`` schedulers input reads are held
    back behind the writes (:mod:`batchproc.engine.layers`); on a cluster the
    blocks go in slabs of whole layers, a few in flight, so that neither the
    scheduler nor the workers ever hold the whole volume's graph."""
    import dask.local
    import dask.threaded
    from dask.base import get_scheduler
    from dask.callbacks import Callback

    from batchproc.engine.layers import compute_gated, slabs
    from batchproc.plan import layer_axis

    if not blocks:
        return
    schedule = local_schedule() or get_scheduler(collections=[array])
    if schedule in (dask.threaded.get, dask.local.get_sync):
        with collector_frozen(), block_bar(len(blocks)) as advance:
            others = [cb for cb in Callback.active if not is_bar(cb)] if shown() else None
            compute_gated(array, blocks, schedule, callbacks=others, on_block=advance if shown() else None)
        return
    client = current_client()
    if client is None:
        compute([array.blocks[index] for index in blocks])
        return
    axis = layer_axis(array.numblocks)
    threads = max(1, sum(client.nthreads().values()))
    wanted = {tuple(b) for b in blocks}
    groups = []
    for lo, hi in slabs(array.numblocks, axis, max(4 * threads, 16)):
        inside = [b for b in wanted if lo <= b[axis] < hi]
        if inside:
            groups.append(inside)
    workers = ClientPool(client)

    def slab(inside: list[tuple[int, ...]]) -> Any:
        return client.compute([array.blocks[b] for b in inside])

    pending: set[Any] = set()
    with block_bar(len(blocks)) as advance:
        for inside in groups:
            futures = slab(inside)
            pending |= set(futures)
            while len(pending) > 2 * max(4 * threads, 16):
                done, pending = workers.wait(pending)
                for future in done:
                    workers.result(future)
                    advance()
        while pending:
            done, pending = workers.wait(pending)
            for future in done:
                workers.result(future)
                advance()
