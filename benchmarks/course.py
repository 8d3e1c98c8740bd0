"""The course pipeline end to end, as a user runs it: each engine a whole process
timed from start to exit (imports, reading and writing zarr included), with the
peak resident memory of its process tree sampled every 20 ms. Engines take turns,
never side by side; the table gives medians.

    .venv/bin/python benchmarks/course.py                  # 128x1024x1024 uint16 (256 MiB)
    .venv/bin/python benchmarks/course.py --repeat 5 --out benchmarks/results/course

The volume: batchproc.bench's synthetic uint16 volume (smooth structures plus
noise), stored as zarr in chunks of --chunks (default 32x256x256). The pipeline:
gaussian σ=2 on the uint16 array, the Sobel magnitude of it as float32, > 40.

  batchproc   `batchproc run IN OUT --pipeline course.yaml -q` (threads, the default)
  scipy       one thread: g = gaussian_filter(x, 2);
              sqrt(sum(sobel(g.astype(float32), a)**2 for a in axes)) > 40
  dask-image  the same calls on da.from_zarr(IN), threaded, da.to_zarr(OUT)

Every output is compared with scipy's after the timed runs.
Writes results.md and results.json to --out (default benchmarks/results/course).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from processes import batchproc_cli, measure, provenance

PIPELINE = """\
version: 1
steps:
  - op: gaussian_filter
    sigma: 2
  - op: sobel_magnitude
    output: float32
  - op: threshold
    above: 40
"""

SCIPY = r"""
import sys, numpy as np, scipy.ndimage as ndi, zarr
source, target = sys.argv[1:3]
x = zarr.open_array(source, mode="r")
g = ndi.gaussian_filter(x[:], 2).astype(np.float32)
m = np.sqrt(sum(ndi.sobel(g, a) ** 2 for a in range(g.ndim))) > 40
zarr.create_array(target, shape=m.shape, dtype=m.dtype, chunks=x.chunks, overwrite=True)[...] = m
"""

DASK_IMAGE = r"""
import sys, dask, dask.array as da, numpy as np, dask_image.ndfilters as dif
source, target = sys.argv[1:3]
x = da.from_zarr(source)
g = dif.gaussian_filter(x, 2).astype(np.float32)
m = da.sqrt(sum(dif.sobel(g, a) ** 2 for a in range(g.ndim))) > 40
with dask.config.set(scheduler="threads"):
    da.to_zarr(m, target, overwrite=True)
"""


def engines(source: Path, root: Path) -> dict[str, list[str]]:
    (root / "course.yaml").write_text(PIPELINE)
    out = {name: root / f"{name}.zarr" for name in ("batchproc", "scipy", "dask-image")}
    return {
        "batchproc": [*batchproc_cli(), "run", str(source), str(out["batchproc"]), "--pipeline", str(root / "course.yaml"), "--overwrite", "-q"],
        "scipy": [sys.executable, "-c", SCIPY, str(source), str(out["scipy"])],
        "dask-image": [sys.executable, "-c", DASK_IMAGE, str(source), str(out["dask-image"])],
    }


def equal_to_scipy(root: Path, name: str) -> bool:
    import batchproc

    want = batchproc.open(root / "scipy.zarr").compute()
    return bool(np.array_equal(batchproc.open(root / f"{name}.zarr").compute(), want))


def markdown(results: dict[str, Any]) -> str:
    rows = results["engines"]
    scipy, dask_image = rows["scipy"]["seconds"], rows["dask-image"]["seconds"]
    lines = [
        f"Command: `{results['command']}`  ",
        f"Date: {results['date']}; {results['machine']}  ",
        f"Code: {results['code']}",
        "",
        f"The course pipeline on {results['shape']} uint16 ({results['mib']:.0f} MiB) in zarr chunks of {results['chunks']}, zarr to zarr; "
        f"each engine a whole process timed from start to exit, {results['repeat']} runs taking turns (medians):",
        "",
        "| engine | s: median (range) | × scipy | × dask-image | peak RSS MB | equal to scipy |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, row in rows.items():
        runs = row["runs"]
        lines.append(
            f"| {name} | {row['seconds']:.2f} ({min(runs):.2f}-{max(runs):.2f}) | {scipy / row['seconds']:.2f} | {dask_image / row['seconds']:.2f} | "
            f"{row['peak_mb']:.0f} | {row['equal']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="128,1024,1024")
    parser.add_argument("--chunks", default="32,256,256")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where the temporary volume and outputs go")
    parser.add_argument("--out", default="benchmarks/results/course")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1; got {args.repeat}")
    from batchproc.bench import make_volume

    shape = tuple(int(v) for v in args.shape.split(","))
    chunks = tuple(int(v) for v in args.chunks.split(","))
    root = Path(tempfile.mkdtemp(prefix="batchproc-course-", dir=args.dir))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # scipy's one thread; the others use dask's threads
    try:
        source = root / "input.zarr"
        make_volume(str(source), shape, "uint16", chunks)
        commands = engines(source, root)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in commands}
        for turn in range(args.repeat):
            for name, command in commands.items():
                got = measure(command, None, timeout=1800, rss_limit=20e9, env=env)
                if got["status"] != "ok":
                    raise SystemExit(f"{name} failed: {got['status']}")
                runs[name].append(got)
                print(f"  run {turn + 1}, {name}: {got['seconds']:.2f} s, peak {got['peak_mb']:.0f} MB", flush=True)
        results = {
            **provenance("benchmarks/course.py", sys.argv[1:]),
            "shape": "x".join(map(str, shape)),
            "chunks": "x".join(map(str, chunks)),
            "mib": float(np.prod(shape)) * 2 / 2**20,
            "repeat": args.repeat,
            "engines": {
                name: {
                    "seconds": statistics.median(r["seconds"] for r in rs),
                    "runs": [r["seconds"] for r in rs],
                    "peak_mb": max(r["peak_mb"] for r in rs),
                    "equal": "(reference)" if name == "scipy" else ("yes" if equal_to_scipy(root, name) else "NO"),
                }
                for name, rs in runs.items()
            },
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(markdown(results))
    print(markdown(results))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
