"""A smoke run of the benchmark at a tiny size, so it cannot rot (no timings asserted)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from batchproc.bench import compare, write_report


@pytest.mark.slow
def test_benchmark_smoke(tmp_path: Path) -> None:
    results = compare(
        shape=(8, 32, 32),
        chunks=(4, 16, 16),
        cases=("pipeline", "median_filter"),
        engines=("scipy", "dask-image", "batchproc", "batchproc-local"),
        workdir=str(tmp_path),
    )
    assert len(results) == 8
    for r in results:
        assert r.error is None, (r.engine, r.case, r.error)
        assert r.peak_rss_mb > 0
    # batchproc is exact; dask-image's default reflect mode is exact here too.
    assert all(r.exact for r in results if r.engine.startswith("batchproc"))
    report = write_report(results, tmp_path / "report")
    assert {p.name for p in report.iterdir()} == {"results.md", "results.json", "results.png"}


@pytest.mark.slow
def test_archive_benchmark_smoke() -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "archive.py"
    done = subprocess.run([sys.executable, str(script), "--files", "3", "--size", "24"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "items/s" not in line]
    assert [row.split("|")[1].strip() for row in rows] == ["threads", "local cluster, 2 workers"]


@pytest.mark.slow
def test_bench_command_on_the_users_input(tmp_path: Path) -> None:
    import numpy as np
    import tifffile
    from typer.testing import CliRunner

    from batchproc.cli import app

    tifffile.imwrite(tmp_path / "scan.tif", np.random.default_rng(0).integers(0, 4000, size=(40, 32, 32)).astype(np.uint16))
    runner = CliRunner()
    args = ["bench", str(tmp_path / "scan.tif"), "--step", "gaussian_filter:sigma=1", "--step", "equalize", "--max-mb", "0.02"]
    result = runner.invoke(app, [*args, "--report", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    rows = {line.split("|")[3].strip(): line for line in result.output.splitlines() if line.startswith("| pipeline")}
    assert set(rows) == {"scipy", "dask-image", "batchproc"}
    assert "n/a" in rows["dask-image"]  # dask-image has no equalization
    assert rows["batchproc"].rstrip(" |").endswith("yes")  # equal to scipy + numpy in memory
    assert "input: 0.0 MB" in result.output and (tmp_path / "report" / "results.md").exists()
    bad = runner.invoke(app, [*args, "--engines", "scipy,fiji"])
    assert bad.exit_code == 2 and "unknown engine(s) fiji" in bad.output
    bad = runner.invoke(app, [*args, "--repeat", "0"])
    assert bad.exit_code == 2 and "repeat must be at least 1; got 0" in bad.output
    # Repeated runs: the engines take turns, and the table gives each one's median
    # and the range of its runs.
    twice = runner.invoke(
        app,
        [
            "bench",
            str(tmp_path / "scan.tif"),
            "--step",
            "median_filter:size=3",
            "--max-mb",
            "0.02",
            "--engines",
            "scipy,batchproc",
            "--repeat",
            "2",
            "--report",
            str(tmp_path / "twice"),
        ],
    )
    assert twice.exit_code == 0, twice.output
    rows = [line for line in twice.output.splitlines() if line.startswith("| pipeline")]
    assert len(rows) == 2 and all(row.rstrip(" |").endswith("2 runs)") for row in rows), rows
    saved = json.loads((tmp_path / "twice" / "results.json").read_text())["results"]
    for r in saved:
        assert len(r["runs"]) == 2 and r["seconds"] == pytest.approx(sum(r["runs"]) / 2), r
    assert "Each engine ran 2 times" in (tmp_path / "twice" / "results.md").read_text()


@pytest.mark.slow
def test_out_of_core_benchmark_smoke(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "out_of_core.py"
    done = subprocess.run([sys.executable, str(script), "--gb", "0.02", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    row = done.stdout.strip().splitlines()[-1].split("|")
    assert row[1].strip() == "0.02 GB uint16" and float(row[6]) > 0


@pytest.mark.slow
def test_kernel_benchmark_smoke(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "kernels.py"
    args = [
        sys.executable,
        str(script),
        "--shape",
        "6,16,16",
        "--dtypes",
        "uint16",
        "--out",
        str(tmp_path),
        "--no-compile-cost",
        "--repeat",
        "1",
        "--peak-mib",
        "4",
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    written = json.loads((tmp_path / "kernels.json").read_text())
    rows = written["kernels"]
    assert len(rows) == 21 and all(r["equal"] for r in rows), [r["kernel"] for r in rows if not r["equal"]]
    assert written["command"].startswith(".venv/bin/python benchmarks/kernels.py --shape 6,16,16")
    # The machine's limits beside each kernel's rates.
    assert all(written["limits"][k] > 0 for k in ("madd G/s", "fma G/s", "copy, memory GB/s", "triad, cache GB/s"))
    gaussian = next(r for r in rows if r["kernel"] == "gaussian_filter σ=2")
    assert gaussian["G madd/s"] > 0 and gaussian["GB/s"] > 0
    assert next(r for r in rows if r["kernel"] == "binary_dilation ×5")["dtype"] == "bool"
    text = (tmp_path / "kernels.md").read_text()
    assert "| median_filter 3 | uint16 |" in text and "multiply + add" in text
    # The large-window table (docs/benchmarks.md): chosen kernels on 8-bit data (the histogram median).
    only = [*args[:4], "--dtypes", "uint8", "--out", str(tmp_path / "only"), "--no-compile-cost", "--only", "median_filter 7,maximum_filter 9"]
    done = subprocess.run(only, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "only" / "kernels.json").read_text())
    rows = record["kernels"]
    assert [(r["kernel"], r["dtype"], r["equal"]) for r in rows] == [("maximum_filter 9", "uint8", True), ("median_filter 7", "uint8", True)]
    # What the documentation's benchmarks page shows with the table: the command, quoted to be run again, and the date.
    assert record["command"].startswith(".venv/bin/python benchmarks/kernels.py --shape 6,16,16 ") and record["command"].endswith(
        "--only 'median_filter 7,maximum_filter 9'"
    )
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", record["date"])
    wrong = subprocess.run([*only[:-1], "median_filter 99"], capture_output=True, text=True, timeout=300)
    assert wrong.returncode == 2 and "unknown kernel(s) median_filter 99" in wrong.stderr and "Traceback" not in wrong.stderr


def test_table_of_repeated_runs_shows_no_time_for_an_engine_that_failed() -> None:
    # An engine that ran once, then failed in a later round, is an error: no median.
    from batchproc.bench import Result, markdown

    results = [
        Result("pipeline", "scipy", "uint16", 8.0, 2.0, 100.0, True, None, 4e6, [2.0, 2.2]),
        Result("pipeline", "dask-image", "uint16", 8.0, float("nan"), 300.0, None, "MemoryError", 4e6, [5.0]),
    ]
    rows = markdown(results).splitlines()
    assert rows[2].endswith("| 2.00 (2.00-2.20, 2 runs) |") and rows[3].endswith("| error: MemoryError | - | - | - | - | - | - |"), rows
