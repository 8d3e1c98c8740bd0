"""The compiled kernels beside scipy.ndimage and beside this machine's limits: speed
per kernel, how far each is from what the machine can do, equality, compile cost.

    .venv/bin/python benchmarks/kernels.py                              # 64x256x256
    .venv/bin/python benchmarks/kernels.py --shape 128,512,512 --out benchmarks/results/kernels

For each kernel and dtype, on one in-memory volume (binary morphology on the volume
thresholded at 1000, about half true):
- scipy: scipy.ndimage's function on the whole array (one thread);
- kernel, 1 thread: the block kernel the engine runs (the compiled one), called on
  the whole array as one block, with the parameters validated as the engine does;
- batchproc, 1 thread: ``batchproc.ndimage`` on a dask array of one chunk,
  synchronous scheduler (the kernel plus dask's graph, a copy in and out);
- batchproc, 2 threads: blocks of a quarter of the array (halos included), threaded
  scheduler with two workers; scipy kernels the same way, for comparison;
- equal: the compiled result against scipy's, np.array_equal.

Every time is the best of ``--repeat`` runs, with the median beside it where it
matters: the machine may be shared, and the best run is the one least disturbed.
One-thread times are the process's CPU time (what the kernel cost, not how long
it waited for a core); the two-thread runs are timed by the wall clock, against
scipy's wall clock.

The limit, measured in the same run on one thread:
- multiply-adds: a numba loop of independent ``v = v * m + c`` in float64, kept
  apart (a multiply, then an add, each rounded: what an exact replay of scipy's
  C code may use) and contracted to FMA (what a kernel free to round once could
  use);
- memory: a STREAM-like copy (``b[:] = a``; bytes read + written) and triad
  (``a = b + s * c``) over arrays of ``--peak-mib`` MiB each (from main memory) and
  over block-sized arrays (the volume's bytes: from the caches, as a kernel finds its
  block after the read that brought it in).
Each kernel's arithmetic rate is its multiply-adds per voxel (:data:`KERNELS`: the
taps of each pass as scipy computes them) times voxels per second; its memory rate is
the bytes it must read and write (input once, output once) per second. The table
gives both as fractions of the measured peaks.

Compile cost: a fresh process runs every compiled kernel once on small arrays, first
with an empty numba cache (cold: compiles and writes the cache), then again (warm:
loads it), and a small job (64x128x128 pipeline) is timed in each state.

Writes kernels.md and kernels.json (with the command that made them) to --out.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from batchproc import dispatch


@dataclass(frozen=True)
class Kernel:
    """One row of the table: an operation, its parameters, and its arithmetic.

    ``madds``: multiply-adds per voxel as scipy's algorithm performs them, one per
    tap of each 1-D pass (a symmetric pass folds pairs of taps: fewer multiplies,
    the same adds); None for kernels that compare or move bits instead.
    ``mask``: the input is the volume thresholded (binary morphology), one row
    whatever the dtype.
    """

    op: str
    params: dict[str, Any] = field(default_factory=dict)
    madds: float | None = None
    mask: bool = False


#: name -> kernel; sobel_magnitude's scipy form is its registry block.
KERNELS: dict[str, Kernel] = {
    "gaussian_filter σ=2": Kernel("gaussian_filter", {"sigma": 2.0}, 3 * 17),
    "sobel": Kernel("sobel", {"axis": 0}, 3 * 3),
    "sobel → float32": Kernel("sobel", {"axis": 0, "output": "float32"}, 3 * 3),
    "prewitt": Kernel("prewitt", {"axis": 0}, 3 * 3),
    "laplace": Kernel("laplace", {}, 3 * 3),
    "sobel_magnitude": Kernel("sobel_magnitude", {}, 3 * 3 * 3 + 3),
    # a running sum: an add and a subtract per voxel and pass (and a division)
    "uniform_filter 5": Kernel("uniform_filter", {"size": 5}, 3 * 2),
    "minimum_filter 3": Kernel("minimum_filter", {"size": 3}),
    "maximum_filter 3": Kernel("maximum_filter", {"size": 3}),
    "maximum_filter 9": Kernel("maximum_filter", {"size": 9}),
    "median_filter 3": Kernel("median_filter", {"size": 3}),
    "median_filter 7": Kernel("median_filter", {"size": 7}),
    "percentile_filter 25, 3": Kernel("percentile_filter", {"percentile": 25, "size": 3}),
    "rank_filter 5, 3": Kernel("rank_filter", {"rank": 5, "size": 3}),
    "correlate 3³": Kernel("correlate", {"weights": np.arange(27.0).reshape(3, 3, 3) / 351}, 27),
    "convolve 3³": Kernel("convolve", {"weights": np.full((3, 3, 3), 1 / 27)}, 27),
    "histogram": Kernel("histogram", {"min": 0, "max": 4096, "bins": 256}),
    "binary_dilation ×5": Kernel("binary_dilation", {"iterations": 5}, mask=True),
    "binary_erosion ×5": Kernel("binary_erosion", {"iterations": 5}, mask=True),
    "binary_opening ×2": Kernel("binary_opening", {"iterations": 2}, mask=True),
    "binary_closing 3³": Kernel("binary_closing", {"structure": np.ones((3, 3, 3), bool)}, mask=True),
}


def volume(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij", sparse=True)
    smooth = 1000 * (np.sin(z / 9) * np.cos(y / 13) * np.sin(x / 7) + 1)
    return (smooth + rng.normal(0, 40, shape)).clip(0, 4095).astype(dtype)


def _times(fn, repeat: int, clock=time.process_time) -> tuple[list[float], Any]:
    """Seconds of ``repeat`` runs of ``fn`` (after none: the caller warms it), and
    the last result. The clock is this process's CPU time unless told otherwise:
    on a machine shared with other work, the wall clock also counts the time the
    process waited for a core (a scipy gaussian here: 350-570 ms of wall clock,
    86.2-86.9 ms of CPU). (The process's, not the thread's: work that a call hands
    to another thread counts too.)"""
    times, result = [], None
    for _ in range(repeat):
        start = clock()
        result = fn()
        times.append(clock() - start)
    return times, result


def _both_times(fn, repeat: int) -> tuple[list[float], list[float], Any]:
    """:func:`_times` by this process's CPU time and by the wall clock at once."""
    cpu, wall, result = [], [], None
    for _ in range(repeat):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        result = fn()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    return cpu, wall, result


