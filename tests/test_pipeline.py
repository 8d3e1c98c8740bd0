"""Pipelines: strict validation before anything runs; fused stages equal the steps
applied one after another with scipy on the whole array."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import assume, given
from hypothesis import strategies as st

from batchproc.errors import BatchprocError
from batchproc.pipeline import Pipeline, parse_step, pipeline_schema

LOCAL_STEPS = {
    "gaussian_filter": (lambda draw: {"sigma": draw(st.sampled_from([0.7, 1.5, 2.0])), "mode": draw(st.sampled_from(["reflect", "wrap", "nearest"]))}),
    "median_filter": (lambda draw: {"size": draw(st.integers(2, 4)), "mode": draw(st.sampled_from(["reflect", "wrap", "constant"]))}),
    "uniform_filter": (lambda draw: {"size": draw(st.integers(2, 5)), "mode": draw(st.sampled_from(["mirror", "wrap"]))}),
    "maximum_filter": (lambda draw: {"size": draw(st.integers(2, 4))}),
    "sobel": (lambda draw: {"axis": draw(st.integers(0, 1)), "mode": draw(st.sampled_from(["reflect", "wrap"]))}),
    "sobel_magnitude": (lambda draw: {}),
    "laplace": (lambda draw: {"mode": draw(st.sampled_from(["reflect", "wrap"]))}),
    "threshold": (lambda draw: {"above": draw(st.sampled_from([10, 60, 120]))}),
    "expression": (lambda draw: {"expr": "x * 2 + 1"}),
    "equalize": (lambda draw: {}),
}


def scipy_step(a: np.ndarray, step: dict) -> np.ndarray:
    """The reference: each step on the whole array with scipy/numpy."""
    name = step["op"]
    params = {k: v for k, v in step.items() if k != "op"}
    if name == "sobel_magnitude":
        f = a if a.dtype.kind == "f" else a.astype(np.float64)
        return np.sqrt(np.square(ndi.sobel(f, 0, output=f.dtype)) + np.square(ndi.sobel(f, 1, output=f.dtype)))
    if name == "threshold":
        return a > params["above"]
    if name == "expression":
        return a * 2 + 1
    if name == "equalize":
        if a.dtype.kind == "b" or (a.dtype.kind in "iu" and a.dtype.itemsize <= 2):
            # One bin per value over the dtype's range (a mask's range is 0..1).
            lo, hi = (0, 1) if a.dtype.kind == "b" else (int(np.iinfo(a.dtype).min), int(np.iinfo(a.dtype).max))
            values = a.astype(np.int64)
            hist = ndi.histogram(values, lo, hi, hi - lo + 1)
            return (hist.cumsum() / hist.sum())[values - lo] * hi
        lo, hi = float(a.min()), float(a.max())
        edges = np.linspace(lo, hi, 257)
        hist = np.histogram(a, edges)[0]
        table = np.concatenate([[0.0], hist.cumsum() / hist.sum()])
        return table[np.minimum(np.searchsorted(edges, a, side="right"), 256)] * hi
    if name == "binary_dilation":
        return ndi.binary_dilation(a, **params)
    return getattr(ndi, name)(a, **params)


@given(st.data())
def test_fused_pipeline_equals_steps_one_after_another(data: st.DataObject) -> None:
    names = data.draw(st.lists(st.sampled_from(sorted(LOCAL_STEPS)), min_size=2, max_size=5), label="ops")
    steps = []
    for name in names:
        steps.append({"op": name, **LOCAL_STEPS[name](data.draw)})
    shape = (data.draw(st.integers(4, 30)), data.draw(st.integers(4, 30)))
    a = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).integers(0, 255, size=shape).astype(np.uint8)
    chunks = (data.draw(st.integers(1, shape[0])), data.draw(st.integers(1, shape[1])))
    want = a
    running_sum_on_floats = False
    for step in steps:
        if step["op"] == "uniform_filter" and want.dtype.kind == "f":
            running_sum_on_floats = True  # docs/concepts/exactness.md: last-bit differences allowed here
        elif running_sum_on_floats and step["op"] in ("threshold", "equalize"):
            # A last-bit difference could cross a threshold or a bin edge: such a
            # pipeline cannot promise bit equality, so it is not drawn.
            assume(False)
        if step["op"] == "equalize" and want.dtype.kind in "iu" and want.dtype.itemsize > 2:
            step["bins"] = 256  # wide integers (int64 after an expression) need bins, as batchproc says
        want = scipy_step(want, step)
    got = Pipeline(steps).apply(da.from_array(a, chunks=chunks)).compute(scheduler="sync")
    assert got.dtype == want.dtype and got.shape == want.shape
    if running_sum_on_floats:
        assert np.allclose(got, want, rtol=1e-12, atol=1e-12 * max(1.0, float(np.abs(want).max())))
    else:
        assert np.array_equal(got, want, equal_nan=want.dtype.kind == "f")


def test_local_steps_fuse_into_one_map_overlap() -> None:
    p = Pipeline([{"op": "gaussian_filter", "sigma": 2}, {"op": "sobel_magnitude"}, {"op": "threshold", "above": 40}])
    x = da.zeros((256, 256), chunks=64, dtype=np.uint16)
    stages = p.stages(2, x.dtype)
    assert [s.kind for s in stages] == ["local"] and stages[0].halo == (9, 9)
    y = p.apply(x)
    assert [name for name in y.dask.layers if name.startswith("batchproc-")] == [
        next(n for n in y.dask.layers if n.startswith("batchproc-gaussian_filter-sobel_magnitude-threshold"))
    ]


def test_global_step_splits_stages_and_wrap_disagreement_splits_too() -> None:
    p = Pipeline(
        [
            {"op": "gaussian_filter", "sigma": 1},
            {"op": "equalize"},
            {"op": "median_filter", "size": 3, "mode": "wrap"},
            {"op": "uniform_filter", "size": 3},
        ]
    )
    kinds = [(s.kind, [op.name for op, _ in s.steps]) for s in p.stages(2, np.dtype(np.uint8))]
    assert kinds == [("local", ["gaussian_filter"]), ("global", ["equalize"]), ("local", ["median_filter"]), ("local", ["uniform_filter"])]


@pytest.mark.parametrize(
    ("document", "fragments"),
    [
        ({"steps": [{"op": "gausian_filter", "sigma": 2}]}, ["step 1", "unknown operation 'gausian_filter'", "gaussian_filter"]),
        ({"steps": [{"op": "gaussian_filter", "sigmaa": 2}]}, ["step 1 (gaussian_filter)", "unknown parameter 'sigmaa'", "sigma"]),
        ({"steps": [{"op": "threshold", "above": 1}, {"op": "median_filter", "size": "big"}]}, ["step 2 (median_filter)", "'size'", "'big'"]),
        ({"steps": [{"op": "correlate", "weights": [[1, 2], [3]]}]}, ["'weights'"]),
        ({"steps": []}, ["non-empty list"]),
        ({"steps": [{"sigma": 2}]}, ["step 1", "'op'"]),
        ({"steps": [{"op": "histogram", "min": 0, "max": 1, "bins": 3}]}, ["batchproc histogram"]),
        ({"version": 2, "steps": [{"op": "threshold", "above": 1}]}, ["'version'", "2"]),
        ({"stpes": []}, ["unknown key 'stpes'", "steps"]),
        ([1, 2], ["mapping"]),
    ],
)
def test_bad_pipelines_are_refused_before_running(document, fragments: list[str]) -> None:
    with pytest.raises(BatchprocError) as info:
        Pipeline.from_dict(document)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_bad_shape_dependent_parameter_is_caught_at_bind() -> None:
    p = Pipeline([{"op": "convolve", "weights": [1, 2, 1]}])
    with pytest.raises(BatchprocError, match="step 1 \\(convolve\\): parameter 'weights' must be 2-dimensional"):
        p.apply(da.zeros((8, 8), chunks=4))


def test_yaml_and_json_files(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("version: 1\nsteps:\n  - op: gaussian_filter\n    sigma: 2\n  - {op: threshold, above: 40}\n")
    (tmp_path / "p.json").write_text('{"version": 1, "steps": [{"op": "gaussian_filter", "sigma": 2}, {"op": "threshold", "above": 40}]}')
    assert Pipeline.load(tmp_path / "p.yaml").to_dict() == Pipeline.load(tmp_path / "p.json").to_dict()
    (tmp_path / "bad.yaml").write_text("steps: [op: gaussian_filter\n")
    with pytest.raises(BatchprocError, match="not valid YAML"):
        Pipeline.load(tmp_path / "bad.yaml")
    (tmp_path / "evil.yaml").write_text("steps: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(BatchprocError, match="not valid YAML"):
        Pipeline.load(tmp_path / "evil.yaml")


def test_step_strings() -> None:
    assert parse_step("median_filter:size=[3,3],mode=wrap") == {"op": "median_filter", "size": [3, 3], "mode": "wrap"}
    assert parse_step("sobel_magnitude") == {"op": "sobel_magnitude"}
    assert parse_step("maximum_filter:size=3,mode=constant,cval=-inf")["cval"] == float("-inf")
    assert parse_step("maximum_filter:cval=.inf")["cval"] == float("inf")
    assert np.isnan(parse_step("maximum_filter:cval=nan")["cval"])
    with pytest.raises(BatchprocError, match="OP:name=value"):
        parse_step("gaussian_filter:sigma")


def test_schema_covers_every_pipeline_op() -> None:
    from batchproc.ops import REGISTRY

    schema = pipeline_schema()
    titles = {v["title"] for v in schema["properties"]["steps"]["items"]["oneOf"]}
    assert titles == {n for n, op in REGISTRY.items() if op.in_pipeline}


def test_resume_refuses_when_the_input_changed(tmp_path: Path) -> None:
    import os

    import tifffile

    from batchproc.errors import BatchprocError

    data = np.random.default_rng(1).integers(0, 255, size=(6, 20, 20)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "in.tif", data)
    pipeline = Pipeline([{"op": "gaussian_filter", "sigma": 1}])
    pipeline.run(tmp_path / "in.tif", tmp_path / "out.zarr", chunks=(3, 10, 10))
    assert pipeline.run(tmp_path / "in.tif", tmp_path / "out.zarr", chunks=(3, 10, 10), resume=True)  # same job: nothing to do
    tifffile.imwrite(tmp_path / "in.tif", data[::-1].copy())
    os.utime(tmp_path / "in.tif", ns=(1, 10**18))
    with pytest.raises(BatchprocError, match="different job"):
        pipeline.run(tmp_path / "in.tif", tmp_path / "out.zarr", chunks=(3, 10, 10), resume=True)
