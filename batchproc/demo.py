"""``make demo``: a real pipeline end to end on a volume shipped in a package."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np


def main(out: str = "demo-output") -> None:
    import nibabel
    from nibabel.testing import data_path

    import batchproc

    start = time.perf_counter()
    path = Path(data_path) / "example4d.nii.gz"
    volume = np.asarray(nibabel.load(path).dataobj)[..., 0]
    import dask.array as da

    x = da.from_array(volume, chunks=(64, 48, 12))
    smooth = batchproc.ndimage.gaussian_filter(x.astype(np.float32), sigma=2)
    edges = batchproc.sobel_magnitude(smooth)
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    result = edges.compute()
    np.save(target / "edges.npy", result)
    print(f"input  {path} {volume.shape} {volume.dtype}")
    print(f"result {target / 'edges.npy'} {result.shape} {result.dtype} in {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main(*sys.argv[1:])
