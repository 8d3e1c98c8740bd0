"""``batchproc batch``: one store per input, a manifest, failures recorded and the
rest finished, re-runs that skip what is done, and a batch killed with SIGKILL
finished by running the same command again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import scipy.ndimage as ndi
import zarr
from daskcluster import DaskCluster
from typer.testing import CliRunner

from batchproc.batch import MANIFEST, Manifest, collect_inputs, plan_items
from batchproc.cli import app
from batchproc.errors import BatchprocError

runner = CliRunner()
STEPS = ["--step", "gaussian_filter:sigma=[1,1]", "--step", "threshold:above=120"]


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def expected(image: np.ndarray) -> np.ndarray:
    return ndi.gaussian_filter(image, [1, 1]) > 120


@pytest.fixture
def archive(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """30 PNG slices, one corrupt file, one RGB image the 2-D pipeline cannot take."""
    folder = tmp_path / "archive"
    folder.mkdir()
    rng = np.random.default_rng(4)
    images = {}
    for i in range(30):
        images[f"scan{i}"] = (rng.random((40, 48)) * 255).astype(np.uint8)
        iio.imwrite(folder / f"scan{i}.png", images[f"scan{i}"])
    (folder / "scan7.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    iio.imwrite(folder / "scan12.png", (rng.random((40, 48, 3)) * 255).astype(np.uint8))
    return folder, images


def manifest_state(out: Path) -> dict[str, dict]:
    return Manifest(out / MANIFEST).load()


def test_batch_records_failures_finishes_the_rest_and_reruns_only_what_failed(tmp_path: Path, archive) -> None:
    folder, images = archive
    out = tmp_path / "out"
    first = invoke("batch", folder, "--out", out, *STEPS)
    assert first.exit_code == 3, first.output
    assert "28 done, 0 skipped (already done), 2 failed" in first.output
    state = manifest_state(out)
    assert len(state) == 30
    failed = {Path(k).name: v["error"] for k, v in state.items() if v["status"] == "failed"}
    assert set(failed) == {"scan7.png", "scan12.png"}
    assert "scan7.png" in failed["scan7.png"] and "cannot read" in failed["scan7.png"]
    assert "sigma" in failed["scan12.png"] and "3" in failed["scan12.png"]
    for name, image in images.items():
        if name in ("scan7", "scan12"):
            continue
        store = out / f"{name}.ome.zarr"
        assert np.array_equal(zarr.open_array(str(store / "0"), mode="r")[:], expected(image)), name
        assert state[str(folder / f"{name}.png")]["seconds"] >= 0

    # Same command again: nothing done is redone, the failures are tried again.
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("c/*/*")}
    again = invoke("batch", folder, "--out", out, *STEPS)
    assert again.exit_code == 3 and "0 done, 28 skipped (already done), 2 failed" in again.output
    assert {p: p.stat().st_mtime_ns for p in out.rglob("c/*/*")} == mtimes

    # Repair the two files: only they run, and the batch succeeds.
    iio.imwrite(folder / "scan7.png", images["scan7"])
    iio.imwrite(folder / "scan12.png", images["scan12"])
    fixed = invoke("batch", folder, "--out", out, *STEPS)
    assert fixed.exit_code == 0, fixed.output
    assert "2 done, 28 skipped (already done), 0 failed" in fixed.output
    assert np.array_equal(zarr.open_array(str(out / "scan7.ome.zarr" / "0"), mode="r")[:], expected(images["scan7"]))

    # A changed input is not "done"; its store belongs to the old input, so it is
    # replaced only with --overwrite (docs/guide/resume.md), which redoes just that item.
    iio.imwrite(folder / "scan3.png", images["scan4"])
    changed = invoke("batch", folder, "--out", out, *STEPS)
    assert changed.exit_code == 3 and "0 done, 29 skipped (already done), 1 failed" in changed.output
    assert "different job" in manifest_state(out)[str(folder / "scan3.png")]["error"]
    replaced = invoke("batch", folder, "--out", out, *STEPS, "--overwrite")
    assert replaced.exit_code == 0 and "1 done, 29 skipped" in replaced.output
    assert np.array_equal(zarr.open_array(str(out / "scan3.ome.zarr" / "0"), mode="r")[:], expected(images["scan4"]))
    other = invoke("batch", folder, "--out", out, "--step", "gaussian_filter:sigma=[2,2]", "--overwrite", "-q")
    assert other.exit_code == 0, other.output
    assert all(r["status"] == "done" for r in manifest_state(out).values())


def test_batch_on_a_dask_cluster_equals_threads(tmp_path: Path, archive, dask_cluster: DaskCluster) -> None:
    folder, _ = archive
    for bad in ("scan7.png", "scan12.png"):
        (folder / bad).unlink()
    threads = invoke("batch", str(folder / "scan*.png"), "--out", tmp_path / "threads", *STEPS, "-q")
    assert threads.exit_code == 0, threads.output
    cluster = invoke("batch", folder, "--out", tmp_path / "cluster", *STEPS, "--scheduler", dask_cluster.address)
    assert cluster.exit_code == 0, cluster.output
    assert "28 done" in cluster.output
    for store in (tmp_path / "threads").glob("*.ome.zarr"):
        twin = tmp_path / "cluster" / store.name
        assert np.array_equal(zarr.open_array(str(store / "0"))[:], zarr.open_array(str(twin / "0"))[:])
    assert {r["status"] for r in manifest_state(tmp_path / "cluster").values()} == {"done"}


def test_inputs_from_globs_folders_and_a_list_file(tmp_path: Path, archive) -> None:
    folder, _ = archive
    (tmp_path / "list.txt").write_text("# scans to redo\narchive/scan2.png\n\narchive/scan10.png  # the bright one\n")
    found = collect_inputs([str(folder / "scan1*.png")], tmp_path / "list.txt")
    names = [Path(p).name for p in found]
    assert names[:11] == ["scan1.png"] + [f"scan{i}.png" for i in range(10, 20)]
    assert names[11:] == ["scan2.png"]  # scan10 came already from the glob
    with pytest.raises(BatchprocError, match="matches no file"):
        collect_inputs([str(folder / "*.tif")])
    with pytest.raises(BatchprocError, match="does not exist"):
        collect_inputs([str(tmp_path / "missing")])
    out = folder / "results"
    out.mkdir()
    assert all("results" not in p for p in collect_inputs([str(folder)], exclude=out))


def test_output_names_are_safe_and_never_collide(tmp_path: Path) -> None:
    inputs = ["a/scan.png", "b/scan.png", "b/SCAN.tif", "c/../../etc passwd.nii.gz", "d/v.h5:/group/raw", "e/.png", "f/x.ome.zarr"]
    items = plan_items(inputs, tmp_path)
    names = [item.output.name for item in items]
    assert len(set(n.lower() for n in names)) == len(names)
    assert all(item.output.parent == tmp_path for item in items)
    assert names[3] == "etc_passwd.ome.zarr"
    assert names[4] == "v_group_raw.ome.zarr"
    assert names[6] == "x.ome.zarr"
    assert names[0].startswith("scan-") and names[1].startswith("scan-") and names[2].startswith("SCAN-")
    # A name too long for the folder (with the staging names beside it) is cut and
    # gets a hash of its input, so two inputs alike up to the cut stay apart.
    long = ["g/" + "x" * 240 + "1.png", "h/" + "x" * 240 + "2.png"]
    cut = [item.output.name for item in plan_items(long, tmp_path)]
    room = os.pathconf(tmp_path, "PC_NAME_MAX") - 29  # + ".batchproc-1234abcd-replaced"
    assert cut[0] != cut[1] and all(len(n) == room and n.startswith("x" * 200) and n.endswith(".ome.zarr") for n in cut), cut


def test_batch_writes_inputs_whose_names_are_too_long_to_keep(tmp_path: Path) -> None:
    # Before, such an item failed with "use a name of at most ... bytes": a name the
    # user of a batch cannot choose.
    folder = tmp_path / "in"
    folder.mkdir()
    image = (np.random.default_rng(5).random((40, 48)) * 255).astype(np.uint8)
    iio.imwrite(folder / ("y" * 240 + ".png"), image)
    done = invoke("batch", folder, "--out", tmp_path / "out", *STEPS)
    assert done.exit_code == 0, done.output
    (store,) = [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".ome.zarr")]
    assert store.name.startswith("y" * 200)
    assert np.array_equal(zarr.open_array(store / "0")[:], expected(image))
    again = invoke("batch", folder, "--out", tmp_path / "out", *STEPS)  # done: skipped, same name
    assert again.exit_code == 0 and [p.name for p in (tmp_path / "out").iterdir() if p.name.endswith(".ome.zarr")] == [store.name]


def test_batch_errors_exit_2(tmp_path: Path, archive) -> None:
    folder, _ = archive
    (tmp_path / "file").write_text("x")
    cases = [
        (["batch", "--out", tmp_path / "o", *STEPS], "give at least one input"),
        (["batch", folder, "--out", tmp_path / "file", *STEPS], "is not a folder"),
        (["batch", folder, "--out", tmp_path / "o"], "give either --pipeline"),
        (["batch", folder, "--out", tmp_path / "o", "--list", tmp_path / "nolist.txt", *STEPS], "cannot read"),
        (["batch", folder, "--out", tmp_path / "o", "--step", "gaussian_filter:sigma=-1"], "sigma"),
    ]
    for args, message in cases:
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output


@pytest.mark.slow
def test_batch_killed_with_sigkill_is_finished_by_the_same_command(tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    rng = np.random.default_rng(6)
    for i in range(60):
        iio.imwrite(folder / f"s{i}.png", (rng.random((96, 96)) * 255).astype(np.uint8))
    command = [
        sys.executable,
        "-m",
        "batchproc.cli",
        "batch",
        str(folder),
        "--out",
        str(tmp_path / "out"),
        "--step",
        "median_filter:size=9",
        "-q",
        "--workers",
        "2",
    ]
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    manifest = tmp_path / "out" / MANIFEST
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and job.poll() is None:
        if manifest.exists() and len(manifest.read_text().splitlines()) >= 10:
            break
        time.sleep(0.01)
    if job.poll() is not None:
        pytest.fail(f"the batch ended (exit {job.returncode}) before it could be killed: {job.stderr.read().decode()[-2000:]}")
    os.kill(job.pid, signal.SIGKILL)
    job.wait(timeout=30)
    job.stderr.close()
    before = manifest_state(tmp_path / "out")
    done_before = sum(1 for r in before.values() if r["status"] == "done")
    assert 10 <= done_before < 60, before
    rerun = subprocess.run(command[:-3], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{60 - done_before} done, {done_before} skipped" in rerun.stdout, (rerun.stdout, before)
    state = manifest_state(tmp_path / "out")
    assert len(state) == 60 and all(r["status"] == "done" for r in state.values())
    for i in (0, 59):
        image = iio.imread(folder / f"s{i}.png")
        got = zarr.open_array(str(tmp_path / "out" / f"s{i}.ome.zarr" / "0"))[:]
        assert np.array_equal(got, ndi.median_filter(image, 9))
    assert json.loads(manifest.read_text().splitlines()[-1])["status"] == "done"


def tiffs_with_one_damaged(tmp_path: Path, seed: int) -> tuple[Path, dict[str, np.ndarray]]:
    """Three TIFF slices, t1.tif cut in half: its header reads, so the damage shows
    only when a block reads the pixels."""
    import tifffile

    folder = tmp_path / "tiffs"
    folder.mkdir()
    rng = np.random.default_rng(seed)
    images = {f"t{i}": (rng.random((40, 48)) * 255).astype(np.uint8) for i in range(3)}
    for name, image in images.items():
        tifffile.imwrite(folder / f"{name}.tif", image)
    data = (folder / "t1.tif").read_bytes()
    (folder / "t1.tif").write_bytes(data[: len(data) // 2])
    return folder, images


def test_an_input_damaged_inside_its_pixels_fails_alone(tmp_path: Path) -> None:
    # Its header reads, so the damage shows only when a block reads the pixels.
    folder, images = tiffs_with_one_damaged(tmp_path, seed=18)
    result = invoke("batch", folder, "--out", tmp_path / "out", *STEPS)
    assert result.exit_code == 3, result.output
    state = manifest_state(tmp_path / "out")
    failed = {Path(k).name: v["error"] for k, v in state.items() if v["status"] == "failed"}
    assert list(failed) == ["t1.tif"] and "t1.tif" in failed["t1.tif"] and "Traceback" not in failed["t1.tif"]
    for name in ("t0", "t2"):
        assert np.array_equal(zarr.open_array(str(tmp_path / "out" / f"{name}.ome.zarr" / "0"), mode="r")[:], expected(images[name]))


def test_batch_measure_with_a_damaged_item_measures_the_others(tmp_path: Path) -> None:
    """A TIFF damaged inside its pixels fails alone, with no table; the others'
    tables and the combined one hold exactly their objects."""
    import csv

    folder, images = tiffs_with_one_damaged(tmp_path, seed=19)
    out = tmp_path / "out"
    result = invoke("batch", folder, "--out", out, *STEPS, "--measure", "-q")
    assert result.exit_code == 3, result.output
    failed = [Path(k).name for k, v in manifest_state(out).items() if v["status"] == "failed"]
    assert failed == ["t1.tif"]
    assert not (out / "t1.objects.csv").exists()
    rows = list(csv.DictReader((out / "objects.csv").open()))
    assert {Path(r["input"]).name for r in rows} == {"t0.tif", "t2.tif"}
    for name in ("t0", "t2"):
        labels, count = ndi.label(expected(images[name]))
        mine = [r for r in rows if Path(r["input"]).name == f"{name}.tif"]
        assert len(mine) == count > 0
        assert [int(r["voxels"]) for r in mine] == list(ndi.sum_labels(np.ones_like(labels), labels, np.arange(1, count + 1)).astype(int))
        assert len(list(csv.DictReader((out / f"{name}.objects.csv").open()))) == count


def test_batch_measure_writes_a_table_per_input_and_one_of_all(tmp_path: Path, archive) -> None:
    import csv

    folder, images = archive
    (folder / "scan7.png").unlink()  # the corrupt file and the RGB one have their own test
    (folder / "scan12.png").unlink()
    out = tmp_path / "out"
    result = invoke("batch", folder, "--out", out, "--step", "gaussian_filter:sigma=[1,1]", "--step", "threshold:above=120", "--measure", "-q")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "objects.csv").open()))
    for name, image in images.items():
        if name in ("scan7", "scan12"):
            continue
        labels, count = ndi.label(expected(image))
        mine = [r for r in rows if Path(r["input"]).name == f"{name}.png"]
        assert len(mine) == count, name
        assert [int(r["voxels"]) for r in mine] == list(ndi.sum_labels(np.ones_like(image), labels, np.arange(1, count + 1)).astype(int))
        assert [float(r["intensity_mean"]) for r in mine] == list(ndi.mean(image, labels, np.arange(1, count + 1)))
        assert (out / f"{name}.objects.csv").is_file()
        assert np.array_equal(zarr.open_array(str(out / f"{name}.ome.zarr" / "0"), mode="r")[:], labels)
    again = invoke("batch", folder, "--out", out, "--step", "gaussian_filter:sigma=[1,1]", "--step", "threshold:above=120", "--measure")
    assert again.exit_code == 0 and "28 skipped" in again.output
    assert list(csv.DictReader((out / "objects.csv").open())) == rows  # the combined table again, from the items' own
