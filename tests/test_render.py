"""Pictures that read well (issue #21): previews drawn at the voxel spacing's aspect
and in NGFF axis order, histograms on a log scale when one bar dwarfs the rest,
titled with the file's name. Each test looks at what was drawn: the pixels of the
PNG, or the matplotlib artists of the figure."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import imageio.v3 as iio
import nibabel
import numpy as np
import pytest
from typer.testing import CliRunner

import batchproc
from batchproc import render
from batchproc.cli import app
from batchproc.render import BAR_COLOR, display_name, histogram_figure, image_plane, ngff_order, plane_histogram, preview_figure

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def drawn_box(png: Path) -> tuple[int, int]:
    """Height and width in pixels of the black slice in a preview (its title's
    text is black too, but no text row or column is mostly black)."""
    grey = iio.imread(png)[..., :3].mean(axis=-1)
    dark = grey < 30
    rows, columns = dark.sum(axis=1), dark.sum(axis=0)
    return int((rows > 0.5 * rows.max()).sum()), int((columns > 0.5 * columns.max()).sum())


@pytest.mark.parametrize(("spacing", "ratio"), [((1.0, 1.0, 1.0), 1.0), ((1.0, 2.0, 1.0), 2.0), ((1.0, 1.0, 3.0), 1 / 3), ((5.0, 0.5, 0.25), 2.0)])
def test_preview_draws_each_voxel_at_its_physical_size(tmp_path: Path, spacing: tuple[float, ...], ratio: float) -> None:
    # 40×40 voxels of one value (drawn black): the picture's height over width is
    # the voxel's height over width, y spacing over x spacing (z is sliced).
    store = tmp_path / "flat.ome.zarr"
    batchproc.write(da.zeros((6, 40, 40), dtype=np.uint8, chunks=20), store, spacing=spacing, axes="zyx")
    result = invoke("preview", store, "-o", tmp_path / "p.png")
    assert result.exit_code == 0, result.output
    height, width = drawn_box(tmp_path / "p.png")
    assert height / width == pytest.approx(ratio, rel=0.03)


@pytest.fixture
def nifti(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A NIfTI volume (axes x, y, z as NIfTI stores them) with 3 mm thick slices."""
    data = np.random.default_rng(3).integers(0, 1000, size=(30, 20, 6)).astype(np.int16)
    image = nibabel.Nifti1Image(data, np.diag([1.0, 1.0, 3.0, 1.0]))
    image.header.set_xyzt_units("mm")
    path = tmp_path / "knee.nii.gz"
    nibabel.save(image, path)
    return path, data


def test_ngff_order_puts_time_channel_then_z_y_x() -> None:
    assert ngff_order("xyz", 3) == [2, 1, 0]
    assert ngff_order("xyzt", 4) == [3, 2, 1, 0]
    assert ngff_order("tczyx", 5) == [0, 1, 2, 3, 4]
    assert ngff_order("yxc", 3) == [2, 0, 1]
    assert ngff_order("d0d1d2d3d4d5", 6) == [0, 1, 2, 3, 4, 5]  # no names: as stored


def test_a_nifti_volume_is_shown_as_a_viewer_shows_it(nifti) -> None:
    # NIfTI stores x, y, z: the default slice is z's middle, rows y, columns x
    # (before, axis 0 was sliced and a y×z strip of 20×6 shown).
    path, data = nifti
    image = batchproc.open_image(path)
    plane = image_plane(image)
    assert (plane.rows, plane.columns, plane.where) == ("y", "x", "z=3 of 0-5")
    assert np.array_equal(plane.pixels, data[:, :, 3].T)
    assert plane.spacing == (1.0, 1.0) and plane.unit == "mm"
    across = image_plane(image, "y", 10)  # a slice along y shows z down, x across: 3 mm by 1 mm voxels
    assert (across.rows, across.columns) == ("z", "x")
    assert np.array_equal(across.pixels, data[:, 10, :].T)
    assert across.spacing == (3.0, 1.0) and across.aspect == pytest.approx(6 * 3 / 30)


def test_preview_slice_by_name_or_number_and_its_aspect(tmp_path: Path, nifti, monkeypatch: pytest.MonkeyPatch) -> None:
    path, data = nifti
    drawn = []
    monkeypatch.setattr(render, "preview_figure", lambda panels, **kw: drawn.append(panels) or preview_figure(panels, **kw))
    by_name = invoke("preview", path, "--slice", "y=10", "-o", tmp_path / "y.png")
    assert by_name.exit_code == 0, by_name.output
    by_number = invoke("preview", path, "--slice", "1=10", "-o", tmp_path / "n.png")
    assert by_number.exit_code == 0, by_number.output
    ((title, plane),) = drawn[0]
    assert title == "knee.nii.gz" and str(tmp_path) not in title
    assert np.array_equal(plane.pixels, data[:, 10, :].T) and np.array_equal(drawn[1][0][1].pixels, plane.pixels)
    # Not a uniform slice: measure the frame the picture is drawn in instead.
    figure = preview_figure(drawn[0])
    box = figure.axes[0].get_window_extent()
    assert box.height / box.width == pytest.approx(6 * 3 / 30, rel=0.03)


def test_preview_shows_a_store_beside_its_input_in_the_same_slice(tmp_path: Path, nifti, monkeypatch: pytest.MonkeyPatch) -> None:
    path, data = nifti
    assert invoke("run", path, tmp_path / "o.zarr", "--step", "threshold:above=500", "-q").exit_code == 0
    drawn = []
    monkeypatch.setattr(render, "preview_figure", lambda panels, **kw: drawn.append(panels) or preview_figure(panels, **kw))
    result = invoke("preview", tmp_path / "o.zarr", "--slice", "z=2", "-o", tmp_path / "p.png")
    assert result.exit_code == 0, result.output
    (before_title, before), (after_title, after) = drawn[0]
    assert (before_title, after_title) == ("knee.nii.gz", "o.zarr")
    assert np.array_equal(before.pixels, data[:, :, 2].T)
    assert np.array_equal(after.pixels, (data[:, :, 2].T > 500).astype(np.uint8))


