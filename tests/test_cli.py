"""The command line, through typer's runner and as a real subprocess: results,
and every user error exiting 2 with a one-paragraph message and no traceback."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi
import zarr
from typer.testing import CliRunner

from batchproc.cli import app

runner = CliRunner()
PIPELINE = "version: 1\nsteps:\n  - op: gaussian_filter\n    sigma: 2\n  - op: sobel_magnitude\n  - op: threshold\n    above: 40\n"


@pytest.fixture
def volume_file(tmp_path: Path) -> tuple[Path, np.ndarray]:
    import tifffile

    data = np.random.default_rng(11).integers(0, 255, size=(10, 60, 50)).astype(np.uint8)
    path = tmp_path / "volume.tif"
    tifffile.imwrite(path, data)
    return path, data


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_run_with_pipeline_file_matches_scipy(tmp_path: Path, volume_file) -> None:
    path, data = volume_file
    (tmp_path / "p.yaml").write_text(PIPELINE)
    result = invoke("run", path, tmp_path / "out.zarr", "--pipeline", tmp_path / "p.yaml", "--chunks", "4,16,16", "--quiet")
    assert result.exit_code == 0, result.output
    smooth = ndi.gaussian_filter(data, 2).astype(np.float64)
    want = np.sqrt(sum(np.square(ndi.sobel(smooth, a)) for a in range(3))) > 40
    got = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["0"][:]
    assert np.array_equal(got, want)


def test_run_with_steps_and_info(tmp_path: Path, volume_file) -> None:
    path, data = volume_file
    result = invoke("run", path, tmp_path / "o.zarr", "--step", "median_filter:size=3", "--step", "threshold:above=100", "-q")
    assert result.exit_code == 0, result.output
    assert np.array_equal(zarr.open_array(str(tmp_path / "o.zarr" / "0"))[:], ndi.median_filter(data, 3) > 100)
    info = invoke("info", path, "--quiet")
    assert info.exit_code == 0 and "(10, 60, 50)" in info.output and "uint8" in info.output
    assert f"{data.min()} .. {data.max()}" in info.output


def test_an_infinite_cval_on_the_command_line(tmp_path: Path, volume_file) -> None:
    # -inf as people type it; the store's metadata stays standard JSON (zarr v3's
    # "-Infinity" string, not Python's bare -Infinity token).
    path, data = volume_file
    result = invoke("run", path, tmp_path / "o.zarr", "--step", "maximum_filter:size=3,mode=constant,cval=-inf", "-q")
    assert result.exit_code == 0, result.output
    assert np.array_equal(zarr.open_array(str(tmp_path / "o.zarr" / "0"))[:], ndi.maximum_filter(data, 3, mode="constant", cval=-np.inf))

    def refuse(token: str) -> None:
        raise ValueError(token)

    document = json.loads((tmp_path / "o.zarr" / "zarr.json").read_text(), parse_constant=refuse)
    assert document["attributes"]["batchproc"]["provenance"]["pipeline"]["steps"][0]["cval"] == "-Infinity"


def test_histogram_outputs(tmp_path: Path, volume_file) -> None:
    path, data = volume_file
    result = invoke("histogram", path, "--bins", "16", "--min", "0", "--max", "255", "--json", "--csv", tmp_path / "h.csv", "--plot", tmp_path / "h.png")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)["counts"]
    assert counts == ndi.histogram(data, 0, 255, 16).tolist()
    assert (tmp_path / "h.csv").read_text().count("\n") == 17
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_preview_shows_output_beside_its_input(tmp_path: Path, volume_file) -> None:
    path, _ = volume_file
    assert invoke("run", path, tmp_path / "o.zarr", "--step", "gaussian_filter:sigma=1", "-q").exit_code == 0
    result = invoke("preview", tmp_path / "o.zarr", "--slice", "0=3", "-o", tmp_path / "p.png")
    assert result.exit_code == 0, result.output
    import matplotlib.image

    picture = matplotlib.image.imread(tmp_path / "p.png")
    # Two panels side by side, each a 60×50 slice drawn at its aspect (one alone: about 0.9 × the height).
    assert picture.shape[1] > 1.5 * picture.shape[0] * 50 / 60


def test_ops_listing_and_schema() -> None:
    listing = invoke("ops")
    assert listing.exit_code == 0 and "gaussian_filter" in listing.output and "sobel_magnitude" in listing.output
    one = invoke("ops", "median_filter")
    assert one.exit_code == 0 and "footprint" in one.output
    schema = json.loads(invoke("ops", "--schema").output)
    assert schema["title"] == "batchproc pipeline"


ERRORS = [
    (["run", "{vol}", "{tmp}/o.zarr", "--step", "gausian_filter:sigma=2"], "unknown operation 'gausian_filter'"),
    (["run", "{vol}", "{tmp}/o.zarr", "--step", "gaussian_filter:sigma=-2"], "parameter 'sigma'"),
    (["run", "{vol}", "{tmp}/o.zarr", "--step", "gaussian_filter:sigma"], "OP:name=value"),
    (["run", "{vol}", "{tmp}/o.zarr"], "--pipeline FILE or one or more --step"),
    (["run", "{tmp}/missing.tif", "{tmp}/o.zarr", "--step", "threshold:above=1"], "does not exist"),
    (["run", "{vol}", "{tmp}/o.zarr", "--pipeline", "{tmp}/bad.yaml"], "not valid YAML"),
    (["run", "{vol}", "{tmp}/o.zarr", "--pipeline", "{tmp}/nofile.yaml"], "cannot read"),
    (["run", "{vol}", "{tmp}/o.zarr", "--step", "threshold:above=1", "--chunks", "a,b"], "--chunks"),
    (["run", "{vol}", "{tmp}/o.zarr", "--step", "threshold:above=1", "--scheduler", "warp"], "--scheduler"),
    (["run", "{vol}", "{tmp}/nodir/o.zarr", "--step", "threshold:above=1"], "does not exist"),
    (["run", "{vol}", "{tmp}/" + "n" * 240 + ".zarr", "--step", "threshold:above=1"], "too long"),
    (["run", "{vol}", "{tmp}/o.zarr", "--step", "maximum_filter:size=3,cval=lots"], "parameter 'cval'"),
    # Found when the pipeline meets the input (a 3-D volume): still before any store exists.
    (["run", "{vol}", "{tmp}/o.zarr", "--step", "gaussian_filter:sigma=[1,2]"], "parameter 'sigma'"),
    (["run", "{vol}", "{tmp}/o.zarr", "--step", "threshold:above=1", "--chunks", "4,16"], "one size per axis"),
    (["run", "{vol}", "{tmp}/o.zarr", "--step", "threshold:above=1", "--dry-run", "--chunks", "0,1,1"], "--chunks must be positive"),
    (["run", "{vol}", "{tmp}/o.zarr", "--step", "threshold:above=1", "--chunks", "2,16,16", "--shards", "4,24,16"], "whole multiple of the chunks"),
    (["run", "{vol}", "{tmp}/o.zarr", "--step", "threshold:above=1", "--shards", "4,x,16"], "--shards must be integers"),
    (["run", "{vol}", "{tmp}/o.zarr", "--step", "threshold:above=1", "--chunks", "2,16,16", "--shards", "4,32"], "--shards: give one size per axis"),
    (["info", "{tmp}/missing.tif"], "does not exist"),
    (["histogram", "{vol}", "--bins", "0"], "'bins'"),
    (["preview", "{vol}", "--slice", "0-3", "-o", "{tmp}/p.png"], "--slice"),
    (["preview", "{vol}", "--slice", "0=99", "-o", "{tmp}/p.png"], "--slice"),
    (["preview", "{vol}", "-o", "{tmp}/nodir/p.png"], "does not exist"),
    (["ops", "nonsense"], "unknown operation 'nonsense'"),
]


@pytest.mark.parametrize(("args", "message"), ERRORS, ids=[" ".join(a[:1] + [m]) for a, m in ERRORS])
def test_user_errors_exit_2_with_a_clear_message(tmp_path: Path, volume_file, args: list[str], message: str) -> None:
    path, _ = volume_file
    (tmp_path / "bad.yaml").write_text("steps: [op: x\n")
    result = invoke(*[a.format(vol=path, tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o.zarr").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".o.zarr")]


def test_dry_run_prints_the_plan_reads_no_chunk_and_writes_nothing(tmp_path: Path, volume_file) -> None:
    """The plan comes from metadata alone: a store whose chunk files are all gone
    still plans, and nothing is written where the output would go."""
    import shutil

    path, data = volume_file
    source = tmp_path / "in.zarr"
    assert invoke("run", path, source, "--step", "astype:dtype=uint16", "--chunks", "5,30,25", "-q").exit_code == 0
    shutil.rmtree(source / "0" / "c")
    pipeline = _pipeline_file(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = invoke("run", source, tmp_path / "out.zarr", "--pipeline", pipeline, "--chunks", "2,16,16", "--dry-run")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no lock, no staging folder
    text = result.output
    assert "local: gaussian_filter -> sobel_magnitude -> threshold (reach (9, 9, 9))" in text
    assert "(9, 9, 9) voxels per side" in text
    assert "80 chunks of (2, 16, 16)" in text  # (10, 60, 50) in chunks of (2, 16, 16): 5 x 4 x 4
    assert "per block, per worker thread" in text


def test_outputs_of_many_chunks_are_sharded_by_default(tmp_path: Path) -> None:
    # 10^6 chunks of 64^3 planned from metadata alone: one shard per compute block.
    from batchproc.io.store import compressors

    source = tmp_path / "million.zarr"
    zarr.create_array(str(source), shape=(6400, 6400, 6400), chunks=(64, 64, 64), dtype="uint8", compressors=compressors("default", np.dtype("uint8")))
    result = invoke("run", source, tmp_path / "never.zarr", "--step", "gaussian_filter:sigma=1", "--chunks", "64,64,64", "--dry-run")
    assert result.exit_code == 0, result.output
    files = re.search(r"files\s+([\d,]+) shards of \((\d+), (\d+), (\d+)\)", result.output)
    assert files, result.output
    assert int(files.group(1).replace(",", "")) <= 20_000 and "1,000,000 chunks in all" in result.output
    blocks = re.search(r"blocks\s+\((\d+), (\d+), (\d+)\)", result.output)
    assert [int(b) % int(f) for b, f in zip(blocks.groups(), files.groups()[1:], strict=True)] == [0, 0, 0]  # a block: whole shards
    # --shards none keeps one file a chunk; under 10,000 chunks nothing is sharded.
    result = invoke("run", source, tmp_path / "never.zarr", "--step", "gaussian_filter:sigma=1", "--chunks", "64,64,64", "--shards", "none", "--dry-run")
    assert "1,000,000 chunks of (64, 64, 64)" in result.output and "shards" not in result.output
    result = invoke("run", source, tmp_path / "never.zarr", "--step", "gaussian_filter:sigma=1", "--chunks", "640,640,640", "--dry-run")
    assert "1,000 chunks of (640, 640, 640)" in result.output and "shards" not in result.output


def test_a_sharded_run_writes_one_file_a_shard_and_equals_scipy(tmp_path: Path, volume_file) -> None:
    path, data = volume_file
    out = tmp_path / "o.zarr"
    result = invoke("run", path, out, "--step", "gaussian_filter:sigma=1", "--chunks", "2,16,16", "--shards", "4,32,32", "-q")
    assert result.exit_code == 0, result.output
    array = zarr.open_array(str(out / "0"), mode="r")
    assert array.chunks == (2, 16, 16) and array.shards == (4, 32, 32)
    files = [p for p in (out / "0" / "c").rglob("*") if p.is_file()]
    assert len(files) == math.prod(-(-n // s) for n, s in zip(data.shape, (4, 32, 32), strict=True))
    assert np.array_equal(array[...], ndi.gaussian_filter(data, 1))


def _pipeline_file(folder: Path) -> Path:
    (folder / "p.yaml").write_text(PIPELINE)
    return folder / "p.yaml"


def test_existing_output_is_untouched_without_overwrite(tmp_path: Path, volume_file) -> None:
    path, _ = volume_file
    out = tmp_path / "o.zarr"
    assert invoke("run", path, out, "--step", "threshold:above=10", "-q").exit_code == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    result = invoke("run", path, out, "--step", "threshold:above=99", "-q")
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert before == {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert invoke("run", path, out, "--step", "threshold:above=99", "-q", "--overwrite").exit_code == 0


def test_real_subprocess_exit_codes(tmp_path: Path, volume_file) -> None:
    path, _ = volume_file
    env = {**os.environ, "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "batchproc.cli"]
    ok = subprocess.run(
        [*cmd, "run", str(path), str(tmp_path / "o.zarr"), "--step", "gaussian_filter:sigma=1"], capture_output=True, text=True, timeout=120, env=env
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [*cmd, "run", str(path), str(tmp_path / "o2.zarr"), "--step", "gaussian_filter:sigma=-1"], capture_output=True, text=True, timeout=120, env=env
    )
    assert bad.returncode == 2 and "parameter 'sigma'" in bad.stderr and "Traceback" not in bad.stderr + bad.stdout
    usage = subprocess.run([*cmd, "run"], capture_output=True, text=True, timeout=120, env=env)
    assert usage.returncode == 2


def test_kernels_option_selects_the_kernel_set(tmp_path: Path, volume_file, monkeypatch: pytest.MonkeyPatch) -> None:
    path, data = volume_file
    monkeypatch.setenv("BATCHPROC_KERNELS", "compiled")  # restored after the test, whatever the CLI sets
    results = {}
    for kernels in ("scipy", "compiled"):
        result = invoke("--kernels", kernels, "run", path, tmp_path / f"{kernels}.zarr", "--step", "gaussian_filter:sigma=1.5", "-q")
        assert result.exit_code == 0, result.output
        assert os.environ["BATCHPROC_KERNELS"] == kernels
        results[kernels] = zarr.open_group(str(tmp_path / f"{kernels}.zarr"), mode="r")["0"][:]
    assert np.array_equal(results["scipy"], results["compiled"])
    assert np.array_equal(results["scipy"], ndi.gaussian_filter(data, 1.5))
    bad = invoke("--kernels", "cuda", "ops")
    assert bad.exit_code == 2 and "compiled, scipy" in bad.output


def test_label_in_a_pipeline_equals_scipy_and_refuses_a_halo_after_it(tmp_path: Path, volume_file) -> None:
    path, data = volume_file
    out = tmp_path / "labels.zarr"
    cross = "[[[0,0,0],[0,1,0],[0,0,0]],[[0,1,0],[1,1,1],[0,1,0]],[[0,0,0],[0,1,0],[0,0,0]]]"
    result = invoke("run", path, out, "--step", "threshold:above=160", "--step", f"label:structure={cross}", "--chunks", "3,16,16", "-q")
    assert result.exit_code == 0, result.output
    want, count = ndi.label(data > 160)
    got = zarr.open_array(str(out / "0"), mode="r")[...]
    assert got.dtype == np.int32 and np.array_equal(got, want) and count > 1
    refused = invoke("run", path, tmp_path / "no.zarr", "--step", "threshold:above=160", "--step", "label", "--step", "maximum_filter:size=3", "-q")
    assert refused.exit_code == 2 and "voxel by voxel" in refused.output and "maximum_filter" in refused.output
    assert "label" in invoke("ops", "label").output


def test_measure_a_real_ct_series_one_row_per_object_as_scipy_measures_them(tmp_path: Path) -> None:
    """pydicom's CT series (spacing in millimetres): objects of a mask made by the
    pipeline, their table equal to scipy's measurements, as CSV and Parquet."""
    import csv
    import os

    import pyarrow.parquet as pq
    from pydicom.data import get_testdata_file

    import batchproc

    series = Path(os.path.dirname(get_testdata_file("CT_small.dcm"))) / "dicomdirtests" / "98892001" / "CT5N"
    image = batchproc.open_image(series)
    data = image.data.compute()
    labels, count = ndi.label(data > 1000)
    table = tmp_path / "objects.csv"
    import dask

    with dask.config.set({"batchproc.block-bytes": 2 * 8 * 8 * 8}):  # blocks of 2x8x8: objects cross them
        result = invoke("measure", series, "-o", table, "--step", "threshold:above=1000", "--chunks", "2,8,8")
    assert result.exit_code == 0, result.output
    assert f"{count} objects" in result.output and count > 1
    rows = list(csv.DictReader(table.open()))
    index = np.arange(1, count + 1)
    voxels = ndi.sum_labels(np.ones_like(data), labels, index)
    centres = ndi.center_of_mass(np.ones_like(data), labels, index)
    boxes = ndi.find_objects(labels)
    assert [int(r["label"]) for r in rows] == list(index)
    assert [int(r["voxels"]) for r in rows] == list(voxels.astype(int))
    assert [float(r["volume_millimeter^3"]) for r in rows] == list(voxels * np.prod(image.spacing))
    assert [tuple(float(r[f"centroid_{a}"]) for a in "zyx") for r in rows] == [tuple(c) for c in centres]
    assert [float(r["centroid_y_millimeter"]) for r in rows] == [c[1] * image.spacing[1] for c in centres]
    assert [tuple(slice(int(r[f"bbox_start_{a}"]), int(r[f"bbox_stop_{a}"])) for a in "zyx") for r in rows] == boxes
    assert [float(r["intensity_mean"]) for r in rows] == list(ndi.mean(data, labels, index))
    assert [int(r["intensity_min"]) for r in rows] == list(ndi.minimum(data, labels, index))
    assert [float(r["intensity_sum"]) for r in rows] == list(ndi.sum_labels(data, labels, index))
    # The label image the pipeline made, beside the table, marked as one; then measured again from it, as Parquet.
    made = tmp_path / "objects.labels.ome.zarr"
    assert np.array_equal(batchproc.open(made).compute(), labels)
    assert "image-label" in json.loads((made / "zarr.json").read_text())["attributes"]["ome"]
    result = invoke("measure", series, "-o", tmp_path / "objects.parquet", "--labels", made, "--format", "parquet")
    assert result.exit_code == 0, result.output
    parquet = pq.read_table(tmp_path / "objects.parquet").to_pydict()
    assert [str(v) for v in parquet["intensity_mean"]] == [r["intensity_mean"] for r in rows]
    assert parquet["label"] == [int(r["label"]) for r in rows]


