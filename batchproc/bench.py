"""Side-by-side engine comparison: scipy.ndimage in memory (one thread), dask-image
op by op (threads), batchproc (threads, fused) and batchproc on a 2-worker
LocalCluster, on the same zarr input in one run.

Each engine x case runs in a fresh subprocess, so one case's memory never leaks into
the next; the parent samples the resident memory of that process and its children
(LocalCluster workers included) every 20 ms. Every engine writes its result to zarr,
and the result is compared with scipy's.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ENGINES = ("scipy", "dask-image", "batchproc", "batchproc-local")

#: name -> pipeline steps (batchproc's form; the other engines translate them)
CASES: dict[str, list[dict[str, Any]]] = {
    "pipeline": [{"op": "gaussian_filter", "sigma": 2}, {"op": "sobel_magnitude"}, {"op": "threshold", "above": 40}],
    "gaussian_filter": [{"op": "gaussian_filter", "sigma": 2}],
    "sobel_magnitude": [{"op": "sobel_magnitude"}],
    "median_filter": [{"op": "median_filter", "size": 3}],
    "uniform_filter": [{"op": "uniform_filter", "size": 5}],
    "maximum_filter": [{"op": "maximum_filter", "size": 3}],
    "convolve": [{"op": "convolve", "weights": np.full((3, 3, 3), 1 / 27).tolist()}],
    "percentile_filter": [{"op": "percentile_filter", "percentile": 25, "size": 3}],
    "binary_dilation": [{"op": "threshold", "above": 1000}, {"op": "binary_dilation", "iterations": 2}],
    "histogram": [{"op": "histogram", "min": 0, "max": 4096, "bins": 256}],
    "equalize": [{"op": "equalize"}],
}
#: Engines that cannot run a step say so in the table instead of a figure.
NOT_AVAILABLE = "n/a"


@dataclass
class Result:
    case: str
    engine: str
    dtype: str
    mbytes: float
    seconds: float
    peak_rss_mb: float
    exact: bool | None
    error: str | None = None
    voxels: float = 0.0
    #: every run's seconds; ``seconds`` is their median
    runs: list[float] = field(default_factory=list)

    @property
    def mb_per_s(self) -> float:
        return self.mbytes / self.seconds if self.seconds else float("nan")

    @property
    def mvox_per_s(self) -> float:
        return self.voxels / 1e6 / self.seconds if self.seconds else float("nan")


# ------------------------------------------------------------------ the engines


def _params(step: dict[str, Any]) -> dict[str, Any]:
    return {k: (np.asarray(v) if k in ("weights", "footprint", "structure") else v) for k, v in step.items() if k != "op"}


def _scipy_steps(a: np.ndarray, steps: Sequence[dict[str, Any]]) -> np.ndarray:
    """The steps in memory on the whole array: scipy.ndimage's own functions, numpy
    for the course's operations (sobel magnitude, threshold, equalization)."""
    import scipy.ndimage as ndi

    from batchproc.ops import REGISTRY

    for step in steps:
        op, params = step["op"], _params(step)
        if op == "sobel_magnitude":
            f = a if a.dtype.kind == "f" else a.astype(np.float64)
            total = None
            for axis in range(a.ndim):
                s = np.square(ndi.sobel(f, axis, output=f.dtype))
                total = s if total is None else total + s
            a = np.sqrt(total)
        elif op == "threshold":
            a = a > params["above"]
        elif op == "equalize":
            if a.dtype.kind not in "ui" or a.dtype.itemsize > 2:
                raise NotImplementedError(f"{NOT_AVAILABLE}: the course's equalization is for 8/16-bit integers")
            top = np.iinfo(a.dtype).max
            hist = ndi.histogram(a, 0, top, top + 1)  # the course: one bin per value
            cdf = hist.cumsum() / hist.sum()
            a = cdf[a] * top
        elif op in REGISTRY and REGISTRY[op].scipy:
            a = getattr(ndi, op)(a, **params)
        else:
            raise NotImplementedError(f"{NOT_AVAILABLE}: no scipy.ndimage form of {op!r} here")
    return np.asarray(a)


