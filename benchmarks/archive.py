"""Items per second of ``batchproc batch`` over an archive of PNG slices: the
threaded default beside a 2-worker LocalCluster, same files, same pipeline.

    .venv/bin/python benchmarks/archive.py [--files 240] [--size 512]

Each engine runs the real CLI in a subprocess, into its own output folder, from
a cold start (the figure includes start-up: that is what a user waits for).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np

STEPS = ["--step", "gaussian_filter:sigma=2", "--step", "sobel_magnitude", "--step", "threshold:above=40"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=240)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="batchproc-archive-"))
    try:
        archive = root / "archive"
        archive.mkdir()
        rng = np.random.default_rng(0)
        for i in range(args.files):
            iio.imwrite(archive / f"slice{i:04d}.png", (rng.random((args.size, args.size)) * 255).astype(np.uint8))
        rows = []
        for engine, extra in (("threads", []), ("local cluster, 2 workers", ["--scheduler", "local", "--workers", "2"])):
            out = root / engine.split()[0]
            command = [sys.executable, "-m", "batchproc.cli", "batch", str(archive), "--out", str(out), *STEPS, "-q", *extra]
            started = time.perf_counter()
            subprocess.run(command, check=True)
            seconds = time.perf_counter() - started
            rows.append((engine, seconds, args.files / seconds))
        print(f"{args.files} PNG files of {args.size}x{args.size} uint8, gaussian σ=2 → sobel_magnitude → threshold\n")
        print("| engine | wall s | items/s |\n|---|---:|---:|")
        for engine, seconds, rate in rows:
            print(f"| {engine} | {seconds:.1f} | {rate:.1f} |")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
