"""Object-store clients for s3:// stores: obstore beside s3fs (boto3 as a reference),
against moto's S3 server on 127.0.0.1, started and stopped here. Each client is
built from the environment only (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION; AWS_ALLOW_HTTP for obstore on http://), the way
batchproc would build it. Requests are counted from moto's request log; CPU is the
client process's own (user+system, all its threads, Rust ones included) and moto's.
moto is slow itself and shares the 2 cores with the client: read the columns side
by side (relative cost, requests made), not as absolute S3 figures.

Needs obstore, s3fs, boto3, moto[server], zarr, numpy in the running interpreter
(not in the project's .venv), e.g. a scratch venv:

    python3 -m venv /tmp/osbench && /tmp/osbench/bin/pip install obstore s3fs 'moto[server]' boto3 zarr numpy
    /tmp/osbench/bin/python benchmarks/objectstores.py                      # every part, --repeat 3
    /tmp/osbench/bin/python benchmarks/objectstores.py --parts tiny,bulk --sizes 1,8 --count 64 --threads 2

Parts:
  checks   each client once: put, conditional create twice (If-None-Match: *), whole get,
           suffix get, head, list, delete, pickle round trip (the only part that is not timed)
  imports  `import obstore` / `import s3fs` / `import boto3` in a fresh interpreter
  tiny     --tiny objects of 1 KiB, one thread, one after the other: PUT, GET, suffix GET
           (last 16 bytes: a shard index), HEAD, per request; plus a fresh client's
           first GET (construct + connect + sign), as in a dask worker after unpickling
  bulk     --count objects of each of --sizes MiB, --threads threads: PUT then GET
  zarr     zarr.open_array over zarr.storage.ObjectStore (obstore) and FsspecStore (s3fs):
           write then read 64 MiB uint16, 128 chunks of 512 KiB

Writes results.md and results.json to --out (default benchmarks/results/objectstores).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import importlib.metadata
import json
import os
import pickle
import platform
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import obstore
import s3fs
from botocore.config import Config
from obstore.exceptions import AlreadyExistsError
from obstore.store import S3Store

BUCKET = "bench"
PACKAGES = ["obstore", "s3fs", "fsspec", "aiobotocore", "aiohttp", "boto3", "botocore", "moto", "werkzeug", "zarr", "numpy"]
REQUEST = re.compile(r'"(?:\x1b\[[0-9;]*m)*([A-Z]+) (\S+) HTTP/1\.1(?:\x1b\[[0-9;]*m)*" (\d{3})')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Moto:
    """``python -m moto.server`` on 127.0.0.1; its request log is read to count requests."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "moto.log"
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)], stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.proc.returncode}: {self.log.read_text(errors='replace')[-2000:]}")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(self.url + "/moto-api/", timeout=1).close()
                break
            if time.monotonic() > deadline:
                raise RuntimeError("moto server not ready after 30 s")
            time.sleep(0.1)
        self.offset = self.log.stat().st_size

    def reset(self) -> None:
        """Drop every bucket and object (frees moto's memory), then create the bucket again."""
        urllib.request.urlopen(urllib.request.Request(self.url + "/moto-api/reset", data=b"", method="POST"), timeout=30).close()
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/{BUCKET}", method="PUT"), timeout=30).close()
        self.requests()

    def requests(self) -> Counter[str]:
        """Requests logged since the last call, as 'METHOD status' (``?uploads`` marks multipart)."""
        size, deadline = -1, time.monotonic() + 2
        while time.monotonic() < deadline:  # the log line follows the response: wait until it stops growing
            time.sleep(0.05)
            now = self.log.stat().st_size
            if now == size:
                break
            size = now
        with self.log.open("rb") as f:
            f.seek(self.offset)
            text = f.read(size - self.offset).decode(errors="replace")
        self.offset = size
        got: Counter[str] = Counter()
        for method, path, status in REQUEST.findall(text):
            if path.startswith("/moto-api"):
                continue
            part = " multipart" if ("uploads" in path or "uploadId" in path) else ""
            got[f"{method}{part} {status}"] += 1
        return got

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


@contextlib.contextmanager
def moto_server(folder: Path) -> Iterator[Moto]:
    server = Moto(folder)
    try:
        yield server
    finally:
        server.close()