def _dask_image_steps(x: Any, steps: Sequence[dict[str, Any]]) -> Any:
    """dask-image, one call per operation, as its users write pipelines."""
    import dask.array as da
    import dask_image.ndfilters as dif
    import dask_image.ndmeasure as dme
    import dask_image.ndmorph as dim

    for step in steps:
        op, params = step["op"], _params(step)
        if op == "sobel_magnitude":
            f = x if x.dtype.kind == "f" else x.astype(np.float64)
            x = da.sqrt(sum(da.square(dif.sobel(f, axis=a)) for a in range(x.ndim)))
        elif op == "threshold":
            x = x > params["above"]
        elif op == "histogram":
            x = dme.histogram(x, **params)
        elif hasattr(dif, op):
            x = getattr(dif, op)(x, **params)
        elif hasattr(dim, op):
            x = getattr(dim, op)(x, **params)
        else:
            raise NotImplementedError(f"{NOT_AVAILABLE}: dask-image has no {op!r}")
    return x


def _target(path: str, shape: tuple[int, ...], dtype: Any, chunks: tuple[int, ...]) -> Any:
    """The output array every engine writes: same chunks, same codec (batchproc's default)."""
    import zarr

    from batchproc.io.store import compressors

    chunks = tuple(min(c, s) for c, s in zip(chunks, shape, strict=True)) if len(chunks) == len(shape) else shape
    return zarr.create_array(path, shape=shape, dtype=dtype, chunks=chunks or None, compressors=compressors("default", dtype), overwrite=True)


def _save(target: str, result: np.ndarray, chunks: tuple[int, ...]) -> None:
    _target(target, result.shape, result.dtype, chunks)[...] = result


def run_one(engine: str, steps_json: str, source: str, target: str) -> dict[str, Any]:
    """Run one engine on one pipeline (in this process): zarr in, zarr out."""
    import dask
    import dask.array as da
    import zarr

    steps = json.loads(steps_json)
    chunks = tuple(zarr.open_array(source, mode="r").chunks)
    start = time.perf_counter()
    if engine == "scipy":
        _save(target, _scipy_steps(zarr.open_array(source, mode="r")[:], steps), chunks)
        return {"seconds": time.perf_counter() - start}
    if engine == "dask-image":
        y = _dask_image_steps(da.from_zarr(source), steps)
        with dask.config.set(scheduler="threads"):
            if steps[-1]["op"] == "histogram":  # counts, not an image; dask-image's come back as objects
                _save(target, np.asarray(y.compute()).astype(np.int64), chunks)
            else:
                da.store(y, _target(target, y.shape, y.dtype, chunks), lock=False)
        return {"seconds": time.perf_counter() - start}
    import batchproc
    from batchproc.engine import scheduler
    from batchproc.pipeline import Pipeline

    name = "local" if engine == "batchproc-local" else "threads"
    with scheduler(name, workers=2, threads_per_worker=1):
        if steps[-1]["op"] == "histogram":
            x = batchproc.open(source, chunks=chunks)  # batchproc's reader, in the store's chunks as dask-image's
            _save(target, batchproc.ndimage.histogram(Pipeline(steps[:-1]).apply(x) if steps[:-1] else x, **_params(steps[-1])), chunks)
        else:
            # As `batchproc run` runs it: planned on the input, written in the store's chunks.
            Pipeline(steps).run(source, target, chunks=chunks, overwrite=True)
    return {"seconds": time.perf_counter() - start}


def _measure(engine: str, steps: Sequence[dict[str, Any]], source: str, target: str) -> tuple[float, float, str | None]:
    import psutil

    cmd = [sys.executable, "-m", "batchproc.bench", "--one", engine, json.dumps(list(steps)), source, target]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        return float("nan"), peak / 2**20, (stderr.strip().splitlines() or ["failed"])[-1][:200]
    return json.loads(stdout.strip().splitlines()[-1])["seconds"], peak / 2**20, None


def make_volume(path: str, shape: tuple[int, ...], dtype: str, chunks: tuple[int, ...]) -> None:
    """A synthetic volume (smooth structures plus noise), written slab by slab."""
    import zarr

    z = zarr.open_array(path, mode="w", shape=shape, dtype=dtype, chunks=chunks)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[: shape[1], : shape[2]]
    for start in range(0, shape[0], chunks[0]):
        stop = min(shape[0], start + chunks[0])
        zz = np.arange(start, stop)[:, None, None]
        blobs = 500 * (np.sin(zz / 9.0) * np.cos(yy / 13.0) * np.sin(xx / 7.0) + 1)
        slab = blobs + rng.normal(0, 40, size=(stop - start, shape[1], shape[2]))
        z[start:stop] = np.clip(slab, 0, 4095).astype(dtype)


