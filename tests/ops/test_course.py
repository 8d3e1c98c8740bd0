"""The course's snippets, reproduced exactly on a real X-ray shipped in pydicom-data
(a tibia radiograph, RG3_UNCI.dcm, 10-bit in uint16), chunked unevenly."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pydicom
import pytest
import scipy.ndimage as ndi
from pydicom.data import get_testdata_file

import batchproc

CHUNKS = (131, 97)  # uneven, and smaller than some kernels' reach (median 10, sigma 10)


@pytest.fixture(scope="module")
def xray() -> np.ndarray:
    """The X-ray as the course has it: 8-bit intensities (0..255), a 768x640 crop."""
    raw = pydicom.dcmread(get_testdata_file("RG3_UNCI.dcm")).pixel_array
    return (raw[500:1268, 600:1240] // 4).astype(np.uint8)


@pytest.fixture(scope="module")
def im(xray: np.ndarray) -> da.Array:
    return da.from_array(xray, chunks=CHUNKS)


def test_histogram_and_equalization(xray: np.ndarray, im: da.Array) -> None:
    hist = ndi.histogram(xray, min=0, max=255, bins=256)
    assert np.array_equal(batchproc.ndimage.histogram(im, min=0, max=255, bins=256), hist)
    cdf = hist.cumsum() / hist.sum()
    im_equalized = cdf[xray] * 255
    assert np.array_equal(batchproc.equalize(im).compute(), im_equalized)


def test_masks_and_where(xray: np.ndarray, im: da.Array) -> None:
    mask1 = xray > 32
    mask2 = xray > 64
    mask3 = mask1 & ~mask2
    assert np.array_equal(batchproc.expression(im, "(x > 32) & ~(x > 64)").compute(), mask3)
    assert np.array_equal(((im > 32) & ~(im > 64)).compute(), mask3)
    im_bone = np.where(xray > 64, xray, 0)
    got = batchproc.where(im, "x > 64", 0).compute()
    assert got.dtype == im_bone.dtype and np.array_equal(got, im_bone)
    masked_hist = ndi.histogram(xray, min=0, max=255, bins=256, labels=mask3)
    assert np.array_equal(batchproc.ndimage.histogram(im, 0, 255, 256, labels=im > 32), ndi.histogram(xray, 0, 255, 256, labels=mask1))
    assert np.array_equal(batchproc.ndimage.histogram(im, min=0, max=255, bins=256, labels=mask3), masked_hist)


@pytest.mark.parametrize("op", ["binary_dilation", "binary_erosion", "binary_closing", "binary_opening"])
def test_morphology_iterations_5(xray: np.ndarray, im: da.Array, op: str) -> None:
    mask_bone = xray >= 145
    want = getattr(ndi, op)(mask_bone, iterations=5)
    got = getattr(batchproc.ndimage, op)(im >= 145, iterations=5).compute()
    assert np.array_equal(got, want)


def test_convolution_with_the_course_weights(xray: np.ndarray, im: da.Array) -> None:
    weights = [[0.11, 0.12, 0.11], [0.12, 0.11, 0.12], [0.11, 0.12, 0.11]]
    assert np.array_equal(batchproc.ndimage.convolve(im, weights).compute(), ndi.convolve(xray, weights))


@pytest.mark.parametrize(
    ("op", "kwargs"),
    [
        ("median_filter", {"size": 10}),
        ("gaussian_filter", {"sigma": 5}),
        ("gaussian_filter", {"sigma": 10}),
        ("sobel", {"axis": 0}),
        ("sobel", {"axis": 1}),
    ],
)
def test_filters(xray: np.ndarray, im: da.Array, op: str, kwargs: dict) -> None:
    want = getattr(ndi, op)(xray, **kwargs)
    got = getattr(batchproc.ndimage, op)(im, **kwargs).compute()
    assert got.dtype == want.dtype and np.array_equal(got, want)


def test_sobel_magnitude(xray: np.ndarray, im: da.Array) -> None:
    image = xray.astype(np.float64)
    sobel_ax0 = ndi.sobel(image, axis=0)
    sobel_ax1 = ndi.sobel(image, axis=1)
    edges = np.sqrt(np.square(sobel_ax0) + np.square(sobel_ax1))
    assert np.array_equal(batchproc.sobel_magnitude(im.astype(np.float64)).compute(), edges)
    # Integer images: the responses are taken in float64, so nothing overflows.
    assert np.array_equal(batchproc.sobel_magnitude(im).compute(), edges)