def use_environment(endpoint: str) -> None:
    """What a user sets; the clients below read nothing else."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="benchkeyid",
        AWS_SECRET_ACCESS_KEY="benchsecret",
        AWS_REGION="us-east-1",
        AWS_ALLOW_HTTP="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )


# -- the clients, each built from the environment ------------------------------------------


class ObstoreClient:
    name = "obstore"

    def __init__(self, single_put: bool = True) -> None:
        self.single_put = single_put
        if not single_put:
            self.name = "obstore (default put)"
        # client_options replaces the environment's client options: allow_http must be repeated here
        self.store = S3Store(
            BUCKET,
            client_options={"allow_http": os.environ["AWS_ENDPOINT_URL"].startswith("http://"), "connect_timeout": "5s", "timeout": "120s"},
            retry_config={"max_retries": 3, "retry_timeout": timedelta(seconds=60)},
        )

    def put(self, key: str, data: bytes) -> None:
        # use_multipart=None (the default) uploads bytes above 5 MiB as a multipart upload (4 requests for 8 MiB)
        obstore.put(self.store, key, data, use_multipart=False if self.single_put else None)

    def create(self, key: str, data: bytes) -> str:
        try:
            obstore.put(self.store, key, data, mode="create")
        except AlreadyExistsError:
            return "exists"
        return "created"

    def get(self, key: str) -> int:
        return len(memoryview(obstore.get(self.store, key).bytes()))

    def suffix(self, key: str, n: int) -> bytes:
        return bytes(obstore.get(self.store, key, options={"range": {"suffix": n}}).bytes())

    def head(self, key: str) -> int:
        return int(obstore.head(self.store, key)["size"])

    def list(self, prefix: str) -> list[str]:
        return sorted(m["path"] for batch in obstore.list(self.store, prefix=prefix) for m in batch)

    def delete(self, key: str) -> None:
        obstore.delete(self.store, key)


class S3fsClient:
    name = "s3fs"

    def __init__(self, max_concurrency: int = 10) -> None:
        # endpoint, keys and region come from the environment through botocore; no instance cache.
        # max_concurrency > 1 (the default, 10) makes every whole-object cat_file a HEAD and then a GET
        if max_concurrency != 10:
            self.name = f"s3fs max_concurrency={max_concurrency}"
        self.fs = s3fs.S3FileSystem(
            skip_instance_cache=True,
            max_concurrency=max_concurrency,
            config_kwargs={"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 3, "mode": "standard"}},
        )

    def put(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(f"{BUCKET}/{key}", data)

    def create(self, key: str, data: bytes) -> str:
        try:
            self.fs.pipe_file(f"{BUCKET}/{key}", data, mode="create")
        except FileExistsError:
            return "exists"
        return "created"

    def get(self, key: str) -> int:
        return len(self.fs.cat_file(f"{BUCKET}/{key}"))

    def suffix(self, key: str, n: int) -> bytes:
        return bytes(self.fs.cat_file(f"{BUCKET}/{key}", start=-n))

    def head(self, key: str) -> int:
        return int(self.fs.info(f"{BUCKET}/{key}")["size"])

    def list(self, prefix: str) -> list[str]:
        self.fs.invalidate_cache()
        return sorted(p.split("/", 1)[1] for p in self.fs.find(f"{BUCKET}/{prefix}"))

    def delete(self, key: str) -> None:
        self.fs.rm_file(f"{BUCKET}/{key}")


class Boto3Client:
    name = "boto3"

    def __init__(self) -> None:
        self.s3 = boto3.client("s3", config=Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"}))

    def put(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=data)

    def create(self, key: str, data: bytes) -> str:
        try:
            self.s3.put_object(Bucket=BUCKET, Key=key, Body=data, IfNoneMatch="*")
        except self.s3.exceptions.ClientError as e:
            if e.response["Error"]["Code"] in ("PreconditionFailed", "ConditionalRequestConflict"):
                return "exists"
            raise
        return "created"

    def get(self, key: str) -> int:
        return len(self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    def suffix(self, key: str, n: int) -> bytes:
        return bytes(self.s3.get_object(Bucket=BUCKET, Key=key, Range=f"bytes=-{n}")["Body"].read())

    def head(self, key: str) -> int:
        return int(self.s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"])

    def list(self, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=BUCKET, Key=key)


CLIENTS: dict[str, Callable[[], Any]] = {
    "obstore": ObstoreClient,
    "s3fs": S3fsClient,
    "s3fs max_concurrency=1": lambda: S3fsClient(max_concurrency=1),
    "boto3": Boto3Client,
}


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def per_op(counter: Counter[str], ops: int) -> str:
    return ", ".join(f"{n / ops:g} {k}" for k, n in sorted(counter.items())) or "none"


# -- parts -----------------------------------------------------------------------------------


def part_checks(server: Moto) -> dict[str, Any]:
    out = {}
    for name, make in CLIENTS.items():
        server.reset()
        c = make()
        row: dict[str, Any] = {}
        c.put("chk/a", b"0123456789")
        row["get"] = c.get("chk/a") == 10
        row["suffix_get"] = c.suffix("chk/a", 4) == b"6789"
        row["head_size"] = c.head("chk/a")
        row["create_twice"] = [c.create("chk/lock", b"1"), c.create("chk/lock", b"2")]
        row["list"] = c.list("chk/")
        c.delete("chk/a")
        row["list_after_delete"] = c.list("chk/")
        try:
            row["pickle_then_get"] = pickle.loads(pickle.dumps(c)).suffix("chk/lock", 1) == b"1"
        except Exception as e:  # boto3 clients do not pickle
            row["pickle_then_get"] = f"{type(e).__name__}: {str(e)[:60]}"
        row["requests"] = dict(server.requests())
        out[name] = row
    return out


def part_imports(repeat: int) -> dict[str, Any]:
    code = "import time; t = time.perf_counter(); import {m}; print(time.perf_counter() - t)"
    out = {}
    for module in ["obstore", "obstore.store", "s3fs", "boto3", "zarr"]:
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True, timeout=120)  # warm the file cache
        runs = [
            float(subprocess.run([sys.executable, "-c", code.format(m=module)], check=True, timeout=120, capture_output=True, text=True).stdout)
            for _ in range(repeat)
        ]
        out[module] = {"seconds": statistics.median(runs), "runs": runs}
    return out


def _ms(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {"median_ms": statistics.median(values) * 1e3, "p90_ms": values[int(0.9 * (len(values) - 1))] * 1e3}


def part_tiny(server: Moto, repeat: int, count: int) -> dict[str, Any]:
    import http.client

    data = os.urandom(1024)
    out: dict[str, Any] = {}
    variants: dict[str, Callable[[], Any]] = dict(CLIENTS)
    for name, make in variants.items():
        server.reset()
        row: dict[str, Any] = {"cold_first_get_ms": []}
        make().put("tiny/warm", data)
        server.requests()
        for _ in range(repeat):  # a fresh client: construct, connect, sign, first GET
            t = time.perf_counter()
            make().get("tiny/warm")
            row["cold_first_get_ms"].append((time.perf_counter() - t) * 1e3)
        row["cold_requests"] = per_op(server.requests(), repeat)
        row["cold_first_get_ms"] = statistics.median(row["cold_first_get_ms"])
        c = make()
        c.get("tiny/warm")
        server.requests()
        ops = {"PUT": lambda k, c=c: c.put(k, data), "GET": c.get, "suffix GET": lambda k, c=c: c.suffix(k, 16), "HEAD": c.head}
        for op, fn in ops.items():
            times: list[float] = []
            cpu0, scpu0 = cpu_self(), server.cpu()
            for _ in range(repeat):
                for i in range(count):
                    t = time.perf_counter()
                    fn(f"tiny/{i:04d}")
                    times.append(time.perf_counter() - t)
            row[op] = {
                **_ms(times),
                "client_cpu_ms": (cpu_self() - cpu0) / (repeat * count) * 1e3,
                "server_cpu_ms": (server.cpu() - scpu0) / (repeat * count) * 1e3,
                "requests": per_op(server.requests(), repeat * count),
            }
        out[name] = row
    # moto's own floor: unsigned keep-alive GETs with http.client, no client library at all
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    times = []
    for _ in range(repeat):
        for i in range(count):
            t = time.perf_counter()
            conn.request("GET", f"/{BUCKET}/tiny/{i:04d}")
            conn.getresponse().read()
            times.append(time.perf_counter() - t)
    conn.close()
    server.requests()
    out["http.client (moto floor)"] = {"GET": _ms(times)}
    return out


def part_bulk(server: Moto, repeat: int, count: int, sizes: list[int], threads: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    variants: dict[str, Callable[[], Any]] = {
        "obstore": ObstoreClient,
        "obstore (default put)": lambda: ObstoreClient(single_put=False),
        **{k: v for k, v in CLIENTS.items() if k != "obstore"},
    }
    for mib in sizes:
        data = os.urandom(mib << 20)
        for name, make in variants.items():
            server.reset()
            c = make()
            c.put("bulk/warm", b"x")
            c.get("bulk/warm")
            server.requests()
            row: dict[str, Any] = {}
            ops = {"PUT": lambda k, c=c, data=data: c.put(k, data), "GET": c.get}
            if name == "obstore (default put)":
                ops.pop("GET")  # the same GET as obstore
            for op, fn in ops.items():
                seconds, cpu, scpu = [], [], []
                with concurrent.futures.ThreadPoolExecutor(threads) as pool:
                    for _ in range(repeat):
                        cpu0, scpu0 = cpu_self(), server.cpu()
                        t = time.perf_counter()
                        list(pool.map(fn, [f"bulk/{i:04d}" for i in range(count)], timeout=900))
                        seconds.append(time.perf_counter() - t)
                        cpu.append(cpu_self() - cpu0)
                        scpu.append(server.cpu() - scpu0)
                s = statistics.median(seconds)
                row[op] = {
                    "seconds": s,
                    "runs": seconds,
                    "mib_per_s": count * mib / s,
                    "client_cpu_s": statistics.median(cpu),
                    "server_cpu_s": statistics.median(scpu),
                    "requests": per_op(server.requests(), repeat * count),
                }
            out.setdefault(f"{mib} MiB", {})[name] = row
    return out


def part_zarr(server: Moto, repeat: int) -> dict[str, Any]:
    import zarr
    from zarr.storage import FsspecStore, ObjectStore

    a = np.random.default_rng(0).integers(0, 4096, size=(128, 512, 512), dtype="uint16")

    def obstore_store(prefix: str) -> Any:
        return ObjectStore(S3Store(BUCKET, prefix=prefix, client_options={"allow_http": True}))

    def fsspec_store(prefix: str, max_concurrency: int = 10) -> Any:
        return FsspecStore(s3fs.S3FileSystem(asynchronous=True, skip_instance_cache=True, max_concurrency=max_concurrency), path=f"{BUCKET}/{prefix}")

    out = {}
    for name, make in {
        "ObjectStore(obstore S3Store)": obstore_store,
        "FsspecStore(s3fs)": fsspec_store,
        "FsspecStore(s3fs max_concurrency=1)": lambda prefix: fsspec_store(prefix, 1),
    }.items():
        server.reset()
        row: dict[str, Any] = {"write_s": [], "read_s": []}
        for r in range(repeat):
            store = make(f"z{r}.zarr")
            t = time.perf_counter()
            z = zarr.create_array(store=store, shape=a.shape, chunks=(16, 128, 128), dtype=a.dtype, compressors=None, overwrite=True)
            z[:] = a
            row["write_s"].append(time.perf_counter() - t)
            write_requests = server.requests()
            t = time.perf_counter()
            back = zarr.open_array(store=make(f"z{r}.zarr"), mode="r")[:]
            row["read_s"].append(time.perf_counter() - t)
            read_requests = server.requests()
            assert np.array_equal(back, a)
        row.update(
            write_s=statistics.median(row["write_s"]),
            read_s=statistics.median(row["read_s"]),
            write_requests=per_op(write_requests, 1),
            read_requests=per_op(read_requests, 1),
        )
        out[name] = row
    return out


# -- report ----------------------------------------------------------------------------------


def markdown(results: dict[str, Any]) -> str:
    a = results["args"]
    lines = [
        f"Command: `{results['command']}`  ",
        f"Date: {results['date']}; {results['machine']}  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()),
        "",
        f"Server: moto {results['versions']['moto']} (`python -m moto.server`, werkzeug, threaded) on 127.0.0.1, sharing the cores with the client. "
        "Medians of --repeat runs. CPU: client process (all its threads) and moto server, per request or per phase.",
        "",
    ]
    if "checks" in results:
        lines += [
            "Checks (each client built from the environment only):",
            "",
            "| client | get | suffix get | head | create, create again | list | after delete | pickle, then get | requests |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, r in results["checks"].items():
            lines.append(
                f"| {name} | {r['get']} | {r['suffix_get']} | {r['head_size']} | {', '.join(r['create_twice'])} | {r['list']} | {r['list_after_delete']} | {r['pickle_then_get']} | "
                + ", ".join(f"{n} {k}" for k, n in sorted(r["requests"].items()))
                + " |"
            )
        lines.append("")
    if "imports" in results:
        lines += ["Import time in a fresh interpreter (median):", "", "| module | s |", "|---|---:|"]
        lines += [f"| {m} | {r['seconds']:.3f} |" for m, r in results["imports"].items()]
        lines.append("")
    if "tiny" in results:
        lines += [
            f"Tiny objects: {a['tiny']} x 1 KiB, one thread, one request at a time, x{a['repeat']} (ms per request: median / p90; CPU ms per request):",
            "",
            "| client | fresh client, first GET | PUT | GET | suffix GET (16 B) | HEAD | client CPU GET | moto CPU GET | requests per PUT / GET / suffix GET / HEAD |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for name, r in results["tiny"].items():
            if "PUT" not in r:
                lines.append(f"| {name} | | | {r['GET']['median_ms']:.2f} / {r['GET']['p90_ms']:.2f} | | | | | unsigned keep-alive GET |")
                continue
            cell = {op: f"{r[op]['median_ms']:.2f} / {r[op]['p90_ms']:.2f}" for op in ("PUT", "GET", "suffix GET", "HEAD")}
            lines.append(
                f"| {name} | {r['cold_first_get_ms']:.0f} | {cell['PUT']} | {cell['GET']} | {cell['suffix GET']} | {cell['HEAD']} | {r['GET']['client_cpu_ms']:.2f} | {r['GET']['server_cpu_ms']:.2f} | {' / '.join(r[op]['requests'] for op in ('PUT', 'GET', 'suffix GET', 'HEAD'))} |"
            )
        lines.append("")
    if "bulk" in results:
        lines += [
            f"Bulk: {a['count']} objects per size, {a['threads']} threads, x{a['repeat']} (median):",
            "",
            "| size | client | PUT MiB/s | GET MiB/s | PUT s | GET s | client CPU s PUT / GET | moto CPU s PUT / GET | requests per PUT | requests per GET |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for size, clients in results["bulk"].items():
            for name, r in clients.items():
                g = r.get("GET")
                lines.append(
                    f"| {size} | {name} | {r['PUT']['mib_per_s']:.0f} | {g['mib_per_s']:.0f} | {r['PUT']['seconds']:.2f} | {g['seconds']:.2f} | {r['PUT']['client_cpu_s']:.2f} / {g['client_cpu_s']:.2f} | "
                    f"{r['PUT']['server_cpu_s']:.2f} / {g['server_cpu_s']:.2f} | {r['PUT']['requests']} | {g['requests']} |"
                    if g
                    else f"| {size} | {name} | {r['PUT']['mib_per_s']:.0f} | | {r['PUT']['seconds']:.2f} | | {r['PUT']['client_cpu_s']:.2f} / | {r['PUT']['server_cpu_s']:.2f} / | {r['PUT']['requests']} | |"
                )
        lines.append("")
    if "zarr" in results:
        lines += [
            "zarr-python 3 over each client: 64 MiB uint16 (128x512x512), 128 chunks of 16x128x128 (512 KiB), no compression (median):",
            "",
            "| store | write s | read s | write requests | read requests |",
            "|---|---:|---:|---|---|",
        ]
        lines += [f"| {n} | {r['write_s']:.2f} | {r['read_s']:.2f} | {r['write_requests']} | {r['read_requests']} |" for n, r in results["zarr"].items()]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="checks,imports,tiny,bulk,zarr")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--count", type=int, default=64, help="objects per size in bulk")
    parser.add_argument("--sizes", default="1,8", help="MiB, comma-separated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiny", type=int, default=100, help="1 KiB objects in tiny")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/objectstores"))
    args = parser.parse_args()
    parts = args.parts.split(",")
    results: dict[str, Any] = {
        "command": " ".join(["python", "benchmarks/objectstores.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "versions": {p: importlib.metadata.version(p) for p in PACKAGES},
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="objectstores-") as tmp, moto_server(Path(tmp)) as server:
        use_environment(server.url)
        if "checks" in parts:
            results["checks"] = part_checks(server)
        if "imports" in parts:
            results["imports"] = part_imports(args.repeat)
        if "tiny" in parts:
            results["tiny"] = part_tiny(server, args.repeat, args.tiny)
        if "bulk" in parts:
            results["bulk"] = part_bulk(server, args.repeat, args.count, [int(s) for s in args.sizes.split(",")], args.threads)
        if "zarr" in parts:
            results["zarr"] = part_zarr(server, args.repeat)
    results["wall_s"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (args.out / "results.md").write_text(markdown(results) + f"\nWall time {results['wall_s']:.0f} s.\n")
    print(markdown(results), flush=True)


if __name__ == "__main__":
    main()
