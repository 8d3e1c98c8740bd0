"""Bad parameters raise BatchprocError, naming the operation, the parameter and the value."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

import batchproc
from batchproc.errors import BatchprocError
from batchproc.ops import REGISTRY, Context, get

X = da.zeros((20, 30), chunks=10, dtype=np.uint8)
F = da.zeros((20, 30), chunks=10, dtype=np.float32)

CASES = [
    (lambda: batchproc.ndimage.gaussian_filter(F, -1), ["gaussian_filter", "'sigma'", "-1"]),
    (lambda: batchproc.ndimage.gaussian_filter(F, (1, -2)), ["'sigma'", "-2"]),
    (lambda: batchproc.ndimage.gaussian_filter(F, (1, 2, 3)), ["'sigma'", "list of 2"]),
    (lambda: batchproc.ndimage.gaussian_filter(F, 1, truncate=-1), ["'truncate'", "-1"]),
    (lambda: batchproc.ndimage.convolve(F, [1, 2, 3]), ["convolve", "'weights'", "2-dimensional", "(3,)"]),
    (lambda: batchproc.ndimage.correlate(F, [[1, 2], [3, "a"]]), ["'weights'", "numbers"]),
    (lambda: batchproc.ndimage.median_filter(F, 3, mode="bogus"), ["'mode'", "'bogus'", "reflect"]),
    (lambda: batchproc.ndimage.median_filter(F, 3, mode=("wrap", "reflect")), ["'mode'"]),
    (lambda: batchproc.ndimage.median_filter(F), ["'size'", "footprint"]),
    (lambda: batchproc.ndimage.uniform_filter(F, -1), ["'size'", "-1"]),  # (0 is scipy's "leave the axis as it is")
    (lambda: batchproc.ndimage.uniform_filter(F, 3, origin=2), ["'origin'", "2"]),
    (lambda: batchproc.ndimage.rank_filter(F, 9, size=3), ["'rank'", "9"]),
    (lambda: batchproc.ndimage.percentile_filter(F, 101, size=3), ["'percentile'", "101"]),
    (lambda: batchproc.ndimage.histogram(X, 0, 255, 0), ["histogram", "'bins'", "0"]),
    (lambda: batchproc.ndimage.histogram(X, 255, 0, 10), ["'min'", "255"]),
    (lambda: batchproc.ndimage.histogram(X, 0, 255, 10, index=[1]), ["'index'", "labels"]),
    (lambda: batchproc.ndimage.binary_erosion(X, structure=[[0, 2], [1, 1]]), ["'structure'", "booleans"]),
    (lambda: batchproc.ndimage.binary_dilation(X, structure=[1, 1, 1]), ["'structure'", "2-dimensional"]),
    (lambda: batchproc.ndimage.binary_dilation(X, iterations=1.5), ["'iterations'", "1.5"]),
    (lambda: batchproc.ndimage.binary_dilation(X, mask=np.ones((3, 3), bool)), ["'mask'", "(3, 3)"]),
    (
        lambda: batchproc.ndimage.binary_opening(X, structure=[[1, 1]], origin=(0, -1), axes=(1, 0)),
        ["'origin'", "increasing order"],
    ),
    (lambda: batchproc.ndimage.sobel(F, axis=2), ["'axis'", "2"]),
    (lambda: batchproc.ndimage.gaussian_filter(F, 1, output=np.zeros(3)), ["'output'", "dtype"]),
    (lambda: batchproc.ndimage.gaussian_filter(F, 1, axes=(0, 0)), ["'axes'", "distinct"]),
    (lambda: batchproc.ndimage.gaussian_filter(F, 1, axes=5), ["'axes'", "5"]),
    (lambda: batchproc.expression(X, "__import__('os').system('true')"), ["'expr'", "call"]),
    (lambda: batchproc.expression(X, "x.max()"), ["'expr'", "call"]),
    (lambda: batchproc.expression(X, "x.T"), ["'expr'", "attribute", "'x.T'"]),
    (lambda: batchproc.expression(X, "y > 3"), ["'expr'", "name", "'y'"]),
    (lambda: batchproc.expression(X, "x[0] > 3"), ["'expr'", "subscript"]),
    (lambda: batchproc.expression(X, "x > 3 and x < 5"), ["'expr'", "use & and |"]),
    (lambda: batchproc.expression(X, "x >"), ["'expr'", "not a valid expression"]),
    (lambda: batchproc.expression(X, "'a' < x"), ["'expr'", "constant"]),
    (lambda: batchproc.where(X, np.ones((20, 30))), ["'condition'", "boolean"]),
    (lambda: batchproc.threshold(X), ["'above'"]),
    (lambda: batchproc.astype(X, "complex64"), ["'dtype'", "complex64"]),
    (lambda: batchproc.astype(X, "bool", rescale=True), ["'dtype'", "bool"]),
    (lambda: batchproc.astype(X, "uint8", rescale=True, in_range=[5, 1]), ["'in_range'", "[5, 1]"]),
    (lambda: batchproc.equalize(X, min=9, max=1), ["'min'", "9"]),
    (lambda: batchproc.equalize(da.zeros(4, dtype=np.int32)), ["'bins'", "int32"]),
    (lambda: batchproc.equalize(da.zeros(4, dtype=np.int32), min=0, max=2**30), ["'bins'", "1073741824"]),
    (lambda: batchproc.ndimage.gaussian_filter(da.zeros(3, dtype=complex), 1), ["gaussian_filter", "complex128"]),
    (lambda: batchproc.ndimage.gaussian_filter(np.float64(3.0), 1), ["gaussian_filter", "scalar"]),
]


@pytest.mark.parametrize(("call", "fragments"), CASES, ids=range(len(CASES)))
def test_bad_parameters_are_named(call, fragments: list[str]) -> None:
    with pytest.raises(BatchprocError) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_unknown_parameter_lists_the_valid_ones() -> None:
    with pytest.raises(BatchprocError, match="unknown parameter 'sigmaa'.*valid parameters are: sigma, order"):
        get("gaussian_filter").validate({"sigmaa": 2}, Context("gaussian_filter", step=3))


def test_messages_name_the_pipeline_step() -> None:
    with pytest.raises(BatchprocError, match=r"^step 3 \(gaussian_filter\): parameter 'sigma'"):
        get("gaussian_filter").validate({"sigma": -2}, Context("gaussian_filter", step=3))


def test_unknown_operation_lists_the_valid_ones() -> None:
    with pytest.raises(BatchprocError, match="unknown operation 'gausian_filter'; valid operations are: .*gaussian_filter"):
        get("gausian_filter")


def test_scipy_call_errors_stay_type_errors() -> None:
    # A call that does not fit the signature is a programming error, as with scipy.
    with pytest.raises(TypeError, match="gaussian_filter"):
        batchproc.ndimage.gaussian_filter(F)


def test_every_scipy_function_keeps_scipys_signature() -> None:
    import inspect

    import scipy.ndimage as ndi

    for name, op in REGISTRY.items():
        if not op.scipy:
            continue
        ours = inspect.signature(getattr(batchproc.ndimage, name)).parameters
        theirs = {k: v for k, v in inspect.signature(getattr(ndi, name)).parameters.items() if v.kind != v.VAR_KEYWORD}
        # Names, order, defaults and keyword-only-ness match scipy's (gaussian_gradient_magnitude
        # and gaussian_laplace spell out truncate/radius, which scipy takes through **kwargs).
        assert list(ours)[: len(theirs)] == list(theirs), name
        for pname, p in theirs.items():
            assert ours[pname].default == p.default or (p.default is None and ours[pname].default is None), (name, pname)
            assert ours[pname].kind == p.kind, (name, pname)


def test_binary_morphology_sorts_unsorted_axes() -> None:
    # scipy 1.17 corrupts memory with unsorted axes here; the structure's dimensions
    # go onto the sorted axes either way, so batchproc sorts them.
    import scipy.ndimage as ndi

    a = np.random.default_rng(5).random((3, 4, 4, 3)) < 0.5
    structure = np.ones((1, 1, 4), bool)
    got = batchproc.ndimage.binary_closing(da.from_array(a, chunks=(3, 1, 1, 3)), structure=structure, axes=(-1, 0, 1))
    assert np.array_equal(got.compute(), ndi.binary_closing(a, structure=structure, axes=(0, 1, 3)))


def test_masked_iterated_morphology_with_origin_runs_brute_force() -> None:
    # scipy 1.17 corrupts memory in this combination unless brute_force=True, which
    # by scipy's definition gives the same result; batchproc always takes that path.
    import scipy.ndimage as ndi

    rng = np.random.default_rng(9)
    a = rng.random((3, 4, 2, 1)) < 0.5
    mask = rng.random(a.shape) < 0.5
    structure = rng.random((4, 2, 2, 1)) < 0.7
    structure[0, 0, 0, 0] = True
    params = {"structure": structure, "origin": (-2, -1, -1, 0), "iterations": 0, "mask": mask}
    got = batchproc.ndimage.binary_opening(da.from_array(a, chunks=1), **params)
    assert np.array_equal(got.compute(), ndi.binary_opening(a, brute_force=True, **params))


def test_repeated_morphology_never_takes_scipys_heap_corrupting_path() -> None:
    # scipy 1.17's change-tracking path (brute_force=False) for iterations != 1
    # writes past its buffers: a 65x65 disk on a 45x25 image, iterations 2, no mask
    # and no origin, aborts in free() within a few calls. Run in a child
    # process, since on failure the heap is gone.
    import subprocess
    import sys

    script = """
