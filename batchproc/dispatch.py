"""Which kernel set runs a block: scipy's until its process has the compiled
kernels, so that no block waits for a compiler.

numba compiles a kernel the first time a process calls it with new types, and
keeps the machine code in its on-disk cache. Each set of compiled kernels a run
needs is described by a :class:`Trial`: a call, by name and with arguments that
pickle, that runs those kernels on tiny arrays of every layout the blocks will
give them. The first time a block asks :func:`ready` for a trial, a thread of its
process starts getting the kernels ready:

- where numba's cache is noted to hold them (:func:`is_noted`), the thread loads
  them with compiling forbidden (:func:`compiles_forbidden`), and blocks wait for
  that load, a bounded while;
- otherwise blocks run scipy's kernels (equal by the contract) while another
  process (``python -m batchproc.dispatch``, the trial pickled on its standard
  input) compiles them into numba's cache, one such process per machine at a
  time (:func:`compile_lock`); it outlives the run if it must, so that the next
  process finds the cache warm. Then the thread loads them, and the blocks that
  ask afterwards run the compiled ones.

Either way a block's result is the same, bit for bit. numba holds the GIL for
much of a compilation, and a thread ends with its process: compiling in the
run's own process would slow its scipy blocks and, in a run shorter than the
compilation, leave the cache empty (see docs/concepts/kernels.md).

``batchproc.compile`` (dask config) or ``BATCHPROC_COMPILE``, read where the
blocks run, chooses how (:data:`batchproc.kernels.COMPILE_MODES`):

- ``background`` (default): as above;
- ``wait``: no dispatch: the compiled kernels compile where first called, in the
  task that calls them (``batchproc warm``, and the test suite, which holds the
  compiled kernels themselves to the contract).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchproc.kernels import compile_mode

#: Seconds a preparing thread waits for the compiling process before it
#: compiles what is still missing itself (a bound: the thread never holds a block).
COMPILER_TIMEOUT = 900.0


@dataclass(frozen=True)
class Trial:
    """A call that gets a set of compiled kernels ready in the process that makes
    it: ``function`` (``"module:name"``) with ``args``, which pickle, so another
    process can make the same call and fill numba's cache for it. ``key`` names
    the trial in a process."""

    function: str
    args: tuple[Any, ...]
    key: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        from dask.base import tokenize

        object.__setattr__(self, "key", tokenize(self.function, self.args))

    def run(self) -> None:
        module, name = self.function.split(":")
        getattr(importlib.import_module(module), name)(*self.args)


# ---------------------------------------------------------------- this process


@dataclass
class _State:
    #: Set once the trial is done, well or not.
    done: threading.Event = field(default_factory=threading.Event)
    #: Set once it is known whether blocks should wait: the kernels are ready,
    #: or they must be compiled (or the trial failed).
    settled: threading.Event = field(default_factory=threading.Event)
    ok: bool = False
    cached: bool = False
    error: BaseException | None = None


_STATES: dict[str, _State] = {}
_LOCK = threading.Lock()
#: How many times blocks asked, per trial key and answer (compiled or scipy).
ASKED: Counter[tuple[str, str]] = Counter()

#: Seconds a block waits for kernels that numba's cache is noted to hold as
#: they load (a bound: a slow load, or a note gone stale, leaves it to scipy's).
LOAD_WAIT = 10.0


def _forget_after_fork() -> None:
    # A forked child has none of its parent's threads: its trials start again.
    global _SLOTS
    _STATES.clear()
    ASKED.clear()
    _COMPILING[0] = 0
    _SLOTS = threading.BoundedSemaphore(max(1, _cores() - 1))


def ready(trial: Trial) -> bool:
    """Are ``trial``'s compiled kernels ready in this process? The first ask
    starts getting them ready in a thread. Until they are, the answer is False
    and the caller runs scipy's kernels; but where numba's cache is noted to
    hold them (:func:`note_cached`), the ask waits for them to load (at most
    :data:`LOAD_WAIT` seconds): a load takes less than a compiled block saves.
    Always True in ``wait`` mode. Each answer is counted in :data:`ASKED`."""
    return _counted(trial, _ready(trial, wait_for_load=True))


@contextlib.contextmanager
def turn(trial: Trial) -> Iterator[bool]:
    """One block's turn: whether it runs the compiled kernels (:func:`ready`).
    While this process's kernels compile in another process, its blocks on
    scipy's kernels take turns for all the cores but one, which the compiler
    has to itself: the compiled kernels, many times faster, come sooner."""
    answer = _ready(trial, wait_for_load=True)
    if answer or not _COMPILING[0]:
        yield _counted(trial, answer)
        return
    with _SLOTS:
        yield _counted(trial, _ready(trial))  # (they may be ready by now)


def _counted(trial: Trial, answer: bool) -> bool:
    with _LOCK:
        ASKED[(trial.key, "compiled" if answer else "scipy")] += 1
    return answer


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


#: How many of this process's trials are compiling in another process now.
_COMPILING = [0]
#: The blocks on scipy's kernels that may run while they do.
_SLOTS = threading.BoundedSemaphore(max(1, _cores() - 1))


os.register_at_fork(after_in_child=_forget_after_fork)


@contextlib.contextmanager
def _compiling() -> Iterator[None]:
    with _LOCK:
        _COMPILING[0] += 1
    try:
        yield
    finally:
        with _LOCK:
            _COMPILING[0] -= 1


def _ready(trial: Trial, wait_for_load: bool = False) -> bool:
    if compile_mode() == "wait":
        return True
    state = _STATES.get(trial.key)
    if state is None:
        with _LOCK:
            state = _STATES.get(trial.key)
            if state is None:
                state = _STATES[trial.key] = _State(cached=is_noted(trial))
                threading.Thread(target=_prepare, args=(trial, state), name="batchproc-kernels", daemon=True).start()
    if wait_for_load and state.cached and not state.ok:
        state.settled.wait(LOAD_WAIT)
    return state.ok


def loading(trial: Trial) -> bool:
    """Is this process loading ``trial``'s kernels from numba's cache now, the
    blocks that ask waiting for them? (Not an ask: a block task with other work
    to do meanwhile looks here first.)"""
    if compile_mode() == "wait":
        return False
    state = _STATES.get(trial.key)
    return state is not None and state.cached and not state.settled.is_set()


def answers() -> dict[str, int]:
    """How many asks of this process :func:`ready` answered with each kernel
    set, ``{"compiled": n, "scipy": m}``, since :data:`ASKED` was last cleared."""
    totals = {"compiled": 0, "scipy": 0}
    with _LOCK:
        for (_, answer), n in ASKED.items():
            totals[answer] += n
    return totals


def prepare(trial: Trial) -> None:
    """Start getting ``trial``'s kernels ready in this process, ahead of the
    blocks that will ask (not an ask: nothing is counted, nothing waits)."""
    _ready(trial)


def wait(trial: Trial, timeout: float) -> bool:
    """Start preparing ``trial`` if need be and wait at most ``timeout`` seconds
    for it; whether its kernels are ready (for tests and benchmarks: a run never
    waits for a compiler)."""
    if _ready(trial):
        return True
    state = _STATES[trial.key]
    state.done.wait(timeout)
    return state.ok


def waiting(timeout: float) -> bool:
    """Wait at most ``timeout`` seconds for every trial this process started;
    whether all of them got their kernels ready."""
    end = time.monotonic() + timeout
    for state in list(_STATES.values()):
        state.done.wait(max(0.0, end - time.monotonic()))
    return all(state.ok for state in _STATES.values())


def _prepare(trial: Trial, state: _State) -> None:
    """The preparing thread. Where numba's cache is noted to hold the kernels,
    load them, compiling forbidden. Otherwise (or if the note was stale) the
    blocks go on with scipy's while another process compiles the kernels (after
    waiting for one already compiling on this machine: it may be writing them);
    then they load."""
    try:
        if state.cached:
            try:
                with compiles_forbidden():
                    trial.run()
                state.ok = True
                return
            except WouldCompile:
                pass
        state.settled.set()
        with _compiling():
            _compile_elsewhere_unless_cached(trial)
        trial.run()  # loads what the compiler wrote; compiles here whatever is still missing
        note_cached(trial)
        state.ok = True
    except BaseException as error:  # a trial that fails keeps this process on scipy's kernels
        state.error = error
        warnings.warn(f"batchproc: compiled kernels not loaded ({type(error).__name__}: {error}); scipy's run instead.", RuntimeWarning, stacklevel=1)
    finally:
        state.settled.set()
        state.done.set()


def _compile_elsewhere_unless_cached(trial: Trial) -> None:
    """Have another process compile ``trial``'s kernels into numba's cache, unless
    one compiling on this machine already did (it is waited for, then the cache
    is tried, compiling forbidden)."""
    if _waited_for_compiler() or is_noted(trial):
        try:
            with compiles_forbidden():
                trial.run()
            return
        except WouldCompile:
            pass
    compile_elsewhere([trial])


def _waited_for_compiler(timeout: float = COMPILER_TIMEOUT) -> bool:
    """If a process of this machine is compiling, wait (at most ``timeout``
    seconds) until it is done; whether one was."""
    if not compiler_running():
        return False
    end = time.monotonic() + timeout
    while compiler_running() and time.monotonic() < end:
        time.sleep(0.2)
    return True


# ---------------------------------------------------------------- what numba's cache holds


def _note(trial: Trial) -> Path:
    """The file whose presence says numba's cache holds ``trial``'s kernels, for
    this numba and these kernels' sources (numba's cache itself is keyed by the
    sources' stamps: a change to them leaves the note behind)."""
    from dask.base import tokenize

    return lock_folder() / "batchproc-cached" / tokenize(trial.key, _stamp())


