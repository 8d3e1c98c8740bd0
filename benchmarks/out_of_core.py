"""Out of core: the pipeline gaussian σ=2 → sobel_magnitude → threshold over uint16
volumes of several sizes on disk, through the real CLI, with the peak resident
memory of its whole process tree. Bounded memory means the peak does not grow
with the volume.

    .venv/bin/python benchmarks/out_of_core.py --gb 4,16 [--chunks 64,256,256] [--dir /path/with/space]

Each volume is written as zarr (Blosc LZ4) in --dir, processed, and deleted.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

STEPS = ["--step", "gaussian_filter:sigma=2", "--step", "sobel_magnitude", "--step", "threshold:above=40"]
PLANE = (2048, 2048)


def make_volume(path: Path, gb: float, slab: int = 32) -> tuple[int, ...]:
    """A uint16 volume of ``gb`` GB: smooth structures and noise, one slab at a time
    (the slabs are shifted copies, so writing is not the slow part)."""
    from batchproc.bench import _target

    depth = max(1, int(round(gb * 1e9 / (2 * PLANE[0] * PLANE[1]))))
    shape = (depth, *PLANE)
    z = _target(str(path), shape, np.uint16, (slab, 512, 512))
    rng = np.random.default_rng(0)
    zz = np.arange(slab)[:, None, None]
    yy, xx = np.mgrid[: PLANE[0], : PLANE[1]]
    base = (500 * (np.sin(zz / 9.0) * np.cos(yy / 13.0) * np.sin(xx / 7.0) + 1) + rng.normal(0, 40, (slab, *PLANE))).clip(0, 4095).astype(np.uint16)
    for start in range(0, depth, slab):
        stop = min(depth, start + slab)
        z[start:stop] = np.roll(base, start, axis=2)[: stop - start]
    return shape


def run_measured(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of the process tree of ``command``."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True)))
        except psutil.Error:
            pass
        time.sleep(0.05)
    _, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(stderr)
    return time.perf_counter() - started, peak / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", default="4,16")
    parser.add_argument("--chunks", default=None, help="block shape for the run (default: batchproc's ~32 MiB blocks)")
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    print("| volume | shape | chunks | wall s | MB/s | peak RSS MB |\n|---|---|---|---:|---:|---:|", flush=True)
    for gb in (float(v) for v in args.gb.split(",")):
        root = Path(tempfile.mkdtemp(prefix="batchproc-ooc-", dir=args.dir))
        try:
            shape = make_volume(root / "input.zarr", gb)
            command = [sys.executable, "-m", "batchproc.cli", "run", str(root / "input.zarr"), str(root / "out.zarr"), *STEPS, "-q"]
            if args.chunks:
                command += ["--chunks", args.chunks]
            seconds, peak = run_measured(command)
            mb = np.prod(shape) * 2 / 1e6
            print(f"| {gb:g} GB uint16 | {shape} | {args.chunks or 'default'} | {seconds:.0f} | {mb / seconds:.0f} | {peak:.0f} |", flush=True)
        finally:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
