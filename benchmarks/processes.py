"""What the whole-process benchmarks share: running an engine as a process of its
own, timed from start (imports included) to the end of its work, with the peak
resident memory of its process tree sampled every 20 ms (:func:`measure`); and the line of
provenance (command, date, machine, versions) every results file opens with.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil


def with_error(fn: Any) -> None:
    """Call ``fn``, ignoring a process that is already gone."""
    try:
        fn()
    except psutil.Error:
        pass


def measure(command: list[str], done: Path | None, timeout: float, rss_limit: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``command``: seconds from start to ``done`` appearing (else to exit),
    peak RSS (MB) of its process tree until then; stopped past ``timeout`` seconds
    or ``rss_limit`` bytes.

    The exit is waited for in a thread of its own (its time exact, not rounded up
    to the next sample), and the sampling stays light on a machine whose cores the
    engine needs: each 20 ms sample reads the RSS of processes already known, and
    the process tree is listed again (a scan of every process) every 0.2 s."""
    if done is not None:
        done.unlink(missing_ok=True)
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    ended: list[float] = []
    stderr: list[str] = []

    def wait() -> None:
        stderr.append(proc.communicate()[1])
        ended.append(time.perf_counter())

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    ps = psutil.Process(proc.pid)
    tree: list[psutil.Process] = [ps]
    listed = 0.0
    peak, work, status = 0, None, "ok"
    while not ended:
        now = time.perf_counter()
        if work is None:
            if now - listed >= 0.2:
                tree = _tree(ps, tree)
                listed = now
            peak = max(peak, _rss(tree))
            if done is not None and done.exists():
                work = now - started
        elapsed = now - started
        if work is None and (elapsed > timeout or peak > rss_limit):
            status = f"timed out after {elapsed:.0f} s" if elapsed > timeout else f"stopped at {peak / 1e6:.0f} MB RSS (limit {rss_limit / 1e6:.0f} MB)"
            for child in ps.children(recursive=True):
                with_error(child.kill)
            proc.kill()
            break
        waiter.join(0.02)
    waiter.join()
    total = ended[0] - started
    if work is None and done is not None and done.exists():
        work = total
    if status == "ok" and proc.returncode != 0:
        status = "failed: " + stderr[0].strip()[-1500:]
    return {"seconds": work if work is not None else total, "exit_seconds": total, "peak_mb": peak / 1e6, "status": status}


def _tree(ps: psutil.Process, known: list[psutil.Process]) -> list[psutil.Process]:
    """``ps`` and its descendants now; those ``known`` before if it is gone."""
    try:
        return [ps, *ps.children(recursive=True)]
    except psutil.Error:
        return known


def _rss(processes: list[psutil.Process]) -> int:
    total = 0
    for each in processes:
        try:
            total += each.memory_info().rss
        except psutil.Error:
            pass
    return total


def provenance(script: str, argv: list[str]) -> dict[str, str]:
    """The command that made a results file, its date, the machine and the code."""
    from importlib.metadata import version

    here = Path(__file__).parent
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=here).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "batchproc"], capture_output=True, text=True, cwd=here).stdout.strip()
    return {
        "command": " ".join([".venv/bin/python", script, *argv]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}",
        "code": f"batchproc at {head}{' with uncommitted changes in batchproc/' if dirty else ''}; numpy {version('numpy')}, scipy {version('scipy')}, "
        f"dask {version('dask')}, dask-image {version('dask-image')}, zarr {version('zarr')}",
    }


def batchproc_cli() -> list[str]:
    """The ``batchproc`` command of this interpreter's environment, with the
    package's bytecode written first, as an install writes it (``make bytecode``:
    under PYTHONDONTWRITEBYTECODE an editable install compiles every module again
    in each process)."""
    import compileall

    import batchproc

    compileall.compile_dir(Path(batchproc.__file__).parent, quiet=1)
    exe = Path(sys.executable).with_name("batchproc")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "batchproc.cli"]