def compare(
    shape: tuple[int, ...] = (64, 256, 256),
    dtypes: Sequence[str] = ("uint16",),
    cases: Sequence[str] = ("pipeline",),
    engines: Sequence[str] = ENGINES,
    chunks: tuple[int, ...] = (32, 128, 128),
    workdir: str | None = None,
    repeat: int = 1,
) -> list[Result]:
    """Run every engine on every case and dtype of a synthetic volume, ``repeat``
    times (see :func:`compare_on`)."""
    _check_repeat(repeat)
    results = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for dtype in dtypes:
            source = os.path.join(tmp, f"input-{dtype}.zarr")
            make_volume(source, shape, dtype, chunks)
            results += compare_on(source, {case: CASES[case] for case in cases}, engines, tmp, repeat)
    return results


def compare_on(source: str, pipelines: dict[str, Sequence[dict[str, Any]]], engines: Sequence[str], workdir: str, repeat: int = 1) -> list[Result]:
    """Run every engine on every named pipeline over the zarr array at ``source``;
    each result is compared with the in-memory (scipy) engine's when it ran.

    With ``repeat`` > 1 the engines take turns, round after round (a busy spell of a
    shared machine then falls on all of them), and each engine's time is the median
    of its runs, its peak the highest."""
    import zarr

    _check_repeat(repeat)
    z = zarr.open_array(source, mode="r")
    dtype, voxels = str(z.dtype), float(np.prod(z.shape))
    mbytes = voxels * z.dtype.itemsize / 1e6
    results = []
    for case, steps in pipelines.items():
        runs: dict[str, list[float]] = {engine: [] for engine in engines}
        peaks = dict.fromkeys(engines, 0.0)
        errors: dict[str, str | None] = dict.fromkeys(engines)
        for _ in range(repeat):
            for engine in engines:
                if errors[engine] is not None:  # failed or not available: once is enough
                    continue
                seconds, peak, errors[engine] = _measure(engine, steps, source, _target_path(workdir, case, engine, dtype))
                peaks[engine] = max(peaks[engine], peak)
                if errors[engine] is None:
                    runs[engine].append(seconds)
                print(f"{case} {dtype} {engine}: {seconds:.2f} s, peak {peak:.0f} MB, {errors[engine] or ''}", file=sys.stderr, flush=True)
        reference = _read_result(_target_path(workdir, case, "scipy", dtype)) if "scipy" in engines and errors["scipy"] is None else None
        for engine in engines:
            exact = None
            if errors[engine] is None and reference is not None:
                got = _read_result(_target_path(workdir, case, engine, dtype))
                exact = bool(got.dtype == reference.dtype and np.array_equal(got, reference))
            seconds = float(np.median(runs[engine])) if errors[engine] is None else float("nan")
            results.append(Result(case, engine, dtype, mbytes, seconds, peaks[engine], exact, errors[engine], voxels, runs[engine]))
    return results


def _check_repeat(repeat: int) -> None:
    if repeat < 1:
        from batchproc.errors import BatchprocError

        raise BatchprocError(f"bench: repeat must be at least 1; got {repeat}.")


def _target_path(workdir: str, case: str, engine: str, dtype: str) -> str:
    return os.path.join(workdir, f"{case}-{engine}-{dtype}.zarr")


