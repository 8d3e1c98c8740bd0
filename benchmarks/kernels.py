"""The compiled kernels beside scipy.ndimage: speed per kernel, equality, compile cost.

    .venv/bin/python benchmarks/kernels.py                              # 64x256x256
    .venv/bin/python benchmarks/kernels.py --shape 128,512,512 --out benchmarks/results/kernels

For each kernel and dtype, on one in-memory volume:
- scipy: scipy.ndimage's function on the whole array (one thread);
- compiled, 1 thread: batchproc with the compiled kernels, the array as one block,
  synchronous scheduler;
- compiled, 2 threads: the same on blocks of a quarter of the array (halos included),
  threaded scheduler with two workers; scipy kernels the same way, for comparison;
- equal: the compiled result against scipy's, np.array_equal.

Compile cost: a fresh process runs every compiled kernel once on small arrays, first
with an empty numba cache (cold: compiles and writes the cache), then again (warm:
loads it), and a small job (64x128x128 pipeline) is timed in each state.

Writes kernels.md and kernels.json to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

#: name -> (operation, parameters); sobel_magnitude's scipy form is its registry block.
KERNELS: dict[str, tuple[str, dict[str, Any]]] = {
    "gaussian_filter σ=2": ("gaussian_filter", {"sigma": 2.0}),
    "sobel": ("sobel", {"axis": 0, "output": "float32"}),
    "prewitt": ("prewitt", {"axis": 0, "output": "float32"}),
    "sobel_magnitude": ("sobel_magnitude", {}),
    "uniform_filter 5": ("uniform_filter", {"size": 5}),
    "minimum_filter 3": ("minimum_filter", {"size": 3}),
    "maximum_filter 3": ("maximum_filter", {"size": 3}),
    "maximum_filter 9": ("maximum_filter", {"size": 9}),
    "median_filter 3": ("median_filter", {"size": 3}),
    "median_filter 7": ("median_filter", {"size": 7}),
    "percentile_filter 25, 3": ("percentile_filter", {"percentile": 25, "size": 3}),
    "rank_filter 5, 3": ("rank_filter", {"rank": 5, "size": 3}),
    "correlate 3³": ("correlate", {"weights": np.arange(27.0).reshape(3, 3, 3) / 351}),
    "convolve 3³": ("convolve", {"weights": np.full((3, 3, 3), 1 / 27)}),
    "histogram": ("histogram", {"min": 0, "max": 4096, "bins": 256}),
}


def volume(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij", sparse=True)
    smooth = 1000 * (np.sin(z / 9) * np.cos(y / 13) * np.sin(x / 7) + 1)
    return (smooth + rng.normal(0, 40, shape)).clip(0, 4095).astype(dtype)


def _best(fn, repeat: int = 3) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def _scipy(op: str, a: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    import scipy.ndimage as ndi

    from batchproc.ops import REGISTRY

    if op == "sobel_magnitude":
        return REGISTRY[op].block(a, axes=None, mode="reflect", cval=0.0, output=None)
    return getattr(ndi, op)(a, **params)


def _batchproc(op: str, a: np.ndarray, params: dict[str, Any], kernels: str, chunks: Any, workers: int) -> np.ndarray:
    import dask
    import dask.array as da

    import batchproc

    fn = getattr(batchproc.ndimage, op, None) or getattr(batchproc, op)
    with dask.config.set({"batchproc.kernels": kernels}):
        result = fn(da.from_array(a, chunks=chunks), **params)
        if not isinstance(result, da.Array):
            return np.asarray(result)
        scheduler = "synchronous" if workers == 1 else "threads"
        return result.compute(scheduler=scheduler, num_workers=workers)


def speeds(shape: tuple[int, ...], dtypes: list[str], only: list[str] | None = None) -> list[dict[str, Any]]:
    rows = []
    quarter = (max(1, shape[0] // 2), max(1, shape[1] // 2), shape[2])
    for dtype in dtypes:
        a = volume(shape, dtype)
        for name, (op, params) in KERNELS.items():
            if only and name not in only:
                continue
            t_scipy, want = _best(lambda op=op, params=params: _scipy(op, a, params))
            _batchproc(op, a, params, "compiled", a.shape, 1)  # loads (or compiles) the kernels once
            t_one, got = _best(lambda op=op, params=params: _batchproc(op, a, params, "compiled", a.shape, 1))
            t_two, _ = _best(lambda op=op, params=params: _batchproc(op, a, params, "compiled", quarter, 2))
            t_scipy_two, _ = _best(lambda op=op, params=params: _batchproc(op, a, params, "scipy", quarter, 2))
            row = {
                "kernel": name,
                "dtype": dtype,
                "scipy s": t_scipy,
                "compiled 1 thread s": t_one,
                "compiled 2 threads s": t_two,
                "scipy kernels 2 threads s": t_scipy_two,
                "equal": bool(np.array_equal(np.asarray(got), np.asarray(want))),
            }
            rows.append(row)
            print(f"{name} {dtype}: x{t_scipy / t_one:.1f} (1 thread), x{t_scipy / t_two:.1f} (2 threads), equal {row['equal']}", flush=True)
    return rows


_EVERY_KERNEL = """
import time
start = time.perf_counter()
import numpy as np, dask.array as da, dask, batchproc
{body}
print(time.perf_counter() - start)
"""


def _every_kernel_body() -> str:
    lines = []
    for dtype in ("uint16", "float32"):
        for op, params in KERNELS.values():
            call = f"getattr(batchproc.ndimage, {op!r}, None) or getattr(batchproc, {op!r})"
            args = ", ".join(f"{k}={v!r}" if not isinstance(v, np.ndarray) else f"{k}=np.array({v.tolist()!r})" for k, v in params.items())
            lines.append(f"r = ({call})(da.from_array(np.ones((8, 16, 16), {dtype!r}), chunks=(4, 16, 16)){', ' + args if args else ''})")
            lines.append("r.compute(scheduler='synchronous') if isinstance(r, da.Array) else r")
    return "\n".join(lines)


def compile_cost() -> dict[str, float]:
    """Seconds for every kernel's first use in a new process, cold and warm, and a
    small job's wall time in each state."""
    figures = {}
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as work:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        script = _EVERY_KERNEL.format(body=_every_kernel_body())
        for state in ("cold", "warm"):
            out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
            figures[f"every kernel, {state} s"] = float(out.stdout.strip().splitlines()[-1])
        import tifffile

        source = Path(work) / "small.tif"
        tifffile.imwrite(source, volume((64, 128, 128), "uint16"))
        job = [sys.executable, "-m", "batchproc.cli", "run", str(source)]
        steps = ["--step", "gaussian_filter:sigma=2", "--step", "sobel_magnitude", "--step", "threshold:above=40"]
        fresh = tempfile.mkdtemp(dir=work)
        for state, cache_dir in (("cold", fresh), ("warm", fresh)):
            start = time.perf_counter()
            subprocess.run([*job, str(Path(work) / f"{state}.zarr"), *steps], env=dict(os.environ, NUMBA_CACHE_DIR=cache_dir), capture_output=True, check=True)
            figures[f"small job, {state} s"] = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run([*job, str(Path(work) / "scipy.zarr"), *steps], env=dict(os.environ, BATCHPROC_KERNELS="scipy"), capture_output=True, check=True)
        figures["small job, scipy kernels s"] = time.perf_counter() - start
    return figures