_STAMP: list[str] = []


def _stamp() -> str:
    if not _STAMP:
        import platform
        from importlib.metadata import version

        from batchproc import kernels

        sources = sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in Path(kernels.__file__).parent.glob("*.py"))
        _STAMP.append(repr((version("numba"), sys.version_info[:2], platform.machine(), sources)))
    return _STAMP[0]


def is_noted(trial: Trial) -> bool:
    """Is numba's cache noted to hold ``trial``'s kernels? (A hint: a stale note
    only makes the first blocks wait a little for a load that then compiles.)"""
    with contextlib.suppress(OSError):
        return _note(trial).exists()
    return False


def note_cached(trial: Trial) -> None:
    """Note that numba's cache holds ``trial``'s kernels (best effort)."""
    with contextlib.suppress(OSError):
        note = _note(trial)
        note.parent.mkdir(parents=True, exist_ok=True)
        note.touch()


# ---------------------------------------------------------------- compiling forbidden


class WouldCompile(BaseException):
    """Raised in a thread where compiling is forbidden, as numba is about to
    compile: not an error, a signal (a BaseException, so that no ``except
    Exception`` on the way stops it)."""


_FORBID = threading.local()
_LISTENING = False


@contextlib.contextmanager
def compiles_forbidden() -> Iterator[None]:
    """In this thread, numba loads kernels from its cache but raises
    :class:`WouldCompile` instead of compiling one."""
    global _LISTENING
    from batchproc.kernels._jit import event

    with _LOCK:
        if not _LISTENING:
            event.register("numba:compile", _forbidder())
            _LISTENING = True
    _FORBID.on = True
    try:
        yield
    finally:
        _FORBID.on = False


