"""The first run from a fresh clone: ``make demo``'s job (``python -m
batchproc.demo OUT``) as a whole process, timed from start to exit, with an
empty numba cache and again with the cache that run left, for each revision
asked for (the code before and after a change, say).

    .venv/bin/python benchmarks/first_run.py --revisions 66d11b0 HEAD --repeat 3

Each revision is cloned fresh (``git clone`` of this repository, then that
commit) into a temporary folder, and run with this venv's Python and the
clone first on ``PYTHONPATH`` (the script checks that the clone's batchproc is
the one imported). Before each fresh run the clone's ``__pycache__`` folders
(bytecode and numba's ``*.nbi``/``*.nbc``) are deleted and ``NUMBA_CACHE_DIR``
points at a new empty folder. After it, the script waits (at most
--compile-timeout seconds) for any process still compiling into that cache (a
background compiler holds ``.batchproc-compile.lock`` there) and notes when it
finished, counted from the fresh run's start; then it runs the job again
(warm). Revisions take turns within each repeat, their order alternating.

Writes results.md and results.json to --out (default
benchmarks/results/first-run).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]


def clone(revision: str, into: Path) -> str:
    """A fresh clone of this repository at ``revision``; its short hash."""
    subprocess.run(["git", "clone", "--quiet", str(HERE), str(into)], check=True)
    subprocess.run(["git", "-C", str(into), "checkout", "--quiet", revision], check=True)
    return subprocess.run(["git", "-C", str(into), "rev-parse", "--short", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


def env_for(root: Path, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHPROC_", "NUMBA_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["NUMBA_CACHE_DIR"] = str(cache)
    return env


def imported_from(root: Path, cache: Path) -> str:
    done = subprocess.run([sys.executable, "-c", "import batchproc; print(batchproc.__file__)"], env=env_for(root, cache), capture_output=True, text=True, check=True)
    return done.stdout.strip()


def forget_compiled(root: Path) -> None:
    """The clone as freshly cloned: no bytecode, no numba cache beside the code."""
    for folder in list(root.rglob("__pycache__")):
        shutil.rmtree(folder, ignore_errors=True)


def run_job(root: Path, cache: Path, out: Path) -> dict[str, Any]:
    """The demo's job as a whole process: seconds from start to exit, and the
    time it reports for its own work."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "batchproc.demo", str(out)], env=env_for(root, cache), capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"the job failed:\n{done.stderr}")
    inner = next((float(line.split()[2]) for line in done.stdout.splitlines() if line.startswith("done in")), None)
    return {"seconds": round(seconds, 2), "reported": inner, "load": round(load, 2), "start": start}


def compiler_done(cache: Path, timeout: float) -> float | None:
    """When (perf_counter) no process holds the compile lock in ``cache`` any
    more; None after ``timeout`` seconds."""
    lock = cache / ".batchproc-compile.lock"
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        if not lock.exists():
            return time.perf_counter()
        fd = os.open(lock, os.O_RDONLY)
        try:
            with contextlib.suppress(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return time.perf_counter()
        finally:
            os.close(fd)
        time.sleep(0.2)
    return None


def spread(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{min(values):.1f}–{max(values):.1f} (median {statistics.median(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--revisions", nargs="+", default=["HEAD"], help="commits to clone and measure (default HEAD)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compile-timeout", type=float, default=600.0)
    parser.add_argument("--out", type=Path, default=HERE / "benchmarks" / "results" / "first-run")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()

    command = " ".join([".venv/bin/python", "benchmarks/first_run.py", *sys.argv[1:]])
    work = Path(tempfile.mkdtemp(prefix="first-run-", dir=args.dir))
    runs: dict[str, list[dict[str, Any]]] = {}
    names: dict[str, str] = {}
    try:
        roots = {}
        for revision in args.revisions:
            root = work / f"clone-{len(roots)}"
            names[revision] = clone(revision, root)
            where = imported_from(root, work / "probe-cache")
            if not where.startswith(str(root)):
                raise RuntimeError(f"{revision}: the clone's batchproc is not the one imported ({where})")
            roots[revision] = root
            runs[revision] = []
        for r in range(args.repeat):
            order = args.revisions if r % 2 == 0 else list(reversed(args.revisions))
            for revision in order:
                root = roots[revision]
                cache = work / f"cache-{revision}-{r}"
                cache.mkdir()
                forget_compiled(root)
                fresh = run_job(root, cache, work / "out")
                finished = compiler_done(cache, args.compile_timeout)
                warm = run_job(root, cache, work / "out")
                row = {
                    "repeat": r, "fresh": fresh["seconds"], "fresh_reported": fresh["reported"], "fresh_load": fresh["load"],
                    "cache_filled_after": None if finished is None else round(finished - fresh["start"], 1),
                    "warm": warm["seconds"], "warm_reported": warm["reported"], "warm_load": warm["load"],
                }
                runs[revision].append(row)
                print(revision, names[revision], row, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    import numba
    import scipy

    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, numba {numba.__version__}, scipy {scipy.__version__}"
    result = {"command": command, "date": time.strftime("%Y-%m-%d"), "machine": machine, "revisions": {rev: names[rev] for rev in args.revisions}, "runs": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"Command: `{command}`  ",
        f"Date: {result['date']}; {machine}  ",
        "",
        "`make demo`'s job (`python -m batchproc.demo OUT`) as a whole process, from start to exit, from a fresh clone of each "
        "revision: no `__pycache__`, `NUMBA_CACHE_DIR` an empty folder (fresh), then the same cache again (warm). "
        "\"cache filled\": when no process was compiling into the cache any more, from the fresh run's start. "
        "The machine is shared: the load average (1 min) at each start is given.",
        "",
        "| revision | fresh s | warm s | cache filled after s | load at starts |",
        "|---|---|---|---|---|",
    ]
    for revision in args.revisions:
        rows = runs[revision]
        filled = [row["cache_filled_after"] for row in rows if row["cache_filled_after"] is not None]
        loads = ", ".join(f"{row['fresh_load']:.1f}/{row['warm_load']:.1f}" for row in rows)
        lines.append(
            f"| {revision} ({names[revision]}) | {spread([row['fresh'] for row in rows])} | {spread([row['warm'] for row in rows])} | {spread(filled)} | {loads} |"
        )
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
