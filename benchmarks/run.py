"""Benchmarks: batchproc beside scipy.ndimage and dask-image, one run, same data.

    .venv/bin/python benchmarks/run.py                       # quick: 64x256x256 uint16
    .venv/bin/python benchmarks/run.py --shape 256,512,1024 --dtypes uint16,float32 --cases all

Writes results.md, results.json and results.png to --out (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from batchproc.bench import CASES, ENGINES, compare, markdown, write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="64,256,256")
    parser.add_argument("--chunks", default="32,128,128")
    parser.add_argument("--dtypes", default="uint16")
    parser.add_argument("--cases", default="pipeline", help=f"comma-separated, or 'all': {', '.join(CASES)}")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--repeat", type=int, default=1, help="runs per engine, taking turns; the table gives medians")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1; got {args.repeat}")
    cases = list(CASES) if args.cases == "all" else args.cases.split(",")
    results = compare(
        shape=tuple(int(v) for v in args.shape.split(",")),
        dtypes=args.dtypes.split(","),
        cases=cases,
        engines=args.engines.split(","),
        chunks=tuple(int(v) for v in args.chunks.split(",")),
        repeat=args.repeat,
    )
    print(markdown(results))
    out = write_report(results, args.out)
    # The command and date are what the documentation's benchmarks page shows with the table.
    record = Path(out) / "results.json"
    made = {"command": shlex.join([".venv/bin/python", "benchmarks/run.py", *sys.argv[1:]]), "date": time.strftime("%Y-%m-%d")}
    record.write_text(json.dumps({**made, **json.loads(record.read_text())}, indent=2))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
