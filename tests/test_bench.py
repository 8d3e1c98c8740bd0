"""A smoke run of the benchmark at a tiny size, so it cannot rot (no timings asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchproc.bench import compare, write_report


@pytest.mark.slow
def test_benchmark_smoke(tmp_path: Path) -> None:
    results = compare(shape=(8, 32, 32), chunks=(4, 16, 16), cases=("pipeline", "median_filter"), engines=("scipy", "dask-image", "batchproc", "batchproc-local"), workdir=str(tmp_path))
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
