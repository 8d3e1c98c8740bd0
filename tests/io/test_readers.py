"""Readers: shape, dtype, spacing and laziness on real files; clear errors on bad ones."""

from __future__ import annotations

import os
from pathlib import Path

import dask
import numpy as np
import pydicom
import pytest

import batchproc
from batchproc.errors import BatchprocError


def test_png_stack_in_natural_order(png_stack: Path, volume: np.ndarray, no_compute: None) -> None:
    for i in (10, 11):  # img10 and img11 must come after img2..img6
        import imageio.v3 as iio

        iio.imwrite(png_stack / f"slice{i}.png", volume[0])
    image = batchproc.open_image(png_stack)
    assert image.data.shape == (8, 50, 70) and image.data.dtype == np.uint16
    with dask.config.set(scheduler="sync"):
        data = image.data.compute()
    assert np.array_equal(data[:6], volume)


def test_glob_and_list(png_stack: Path, volume: np.ndarray) -> None:
    assert np.array_equal(batchproc.open(str(png_stack / "slice*.png")).compute(), volume)
    files = [png_stack / f"slice{i}.png" for i in (3, 1)]
    assert np.array_equal(batchproc.open(files).compute(), volume[[2, 0]])


def test_mismatched_slice_is_named(png_stack: Path) -> None:
    import imageio.v3 as iio

    iio.imwrite(png_stack / "slice9.png", np.zeros((7, 7), np.uint16))
    with pytest.raises(BatchprocError, match=r"slice9\.png.*\(7, 7\)"):
        batchproc.open_image(png_stack)


def test_non_image_file_in_folder_is_named(png_stack: Path) -> None:
    (png_stack / "notes.txt").write_text("not an image")
    with pytest.raises(BatchprocError, match=r"notes\.txt.*not an image"):
        batchproc.open_image(png_stack)