def _forbidder() -> Any:
    """A listener of numba's compile events that raises :class:`WouldCompile`
    where compiling is forbidden, as a compilation is about to start (numba's
    ``with`` blocks around it release its locks)."""
    from batchproc.kernels._jit import event

    class Forbidder(event.Listener):  # type: ignore[misc]
        def on_start(self, happened: Any) -> None:
            if getattr(_FORBID, "on", False):
                dispatcher = happened.data.get("dispatcher")
                raise WouldCompile(getattr(getattr(dispatcher, "py_func", None), "__qualname__", "a kernel"))

        def on_end(self, happened: Any) -> None:
            pass

    return Forbidder()


# ---------------------------------------------------------------- another process compiles


def lock_folder() -> Path:
    """Where the machine's compile lock (and the last compiler's log) live:
    ``NUMBA_CACHE_DIR``, numba's default cache beside the kernels, or the
    temporary folder, the first that can be written."""
    import tempfile

    from batchproc import kernels

    for folder in (os.environ.get("NUMBA_CACHE_DIR"), str(Path(kernels.__file__).parent / "__pycache__"), tempfile.gettempdir()):
        if folder:
            with contextlib.suppress(OSError):
                os.makedirs(folder, exist_ok=True)
                if os.access(folder, os.W_OK):
                    return Path(folder)
    return Path(tempfile.gettempdir())