def test_measure_refuses_what_it_cannot_measure(tmp_path: Path, volume_file) -> None:
    path, data = volume_file
    assert invoke("measure", path, "-o", tmp_path / "t.csv").exit_code == 2  # neither labels nor steps
    other = tmp_path / "other.zarr"
    assert invoke("run", path, other, "--step", "threshold:above=100", "-q").exit_code == 0
    flat = tmp_path / "flat.tif"
    import tifffile

    tifffile.imwrite(flat, data[0])
    result = invoke("measure", flat, "-o", tmp_path / "t.csv", "--labels", other)
    assert result.exit_code == 2 and "same shape" in result.output
    result = invoke("measure", path, "-o", tmp_path / "t.csv", "--labels", other, "--format", "xlsx")
    assert result.exit_code == 2 and "--format" in result.output
    assert not (tmp_path / "t.csv").exists()


def test_distance_of_a_real_ct_mask_in_millimetres_equals_scipy(tmp_path: Path) -> None:
    """pydicom's CT series: the distances of the mask the steps make, in the series'
    spacing (millimetres) by default, in voxels with --sampling voxels, equal to
    scipy's; the passes run in tiles much smaller than the volume."""
    import dask
    from pydicom.data import get_testdata_file

    import batchproc

    series = Path(os.path.dirname(get_testdata_file("CT_small.dcm"))) / "dicomdirtests" / "98892001" / "CT5N"
    image = batchproc.open_image(series)
    mask = image.data.compute() > 1000
    assert len(set(image.spacing)) > 1  # anisotropic: the default sampling shows
    with dask.config.set({"batchproc.block-bytes": 2 * 8 * 8 * 8, "temporary-directory": str(tmp_path)}):
        result = invoke("distance", series, tmp_path / "mm.zarr", "--step", "threshold:above=1000", "--chunks", "2,8,8", "-q")
        assert result.exit_code == 0, result.output
        result = invoke("distance", series, tmp_path / "voxels.zarr", "--step", "threshold:above=1000", "--sampling", "voxels", "-q")
        assert result.exit_code == 0, result.output
    written = batchproc.open_image(tmp_path / "mm.zarr")
    assert np.array_equal(written.data.compute(), ndi.distance_transform_edt(mask, sampling=image.spacing))
    assert tuple(written.spacing) == tuple(image.spacing) and written.units == image.units
    assert np.array_equal(batchproc.open(tmp_path / "voxels.zarr").compute(), ndi.distance_transform_edt(mask))
    assert not list(tmp_path.glob("batchproc-scratch-*"))