import numpy as np, dask.array as da, scipy.ndimage as ndi, batchproc
rng = np.random.default_rng(1)
yy, xx = np.mgrid[-32:33, -32:33]
disk = yy ** 2 + xx ** 2 <= 32 ** 2
for name, iterations in [("binary_dilation", 2), ("binary_erosion", 3), ("binary_opening", 2), ("binary_closing", 2)] * 10:
    image = rng.random((45, 25)) > 0.2
    got = getattr(batchproc.ndimage, name)(da.from_array(image, chunks=(15, 10)), structure=disk, iterations=iterations)
    assert np.array_equal(got.compute(scheduler="synchronous"), getattr(ndi, name)(image, structure=disk, iterations=iterations, brute_force=True))
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", (done.returncode, done.stderr[-2000:])


@pytest.mark.parametrize("name", ["binary_dilation", "binary_erosion", "binary_opening", "binary_closing"])
@pytest.mark.parametrize("border_value", [0, 1])
def test_until_settled_with_a_false_centre_equals_scipy_when_it_settles(name: str, border_value: int) -> None:
    import scipy.ndimage as ndi

    a = np.random.default_rng(3).random((9, 7)) < 0.5
    shift = np.zeros((3, 3), bool)
    shift[1, 2] = True  # a pure shift: every pass moves the set, which leaves through the border
    got = getattr(batchproc.ndimage, name)(da.from_array(a, chunks=4), structure=shift, iterations=-1, border_value=border_value)
    assert np.array_equal(got.compute(), getattr(ndi, name)(a, structure=shift, iterations=-1, border_value=border_value))