def _lock_file(folder: Path | None = None) -> int | None:
    """The machine's compile lock (a file in ``folder``, default
    :func:`lock_folder`), opened; None where there is nowhere to put one."""
    try:
        return os.open((folder or lock_folder()) / ".batchproc-compile.lock", os.O_CREAT | os.O_RDWR, 0o666)
    except OSError:
        return None


def _locked(fd: int, timeout: float | None) -> bool:
    """Take the lock on ``fd``, waiting at most ``timeout`` seconds (None: as
    long as it takes); whether it is taken."""
    import fcntl

    if timeout is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return True
    end = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= end:
                return False
            time.sleep(0.1)


@contextlib.contextmanager
def compile_lock() -> Iterator[None]:
    """Held while a process compiles kernels: one process of a machine at a time,
    so that a kernel compiles once per machine and the others load it from
    numba's cache (see docs/concepts/kernels.md)."""
    fd = _lock_file()
    if fd is None:  # nowhere to put a lock: unguarded
        yield
        return
    try:
        _locked(fd, None)
        yield
    finally:
        os.close(fd)  # (which releases the lock)


def compiler_running(folder: Path | None = None) -> bool:
    """Is a process of this machine compiling kernels now (holding the lock in
    ``folder``, default :func:`lock_folder`)?"""
    fd = _lock_file(folder)
    if fd is None:
        return False
    try:
        return not _locked(fd, 0)
    finally:
        os.close(fd)


def compilers_done(timeout: float, folder: Path | None = None) -> bool:
    """Wait at most ``timeout`` seconds until no process of this machine compiles
    kernels (into the cache whose lock is in ``folder``, default
    :func:`lock_folder`); whether none does (for tests and benchmarks)."""
    end = time.monotonic() + timeout
    while compiler_running(folder):
        if time.monotonic() >= end:
            return False
        time.sleep(0.2)
    return True