def test_distance_refuses_a_sampling_it_cannot_read(tmp_path: Path, volume_file) -> None:
    path, _ = volume_file
    for given, words in (("1,x", "--sampling"), ("1,2", "one per axis (3)"), ("-1", "positive")):
        result = invoke("distance", path, tmp_path / "d.zarr", "--sampling", given)
        assert result.exit_code == 2 and words in result.output, result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "d.zarr").exists()


def test_the_schema_says_what_each_parameter_takes() -> None:
    """Types, ranges and enums from the checks themselves, not only titles; and
    real pipeline files validate against it (a hand-written check of the schema
    against examples that must pass and fail)."""
    schema = json.loads(invoke("ops", "--schema").output)
    steps = {v["title"]: v["properties"] for v in schema["properties"]["steps"]["items"]["oneOf"]}
    untyped = [(op, name) for op, props in steps.items() for name, p in props.items() if name != "op" and not set(p) - {"description", "default"}]
    assert untyped == []
    assert steps["gaussian_filter"]["sigma"]["anyOf"][0] == {"type": "number", "minimum": 0}
    assert steps["median_filter"]["mode"]["enum"][0] == "reflect"
    assert steps["astype"]["dtype"]["enum"][:2] == ["bool", "uint8"]
    assert steps["threshold"]["above"]["anyOf"][0] == {"type": "number"}
    import jsonschema
    import yaml

    jsonschema.validate(yaml.safe_load(PIPELINE), schema)
    jsonschema.validate({"version": 1, "steps": [{"op": "label", "structure": [[0, 1, 0], [1, 1, 1], [0, 1, 0]]}, {"op": "astype", "dtype": "uint16"}]}, schema)
    for bad in ({"op": "gaussian_filter", "sigma": -1}, {"op": "median_filter", "size": 3, "mode": "bogus"}, {"op": "astype", "dtype": "complex64"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"version": 1, "steps": [bad]}, schema)


