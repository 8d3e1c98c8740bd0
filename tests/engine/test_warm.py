"""``batchproc warm``: numba's cache filled ahead of the runs, so that a run in a
new process (a new cluster worker, a container built this way) compiles nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from compiles import COMPILES_SO_FAR, COUNT_COMPILES

#: A run of the CLI in a new process, counting numba's compilations.
RUN_COUNTING = (
    COUNT_COMPILES
    + """
import sys
from batchproc.cli import app
try:
    app(["--kernels", "compiled", "run", sys.argv[1], sys.argv[2], "--step", "gaussian_filter:sigma=1.5,mode=nearest", "--chunks", "8,32,32", "-q"])
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
print("""
    + COMPILES_SO_FAR
    + """)
"""
)


def _compiles_in_a_run(source: Path, out: Path, cache: Path) -> int:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "DASK_BATCHPROC__BLOCK_BYTES": "64KiB"}
    done = subprocess.run([sys.executable, "-c", RUN_COUNTING, str(source), str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_warm_fills_the_cache_so_that_a_run_compiles_nothing(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 4000, size=(24, 64, 64)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "v.tif", data)
    warmed = tmp_path / "warmed-cache"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(warmed)}
    done = subprocess.run(
        [sys.executable, "-m", "batchproc.cli", "warm", "--dtypes", "uint16", "--only", "gaussian_filter"], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert "1 kernel runs" in done.stdout and str(warmed) in done.stdout
    assert _compiles_in_a_run(tmp_path / "v.tif", tmp_path / "a.zarr", warmed) == 0
    # The same run with an empty cache compiles: the count above means something.
    assert _compiles_in_a_run(tmp_path / "v.tif", tmp_path / "b.zarr", tmp_path / "empty-cache") > 0


@pytest.mark.parametrize(
    ("args", "message"), [(["--only", "gausian"], "unknown 'gausian'"), (["--dtypes", "complex64"], "--dtypes"), (["--dtypes", "nonsense"], "--dtypes")]
)
def test_warm_refuses_what_it_does_not_know(args: list[str], message: str) -> None:
    from typer.testing import CliRunner

    from batchproc.cli import app

    result = CliRunner().invoke(app, ["warm", *args])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
