"""Which kernel set runs a block: scipy's until this process has the compiled
kernels, so that no block waits for numba.

numba compiles a kernel the first time a process calls it with new types, and
keeps the machine code in its on-disk cache. Each set of compiled kernels a run
needs is described by a :class:`Trial`: a call, by name and with arguments that
pickle, that runs those kernels on tiny arrays of every layout the blocks will
give them. The first time a block asks :func:`ready` for a trial, a thread of its
process starts preparing it and the block runs scipy's kernels (equal by the
contract); blocks that ask once the trial is done run the compiled ones. Either
way the result is the same, bit for bit.

The thread first runs the trial with compiling forbidden: with numba's cache
warm, that only loads the kernels. If something would compile, the compiling
happens in another process (``python -m batchproc.dispatch``, the trial pickled
on its standard input), which writes numba's cache and outlives the run if it
must, so that the next process finds the cache warm; the thread then loads what
it wrote. numba holds the GIL for much of a compilation, so compiling in the
run's own process would slow its scipy blocks (see docs/design.md, "Kernels").

``batchproc.compile`` (dask config) or ``BATCHPROC_COMPILE``, read where the
blocks run, chooses how:

- ``background`` (default): as above;
- ``thread``: compiled in the preparing thread itself, no other process;
- ``wait``: no dispatch: the compiled kernels compile when first called, in
  the task that calls them (``batchproc warm`` and the kernels' own tests).
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
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False
    error: BaseException | None = None


_STATES: dict[str, _State] = {}
_LOCK = threading.Lock()
#: How many times blocks asked, per trial key and answer (compiled or scipy).
ASKED: Counter[tuple[str, str]] = Counter()


def _forget_after_fork() -> None:
    # A forked child has none of its parent's threads: its trials start again.
    _STATES.clear()
    ASKED.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def ready(trial: Trial) -> bool:
    """Are ``trial``'s compiled kernels ready in this process? The first ask
    starts preparing them in a thread; until it is done the answer is False and
    the caller runs scipy's kernels. Always True in ``wait`` mode. Each answer is
    counted in :data:`ASKED`."""
    answer = _ready(trial)
    with _LOCK:
        ASKED[(trial.key, "compiled" if answer else "scipy")] += 1
    return answer


def _ready(trial: Trial) -> bool:
    how = compile_mode()
    if how == "wait":
        return True
    state = _STATES.get(trial.key)
    if state is None:
        with _LOCK:
            state = _STATES.get(trial.key)
            if state is None:
                state = _STATES[trial.key] = _State()
                threading.Thread(target=_prepare, args=(trial, how, state), name="batchproc-kernels", daemon=True).start()
    return state.ok


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
    blocks that will ask (not an ask: nothing is counted)."""
    _ready(trial)


def wait(trial: Trial, timeout: float) -> bool:
    """Start preparing ``trial`` if need be and wait at most ``timeout`` seconds
    for it; whether its kernels are ready (for tests and benchmarks: a run never
    waits)."""
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


def _prepare(trial: Trial, how: str, state: _State) -> None:
    """The preparing thread: load what numba's cache has; have the rest compiled
    (by another process in ``background`` mode, here in ``thread`` mode), then
    load it."""
    try:
        if how == "background":
            _load_or_compile_elsewhere(trial)
        else:
            trial.run()
        state.ok = True
    except BaseException as error:  # a trial that fails keeps this process on scipy's kernels
        state.error = error
        warnings.warn(f"batchproc: compiled kernels not loaded ({type(error).__name__}: {error}); scipy's run instead.", RuntimeWarning, stacklevel=1)
    finally:
        state.done.set()


def _load_or_compile_elsewhere(trial: Trial) -> None:
    """Load ``trial``'s kernels from numba's cache; what it lacks, another process
    compiles (one already compiling on this machine may be writing them: it is
    waited for first), then load them."""
    for attempt in range(2):
        try:
            with compiles_forbidden():
                trial.run()
            return
        except WouldCompile:
            if attempt == 0 and _waited_for_compiler():
                continue
            break
    compile_elsewhere([trial])
    trial.run()  # loads what the compiler wrote; compiles here whatever is still missing


def _waited_for_compiler(timeout: float = COMPILER_TIMEOUT) -> bool:
    """If a process of this machine is compiling, wait (at most ``timeout``
    seconds) until it is done; whether one was."""
    if not compiler_running():
        return False
    end = time.monotonic() + timeout
    while compiler_running() and time.monotonic() < end:
        time.sleep(0.2)
    return True


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
    from numba.core import event

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
    from numba.core import event

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


@contextlib.contextmanager
def compile_lock(blocking: bool = True) -> Iterator[bool]:
    """Held while a process compiles kernels: one process of a machine at a time,
    so that a kernel compiles once per machine and the others load it from
    numba's cache (see docs/design.md, "Kernels"). Yields whether it is held
    (always, when ``blocking``; else only when no one else held it)."""
    import fcntl

    try:
        fd = os.open(lock_folder() / ".batchproc-compile.lock", os.O_CREAT | os.O_RDWR, 0o666)
    except OSError:  # nowhere to put a lock: unguarded
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def compiler_running() -> bool:
    """Is a process of this machine compiling kernels now (holding the lock)?"""
    with compile_lock(blocking=False) as held:
        return not held


def compile_elsewhere(trials: Sequence[Trial], timeout: float = COMPILER_TIMEOUT) -> bool:
    """Have ``trials`` run in a new process (``python -m batchproc.dispatch``),
    which compiles into numba's cache what it lacks; wait for it at most
    ``timeout`` seconds. The process is started in a session of its own and
    outlives this one if need be: the cache it fills serves the next run. Whether
    it finished in time and succeeded."""
    import batchproc

    env = dict(os.environ)
    # The child imports the batchproc this process runs, wherever it came from.
    root = str(Path(batchproc.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    log = lock_folder() / "batchproc-compile.log"
    try:
        with open(log, "wb") as errors:
            child = subprocess.Popen(
                [sys.executable, "-m", "batchproc.dispatch"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors,
                env=env, start_new_session=True,
            )
        assert child.stdin is not None
        with child.stdin:
            child.stdin.write(pickle.dumps(list(trials)))
        return child.wait(timeout) == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def main() -> None:
    """``python -m batchproc.dispatch``: run the pickled trials on standard input,
    one compiling process of the machine at a time."""
    trials: list[Trial] = pickle.load(sys.stdin.buffer)
    with compile_lock():
        for trial in trials:
            trial.run()


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

    from batchproc.blocks import Link, run_links
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
            chain.append(Link(op.kernel(np.dtype(dtype), params, "compiled"), params, tuple(a for a, _ in aligned), tuple(op.halo(params, ndim))))
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