def compare_input(
    input: Any,
    steps: Sequence[dict[str, Any]],
    *,
    engines: Sequence[str] = ("scipy", "dask-image", "batchproc"),
    max_mb: float | None = 64.0,
    chunks: tuple[int, ...] | None = None,
    workdir: str | None = None,
    repeat: int = 1,
) -> list[Result]:
    """The engines side by side on the user's own input and pipeline, each run
    ``repeat`` times (see :func:`compare_on`).

    Quick by default: the leading slabs (along the first axis) of at most
    ``max_mb`` MB are copied to a temporary zarr array that every engine reads;
    ``max_mb=None`` uses the whole input.
    """
    import dask.array as da

    from batchproc.errors import BatchprocError
    from batchproc.io import open_image
    from batchproc.io.readers import auto_chunks

    unknown = sorted(set(engines) - set(ENGINES))
    if unknown:
        raise BatchprocError(f"bench: unknown engine(s) {', '.join(unknown)}; valid: {', '.join(ENGINES)}.")
    _check_repeat(repeat)
    x = open_image(input, chunks).data
    if max_mb is not None and x.nbytes > max_mb * 1e6 and x.ndim > 1:
        per_slab = x.nbytes / x.shape[0]
        x = x[: max(1, int(max_mb * 1e6 // per_slab))]
    store_chunks = chunks or auto_chunks(x.shape, x.dtype)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        source = os.path.join(tmp, "input.zarr")
        da.store(x.rechunk(store_chunks), _target(source, x.shape, x.dtype, tuple(store_chunks)), lock=False)
        return compare_on(source, {"pipeline": list(steps)}, engines, tmp, repeat)


def _read_result(path: str) -> np.ndarray:
    import zarr

    node = zarr.open(path, mode="r")
    return np.asarray((node["0"] if hasattr(node, "members") else node)[...])


def machine() -> str:
    import dask
    import psutil
    import scipy

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB; Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, dask {dask.__version__}"


def markdown(results: Sequence[Result]) -> str:
    """The results as a table; with repeated runs, a last column gives each
    engine's median and the range of its runs (seconds)."""
    repeated = any(len(r.runs) > 1 for r in results)
    rows = [
        "| case | dtype | engine | MB/s | Mvox/s | × scipy | × dask-image | peak RSS MB | equal to scipy |" + (" s: median (runs) |" if repeated else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if repeated else ""),
    ]
    by_key = {(r.case, r.dtype, r.engine): r for r in results}
    for r in results:
        base = by_key.get((r.case, r.dtype, "scipy"))
        peer = by_key.get((r.case, r.dtype, "dask-image"))
        vs_scipy = f"{base.seconds / r.seconds:.2f}" if base and r.error is None and base.error is None else "-"
        vs_peer = f"{peer.seconds / r.seconds:.2f}" if peer and r.error is None and peer.error is None else "-"
        if r.error is None:
            speed, mvox, peak = f"{r.mb_per_s:.0f}", f"{r.mvox_per_s:.1f}", f"{r.peak_rss_mb:.0f}"
        else:
            speed, mvox, peak = (NOT_AVAILABLE if NOT_AVAILABLE in r.error else f"error: {r.error}"), "-", "-"
        exact = "-" if r.exact is None else ("yes" if r.exact else "no")
        spread = ""
        if repeated:
            spread = f" {r.seconds:.2f} ({min(r.runs):.2f}-{max(r.runs):.2f}, {len(r.runs)} runs) |" if r.runs and r.error is None else " - |"
        rows.append(f"| {r.case} | {r.dtype} | {r.engine} | {speed} | {mvox} | {vs_scipy} | {vs_peer} | {peak} | {exact} |{spread}")
    return "\n".join(rows)


def plot(results: Sequence[Result], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = sorted({(r.case, r.dtype) for r in results})
    engines = [e for e in ENGINES if any(r.engine == e for r in results)]
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.5 * len(cases) + 2))
    width = 0.8 / len(engines)
    for k, engine in enumerate(engines):
        speeds = [next((r.mb_per_s for r in results if (r.case, r.dtype, r.engine) == (c, d, engine)), 0) for c, d in cases]
        peaks = [next((r.peak_rss_mb for r in results if (r.case, r.dtype, r.engine) == (c, d, engine)), 0) for c, d in cases]
        pos = np.arange(len(cases)) + k * width
        axes[0].barh(pos, speeds, height=width, label=engine)
        axes[1].barh(pos, peaks, height=width, label=engine)
    for ax, title in zip(axes, ("throughput (MB/s of input)", "peak RSS (MB)"), strict=True):
        ax.set_yticks(np.arange(len(cases)) + 0.4 - width / 2, [f"{c} {d}" for c, d in cases])
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(results: Sequence[Result], folder: str | Path) -> Path:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(results)
    runs = max((len(r.runs) for r in results), default=1)
    note = f" Each engine ran {runs} times, taking turns; times are medians." if runs > 1 else ""
    (out / "results.md").write_text(f"Machine: {machine()}.{note}\n\n{table}\n")
    (out / "results.json").write_text(json.dumps({"machine": machine(), "results": [asdict(r) | {"mb_per_s": r.mb_per_s} for r in results]}, indent=2))
    plot(results, out / "results.png")
    return out


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--one":
    print(json.dumps(run_one(*sys.argv[2:6])))