def _scipy(op: str, a: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    import scipy.ndimage as ndi

    from batchproc.ops import REGISTRY

    if op == "sobel_magnitude":
        return REGISTRY[op].block(a, axes=None, mode="reflect", cval=0.0, output=None)
    return getattr(ndi, op)(a, **params)


def _block_kernel(op: str, a: np.ndarray, params: dict[str, Any]):
    """The compiled block kernel the engine would run for ``a`` as one block, as a
    call of no arguments; None for global operations (no block kernel)."""
    from batchproc.ops import REGISTRY, Context

    operation = REGISTRY[op]
    if operation.kind != "local":
        return None
    validated = operation.validate(params, Context(op=op, ndim=a.ndim, dtype=a.dtype))
    kernel = operation.kernel(a.dtype, validated, "compiled")
    return lambda: kernel(a, **validated)


def _batchproc(op: str, a: np.ndarray, params: dict[str, Any], kernels: str, chunks: Any, workers: int) -> np.ndarray:
    import dask
    import dask.array as da

    import batchproc

    fn = getattr(batchproc.ndimage, op, None) or getattr(batchproc, op)
    with dask.config.set({"batchproc.kernels": kernels}):
        # name=False: dask would otherwise hash the whole array to name it, every call
        result = fn(da.from_array(a, chunks=chunks, name=False), **params)
        if not isinstance(result, da.Array):
            return np.asarray(result)
        scheduler = "synchronous" if workers == 1 else "threads"
        return result.compute(scheduler=scheduler, num_workers=workers)


# ---------------------------------------------------------------- the machine's limits

_LANES = 8  # independent multiply-add chains per lane: enough to hide the latency


def _madd_source(contract: bool) -> str:
    body = [f"            v{j} = x[{j}, t]" for j in range(_LANES)]
    body += [f"            v{j} = v{j} * m + c" for _ in range(8) for j in range(_LANES)]
    body += [f"            x[{j}, t] = v{j}" for j in range(_LANES)]
    fastmath = "{'contract'}" if contract else "False"
    return (
        f"@numba.njit(nogil=True, fastmath={fastmath})\n"
        "def madd(x, m, c, reps):\n"
        "    for r in range(reps):\n"
        "        for t in range(x.shape[1]):\n" + "\n".join(body) + "\n"
    )


def _compiled_loops() -> dict[str, Any]:
    import numba

    loops: dict[str, Any] = {}
    for contract in (False, True):
        namespace: dict[str, Any] = {"numba": numba}
        exec(_madd_source(contract), namespace)  # noqa: S102 - source written above
        loops["fma" if contract else "madd"] = namespace["madd"]

    @numba.njit(nogil=True)
    def copy(a, b):
        for i in range(a.shape[0]):
            b[i] = a[i]

    @numba.njit(nogil=True)
    def triad(a, b, c, s):
        for i in range(a.shape[0]):
            a[i] = b[i] + s * c[i]

    loops["copy"], loops["triad"] = copy, triad
    return loops


def peaks(block_bytes: int, memory_mib: int, repeat: int) -> dict[str, float]:
    """This machine's limits on one thread, best of ``repeat`` runs: float64
    multiply-adds per second (kept apart, and as FMA) and bytes per second of a copy
    and a triad, from the caches (arrays of ``block_bytes``) and from memory
    (``memory_mib`` MiB each)."""
    loops = _compiled_loops()
    figures: dict[str, float] = {}
    x = np.full((_LANES, 256), 0.5)
    reps = 20_000
    for name in ("madd", "fma"):
        loops[name](x, 0.999999, 1e-7, 1)
        seconds = min(_times(lambda name=name: loops[name](x, 0.999999, 1e-7, reps), repeat)[0])
        figures[f"{name} G/s"] = x.size * 8 * reps / seconds / 1e9
    for where, nbytes in (("cache", block_bytes), ("memory", memory_mib * 2**20)):
        n = max(1, nbytes // 8)
        a, b, c = np.full(n, 1.0), np.zeros(n), np.full(n, 2.0)
        loops["copy"](a, b)
        loops["triad"](a, b, c, 3.0)
        seconds = min(_times(lambda a=a, b=b: loops["copy"](a, b), repeat)[0])
        figures[f"copy, {where} GB/s"] = 2 * 8 * n / seconds / 1e9
        seconds = min(_times(lambda a=a, b=b, c=c: loops["triad"](a, b, c, 3.0), repeat)[0])
        figures[f"triad, {where} GB/s"] = 3 * 8 * n / seconds / 1e9
        del a, b, c
    return figures


# ---------------------------------------------------------------- kernels


def speeds(shape: tuple[int, ...], dtypes: list[str], only: list[str] | None = None, repeat: int = 5) -> list[dict[str, Any]]:
    rows = []
    quarter = (max(1, shape[0] // 2), max(1, shape[1] // 2), shape[2])
    voxels = int(np.prod(shape))
    for k, dtype in enumerate(dtypes):
        for name, spec in KERNELS.items():
            if only and name not in only or spec.mask and k > 0:
                continue
            a = volume(shape, dtype) > 1000 if spec.mask else volume(shape, dtype)
            op, params = spec.op, spec.params
            _scipy(op, a, params)
            scipy_times, scipy_wall, want = _both_times(lambda op=op, params=params, a=a: _scipy(op, a, params), repeat)
            # Load (or compile, in another process) the kernels of both layouts, and
            # wait for them: the timed runs are of the compiled kernels, not of the
            # scipy ones a run takes while its kernels compile.
            _batchproc(op, a, params, "compiled", a.shape, 1)
            _batchproc(op, a, params, "compiled", quarter, 2)
            dispatch.waiting(1800)
            one_times, got = _times(lambda op=op, params=params, a=a: _batchproc(op, a, params, "compiled", a.shape, 1), repeat)
            kernel = _block_kernel(op, a, params)
            kernel_times = _times(kernel, repeat)[0] if kernel is not None else one_times
            wall = time.perf_counter
            t_two, _ = _times(lambda op=op, params=params, a=a: _batchproc(op, a, params, "compiled", quarter, 2), repeat, wall)
            t_scipy_two, _ = _times(lambda op=op, params=params, a=a: _batchproc(op, a, params, "scipy", quarter, 2), repeat, wall)
            got, want = np.asarray(got), np.asarray(want)
            kernel_s = min(kernel_times)
            row = {
                "kernel": name,
                "dtype": str(a.dtype),
                "scipy s": min(scipy_times),
                "scipy median s": float(np.median(scipy_times)),
                "scipy wall s": min(scipy_wall),
                "kernel 1 thread s": kernel_s,
                "kernel 1 thread median s": float(np.median(kernel_times)),
                "batchproc 1 thread s": min(one_times),
                "batchproc 2 threads s": min(t_two),
                "scipy kernels 2 threads s": min(t_scipy_two),
                "G madd/s": spec.madds * voxels / kernel_s / 1e9 if spec.madds else None,
                "GB/s": (a.dtype.itemsize + (got.dtype.itemsize if got.shape == a.shape else 0)) * voxels / kernel_s / 1e9,
                "equal": bool(np.array_equal(got, want)),
            }
            rows.append(row)
            print(
                f"{name} {row['dtype']}: x{row['scipy s'] / kernel_s:.1f} kernel, x{row['scipy s'] / row['batchproc 1 thread s']:.1f} (1 thread), "
                f"x{row['scipy wall s'] / row['batchproc 2 threads s']:.1f} (2 threads), equal {row['equal']}",
                flush=True,
            )
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
    for index, dtype in enumerate(("uint16", "float32")):
        for spec in KERNELS.values():
            if spec.mask and index > 0:
                continue
            op, params = spec.op, spec.params
            of = "bool" if spec.mask else dtype
            call = f"getattr(batchproc.ndimage, {op!r}, None) or getattr(batchproc, {op!r})"
            args = ", ".join(f"{k}={v!r}" if not isinstance(v, np.ndarray) else f"{k}=np.array({v.tolist()!r})" for k, v in params.items())
            lines.append(f"r = ({call})(da.from_array(np.ones((8, 16, 16), {of!r}), chunks=(4, 16, 16)){', ' + args if args else ''})")
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


def markdown(rows: list[dict[str, Any]], limits: dict[str, float], compile_figures: dict[str, float], shape: tuple[int, ...], command: str) -> str:
    from batchproc.bench import machine

    lines = [
        f"Machine: {machine()}",
        "",
        f"Made by: `{command}`",
        "",
        f"Volume {'x'.join(map(str, shape))} in memory. Times are the best of the runs (the machine may be",
        "shared; the kernel's median beside it), one-thread times in the process's CPU time, two-thread",
        "runs by the wall clock (and compared with scipy's wall clock). Speedups over scipy.ndimage",
        "on one thread, whole array.",
        "",
    ]
    if limits:
        lines += [
            "This machine, one thread (best runs):",
            "",
            "| limit | rate |",
            "|---|---:|",
            f"| float64 multiply + add, rounded apart (as the exact kernels must) | {limits['madd G/s']:.1f} G/s |",
            f"| float64 FMA (one rounding) | {limits['fma G/s']:.1f} G/s |",
            f"| copy, block-sized arrays (caches) | {limits['copy, cache GB/s']:.1f} GB/s |",
            f"| triad, block-sized arrays (caches) | {limits['triad, cache GB/s']:.1f} GB/s |",
            f"| copy, from memory | {limits['copy, memory GB/s']:.1f} GB/s |",
            f"| triad, from memory | {limits['triad, memory GB/s']:.1f} GB/s |",
            "",
            "Arithmetic: the kernel's multiply-adds per second (taps of each pass as scipy computes them)",
            "and its share of the multiply + add peak; memory: the bytes it must read and write (input and",
            "output once) per second and their share of the block-sized copy.",
            "",
        ]
    lines += [
        "| kernel | dtype | scipy ms | kernel ms (median) | kernel vs scipy | G madd/s | of peak | GB/s | of copy "
        "| batchproc 1 thread | batchproc 2 threads | scipy kernels 2 threads | equal to scipy |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        s, k = r["scipy s"], r["kernel 1 thread s"]
        madds = "—" if r["G madd/s"] is None else f"{r['G madd/s']:.1f}"
        madd_share = "—" if r["G madd/s"] is None or not limits else f"{100 * r['G madd/s'] / limits['madd G/s']:.0f} %"
        copy_share = "—" if not limits else f"{100 * r['GB/s'] / limits['copy, cache GB/s']:.0f} %"
        lines.append(
            f"| {r['kernel']} | {r['dtype']} | {1e3 * s:.1f} | {1e3 * k:.1f} ({1e3 * r['kernel 1 thread median s']:.1f}) | {s / k:.1f}× "
            f"| {madds} | {madd_share} | {r['GB/s']:.2f} | {copy_share} "
            f"| {s / r['batchproc 1 thread s']:.1f}× | {r['scipy wall s'] / r['batchproc 2 threads s']:.1f}× "
            f"| {r['scipy wall s'] / r['scipy kernels 2 threads s']:.1f}× | {'yes' if r['equal'] else 'NO'} |"
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
    parser.add_argument("--repeat", type=int, default=5, help="runs of each timing; the table gives the best")
    parser.add_argument("--peak-mib", type=int, default=128, help="MiB per array of the memory copy and triad")
    parser.add_argument("--no-peaks", action="store_true", help="skip the machine's limits")
    parser.add_argument("--no-compile-cost", action="store_true", help="skip the cold/warm compile measurement")
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    only = args.only.split(",") if args.only else None
    unknown = sorted(set(only or ()) - set(KERNELS))
    if unknown:
        parser.error(f"--only: unknown kernel(s) {', '.join(unknown)}; valid: {', '.join(KERNELS)}")
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1; got {args.repeat}")
    dtypes = args.dtypes.split(",")
    command = shlex.join([".venv/bin/python", "benchmarks/kernels.py", *sys.argv[1:]])
    block_bytes = int(np.prod(shape)) * max(np.dtype(d).itemsize for d in dtypes)
    limits = {} if args.no_peaks else peaks(block_bytes, args.peak_mib, args.repeat)
    rows = speeds(shape, dtypes, only, args.repeat)
    figures = {} if args.no_compile_cost else compile_cost()
    text = markdown(rows, limits, figures, shape, command)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "kernels.md").write_text(text)
    (out / "kernels.json").write_text(
        json.dumps({"command": command, "date": time.strftime("%Y-%m-%d"), "shape": shape, "limits": limits, "kernels": rows, "compile": figures}, indent=1)
    )
    print(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