@pytest.mark.parametrize(("spec", "message"), [("q=3", "AXIS=INDEX"), ("z=6", "from 0 to 5"), ("z", "AXIS=INDEX"), ("7=1", "from 0 to 2")])
def test_preview_slice_mistakes_exit_2(tmp_path: Path, nifti, spec: str, message: str) -> None:
    path, _ = nifti
    result = invoke("preview", path, "--slice", spec, "-o", tmp_path / "p.png")
    assert result.exit_code == 2 and message in result.output and "--slice" in result.output, result.output
    assert "Traceback" not in result.output


def test_preview_of_a_2d_image_has_nothing_to_slice(tmp_path: Path) -> None:
    iio.imwrite(tmp_path / "flat.png", np.zeros((8, 8), np.uint8))
    result = invoke("preview", tmp_path / "flat.png", "--slice", "0=1", "-o", tmp_path / "p.png")
    assert result.exit_code == 2 and "2-D" in result.output, result.output


def test_display_name_is_the_file_not_the_machine_path() -> None:
    assert display_name("/home/someone/archive/scan 7.tif") == "scan 7.tif"
    assert display_name(Path("/tmp/x/edges.ome.zarr/")) == "edges.ome.zarr"
    assert display_name("s3://bucket/deep/prefix/vol.ome.zarr?versionId=2") == "vol.ome.zarr"
    assert display_name("/data/cells.h5:/raw/t0") == "cells.h5:/raw/t0"
    assert display_name("/data/scans/*.png") == "*.png"


SPIKE = np.array([10_000, 40, 30, 20, 10])
EVEN = np.array([120, 100, 90, 80, 60])


@pytest.mark.parametrize(
    ("counts", "log", "scale", "noted"),
    [
        (SPIKE, None, "log", True),  # one bar dwarfs the rest: log, and the plot says why
        (SPIKE, False, "linear", False),  # --linear
        (EVEN, None, "linear", False),
        (EVEN, True, "log", False),  # --log: asked, so no note
        (np.array([500, 0, 0, 0, 0]), None, "linear", False),  # one bar alone: a log scale shows nothing more
    ],
)
def test_histogram_scale(counts: np.ndarray, log: bool | None, scale: str, noted: bool) -> None:
    figure = histogram_figure([("scan.tif", np.arange(len(counts) + 1), counts)], log=log)
    ax = figure.axes[0]
    assert ax.get_yscale() == scale
    assert ax.get_ylabel() == ("voxels (log scale)" if scale == "log" else "voxels")
    notes = [t.get_text() for t in ax.texts]
    assert bool(notes) == noted
    if noted:
        assert notes == ["log scale: the tallest bar is 250× the next"]
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == counts.tolist()


def bar_heights(png: Path) -> np.ndarray:
    """Pixels of bar colour in each column of a histogram plot, from its first bar to its last."""
    rgb = iio.imread(png)[..., :3].astype(int)
    want = np.array([int(BAR_COLOR[i : i + 2], 16) for i in (1, 3, 5)])
    bar = (np.abs(rgb - want).sum(axis=-1) < 30).sum(axis=0)
    found = np.flatnonzero(bar)
    return bar[found[0] : found[-1] + 1]


def test_histogram_plot_title_and_scale_on_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 97 % zeros: on a linear scale the other three bars are a pixel or two tall;
    # on the automatic log scale they reach about 40 % of the plot.
    image = np.zeros((100, 100), np.uint8)
    image.ravel()[:300] = np.repeat([1, 2, 3], 100)
    iio.imwrite(tmp_path / "scan.png", image)
    figures = []
    monkeypatch.setattr(render, "histogram_figure", lambda *a, **kw: figures.append(histogram_figure(*a, **kw)) or figures[-1])
    for name, flags in (("auto", []), ("linear", ["--linear"]), ("log", ["--log"])):
        result = invoke("histogram", tmp_path / "scan.png", "--bins", "4", "--plot", tmp_path / f"{name}.png", "-q", *flags)
        assert result.exit_code == 0, result.output
    assert [f.axes[0].get_yscale() for f in figures] == ["log", "linear", "log"]
    assert {f.axes[0].get_title() for f in figures} == {"scan.png"}
    for name, low, high in (("auto", 0.25, 0.7), ("log", 0.25, 0.7), ("linear", 0.0, 0.03)):
        heights = bar_heights(tmp_path / f"{name}.png")
        small = np.median(heights[len(heights) // 4 :])  # the three short bars
        assert low <= small / heights.max() <= high, (name, small, heights.max())


def test_plane_histogram_counts_each_value_of_a_mask_and_the_range_of_an_image() -> None:
    edges, counts = plane_histogram(np.array([[True, False], [True, True]]).astype(np.uint8))
    assert edges.tolist() == [-0.5, 0.5, 1.5] and counts.tolist() == [1, 3]
    values = np.random.default_rng(0).normal(size=(50, 50))
    edges, counts = plane_histogram(values, bins=10)
    assert counts.sum() == values.size and edges[0] == values.min() and edges[-1] == values.max()


def test_the_examples_in_the_docstrings_run() -> None:
    import doctest

    assert doctest.testmod(render, optionflags=doctest.ELLIPSIS).failed == 0
