"""`make demo` runs end to end and its result is the pipeline's, exactly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nibabel
import nibabel.testing
import numpy as np
import scipy.ndimage as ndi
import zarr


def test_demo_runs_and_is_exact(tmp_path: Path) -> None:
    # `make demo` installs no test extras: run it with them made unimportable.
    hide = "; ".join(f"sys.modules[{m!r}] = None" for m in ("pytest", "hypothesis", "nbclient", "dask_image", "ome_zarr"))
    code = f"import runpy, sys; {hide}; sys.argv = ['demo', {str(tmp_path / 'out')!r}]; runpy.run_module('batchproc.demo', run_name='__main__')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for name in ("edges.ome.zarr", "preview.png", "histogram.png"):
        assert str(tmp_path / "out" / name) in done.stdout
    volume = np.asarray(nibabel.load(Path(nibabel.testing.data_path) / "example4d.nii.gz").dataobj)[..., 0]
    smooth = ndi.gaussian_filter(volume, 1).astype(np.float64)
    want = np.sqrt(sum(np.square(ndi.sobel(smooth, a)) for a in range(3))) > 2500
    assert np.array_equal(zarr.open_array(str(tmp_path / "out" / "edges.ome.zarr" / "0"))[:], want)
