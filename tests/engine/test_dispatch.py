"""Which kernel set runs a block (batchproc.dispatch): scipy's until the compiled
kernels are ready in the block's process, then the compiled ones; a run never
waits for numba, and its result is the same whichever set ran each block."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
import tifffile
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from ops_strategies import CASES, arrays, reference
from test_contract import assert_same, function_for
from test_runner import run

from batchproc import dispatch
from batchproc.errors import BatchprocError
from batchproc.ops import REGISTRY
from batchproc.ops._registry import Operation

#: Every operation whose compiled kernels change how it runs.
SWITCHING = sorted(name for name in CASES if REGISTRY[name].has_compiled)
#: Seconds a test waits for kernels to get ready (compiled by another process
#: when numba's cache does not have them).
READY_TIMEOUT = 300.0


class Alternating:
    """In place of :func:`batchproc.dispatch.ready` and :func:`~batchproc.dispatch.turn`:
    scipy's kernels for the 1st, 3rd, 5th... ask, the compiled ones (their trial
    run here first) for the others; the answers, counted."""

    def __init__(self) -> None:
        self.answers: list[bool] = []
        self.loaded: set[str] = set()

    def __call__(self, trial: dispatch.Trial) -> bool:
        answer = len(self.answers) % 2 == 1
        if answer and trial.key not in self.loaded:
            # made ready in this process, as `wait` mode does: the switch is under
            # test here; the compiling process is, in the whole-process tests below
            trial.run()
            self.loaded.add(trial.key)
        self.answers.append(answer)
        return answer

    @contextlib.contextmanager
    def turn(self, trial: dispatch.Trial) -> Iterator[bool]:
        yield self(trial)


class Ran:
    """Counts the calls of every kernel :meth:`Operation.kernel` hands out, by
    kernel set: the compiled ones (anything but the op's scipy ``block``) and
    scipy's."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = {"compiled": 0, "scipy": 0}
        original = Operation.kernel
        ran = self

        def kernel(op: Operation, dtype: Any, params: Any, kernels: str) -> Any:
            fn = original(op, dtype, params, kernels)
            return _Counted(fn, ran.calls, "scipy" if fn is op.block else "compiled")

        monkeypatch.setattr(Operation, "kernel", kernel)


class _Counted:
    def __init__(self, fn: Any, calls: dict[str, int], kind: str) -> None:
        self.fn, self.calls, self.kind = fn, calls, kind

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name != "batchproc-kernels":  # a block's call, not a trial's
            self.calls[self.kind] += 1
        return self.fn(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # overwrites, crops, located: the kernel's own
        return getattr(self.fn, name)


@pytest.fixture
def alternating(monkeypatch: pytest.MonkeyPatch) -> Alternating:
    switch = Alternating()
    monkeypatch.setattr(dispatch, "ready", switch)
    monkeypatch.setattr(dispatch, "turn", switch.turn)
    return switch


@pytest.mark.parametrize("path", ["engine", "dask"])
@pytest.mark.parametrize("name", SWITCHING)
def test_a_run_that_switches_kernel_sets_block_by_block_equals_scipy(name: str, path: str, alternating: Alternating, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of one run alternately on scipy's and on the compiled kernels (the
    switch a first run makes once, made at every block): the result is scipy's,
    bit for bit, through the engine and through the dask form alike."""
    op = REGISTRY[name]
    if path == "engine" and not op.in_pipeline:
        pytest.skip(f"{name} is not a pipeline step")
    dtypes, params_for = CASES[name]
    examples = max(10, settings().max_examples // 4)
    if op.fast is None:  # a global step that counts with a compiled kernel: on 8/16-bit integers
        dtypes, examples = tuple(d for d in dtypes if np.dtype(d).kind in "iu" and np.dtype(d).itemsize <= 2), 3 * examples
    ran = Ran(monkeypatch)
    switched = []

    @settings(max_examples=examples)
    @given(st.data())
    def check(data: st.DataObject) -> None:
        a, chunks = data.draw(arrays(dtypes), label="array, chunks")
        params = params_for(data.draw, a)
        if path == "engine":
            assume(not any(hasattr(params.get(p), "shape") for p in op.aligned))
            native = tuple(data.draw(st.integers(1, n)) for n in a.shape)
            file_chunks = tuple(data.draw(st.sampled_from([1, 2, max(1, n // 2)])) for n in a.shape)  # several blocks
            per_block, shards = (1,) * a.ndim, None
            assume(np.prod([-(-n // c) for n, c in zip(a.shape, file_chunks, strict=True)]) >= 2)
        else:
            assume(da.from_array(a, chunks=chunks).npartitions >= 2)  # one block cannot switch
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                want = reference(name, a, params)
            except Exception:
                return  # refusals: tests/ops/test_contract.py
            before = dict(ran.calls)
            asked = len(alternating.answers)
            with dask.config.set({"batchproc.compile": "background", "batchproc.kernels": "compiled"}):
                if path == "engine":
                    got = run(a, [{"op": name, **params}], native, file_chunks, per_block, "compiled", shards)
                else:
                    got = function_for(name)(da.from_array(a, chunks=chunks), **params)
                    got = (
                        dask.compute(*got, scheduler="synchronous")
                        if isinstance(got, tuple) and op.returns_array
                        else (got.compute(scheduler="synchronous") if op.returns_array else got)
                    )
            answers = alternating.answers[asked:]
            # Kernels of operations with a compiled kernel of their own are counted
            # as they run; the others (global steps) use the answers as they count.
            both_ran = op.fast is None or (ran.calls["compiled"] > before["compiled"] and ran.calls["scipy"] > before["scipy"])
            if True in answers and False in answers and both_ran:
                switched.append(True)
        if path == "engine":
            want = want[0] if isinstance(want, tuple) else want
        if isinstance(want, tuple) and isinstance(got, tuple) and op.returns_array:
            for g, w in zip(got, want, strict=True):
                assert_same(name, g, np.asarray(w) if np.ndim(w) == 0 and not isinstance(w, np.ndarray) else w, a)
        else:
            assert_same(name, got, want, a)

    check()
    assert switched, "no run had blocks on both kernel sets"


# ---------------------------------------------------------------- whole processes

#: numba's compilations in a process, by thread (as source: it runs in child
#: processes and cluster workers, where this module is not importable).
COUNT_BY_THREAD = """
import builtins
from numba.core import event

class Count(event.Listener):
    # Counted as they end well: a compile that batchproc.dispatch refused to
    # start (where compiling is forbidden) ends with its WouldCompile. Names are
    # looked up at call time: this source may run under exec with locals of its own.
    def __init__(self):
        self.by_thread = __import__("collections").Counter()
    def on_start(self, _):
        pass
    def on_end(self, happened):
        if getattr(happened, "_exc_details", None) is None:  # (numba's is_failed says the opposite)
            self.by_thread[__import__("threading").current_thread().name] += 1

builtins._batchproc_compiles = Count()
event.register("numba:compile", builtins._batchproc_compiles)
"""
COMPILES = "dict(__import__('builtins')._batchproc_compiles.by_thread)"
ANSWERS = "__import__('batchproc.dispatch', fromlist=['answers']).answers()"

#: A two-step chain whose kernels compile in seconds (the course pipeline's take
#: about ten times longer): what is under test is who compiles, not what.
STEPS = ["--step", "uniform_filter:size=3", "--step", "threshold:above=2000"]

#: Two runs of STEPS in one new process, with an empty numba
#: cache: the first at once, the second once the kernels are ready.
TWO_RUNS = (
    COUNT_BY_THREAD
    + """
import sys
from batchproc import dispatch
from batchproc.cli import app

def run(out):
    try:
        app(["--kernels", "compiled", "run", sys.argv[1], out, *sys.argv[4:], "--chunks", "8,32,32", "-q"])
    except SystemExit as exit:
        assert exit.code in (0, None), exit.code

run(sys.argv[2])
print("first", repr(["""
    + COMPILES
    + """, """
    + ANSWERS
    + """]))
dispatch.ASKED.clear()
print("ready", repr([dispatch.waiting(float(sys.argv[3]))]))
run(sys.argv[2] + "-again")
print("second", repr(["""
    + COMPILES
    + """, """
    + ANSWERS
    + """]))
"""
)


def expected(data: np.ndarray) -> np.ndarray:
    return ndi.uniform_filter(data, 3) > 2000


def pixels(path: Path) -> np.ndarray:
    import zarr

    return zarr.open_group(str(path), mode="r")["0"][:]


def _lines(stdout: str) -> dict[str, list[Any]]:
    import ast

    out = {}
    for line in stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("first", "ready", "second"):
            out[word] = ast.literal_eval(rest)
    return out


@pytest.fixture
def volume_tif(tmp_path: Path) -> tuple[Path, np.ndarray]:
    data = np.random.default_rng(20).integers(0, 4000, size=(24, 64, 64)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "v.tif", data)
    return tmp_path / "v.tif", data


#: One run in a new process; its compiles and answers.
ONE_RUN = (
    COUNT_BY_THREAD
    + """
import sys
from batchproc import dispatch
from batchproc.cli import app

try:
    app(["--kernels", "compiled", "run", sys.argv[1], sys.argv[2], *sys.argv[3:], "--chunks", "8,32,32", "-q"])
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
print("first", repr(["""
    + COMPILES
    + """, """
    + ANSWERS
    + """]))
"""
)


@pytest.mark.slow
def test_a_first_run_compiles_nothing_and_the_next_process_loads_the_cache(tmp_path: Path, volume_tif: tuple[Path, np.ndarray]) -> None:
    """A new process, numba's cache empty: its blocks run at once on scipy's
    kernels, and the process compiles nothing at all (another process fills the
    cache, and the run's own thread only loads from it). Once ready, the next
    run's blocks run the compiled ones, still compiling nothing. A new process
    then finds the cache noted: its blocks wait for the kernels to load (a load
    costs less than a compiled block saves) and all run compiled. A note gone
    stale (the cache emptied beside it) costs no compile either: the blocks run
    scipy's while another process compiles. Every result equals scipy's."""
    import shutil

    source, data = volume_tif
    cache = tmp_path / "numba-cache"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "BATCHPROC_COMPILE": "background", "DASK_BATCHPROC__BLOCK_BYTES": "64KiB"}
    done = subprocess.run(
        [sys.executable, "-c", TWO_RUNS, str(source), str(tmp_path / "o.zarr"), str(READY_TIMEOUT), *STEPS],
        env=env,
        capture_output=True,
        text=True,
        timeout=READY_TIMEOUT + 200,
    )
    assert done.returncode == 0, done.stderr
    seen = _lines(done.stdout)
    (first_compiles, first_answers), (ready,), (second_compiles, second_answers) = seen["first"], seen["ready"], seen["second"]
    assert ready is True, done.stderr
    compiled_by = {thread for thread, n in {**first_compiles, **second_compiles}.items() if n}
    assert not compiled_by, f"this process compiled, in {compiled_by}"
    assert first_answers.get("scipy", 0) > 1 and first_answers.get("compiled", 0) == 0, first_answers
    assert second_answers.get("compiled", 0) > 1 and second_answers.get("scipy", 0) == 0, second_answers
    assert np.array_equal(pixels(tmp_path / "o.zarr"), expected(data))
    assert np.array_equal(pixels(tmp_path / "o.zarr-again"), expected(data))

    def one_run(out: str) -> tuple[dict[str, int], dict[str, int]]:
        done = subprocess.run([sys.executable, "-c", ONE_RUN, str(source), str(tmp_path / out), *STEPS], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert np.array_equal(pixels(tmp_path / out), expected(data))
        return tuple(_lines(done.stdout)["first"])  # type: ignore[return-value]

    assert dispatch.compilers_done(READY_TIMEOUT, cache)
    compiles, answers = one_run("warm.zarr")
    assert not sum(compiles.values()) and answers["scipy"] == 0 and answers["compiled"] > 1, (compiles, answers)
    for folder in cache.iterdir():  # numba's cache gone, the notes kept
        if folder.is_dir() and folder.name != "batchproc-cached":
            shutil.rmtree(folder)
    compiles, answers = one_run("stale.zarr")
    assert not sum(compiles.values()) and answers["compiled"] == 0 and answers["scipy"] > 1, (compiles, answers)
    assert dispatch.compilers_done(READY_TIMEOUT, cache)


#: The dask form (as the demo runs it, on a larger volume) on a fresh cache:
#: once its kernels are ready, blocks of other shapes and at every edge compile
#: nothing: the trial covered what they call.
DASK_AFTER_TRIAL = (
    COUNT_BY_THREAD
    + """
import sys, numpy as np, dask, dask.array as da
import batchproc
from batchproc import dispatch

data = np.random.default_rng(3).integers(0, 4000, size=(40, 70, 90)).astype(sys.argv[1])
with dask.config.set({"batchproc.compile": "background", "batchproc.kernels": "compiled"}):
    for chunks in ((16, 30, 40), (40, 70, 45), (7, 70, 90)):
        x = da.from_array(data, chunks=chunks)
        lazy = batchproc.sobel_magnitude(batchproc.ndimage.gaussian_filter(x, 1.5)) > 40
        lazy.compute(scheduler="threads")
        assert dispatch.waiting(float(sys.argv[2]))
        lazy.compute(scheduler="threads")
        counts = batchproc.ndimage.histogram(x, 0, 4000, 16)
        assert dispatch.waiting(float(sys.argv[2]))
        again = batchproc.ndimage.histogram(x, 0, 4000, 16)
        assert np.array_equal(counts, again)
print("compiles", """
    + COMPILES
    + """)
print("answers", """
    + ANSWERS
    + """)
"""
)


@pytest.mark.slow
def test_the_trial_covers_the_blocks_of_the_dask_form(tmp_path: Path) -> None:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    done = subprocess.run(
        [sys.executable, "-c", DASK_AFTER_TRIAL, "int16", str(READY_TIMEOUT)], env=env, capture_output=True, text=True, timeout=READY_TIMEOUT + 200
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if line.startswith(("compiles", "answers")))
    import ast

    compiles, answers = ast.literal_eval(lines["compiles"]), ast.literal_eval(lines["answers"])
    assert not sum(compiles.values()), compiles  # another process compiled, this one loaded
    assert answers.get("compiled", 0) > 0 and answers.get("scipy", 0) > 0, answers


# ---------------------------------------------------------------- a cluster


@pytest.mark.slow
def test_a_new_cluster_worker_compiles_nothing_before_its_first_block(
    tmp_path: Path, volume_tif: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two new workers, numba's cache empty: a small job's blocks run at once on
    scipy's kernels, and the workers compile nothing (a compiling process of
    their machine fills the cache). Once their kernels are ready, the next job's
    blocks run the compiled ones, still compiling nothing in the workers. Both
    results equal scipy's."""
    from daskcluster import DaskCluster
    from distributed import Client

    source, data = volume_tif
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba-cache"))  # the workers start with it
    monkeypatch.setenv("BATCHPROC_COMPILE", "background")
    monkeypatch.setenv("DASK_BATCHPROC__BLOCK_BYTES", "64KiB")
    cluster = DaskCluster(2, tmp_path)

    def job(out: str) -> None:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "batchproc.cli",
                "--kernels",
                "compiled",
                "run",
                str(source),
                str(tmp_path / out),
                *STEPS,
                "--chunks",
                "4,64,64",
                "-q",
                "--scheduler",
                cluster.address,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr

    try:
        cluster.wait(2)
        with Client(cluster.address, timeout="30s") as client:
            client.run(exec, COUNT_BY_THREAD)
            job("first.zarr")
            first = client.run(eval, ANSWERS)
            compiles_first = client.run(eval, COMPILES)
            client.run(exec, "__import__('batchproc.dispatch', fromlist=['ASKED']).ASKED.clear()")
            ready = client.run(eval, f"__import__('batchproc.dispatch', fromlist=['waiting']).waiting({READY_TIMEOUT})")
            job("second.zarr")
            second = client.run(eval, ANSWERS)
            compiles_second = client.run(eval, COMPILES)
    finally:
        cluster.close()
    assert all(ready.values()), ready
    assert not any(sum(c.values()) for c in [*compiles_first.values(), *compiles_second.values()]), (compiles_first, compiles_second)
    assert sum(a.get("scipy", 0) for a in first.values()) > 0 and not any(a.get("compiled", 0) for a in first.values()), first
    assert all(a.get("compiled", 0) > 0 for a in second.values()) and not any(a.get("scipy", 0) for a in second.values()), second
    assert np.array_equal(pixels(tmp_path / "first.zarr"), expected(data))
    assert np.array_equal(pixels(tmp_path / "second.zarr"), expected(data))


# ---------------------------------------------------------------- the parts


def test_a_trial_that_fails_leaves_the_process_on_scipys_kernels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba-cache"))
    trial = dispatch.Trial("batchproc.no_such_module:load", ())
    with dask.config.set({"batchproc.compile": "background"}), pytest.warns(RuntimeWarning, match="scipy's run instead"):
        assert dispatch.wait(trial, 60) is False
        assert dispatch.ready(trial) is False


def test_wait_mode_answers_at_once() -> None:
    trial = dispatch.Trial("batchproc.no_such_module:load", ("wait",))
    with dask.config.set({"batchproc.compile": "wait"}):
        assert dispatch.ready(trial) is True
    assert trial.key not in dispatch._STATES


def test_an_unknown_compile_mode_is_refused() -> None:
    with dask.config.set({"batchproc.compile": "later"}), pytest.raises(BatchprocError, match="batchproc.compile"):
        dispatch.ready(dispatch.Trial("batchproc.no_such_module:load", ()))


def test_the_compiling_process_runs_the_trials_and_is_waited_for_within_its_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba-cache"))
    assert dispatch.compile_elsewhere([dispatch.Trial("batchproc.ops.measure:load_counter", ("|u1",))], timeout=300) is True
    assert any((tmp_path / "numba-cache").rglob("*.nbi")), "nothing written to numba's cache"
    # A trial that fails: the process says so; one that outlasts the bound is not waited for.
    assert dispatch.compile_elsewhere([dispatch.Trial("batchproc.no_such_module:load", ())], timeout=300) is False
    assert "no_such_module" in (tmp_path / "numba-cache" / "batchproc-compile.log").read_text()
    assert dispatch.compile_elsewhere([dispatch.Trial("time:sleep", (5,))], timeout=1) is False


def test_a_compile_where_forbidden_is_refused_and_a_cached_kernel_loads(tmp_path: Path) -> None:
    script = """
import numba, numpy as np
from batchproc import dispatch

@numba.njit(cache=True)
def twice(x):
    return x * 2

try:
    with dispatch.compiles_forbidden():
        twice(np.ones(3))
    print("compiled")
except dispatch.WouldCompile:
    print("refused")
print(twice(np.ones(3)).sum())
with dispatch.compiles_forbidden():
    print(twice(np.ones(4)).sum())
"""
    (tmp_path / "kernel.py").write_text(script)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    first = subprocess.run([sys.executable, str(tmp_path / "kernel.py")], env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["refused", "6.0", "8.0"]
    again = subprocess.run([sys.executable, str(tmp_path / "kernel.py")], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert again.stdout.split() == ["compiled", "6.0", "8.0"]  # now in numba's cache: loaded where compiling is forbidden


#: Every pipeline `batchproc warm` knows, and a median over a box large enough
#: for the 16-bit sliding histogram where the values span little (the kernel is
#: chosen by the data), through the engine, on a fresh cache:
#: each run once (its kernels get ready meanwhile), then again on blocks of
#: random values, inner and at every edge, once they are ready.
ENGINE_AFTER_TRIAL = (
    COUNT_BY_THREAD
    + """
import sys, numpy as np, dask
from batchproc import dispatch
from batchproc.engine.runner import InlinePool, run_plan
from batchproc.engine.warm import WARM_STEPS, _Discard
from batchproc.io.readers import Image
from batchproc.pipeline import Pipeline
from batchproc.plan import make_plan

rng = np.random.default_rng(5)
with dask.config.set({"batchproc.compile": "background", "batchproc.block-bytes": "256KiB"}):
    for dtype in sys.argv[2:]:
        data = (rng.normal(30000, 15000, size=(20, 90, 140)).clip(0, 65535) if dtype != "float32" else rng.normal(0, 50, size=(20, 90, 140))).astype(dtype)
        image = Image(None, "zyx", (1.0, 1.0, 1.0), "random", {}, data, (10, 45, 70))
        for name, steps in {**WARM_STEPS, "median 5": [{"op": "median_filter", "size": 5}]}.items():
            plan = make_plan(Pipeline(steps), image, kernels="compiled")
            run_plan(plan, _Discard(), on=InlinePool())
            assert dispatch.waiting(float(sys.argv[1])), name
            dispatch.ASKED.clear()
            run_plan(plan, _Discard(), on=InlinePool())
            answers = dispatch.answers()
            assert answers["scipy"] == 0, (name, dtype, answers)  # (equalize on floats counts without a compiled kernel: no asks)
print("compiles", repr("""
    + COMPILES
    + """))
"""
)


@pytest.mark.slow
def test_the_trial_covers_the_blocks_of_every_warmed_pipeline(tmp_path: Path) -> None:
    """A trial runs tiny blocks of zeros and of values spread over the dtype's
    range: real blocks (random values, larger, inner and at every edge) must then
    find every kernel they call loaded, compiling nothing where they run (here:
    nothing at all in this process)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    done = subprocess.run(
        [sys.executable, "-c", ENGINE_AFTER_TRIAL, str(READY_TIMEOUT), "uint16"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert done.returncode == 0, done.stderr
    import ast

    compiles = ast.literal_eval(next(line for line in done.stdout.splitlines() if line.startswith("compiles")).split(" ", 1)[1])
    assert not sum(compiles.values()), compiles


def test_while_kernels_compile_elsewhere_scipy_blocks_leave_the_compiler_a_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks on scipy's kernels take turns for all the cores but one while this
    process's kernels compile in another process (here: one core for them)."""
    trial = dispatch.Trial("batchproc.no_such_module:load", ("turns",))
    monkeypatch.setitem(dispatch._STATES, trial.key, dispatch._State())  # not ready, and no thread getting it ready
    monkeypatch.setattr(dispatch, "_SLOTS", threading.BoundedSemaphore(1))
    monkeypatch.setattr(dispatch, "_COMPILING", [1])
    inside, most, lock = [0], [0], threading.Lock()

    def block() -> None:
        with dispatch.turn(trial) as compiled:
            assert compiled is False
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            import time

            time.sleep(0.05)
            with lock:
                inside[0] -= 1

    with dask.config.set({"batchproc.compile": "background"}):
        threads = [threading.Thread(target=block) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert most[0] == 1
    monkeypatch.setattr(dispatch, "_COMPILING", [0])  # once compiled (or not compiling): no turns
    with dask.config.set({"batchproc.compile": "background"}):
        threads = [threading.Thread(target=block) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert most[0] > 1