def compile_elsewhere(trials: Sequence[Trial], timeout: float = COMPILER_TIMEOUT) -> bool:
    """Have ``trials`` run in a new process (``python -m batchproc.dispatch``),
    which compiles into numba's cache what it lacks; wait for it at most
    ``timeout`` seconds. The machine's compile lock is taken here (waiting for a
    process compiling already) and handed to the new process, which holds it to
    its end. It starts in a session of its own and outlives this one if need be:
    the cache it fills serves the next run. Whether it finished in time and
    succeeded."""
    import batchproc

    env = dict(os.environ)
    # The child imports the batchproc this process runs, wherever it came from.
    root = str(Path(batchproc.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    deadline = time.monotonic() + timeout
    fd = _lock_file()
    try:
        if fd is not None and not _locked(fd, timeout):
            return False
        with open(lock_folder() / "batchproc-compile.log", "wb") as errors:
            child = subprocess.Popen(
                [sys.executable, "-m", "batchproc.dispatch", *(["--locked"] if fd is not None else [])],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                env=env,
                start_new_session=True,
                pass_fds=(fd,) if fd is not None else (),
            )
        assert child.stdin is not None
        with child.stdin:
            child.stdin.write(pickle.dumps(list(trials)))
        return child.wait(max(0.0, deadline - time.monotonic())) == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
    finally:
        if fd is not None:
            os.close(fd)  # the child's copy of it keeps the lock


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m batchproc.dispatch [--locked]``: run the pickled trials on
    standard input, noting each in the cache, holding the machine's compile lock
    (``--locked``: handed over by the process that started this one)."""
    args = list(sys.argv[1:] if argv is None else argv)
    trials: list[Trial] = pickle.load(sys.stdin.buffer)
    with contextlib.nullcontext() if "--locked" in args else compile_lock():
        for trial in trials:
            trial.run()
            note_cached(trial)


# ---------------------------------------------------------------- the trial of a run of steps


#: One step of a trial chain: the operation's name (None: a global step's
#: finish, which compiles nothing, stood in for by a cast to ``dtype``), its
#: parameters, the dtype that reaches it (or that it gives, for None) and the
#: aligned arrays it takes, as ``(name, dtype)``.
StepDescription = tuple[str | None, Mapping[str, Any], str, tuple[tuple[str, str], ...]]
#: One trial block: its shape, the halo it holds per axis and side, whether the
#: steps may write over it.
Layout = tuple[tuple[int, ...], tuple[tuple[int, int], ...], bool]


def layouts(shape: Sequence[int], reach: Sequence[int], blocks: Sequence[int], owns: Sequence[bool] = (True,)) -> tuple[Layout, ...]:
    """Small blocks of every layout a run's blocks give its kernels: with a halo
    all round (an inner block), on one side only and on none (blocks at the
    array's edges, whose cuts give the kernels arrays of other layouts)."""
    out = []
    for own in owns:
        for left, right in ((True, True), (False, True), (True, False), (False, False)):
            size = tuple(min(n, r * (left + right) + min(b, 4)) for n, r, b in zip(shape, reach, blocks, strict=True))
            have = tuple((r * left, r * right) if n > r * (left + right) else (0, 0) for r, n in zip(reach, size, strict=True))
            out.append((size, have, own))
    return tuple(out)


def chain_trial(source: Any, steps: Sequence[StepDescription], where: Sequence[Layout]) -> Trial:
    """The :class:`Trial` of a run of steps on blocks of dtype ``source`` and of
    the layouts ``where``."""
    import numpy as np

    return Trial("batchproc.dispatch:run_chain", (np.dtype(source).str, tuple(steps), tuple(where)))


def run_chain(source: str, steps: Sequence[StepDescription], where: Sequence[Layout]) -> None:
    """Run ``steps`` with the compiled kernels on zeros of dtype ``source`` in
    each layout: numba compiles, or loads from its cache, what the blocks will
    call."""
    import numpy as np

    from batchproc.blocks import Link, fused, run_links
    from batchproc.ops import REGISTRY

    if not steps:
        return
    ndim = len(where[0][0])
    chain = []
    for name, params, dtype, aligned in steps:
        if name is None:
            chain.append(Link(_Cast(np.dtype(dtype)), {}, (), (0,) * ndim))
        else:
            op = REGISTRY[name]
            kernel, then = op.kernel(np.dtype(dtype), params, "compiled"), op.then(np.dtype(dtype), params, "compiled")
            pointwise = name if op.kind == "pointwise" else None
            chain.append(Link(kernel, params, tuple(a for a, _ in aligned), tuple(op.halo(params, ndim)), then, pointwise))
    chain = fused(chain)
    with np.errstate(all="ignore"):
        for shape, have, own in where:
            for block in _patterns(shape, np.dtype(source)):
                extra = [np.zeros(shape, np.dtype(d)) for *_, aligned in steps for _, d in aligned]
                run_links(block, chain, [tuple(h) for h in have], extra, own=own)


def _patterns(shape: tuple[int, ...], dtype: Any) -> list[Any]:
    """Trial blocks of ``shape``: zeros, and values spread over the dtype's range
    (some kernels choose their method by the data: the 16-bit sliding histogram
    by the span of the values)."""
    import numpy as np

    size = int(np.prod(shape))
    if dtype.kind == "b":
        spread = np.arange(size) % 2 == 1
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        spread = np.linspace(float(info.min), float(info.max), size).astype(dtype)
    else:
        spread = np.linspace(-1000.0, 1000.0, size).astype(dtype)
    return [np.zeros(shape, dtype), spread.reshape(shape)]


class _Cast:
    """A global step's finish in a trial: its output dtype, which is all that the
    steps after it see of it."""

    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype

    def __call__(self, block: Any) -> Any:
        return block.astype(self.dtype)


if __name__ == "__main__":
    main()
