"""Chunk seams: batchproc and dask-image against scipy.ndimage on the whole array.

Prints, per operation and boundary mode, the largest absolute difference from
scipy.ndimage and how many voxels differ. Run: ``.venv/bin/python benchmarks/seams.py``.
"""

from __future__ import annotations

import argparse

import dask.array as da
import numpy as np
import scipy.ndimage as ndi

import batchproc

CASES = [
    ("gaussian_filter", {"sigma": 2}),
    ("median_filter", {"size": 5}),
    ("uniform_filter", {"size": 5}),
    ("maximum_filter", {"size": 5}),
    ("percentile_filter", {"percentile": 30, "size": 5}),
    ("sobel", {"axis": 0}),
    ("laplace", {}),
    ("convolve", {"weights": np.arange(9.0).reshape(3, 3)}),
]


def compare(got: np.ndarray, want: np.ndarray) -> tuple[float, int]:
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    return float(diff.max()), int(np.count_nonzero(diff))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=64)
    args = parser.parse_args()
    import dask_image.ndfilters as dif

    a = np.random.default_rng(0).normal(100, 30, size=(args.size, args.size)).astype(np.float32)
    x = da.from_array(a, chunks=args.chunk)
    print("| operation | mode | batchproc max abs diff (voxels) | dask-image max abs diff (voxels) |")
    print("|---|---|---|---|")
    for name, kwargs in CASES:
        for mode in ("reflect", "wrap", "constant"):
            want = getattr(ndi, name)(a, mode=mode, **kwargs)
            ours = compare(getattr(batchproc.ndimage, name)(x, mode=mode, **kwargs).compute(), want)
            try:
                theirs_fn = getattr(dif, name)
                theirs = compare(np.asarray(theirs_fn(x, mode=mode, **kwargs).compute()), want)
                theirs_text = f"{theirs[0]:.3g} ({theirs[1]})"
            except Exception as err:  # a peer's failure is a result here, not a crash
                theirs_text = f"error: {type(err).__name__}"
            print(f"| {name} | {mode} | {ours[0]:.3g} ({ours[1]}) | {theirs_text} |")


if __name__ == "__main__":
    main()