def test_label_gives_int64_from_2_to_the_31_voxels_as_scipy(tmp_path: Path) -> None:
    # scipy: need_64bits = input.size >= 2**31 - 2; planned from metadata alone.
    import dask.array as da

    import batchproc
    from batchproc.io.store import compressors

    big = tmp_path / "big.zarr"
    zarr.create_array(str(big), shape=(2048, 1024, 1024), chunks=(64, 256, 256), dtype="uint8", compressors=compressors("default", np.dtype("uint8")))
    result = invoke("run", big, tmp_path / "never.zarr", "--step", "label", "--dry-run")
    assert result.exit_code == 0 and "label(output=int64) uint8 -> int64" in result.output, result.output
    assert batchproc.ndimage.label(da.zeros((2**16, 2**15 - 1), chunks=2**14, dtype=bool))[0].dtype == np.int32
    assert batchproc.ndimage.label(da.zeros((2**16, 2**15), chunks=2**14, dtype=bool))[0].dtype == np.int64


def test_the_command_s_process_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """``batchproc`` (cli.main), not ``app`` called from Python: OpenBLAS on one
    thread unless the user says, young collections every 100,000 objects, and
    the objects left at the end frozen out of the collector."""
    import gc

    from batchproc import cli

    monkeypatch.setattr(sys, "argv", ["batchproc", "ops"])
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    before = gc.get_threshold()
    try:
        with pytest.raises(SystemExit) as ended:
            cli.main()
        assert ended.value.code in (0, None)
        assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
        assert gc.get_threshold()[0] == 100_000
        assert gc.get_freeze_count() > 0
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    with pytest.raises(SystemExit):
        cli.main()
    gc.set_threshold(*before)
    gc.unfreeze()
    assert os.environ["OPENBLAS_NUM_THREADS"] == "2"