def test_corrupt_image_is_named(png_stack: Path) -> None:
    (png_stack / "slice2.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(BatchprocError, match=r"slice2\.png"):
        batchproc.open_image(png_stack)


@pytest.mark.parametrize("bad", ["missing", "empty"])
def test_missing_and_empty(tmp_path: Path, bad: str) -> None:
    target = tmp_path / bad
    if bad == "empty":
        target.mkdir()
    with pytest.raises(BatchprocError, match="does not exist" if bad == "missing" else "is empty"):
        batchproc.open_image(target)


def _bytes_read() -> int:
    """Bytes this process has passed through read() calls (page cache included)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_tiled_tiff_reads_only_the_tiles_of_a_chunk(tmp_path: Path) -> None:
    import tifffile

    data = np.random.default_rng(3).integers(0, 60000, size=(16, 256, 256)).astype(np.uint16)
    path = tmp_path / "tiled.tif"
    tifffile.imwrite(path, data, tile=(64, 64))
    # Warm up: the first open imports modules, whose reads would count too.
    tifffile.imwrite(tmp_path / "warm.tif", data[:1, :64, :64], tile=(64, 64))
    batchproc.open_image(tmp_path / "warm.tif").data.blocks[0, 0, 0].compute(scheduler="sync")
    start = _bytes_read()
    image = batchproc.open_image(path, chunks=(1, 64, 64))
    opened = _bytes_read()
    assert image.data.shape == data.shape and image.meta["native_chunks"] == (1, 64, 64)
    block = image.data.blocks[3, 2, 1].compute(scheduler="sync")
    one_chunk = _bytes_read() - opened
    assert np.array_equal(block, data[3:4, 128:192, 64:128])
    size = path.stat().st_size
    # Opening reads headers only; one 8 KiB tile costs a few tiles' worth, not the 2 MiB file.
    assert opened - start < size / 10, (opened - start, size)
    assert one_chunk < size / 20, (one_chunk, size)
    assert np.array_equal(image.data.compute(), data)


def test_multipage_tiff(tmp_path: Path, volume: np.ndarray) -> None:
    import tifffile

    tifffile.imwrite(tmp_path / "pages.tif", volume)
    image = batchproc.open_image(tmp_path / "pages.tif")
    assert np.array_equal(image.data.compute(), volume)


def test_dicom_series_sorted_by_position(ct_series_folder: Path) -> None:
    image = batchproc.open_image(ct_series_folder)
    files = sorted(ct_series_folder.iterdir())
    slices = [pydicom.dcmread(f) for f in files]
    by_position = sorted(slices, key=lambda ds: float(ds.ImagePositionPatient[2]))
    want = np.stack([ds.pixel_array for ds in by_position])
    assert image.data.shape == want.shape and image.data.dtype == want.dtype
    assert np.array_equal(image.data.compute(), want)
    assert image.spacing[1:] == tuple(float(v) for v in by_position[0].PixelSpacing)
    assert image.spacing[0] > 0 and image.meta["modality"] == "CT"


def test_dicom_rescale(ct_series_folder: Path) -> None:
    image = batchproc.open_image(ct_series_folder, rescale=True)
    ds = pydicom.dcmread(sorted(ct_series_folder.iterdir())[0])
    assert image.data.dtype == np.float64 or (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (1.0, 0.0)


def test_single_dicom_files() -> None:
    from pydicom.data import get_testdata_file

    for name in ("CT_small.dcm", "MR_small.dcm"):
        path = get_testdata_file(name)
        image = batchproc.open_image(path)
        assert np.array_equal(image.data.compute(), pydicom.dcmread(path).pixel_array)


def test_nifti_big_endian_and_4d(nibabel_data: Path) -> None:
    import nibabel

    anat = batchproc.open_image(nibabel_data / "anatomical.nii")
    want = np.asarray(nibabel.load(nibabel_data / "anatomical.nii").dataobj)
    assert anat.data.dtype.isnative and np.array_equal(anat.data.compute(), want)
    assert anat.spacing == tuple(float(z) for z in nibabel.load(nibabel_data / "anatomical.nii").header.get_zooms())
    four = batchproc.open_image(nibabel_data / "example4d.nii.gz")
    assert four.data.shape == (128, 96, 24, 2) and four.axes == "xyzt"


def test_hdf5_dataset(tmp_path: Path, volume: np.ndarray) -> None:
    import h5py

    with h5py.File(tmp_path / "v.h5", "w") as f:
        f.create_dataset("scan/raw", data=volume, chunks=(1, 25, 35))
    assert np.array_equal(batchproc.open(f"{tmp_path / 'v.h5'}:/scan/raw").compute(), volume)
    with pytest.raises(BatchprocError, match="scan/raw"):
        batchproc.open(tmp_path / "v.h5")
    with pytest.raises(BatchprocError, match="no dataset '/nope'"):
        batchproc.open(f"{tmp_path / 'v.h5'}:/nope")


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_plain_zarr_arrays(tmp_path: Path, volume: np.ndarray, zarr_format: int) -> None:
    import zarr

    z = zarr.open_array(str(tmp_path / "a.zarr"), mode="w", shape=volume.shape, chunks=(1, 25, 35), dtype=volume.dtype, zarr_format=zarr_format)
    z[:] = volume
    image = batchproc.open_image(tmp_path / "a.zarr")
    assert np.array_equal(image.data.compute(), volume)
    assert all(c % n == 0 for c, n in zip(image.data.chunksize, (1, 25, 35), strict=True))


def test_inputs_are_not_modified(png_stack: Path) -> None:
    stamps = {f: (f.stat().st_mtime_ns, f.read_bytes()) for f in png_stack.iterdir()}
    batchproc.open(png_stack).compute()
    assert stamps == {f: (f.stat().st_mtime_ns, f.read_bytes()) for f in png_stack.iterdir()}
    assert os.listdir(png_stack) == [f.name for f in stamps] or set(os.listdir(png_stack)) == {f.name for f in stamps}


def test_ome_and_imagej_tiff_keep_axes_and_spacing(tmp_path: Path) -> None:
    import tifffile

    volume = np.arange(4 * 6 * 8, dtype=np.uint16).reshape(4, 6, 8)
    tifffile.imwrite(tmp_path / "v.ome.tif", volume, ome=True, metadata={"axes": "ZYX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.5, "PhysicalSizeZ": 3.0})
    image = batchproc.open_image(tmp_path / "v.ome.tif")
    assert (image.axes, image.spacing) == ("zyx", (3.0, 0.5, 0.25))
    tifffile.imwrite(tmp_path / "v.tif", volume, imagej=True, resolution=(1 / 0.2, 1 / 0.4), metadata={"spacing": 1.5, "axes": "ZYX"})
    image = batchproc.open_image(tmp_path / "v.tif")
    assert image.axes == "zyx" and np.allclose(image.spacing, (1.5, 0.4, 0.2))
    assert np.array_equal(image.data.compute(), volume)


# ------------------------------------------------------------ damaged inputs


def _cut(path: Path, keep: float = 0.5) -> Path:
    """``path`` truncated to ``keep`` of its bytes, as a copy beside it."""
    data = path.read_bytes()
    cut = path.with_name("cut-" + path.name)
    cut.write_bytes(data[: int(len(data) * keep)])
    return cut


def _damaged(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """A damaged input of ``kind`` and the name its error must give."""
    import imageio.v3 as iio
    import nibabel
    import tifffile

    rng = np.random.default_rng(18)
    volume = (rng.random((8, 64, 64)) * 1000).astype(np.uint16)
    if kind in ("strips", "tiles", "one page"):
        options = {"tile": (32, 32)} if kind == "tiles" else {}
        tifffile.imwrite(tmp_path / "v.tif", volume[0] if kind == "one page" else volume, **options)
        path = _cut(tmp_path / "v.tif")
        return path, path.name
    if kind in ("nii", "nii.gz"):
        nibabel.save(nibabel.Nifti1Image(volume.astype(np.int16), np.eye(4)), tmp_path / f"v.{kind}")
        path = _cut(tmp_path / f"v.{kind}")
        return path, path.name
    if kind == "png in a stack":  # the header reads, the pixels do not: found during the run
        for i, plane in enumerate(volume):
            iio.imwrite(tmp_path / f"s{i}.png", plane)
        data = (tmp_path / "s5.png").read_bytes()
        (tmp_path / "s5.png").write_bytes(data[: len(data) // 2])
        return tmp_path, "s5.png"
    # a chunk gone from a store batchproc wrote and marked complete
    store = batchproc.write(volume, tmp_path / "in.ome.zarr", chunks=(4, 32, 32))
    (Path(store) / "0" / "c" / "1" / "0" / "1").unlink()
    return Path(store), "c/1/0/1"


@pytest.mark.parametrize("kind", ["strips", "tiles", "one page", "nii", "nii.gz", "png in a stack", "missing chunk"])
def test_a_damaged_input_ends_the_run_with_exit_2_naming_it(tmp_path: Path, kind: str) -> None:
    # tifffile reads past a truncated file's broken page list (fewer pages, or a
    # series of another shape): that must not pass as a smaller image.
    from typer.testing import CliRunner

    from batchproc.cli import app

    path, name = _damaged(tmp_path, kind)
    result = CliRunner().invoke(app, ["run", str(path), str(tmp_path / "out.zarr"), "--step", "gaussian_filter:sigma=1", "-q"])
    assert result.exit_code == 2, result.output
    assert name in result.output and "Traceback" not in result.output and "unexpected" not in result.output
    assert any(word in result.output for word in ("truncated", "corrupt", "cannot read", "missing", "Expected")), result.output


def test_a_chunk_never_written_in_a_foreign_store_is_its_fill_value(tmp_path: Path) -> None:
    # zarr's own rule: only a store batchproc marked complete promises every chunk.
    import zarr

    array = zarr.create_array(str(tmp_path / "in.zarr"), shape=(8, 8), chunks=(4, 4), dtype="uint8", fill_value=7)
    array[:4, :4] = 1
    expected = np.full((8, 8), 7, np.uint8)
    expected[:4, :4] = 1
    assert np.array_equal(batchproc.open(tmp_path / "in.zarr").compute(), expected)
