"""Lazy reading, format by format: shape, dtype, spacing kept, and the bytes read
(``rchar`` of /proc/self/io) to open each input and to compute one chunk, beside
the file's size. The synthetic 64×512×512 volumes are read in 16×128×128 blocks
(1/64 of the volume); the shipped files in their default blocks. Uncompressed
NIfTI is memory-mapped by nibabel, so its reads do not show in ``rchar``.

    .venv/bin/python benchmarks/readers.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np


def _rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def inputs(tmp: Path) -> list[tuple[str, str, Path]]:
    """(format, how to open it, the files it reads)."""
    import h5py
    import imageio.v3 as iio
    import nibabel
    import pydicom
    import tifffile
    import zarr

    rng = np.random.default_rng(0)
    volume = rng.integers(0, 4000, size=(64, 512, 512)).astype(np.uint16)
    (tmp / "png").mkdir()
    for i in range(64):
        iio.imwrite(tmp / "png" / f"slice{i}.png", volume[i])
    tifffile.imwrite(tmp / "pages.tif", volume)
    tifffile.imwrite(tmp / "tiled.tif", volume, tile=(128, 128))
    tifffile.imwrite(tmp / "ome.ome.tif", volume, ome=True, metadata={"axes": "ZYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "PhysicalSizeZ": 2.0})
    zarr.create_array(str(tmp / "v3.zarr"), data=volume, chunks=(16, 128, 128))
    zarr.create_array(str(tmp / "v2.zarr"), data=volume, chunks=(16, 128, 128), zarr_format=2)
    import batchproc

    batchproc.write(volume, tmp / "ome.zarr", spacing=(2.0, 0.5, 0.5), chunks=(16, 128, 128), levels=1)
    with h5py.File(tmp / "v.h5", "w") as f:
        f.create_dataset("scan/raw", data=volume, chunks=(16, 128, 128))
    nib_data = Path(nibabel.__file__).parent / "tests" / "data"
    ct5n = Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests" / "98892001" / "CT5N"
    return [
        ("PNG slices (folder)", str(tmp / "png"), tmp / "png"),
        ("multi-page TIFF", str(tmp / "pages.tif"), tmp / "pages.tif"),
        ("tiled TIFF 128²", str(tmp / "tiled.tif"), tmp / "tiled.tif"),
        ("OME-TIFF", str(tmp / "ome.ome.tif"), tmp / "ome.ome.tif"),
        ("zarr v3", str(tmp / "v3.zarr"), tmp / "v3.zarr"),
        ("zarr v2", str(tmp / "v2.zarr"), tmp / "v2.zarr"),
        ("OME-Zarr (batchproc)", str(tmp / "ome.zarr"), tmp / "ome.zarr"),
        ("HDF5 dataset", f"{tmp / 'v.h5'}:/scan/raw", tmp / "v.h5"),
        ("DICOM series (pydicom CT5N)", str(ct5n), ct5n),
        ("NIfTI .nii.gz (nibabel example4d)", str(nib_data / "example4d.nii.gz"), nib_data / "example4d.nii.gz"),
        ("NIfTI .nii big-endian (anatomical)", str(nib_data / "anatomical.nii"), nib_data / "anatomical.nii"),
    ]


def main() -> None:
    import dask

    import batchproc

    rows = ["| format | shape | dtype | spacing | chunk | bytes read to open | bytes read for one chunk | file bytes |", "|---|---|---|---|---|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as name, dask.config.set(scheduler="synchronous"):
        for label, source, files in inputs(Path(name)):
            before = _rchar()
            image = batchproc.open_image(source, chunks=(16, 128, 128) if str(files).startswith(name) else None)
            opened = _rchar() - before
            x = image.data
            first = x.blocks[(0,) * x.ndim]
            before = _rchar()
            first.compute()
            one = _rchar() - before
            spacing = tuple(round(s, 3) for s in image.spacing)
            rows.append(f"| {label} | {x.shape} | {x.dtype} | {spacing} | {first.shape} | {opened:,} | {one:,} | {_size(files):,} |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