def markdown(rows: list[dict[str, Any]], compile_figures: dict[str, float], shape: tuple[int, ...]) -> str:
    from batchproc.bench import machine

    lines = [
        f"Machine: {machine()}",
        "",
        f"Volume {'x'.join(map(str, shape))} in memory. Speedup over scipy.ndimage (one thread, whole array).",
        "",
        "| kernel | dtype | scipy s | compiled 1 thread | compiled 2 threads | scipy kernels 2 threads | equal to scipy |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        s = r["scipy s"]
        lines.append(
            f"| {r['kernel']} | {r['dtype']} | {s:.3f} | {s / r['compiled 1 thread s']:.1f}× | {s / r['compiled 2 threads s']:.1f}× "
            f"| {s / r['scipy kernels 2 threads s']:.1f}× | {'yes' if r['equal'] else 'NO'} |"
        )
    if compile_figures:
        lines += ["", "| compile cost | seconds |", "|---|---:|"]
        lines += [f"| {k[:-2]} | {v:.2f} |" for k, v in compile_figures.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="64,256,256")
    parser.add_argument("--dtypes", default="uint16,float32")
    parser.add_argument("--only", default=None, help="comma-separated kernel names (default: all)")
    parser.add_argument("--out", default="benchmarks/results/kernels")
    parser.add_argument("--no-compile-cost", action="store_true", help="skip the cold/warm compile measurement")
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    only = args.only.split(",") if args.only else None
    unknown = sorted(set(only or ()) - set(KERNELS))
    if unknown:
        parser.error(f"--only: unknown kernel(s) {', '.join(unknown)}; valid: {', '.join(KERNELS)}")
    rows = speeds(shape, args.dtypes.split(","), only)
    figures = {} if args.no_compile_cost else compile_cost()
    text = markdown(rows, figures, shape)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "kernels.md").write_text(text)
    # The command and date are what the documentation's benchmarks page shows with the table.
    made = {"command": shlex.join([".venv/bin/python", "benchmarks/kernels.py", *sys.argv[1:]]), "date": time.strftime("%Y-%m-%d")}
    (out / "kernels.json").write_text(json.dumps({**made, "shape": shape, "kernels": rows, "compile": figures}, indent=1))
    print(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
