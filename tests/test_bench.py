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
