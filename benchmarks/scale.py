"""Scale: the threaded default beside a real dask cluster, what each block costs
besides its voxels, and what a run costs before its first block. Every run is a
whole ``batchproc`` process (imports included); the cluster is a ``dask
scheduler`` and 2 ``dask worker`` processes (1 thread each) on 127.0.0.1, started
here as a user starts them; peak memory is the resident memory of the whole
process tree (scheduler, workers and their nannies, client), sampled every 20 ms.

    .venv/bin/python benchmarks/scale.py                          # every part but the large volumes
    .venv/bin/python benchmarks/scale.py --parts outofcore --gb 4,16 --dir /path/with/space
    .venv/bin/python benchmarks/scale.py --parts pipeline --repeat 5

Parts:
  pipeline   gaussian σ=2 -> sobel_magnitude -> threshold on 128x1024x1024 uint16
             (256 MiB), default chunks and --chunks 16,64,64: threads vs cluster
  blocks     gaussian σ=1 on 256x512x512 uint8 (64 MiB), default chunks vs 16,384
             chunks of 16^3: the cost of each extra chunk, threads vs cluster
  dryrun     --dry-run of a 10^6-chunk store (metadata only)
  startup    `batchproc --help`, and a 64x64x8 job end to end (warm kernel cache)
  outofcore  --gb volumes on the cluster, 1.5 GiB memory limit per worker

Writes results.md and results.json to --out (default benchmarks/results/scale).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil

PIPELINE = ["--step", "gaussian_filter:sigma=2", "--step", "sobel_magnitude", "--step", "threshold:above=40"]
GAUSSIAN = ["--step", "gaussian_filter:sigma=1"]
CLI = [sys.executable, "-m", "batchproc.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """``dask scheduler`` + ``dask worker`` processes on 127.0.0.1."""

    def __init__(self, workers: int, folder: Path, memory_limit: str = "4GiB") -> None:
        port = free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        log = (folder / "cluster.log").open("a")
        self.scheduler = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--dashboard-address",
                f"127.0.0.1:{free_port()}",
            ],
            stdout=log,
            stderr=log,
        )
        self.workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_worker",
                    self.address,
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "1",
                    "--memory-limit",
                    memory_limit,
                    "--no-dashboard",
                    "--name",
                    f"w{i}",
                    "--local-directory",
                    str(folder / f"w{i}"),
                ],
                stdout=log,
                stderr=log,
            )
            for i in range(workers)
        ]
        from distributed import Client

        with Client(self.address, timeout="60s") as client:
            client.wait_for_workers(workers, timeout=120)

    @property
    def pids(self) -> list[int]:
        return [self.scheduler.pid, *(w.pid for w in self.workers)]

    def close(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            proc.terminate()
        for proc in [*self.workers, self.scheduler]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)


@contextlib.contextmanager
def cluster(folder: Path, memory_limit: str = "4GiB") -> Iterator[Cluster]:
    running = Cluster(2, folder, memory_limit)
    try:
        yield running
    finally:
        running.close()


def _tree_rss(pid: int) -> int:
    try:
        ps = psutil.Process(pid)
        return ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
    except psutil.Error:
        return 0


def measure(command: list[str], also: list[int] = (), workers: list[int] = ()) -> dict[str, Any]:
    """Run ``command``: wall seconds, peak RSS (MB) of its tree plus the trees of
    ``also`` (a cluster's processes), and the peak of each of ``workers``' trees."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak, per_worker = 0, [0] * len(workers)
    while proc.poll() is None:
        sizes = [_tree_rss(w) for w in workers]
        per_worker = [max(a, b) for a, b in zip(per_worker, sizes, strict=True)]
        others = sum(_tree_rss(p) for p in also if p not in workers)
        peak = max(peak, _tree_rss(proc.pid) + others + sum(sizes))
        time.sleep(0.02)
    _, stderr = proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {stderr.strip()[-2000:]}")
    return {"seconds": seconds, "peak_mb": peak / 1e6, "worker_peaks_mb": [p / 1e6 for p in per_worker]}


def _remove_output(command: list[str]) -> None:
    if "run" in command:
        target = Path(command[command.index("run") + 2])
        shutil.rmtree(target, ignore_errors=True)


def make_volume(path: Path, shape: tuple[int, ...], dtype: str, chunks: tuple[int, ...]) -> None:
    from batchproc.bench import make_volume as synthetic

    synthetic(str(path), shape, dtype, chunks)


def run_command(source: Path, target: Path, steps: list[str], *extra: str) -> list[str]:
    return [*CLI, "run", str(source), str(target), *steps, "-q", *extra]


def timed_runs(commands: dict[str, tuple[list[str], list[int], list[int]]], repeat: int) -> dict[str, dict[str, Any]]:
    """Each named command ``repeat`` times, taking turns; medians of the seconds,
    the highest peaks."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, (command, also, workers) in commands.items():
            _remove_output(command)  # each run writes a new output; deleting the last one is not its work
            runs[name].append(measure(command, also, workers))
    out = {}
    for name, results in runs.items():
        seconds = [r["seconds"] for r in results]
        out[name] = {
            "seconds": statistics.median(seconds),
            "runs": seconds,
            "peak_mb": max(r["peak_mb"] for r in results),
            "worker_peaks_mb": [max(r["worker_peaks_mb"][i] for r in results) for i in range(len(results[0]["worker_peaks_mb"]))],
        }
    return out


def part_pipeline(root: Path, repeat: int) -> dict[str, Any]:
    source = root / "pipeline-input.zarr"
    shape = (128, 1024, 1024)
    make_volume(source, shape, "uint16", (64, 256, 256))
    mb = float(np.prod(shape)) * 2 / 1e6
    rows = {}
    with cluster(root) as running:
        for label, extra in (("default chunks", []), ("--chunks 16,64,64", ["--chunks", "16,64,64"])):
            got = timed_runs(
                {
                    "threads": (run_command(source, root / "t.zarr", PIPELINE, *extra), [], []),
                    "cluster": (
                        run_command(source, root / "c.zarr", PIPELINE, "--scheduler", running.address, *extra),
                        running.pids,
                        [w.pid for w in running.workers],
                    ),
                },
                repeat,
            )
            rows[label] = {**got, "mb": mb, "cluster_vs_threads": got["threads"]["seconds"] / got["cluster"]["seconds"]}
    return rows


def part_blocks(root: Path, repeat: int) -> dict[str, Any]:
    source = root / "blocks-input.zarr"
    shape = (256, 512, 512)
    make_volume(source, shape, "uint8", (64, 256, 256))
    out: dict[str, Any] = {}
    small = int(np.prod([n // 16 for n in shape]))
    with cluster(root) as running:
        where = {"threads": [], "cluster": ["--scheduler", running.address]}
        for name, extra in where.items():
            pids = running.pids if extra else []
            workers = [w.pid for w in running.workers] if extra else []
            got = timed_runs(
                {
                    "default": (run_command(source, root / f"{name}-d.zarr", GAUSSIAN, *extra), pids, workers),
                    "16^3": (run_command(source, root / f"{name}-s.zarr", GAUSSIAN, "--chunks", "16,16,16", "--shards", "none", *extra), pids, workers),
                    # 16,384 chunks: sharded by default (one shard per compute block)
                    "16^3 sharded": (run_command(source, root / f"{name}-h.zarr", GAUSSIAN, "--chunks", "16,16,16", *extra), pids, workers),
                },
                repeat,
            )
            default_chunks = _chunk_count(root / f"{name}-d.zarr")
            per_block_ms = (got["16^3"]["seconds"] - got["default"]["seconds"]) / (small - default_chunks) * 1e3
            files = {key: _file_count(root / f"{name}-{tag}.zarr") for key, tag in (("default", "d"), ("16^3", "s"), ("16^3 sharded", "h"))}
            out[name] = {**got, "chunks": {"default": default_chunks, "16^3": small}, "files": files, "ms_per_extra_chunk": per_block_ms}
    return out


def _file_count(store: Path) -> int:
    """The chunk (or shard) files of a store's full-resolution array."""
    return sum(1 for p in (store / "0" / "c").rglob("*") if p.is_file())


def _chunk_count(store: Path) -> int:
    meta = json.loads((store / "0" / "zarr.json").read_text())
    shape, chunks = meta["shape"], meta["chunk_grid"]["configuration"]["chunk_shape"]
    return int(np.prod([-(-n // c) for n, c in zip(shape, chunks, strict=True)]))


def part_dryrun(root: Path, repeat: int) -> dict[str, Any]:
    import zarr

    from batchproc.io.store import compressors

    source = root / "million.zarr"
    shape = (6400, 6400, 6400)
    zarr.create_array(str(source), shape=shape, chunks=(64, 64, 64), dtype="uint8", compressors=compressors("default", np.dtype("uint8")))
    command = [*CLI, "run", str(source), str(root / "never.zarr"), *GAUSSIAN, "--chunks", "64,64,64", "--dry-run"]
    got = timed_runs({"dry-run": (command, [], [])}, repeat)
    assert not (root / "never.zarr").exists()
    plan = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    files = next(line for line in plan.splitlines() if line.startswith("files"))
    return {**got["dry-run"], "chunks": int(np.prod([n // 64 for n in shape])), "files": files.split(None, 1)[1]}


def part_startup(root: Path, repeat: int) -> dict[str, Any]:
    source = root / "small.zarr"
    make_volume(source, (8, 64, 64), "uint16", (8, 64, 64))
    job = run_command(source, root / "small-out.zarr", PIPELINE)
    measure(job)  # the kernel cache is warm from here on
    got = timed_runs(
        {"--help": ([*CLI, "--help"], [], []), "import batchproc": ([sys.executable, "-c", "import batchproc"], [], []), "64x64x8 job": (job, [], [])},
        max(repeat, 5),
    )
    return got


def part_outofcore(root: Path, repeat: int, gbs: list[float]) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).parent))
    from out_of_core import make_volume as big_volume

    out = {}
    with cluster(root, memory_limit="1.5GiB") as running:
        for gb in gbs:
            source = root / f"ooc-{gb:g}.zarr"
            shape = big_volume(source, gb)
            try:
                got = measure(
                    run_command(source, root / "ooc-out.zarr", PIPELINE, "--scheduler", running.address), running.pids, [w.pid for w in running.workers]
                )
            finally:
                shutil.rmtree(source, ignore_errors=True)
                shutil.rmtree(root / "ooc-out.zarr", ignore_errors=True)
            out[f"{gb:g} GB"] = {**got, "shape": shape, "mb": float(np.prod(shape)) * 2 / 1e6}
    return out


def markdown(results: dict[str, Any]) -> str:
    lines = [f"Command: `{results['command']}`  ", f"Date: {results['date']}; {results['machine']}", ""]
    if "pipeline" in results:
        lines += [
            "Course pipeline, 256 MiB uint16, whole processes (medians; peak RSS of the process tree):",
            "",
            "| chunks | threads s | cluster s | cluster ÷ threads throughput | threads peak MB | cluster peak MB (all processes) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for label, row in results["pipeline"].items():
            lines.append(
                f"| {label} | {row['threads']['seconds']:.2f} | {row['cluster']['seconds']:.2f} | {row['cluster_vs_threads']:.2f} | {row['threads']['peak_mb']:.0f} | {row['cluster']['peak_mb']:.0f} |"
            )
        lines.append("")
    if "blocks" in results:
        lines += [
            "Cost per extra chunk, gaussian σ=1 on 64 MiB uint8 (default chunks vs 16,384 chunks of 16³, unsharded and sharded by default):",
            "",
            "| scheduler | default s | 16³ s (--shards none) | 16³ s sharded | files default / 16³ / sharded | ms per extra chunk |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, row in results["blocks"].items():
            files = row.get("files", {})
            lines.append(
                f"| {name} | {row['default']['seconds']:.2f} | {row['16^3']['seconds']:.2f} | {row['16^3 sharded']['seconds']:.2f} | "
                f"{files.get('default', '?')} / {files.get('16^3', '?')} / {files.get('16^3 sharded', '?')} | {row['ms_per_extra_chunk']:.3f} |"
            )
        lines.append("")
    if "dryrun" in results:
        row = results["dryrun"]
        lines += [f"--dry-run of a {row['chunks']:,}-chunk store: {row['seconds']:.2f} s (median); its output: {row.get('files', '?')}.", ""]
    if "startup" in results:
        lines += ["Start-up, whole processes (medians):", "", "| command | s |", "|---|---:|"]
        for name, row in results["startup"].items():
            lines.append(f"| {name} | {row['seconds']:.2f} |")
        lines.append("")
    if "outofcore" in results:
        lines += [
            "Out of core on the 2-worker cluster, 1.5 GiB memory limit per worker:",
            "",
            "| volume | wall s | MB/s | peak MB, all processes | peak MB per worker |",
            "|---|---:|---:|---:|---|",
        ]
        for name, row in results["outofcore"].items():
            lines.append(
                f"| {name} | {row['seconds']:.0f} | {row['mb'] / row['seconds']:.0f} | {row['peak_mb']:.0f} | {', '.join(f'{p:.0f}' for p in row['worker_peaks_mb'])} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="pipeline,blocks,dryrun,startup")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gb", default="4,16")
    parser.add_argument("--dir", default=None)
    parser.add_argument("--out", default="benchmarks/results/scale")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1; got {args.repeat}")
    parts = args.parts.split(",")
    results: dict[str, Any] = {
        "command": " ".join([".venv/bin/python", "benchmarks/scale.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}",
    }
    root = Path(tempfile.mkdtemp(prefix="batchproc-scale-", dir=args.dir))
    try:
        for part in parts:
            if part == "outofcore":
                results[part] = part_outofcore(root, args.repeat, [float(v) for v in args.gb.split(",")])
            else:
                results[part] = globals()[f"part_{part}"](root, args.repeat)
            print(markdown({k: v for k, v in results.items() if k in ("command", "date", "machine", part)}), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "results" if set(parts) != {"outofcore"} else "outofcore"
    (out / f"{name}.json").write_text(json.dumps(results, indent=2, default=str))
    (out / f"{name}.md").write_text(markdown(results))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