def test_until_settled_that_never_settles_is_an_error_not_a_hang() -> None:
    a = np.zeros(12, bool)
    a[::2] = True
    # The centre is false: each pass swaps the even and odd voxels, forever in scipy.
    got = batchproc.ndimage.binary_dilation(da.from_array(a, chunks=5), structure=np.array([1, 0, 1], bool), iterations=0)
    with pytest.raises(BatchprocError, match=r"iterations=0.*structure whose centre"):
        got.compute()


def test_distance_transform_edt_refuses_the_feature_transform_it_does_not_offer() -> None:
    import dask.array as da

    x = da.from_array(np.ones((4, 4), bool), chunks=2)
    for given in ({"return_indices": True}, {"return_distances": False, "return_indices": True}, {"distances": np.zeros((4, 4))}):
        with pytest.raises(BatchprocError, match="return_indices"):
            batchproc.ndimage.distance_transform_edt(x, **given)
    with pytest.raises(BatchprocError, match="sampling"):
        batchproc.ndimage.distance_transform_edt(x, sampling=[1, 2, 3])
    with pytest.raises(BatchprocError, match="sampling"):
        batchproc.ndimage.distance_transform_edt(x, sampling=-1)


def test_scipys_own_calling_styles_are_taken() -> None:
    """Forms scipy accepts that batchproc once refused: axes as a numpy array, a
    size of 0 in uniform_filter (the axis left as it is), a footprint of all ones
    with a mode per axis in minimum/maximum_filter (scipy filters it as its size),
    and empty arrays."""
    import scipy.ndimage as ndi

    a = np.random.default_rng(19).random((5, 6))
    x = da.from_array(a, chunks=3)
    cases = [
        ("gaussian_filter", (1,), {"axes": np.array([0, 1])}),
        ("uniform_filter", (), {"size": (0, 3)}),
        ("uniform_filter", (), {"size": 0}),
        ("minimum_filter", (), {"footprint": np.ones((3, 3)), "mode": ["reflect", "nearest"]}),
        ("maximum_filter", (), {"footprint": np.ones((2, 3), bool), "mode": ["wrap", "constant"], "cval": 2.0}),
    ]
    for name, args, kwargs in cases:
        got = getattr(batchproc.ndimage, name)(x, *args, **kwargs).compute()
        want = getattr(ndi, name)(a, *args, **kwargs)
        tolerance = REGISTRY[name].tolerance  # uniform_filter's running sum (docs/concepts/exactness.md)
        assert np.allclose(got, want, rtol=0, atol=tolerance(a, want)) if tolerance else np.array_equal(got, want), (name, kwargs)
    empty = np.zeros((1, 0))
    assert batchproc.ndimage.correlate(da.from_array(empty), [[1.0]]).compute().shape == (1, 0)


def test_parameter_errors_are_also_the_class_scipy_raises() -> None:
    import scipy.ndimage as ndi

    a = np.zeros((4, 4))
    x = da.from_array(a, chunks=2)
    for call in (
        lambda m: m.median_filter(x if m is batchproc.ndimage else a, footprint=np.ones((3, 3)), mode=["reflect", "nearest"]),
        lambda m: m.label(x if m is batchproc.ndimage else a, structure=np.ones((3, 3, 3))),
        lambda m: m.convolve(x if m is batchproc.ndimage else a, np.ones((3, 3, 3)), axes=(0,)),
    ):
        with pytest.raises(Exception) as scipys:
            call(ndi)
        with pytest.raises(BatchprocError) as ours:
            call(batchproc.ndimage)
        assert isinstance(ours.value, type(scipys.value)), (scipys.value, ours.value)
