"""The first run from a fresh clone: a job as a whole process, timed from start
to exit, with an empty numba cache (fresh) and again with the cache that run
left (warm), for each revision asked for (the code before and after a change).

    .venv/bin/python benchmarks/first_run.py --revisions 66d11b0 HEAD --repeat 3
    .venv/bin/python benchmarks/first_run.py --revisions HEAD HEAD:BATCHPROC_COMPILE=thread --jobs course

Jobs (--jobs, default both):
  demo    ``make demo``'s job: ``python -m batchproc.demo OUT``.
  course  ``python -m batchproc.cli run IN OUT`` with the course pipeline
          (gaussian σ=2, sobel_magnitude, threshold 40) on a uint16 volume of
          --course-shape (default 64x512x512, 32 MiB: above the size under
          which a run takes scipy's kernels anyway), stored as zarr in
          32x256x256 chunks; the volume is made once, before any timing.

A revision may carry environment variables for its runs (``REV:NAME=VALUE,...``).
Each revision is cloned fresh (``git clone`` of this repository, then that
commit) into a temporary folder, and run with this venv's Python and the
clone first on ``PYTHONPATH`` (the script checks that the clone's batchproc is
the one imported), from a folder outside any checkout. Before each fresh run
the clone's ``__pycache__`` folders (bytecode and numba's ``*.nbi``/``*.nbc``)
are deleted and ``NUMBA_CACHE_DIR`` points at a new empty folder. After it, the
script waits (at most --compile-timeout seconds) for any process still
compiling into that cache (a background compiler holds
``.batchproc-compile.lock`` there) and notes when it finished, counted from the
fresh run's start; then it runs the job again (warm). Revisions take turns
within each repeat, their order alternating.

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
COURSE = ["--step", "gaussian_filter:sigma=2", "--step", "sobel_magnitude", "--step", "threshold:above=40"]


def clone(revision: str, into: Path) -> str:
    """A fresh clone of this repository at ``revision``; its short hash."""
    subprocess.run(["git", "clone", "--quiet", str(HERE), str(into)], check=True)
    subprocess.run(["git", "-C", str(into), "checkout", "--quiet", revision], check=True)
    return subprocess.run(["git", "-C", str(into), "rev-parse", "--short", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


def parsed(variant: str) -> tuple[str, dict[str, str]]:
    """``REV`` or ``REV:NAME=VALUE,...``: the revision and its environment."""
    revision, _, given = variant.partition(":")
    return revision, dict(item.split("=", 1) for item in given.split(",") if item)


def env_for(root: Path, cache: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHPROC_", "NUMBA_", "DASK_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["NUMBA_CACHE_DIR"] = str(cache)
    return {**env, **(extra or {})}


def imported_from(root: Path, cache: Path) -> str:
    # (from outside any checkout: Python puts the working folder first on the path)
    done = subprocess.run(
        [sys.executable, "-c", "import batchproc; print(batchproc.__file__)"],
        env=env_for(root, cache),
        capture_output=True,
        text=True,
        check=True,
        cwd=root.parent,
    )
    return done.stdout.strip()


def forget_compiled(root: Path) -> None:
    """The clone as freshly cloned: no bytecode, no numba cache beside the code."""
    for folder in list(root.rglob("__pycache__")):
        shutil.rmtree(folder, ignore_errors=True)


def make_volume(path: Path, shape: tuple[int, ...]) -> None:
    """A uint16 volume of smooth structure and noise, as zarr in 32x256x256 chunks."""
    import numpy as np
    import scipy.ndimage as ndi
    import zarr

    rng = np.random.default_rng(20)
    array = zarr.create_array(str(path), shape=shape, chunks=tuple(min(c, n) for c, n in zip((32, 256, 256), shape, strict=True)), dtype="uint16")
    for z in range(0, shape[0], 32):
        slab = rng.normal(0, 1, size=(min(32, shape[0] - z), *shape[1:]))
        slab = ndi.gaussian_filter(slab, 4) * 4000 + 1000 + rng.normal(0, 200, size=slab.shape)
        array[z : z + slab.shape[0]] = slab.clip(0, 65535).astype("uint16")


def command_of(job: str, work: Path, out: Path) -> list[str]:
    if job == "demo":
        return [sys.executable, "-m", "batchproc.demo", str(out)]
    return [sys.executable, "-m", "batchproc.cli", "run", str(work / "course-input.zarr"), str(out / "course.zarr"), *COURSE, "-q", "--overwrite"]


def run_job(job: str, root: Path, cache: Path, work: Path, extra: dict[str, str]) -> dict[str, Any]:
    """The job as a whole process: seconds from start to exit (and the demo's own
    report of its work)."""
    load = os.getloadavg()[0]
    out = work / "out"
    out.mkdir(exist_ok=True)
    start = time.perf_counter()
    done = subprocess.run(command_of(job, work, out), env=env_for(root, cache, extra), capture_output=True, text=True, timeout=900, cwd=root.parent)
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
    parser.add_argument("--revisions", nargs="+", default=["HEAD"], help="commits to clone and measure, each REV or REV:NAME=VALUE,... (default HEAD)")
    parser.add_argument("--jobs", nargs="+", default=["demo", "course"], choices=["demo", "course"])
    parser.add_argument("--course-shape", default="64,512,512")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compile-timeout", type=float, default=600.0)
    parser.add_argument("--out", type=Path, default=HERE / "benchmarks" / "results" / "first-run")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    shape = tuple(int(n) for n in args.course_shape.split(","))

    command = " ".join([".venv/bin/python", "benchmarks/first_run.py", *sys.argv[1:]])
    work = Path(tempfile.mkdtemp(prefix="first-run-", dir=args.dir))
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {job: {} for job in args.jobs}
    names: dict[str, str] = {}
    try:
        if "course" in args.jobs:
            make_volume(work / "course-input.zarr", shape)
        roots = {}
        for variant in args.revisions:
            revision, _ = parsed(variant)
            root = work / f"clone-{len(roots)}"
            names[variant] = clone(revision, root)
            where = imported_from(root, work / "probe-cache")
            if not where.startswith(str(root)):
                raise RuntimeError(f"{revision}: the clone's batchproc is not the one imported ({where})")
            roots[variant] = root
        for r in range(args.repeat):
            for job in args.jobs:
                order = args.revisions if r % 2 == 0 else list(reversed(args.revisions))
                for k, variant in enumerate(order):
                    root, extra = roots[variant], parsed(variant)[1]
                    cache = work / f"cache-{job}-{r}-{k}"
                    cache.mkdir()
                    forget_compiled(root)
                    fresh = run_job(job, root, cache, work, extra)
                    finished = compiler_done(cache, args.compile_timeout)
                    warm = run_job(job, root, cache, work, extra)
                    row = {
                        "repeat": r,
                        "fresh": fresh["seconds"],
                        "fresh_reported": fresh["reported"],
                        "fresh_load": fresh["load"],
                        "cache_filled_after": None if finished is None else round(finished - fresh["start"], 1),
                        "warm": warm["seconds"],
                        "warm_reported": warm["reported"],
                        "warm_load": warm["load"],
                    }
                    runs[job].setdefault(variant, []).append(row)
                    print(job, variant, names[variant], row, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    import numba
    import scipy

    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, numba {numba.__version__}, scipy {scipy.__version__}"
    result = {
        "command": command,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine,
        "revisions": names,
        "course_shape": list(shape),
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"Command: `{command}`  ",
        f"Date: {result['date']}; {machine}  ",
        "",
        "Each job is a whole process, from start to exit, from a fresh clone of each revision: no `__pycache__`, "
        '`NUMBA_CACHE_DIR` an empty folder (fresh), then the same cache again (warm). "cache filled": when no process '
        "was compiling into the cache any more, counted from the fresh run's start (the revision before this change "
        "compiles inside the job). Seconds: range over the repeats (median). The machine is shared by several "
        "developers: the load average (1 min) at each start is given, fresh/warm.",
    ]
    titles = {
        "demo": "`make demo`'s job: `python -m batchproc.demo OUT` (128x96x24 int16, gaussian σ=1, sobel_magnitude, threshold; previews and a histogram)",
        "course": f"`batchproc run` of the course pipeline (gaussian σ=2, sobel_magnitude, threshold 40) on {'x'.join(map(str, shape))} uint16 in zarr",
    }
    for job in args.jobs:
        lines += ["", f"## {titles[job]}", "", "| revision | fresh s | warm s | cache filled after s | load at starts |", "|---|---|---|---|---|"]
        for variant in args.revisions:
            rows = runs[job][variant]
            filled = [row["cache_filled_after"] for row in rows if row["cache_filled_after"] is not None]
            loads = ", ".join(f"{row['fresh_load']:.1f}/{row['warm_load']:.1f}" for row in rows)
            lines.append(
                f"| {variant} ({names[variant]}) | {spread([row['fresh'] for row in rows])} | {spread([row['warm'] for row in rows])} | {spread(filled)} | {loads} |"
            )
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
