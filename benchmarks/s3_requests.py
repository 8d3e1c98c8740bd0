"""Requests per chunk on an object store, counted from the server's own log.

A real S3-compatible server (moto's, the test suite's ``tests/s3server.py``) on
127.0.0.1; a 64x256x256 uint16 volume (8 MiB) in 64 chunks of 16x64x64 is written
there, then ``batchproc run`` takes it through a gaussian σ=2 into a store on the
same server, unsharded and in shards of 32x128x128 (8 chunks each), and the
sharded result is read back. The table counts GETs of input chunks, PUTs of output
files, listings and every other request of each run.

    .venv/bin/python benchmarks/s3_requests.py [--out benchmarks/results/s3-requests]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/s3-requests")
    args = parser.parse_args()
    from s3server import S3Server

    server = S3Server(Path(tempfile.mkdtemp()))
    rows = []
    try:
        os.environ.update(server.env)
        from typer.testing import CliRunner

        import batchproc
        from batchproc.cli import app

        bucket = server.bucket("requests")
        volume = (np.random.default_rng(0).random((64, 256, 256)) * 1000).astype("uint16")
        batchproc.write(volume, f"{bucket}/in.zarr", chunks=(16, 64, 64))
        for name, extra in (("unsharded", ["--shards", "none"]), ("shards of 32x128x128", ["--shards", "32,128,128"])):
            before = len(server.requests())
            started = time.perf_counter()
            result = CliRunner().invoke(
                app, ["run", f"{bucket}/in.zarr", f"{bucket}/{name[:5]}.zarr", "--step", "gaussian_filter:sigma=2", "--chunks", "16,64,64", *extra, "-q"]
            )
            seconds = time.perf_counter() - started
            if result.exit_code != 0:
                raise SystemExit(result.output)
            requests = server.requests()[before:]
            gets = sum(1 for r in requests if r[0] == "GET" and "/in.zarr/0/c/" in r[1])
            puts = sum(1 for r in requests if r[0] == "PUT" and f"/{name[:5]}.zarr/0/c/" in r[1])
            lists = sum(1 for r in requests if r[0] == "GET" and "list-type" in r[1])
            rows.append((f"run, output {name}", seconds, gets, puts, lists, len(requests) - gets - puts - lists))
        before = len(server.requests())
        started = time.perf_counter()
        sharded = batchproc.open(f"{bucket}/shard.zarr").compute()
        requests = server.requests()[before:]
        assert np.array_equal(sharded, batchproc.open(f"{bucket}/unsha.zarr").compute())
        reads = [r for r in requests if r[0] == "GET" and "/shard.zarr/0/c/" in r[1]]
        rows.append(("read the sharded output (64 chunks in 8 shards)", time.perf_counter() - started, len(reads), 0, 0, len(requests) - len(reads)))
    finally:
        server.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        f"Command: `.venv/bin/python benchmarks/s3_requests.py --out {args.out}`  ",
        f"Date: {time.strftime('%Y-%m-%d')}; moto's S3 server on 127.0.0.1; input 64 chunks of 16x64x64 uint16",
        "",
        "| what | s | chunk GETs | file PUTs | listings | other requests |",
        "|---|---:|---:|---:|---:|---:|",
        *(f"| {what} | {s:.2f} | {g} | {p} | {n} | {o} |" for what, s, g, p, n, o in rows),
        "",
        "Other requests: metadata documents, the lock object, existence checks.",
        "",
    ]
    (out / "results.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
