"""Labels, measurements and the distance transform: scipy.ndimage in memory (one
thread), batchproc (threads) and dask-image (threads) on a mask of many objects.
Every engine runs as its own process (a small Python script run with
``subprocess``; imports included) and is timed from start to the end of its work,
with the peak resident memory of its process tree sampled every 20 ms. Engines
run one after another, never side by side.

    .venv/bin/python benchmarks/labels.py                               # every part
    .venv/bin/python benchmarks/labels.py --parts 256MB --repeat 3
    .venv/bin/python benchmarks/labels.py --parts 4GB --large-depth 4096 --dir /path/with/space

The mask: uniform noise (one seeded generator per plane), gaussian σ=1.5
(float32), thresholded at its 65th percentile (taken on the first slab), stored
as uint8 0/1 in zarr chunks of 64x256x256. It is built slab by slab (64 planes
and a halo of 8 on either side, wider than the filter's radius of 6), so the
builder never holds more than ~0.7 GB and the slabs join as one filter of the
whole volume would. About a third of the voxels are foreground: one object
spans the volume (most of the foreground) and tens of thousands of small ones
float beside it. The intensity: uint16 uniform in 0..4095, same shape and chunks.

Parts (shapes as the brief names them; "MB/s" is of the uint8 mask):
  256MB  256x1024x1024. scipy: load mask and intensity, label, find_objects,
         sum_labels(intensity, labels, 1..n); batchproc: label, write the labels
         (batchproc.write), find_objects and sum_labels on the written labels;
         batchproc label only (`batchproc run --step label`); dask-image: label and
         write the labels (da.to_zarr), sum_labels (probed on the first labels and
         extrapolated, run whole only if that fits --dask-image-timeout) and
         find_objects (run with --dask-image-timeout; 0: not run).
  1GB    512x1024x1024: scipy and batchproc as above.
  4GB    --large-depth x1024x1024 (default 2048): `batchproc run mask labels
         --step label -q`; scipy label alone (held in memory) to check it;
         `batchproc measure mask -o objects.csv --step threshold:above=0` (label
         and measure in one command); and
         batchproc.write(batchproc.ndimage.distance_transform_edt(batchproc.open(mask))).

Checks (run after an engine's work, in the scipy process, outside its timing):
batchproc's labels bit for bit against scipy's (np.array_equal, slab by slab),
its find_objects and sums equal to scipy's; dask-image's numbering against
scipy's, its object count, and whether its objects are scipy's up to numbering.

Writes results.md and results.json to --out (default benchmarks/results/labels).
Volumes go to a temporary folder under --dir (default /tmp), deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from processes import batchproc_cli, measure, provenance

PLANE = (1024, 1024)
CHUNKS = (64, 256, 256)
SIGMA = 1.5
PERCENTILE = 65.0
HALO = 8  # > the gaussian's radius, int(4 * 1.5 + 0.5) = 6
SLAB = 64
PROBE_LABELS = 8  # dask-image sum_labels probe: this many labels, extrapolated

PARTS = {"256MB": 256, "1GB": 512, "4GB": None}

# ------------------------------------------------------------------ the engines
# Each engine is a script run as `python -c SCRIPT SPEC_JSON`. It creates the file
# spec["done"] when its work is over: the clock and the memory sampling stop there
# (what follows, saving results or checking them, is not the engine's work).

_PRELUDE = r"""
import json, os, pickle, sys, time
spec = json.loads(sys.argv[1])
phases = {}
_t = [time.perf_counter()]
def lap(name):
    now = time.perf_counter(); phases[name] = now - _t[0]; _t[0] = now
def done():
    open(spec["done"], "w").close()
"""

SCIPY = (
    _PRELUDE
    + r"""
import numpy as np, zarr, scipy.ndimage as ndi
mask = zarr.open_array(spec["mask"], mode="r")[...]
intensity = zarr.open_array(spec["intensity"], mode="r")[...] if spec.get("intensity") else None
lap("import+load")
labels, n = ndi.label(mask)
lap("label")
objects = sums = None
if intensity is not None:
    objects = ndi.find_objects(labels)
    lap("find_objects")
    sums = ndi.sum_labels(intensity, labels, np.arange(1, n + 1))
    lap("sum_labels")
done()

# ---- checks against the other engines' stored results (not timed)
del mask, intensity
checks = {}
def stored(path):
    z = zarr.open(path, mode="r")
    return z if isinstance(z, zarr.Array) else z["0"]  # a plain array, or OME-Zarr level 0
def equal_labels(path):
    z = stored(path)
    if z.shape != labels.shape:
        return False, -1
    same, top = True, 0
    for s in range(0, labels.shape[0], 64):
        part = z[s:s + 64]
        top = max(top, int(part.max()))
        same = same and bool(np.array_equal(part, labels[s:s + 64]))
    return same, top
def same_objects(path, m):
    # the same objects up to numbering: the same background, and (scipy label,
    # other label) pairs that pair the labels one to one
    z = stored(path)
    pairs = []
    for s in range(0, labels.shape[0], 64):
        a = labels[s:s + 64].ravel(); b = z[s:s + 64].ravel()
        if not np.array_equal(a == 0, b == 0):
            return False
        nz = a != 0
        pairs.append(np.unique((a[nz].astype(np.int64) << 32) | b[nz].astype(np.int64)))
    pairs = np.unique(np.concatenate(pairs))
    return bool(pairs.size == n == m and np.unique(pairs >> 32).size == n and np.unique(pairs & 0xFFFFFFFF).size == m)
for name, other in spec.get("compare", {}).items():
    row = {}
    row["labels_equal"], row["max_label"] = equal_labels(other["labels"])
    row["count_equal"] = row["max_label"] == n
    if other.get("result") and os.path.exists(other["result"]):
        got = pickle.load(open(other["result"], "rb"))
        if "n" in got:
            row["n"] = got["n"]; row["count_equal"] = got["n"] == n and row["count_equal"]
        if got.get("objects") is not None and objects is not None:
            row["find_objects_equal"] = got["objects"] == objects
        if got.get("sums") is not None and sums is not None:
            row["sums_equal"] = bool(np.array_equal(np.asarray(got["sums"]), sums))
            row["sums_dtype"] = str(np.asarray(got["sums"]).dtype)
    if other.get("partition") and not row["labels_equal"]:
        row["same_objects_renumbered"] = same_objects(other["labels"], row.get("n", row["max_label"]))
    checks[name] = row
json.dump({"n": int(n), "phases": phases, "checks": checks, "sums_dtype": None if sums is None else str(sums.dtype),
           "foreground": float(np.count_nonzero(labels)) / labels.size}, open(spec["result_json"], "w"))
"""
)

BATCHPROC = (
    _PRELUDE
    + r"""
import numpy as np, batchproc
lap("import")
lab, n = batchproc.ndimage.label(batchproc.open(spec["mask"]))
batchproc.write(lab, spec["labels"])
lap("label+write")
L = batchproc.open(spec["labels"])
objects = batchproc.ndimage.find_objects(L)
n = len(objects)  # the largest label: label's count, without running label's passes again
lap("find_objects")
sums = batchproc.ndimage.sum_labels(batchproc.open(spec["intensity"]), L, np.arange(1, n + 1))
lap("sum_labels")
done()
pickle.dump({"n": n, "objects": objects, "sums": sums}, open(spec["result"], "wb"))
json.dump({"n": n, "phases": phases}, open(spec["result_json"], "w"))
"""
)

DASK_IMAGE_LABEL = (
    _PRELUDE
    + r"""
import dask, dask.array as da, numpy as np, dask_image.ndmeasure as dm
lap("import")
lab, n = dm.label(da.from_zarr(spec["mask"]))
_, n = dask.compute(da.to_zarr(lab, spec["labels"], compute=False), n)  # one graph: the labels written and counted
lap("label+write")
done()
pickle.dump({"n": int(n)}, open(spec["result"], "wb"))
json.dump({"n": int(n), "phases": phases}, open(spec["result_json"], "w"))
"""
)

DASK_IMAGE_SUM = (
    _PRELUDE
    + r"""
import dask.array as da, numpy as np, dask_image.ndmeasure as dm
lap("import")
L = da.from_zarr(spec["labels"]); I = da.from_zarr(spec["intensity"])
sums = dm.sum_labels(I, L, index=np.arange(1, spec["count"] + 1)).compute()
lap("sum_labels")
done()
json.dump({"phases": phases, "sums": np.asarray(sums, np.float64).tolist()}, open(spec["result_json"], "w"))
"""
)

DASK_IMAGE_FIND = (
    _PRELUDE
    + r"""
import dask.array as da, numpy as np, dask_image.ndmeasure as dm
lap("import")
boxes = dm.find_objects(da.from_zarr(spec["labels"])).compute()
lap("find_objects")
done()
json.dump({"phases": phases, "rows": len(boxes)}, open(spec["result_json"], "w"))
"""
)

EDT = (
    _PRELUDE
    + r"""
import batchproc
lap("import")
batchproc.write(batchproc.ndimage.distance_transform_edt(batchproc.open(spec["mask"])), spec["out"])
lap("distance_transform_edt+write")
done()
json.dump({"phases": phases}, open(spec["result_json"], "w"))
"""
)


def run_engine(
    name: str,
    script: str | None,
    spec: dict[str, Any],
    args: argparse.Namespace,
    root: Path,
    *,
    command: list[str] | None = None,
    timeout: float | None = None,
    clean: tuple[Path, ...] = (),
) -> dict[str, Any]:
    """``script`` (or ``command``) ``--repeat`` times: the median seconds, the highest
    peak, and the last run's own report (``result_json``)."""
    runs = []
    report: dict[str, Any] = {}
    for _ in range(args.repeat):
        for path in clean:  # each run writes its output anew; deleting the last one is not its work
            shutil.rmtree(path, ignore_errors=True)
        done = root / f"{name}.done" if script else None
        spec = {**spec, "done": str(done), "result_json": str(root / f"{name}.json")}
        cmd = command if command else [sys.executable, "-c", script, json.dumps(spec)]
        got = measure(cmd, done, timeout or args.timeout, args.rss_limit_gb * 1e9)
        runs.append(got)
        print(f"  {name}: {got['seconds']:.1f} s, peak {got['peak_mb']:.0f} MB, {got['status'][:300]}", flush=True)
        if got["status"] != "ok":
            break
        if script and Path(spec["result_json"]).exists():
            report = json.loads(Path(spec["result_json"]).read_text())
    ok = [r for r in runs if r["status"] == "ok"]
    return {
        "seconds": statistics.median(r["seconds"] for r in ok) if ok else runs[-1]["seconds"],
        "runs": [r["seconds"] for r in runs],
        "exit_seconds": [r["exit_seconds"] for r in runs],
        "peak_mb": max(r["peak_mb"] for r in runs),
        "status": runs[-1]["status"],
        "report": report,
    }


# ------------------------------------------------------------------ the volumes


def _noise(z: int, seed: int) -> np.ndarray:
    return np.random.default_rng([seed, z]).random(PLANE, dtype=np.float32)


def make_volumes(root: Path, depth: int, intensity: bool, seed: int = 0) -> dict[str, Any]:
    """The mask (and the intensity) as zarr arrays, slab by slab."""
    import scipy.ndimage as ndi

    from batchproc.bench import _target

    shape = (depth, *PLANE)
    started = time.perf_counter()
    mask = _target(str(root / "mask.zarr"), shape, np.uint8, CHUNKS)
    inten = _target(str(root / "intensity.zarr"), shape, np.uint16, CHUNKS) if intensity else None
    threshold, foreground = None, 0
    for start in range(0, depth, SLAB):
        stop = min(depth, start + SLAB)
        lo, hi = max(0, start - HALO), min(depth, stop + HALO)
        smooth = ndi.gaussian_filter(np.stack([_noise(z, seed) for z in range(lo, hi)]), SIGMA)[start - lo : stop - lo]
        if threshold is None:
            threshold = float(np.percentile(smooth[::2, ::4, ::4], PERCENTILE))
        slab = (smooth > threshold).astype(np.uint8)
        del smooth
        foreground += int(np.count_nonzero(slab))
        mask[start:stop] = slab
        if inten is not None:
            inten[start:stop] = np.stack([np.random.default_rng([seed + 1, z]).integers(0, 4096, PLANE, dtype=np.uint16) for z in range(start, stop)])
    return {
        "shape": shape,
        "threshold": threshold,
        "foreground": foreground / float(np.prod(shape)),
        "build_seconds": time.perf_counter() - started,
        "mask": str(root / "mask.zarr"),
        "intensity": str(root / "intensity.zarr") if intensity else None,
    }


def _du_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6 if path.exists() else 0.0


# ------------------------------------------------------------------ the parts


def part_measure(part: str, depth: int, args: argparse.Namespace, root: Path, dask_image: bool) -> dict[str, Any]:
    """256MB and 1GB: label, find_objects and sum_labels by each engine."""
    vol = make_volumes(root, depth, intensity=True)
    print(f"{part}: {vol['shape']} built in {vol['build_seconds']:.0f} s, foreground {vol['foreground']:.3f}", flush=True)
    mask, inten = vol["mask"], vol["intensity"]
    engines: dict[str, Any] = {}
    bp = {"labels": str(root / "bp-labels.zarr"), "result": str(root / "bp.pkl")}
    engines["batchproc"] = run_engine("batchproc", BATCHPROC, {"mask": mask, "intensity": inten, **bp}, args, root, clean=(Path(bp["labels"]),))
    compare: dict[str, Any] = {"batchproc": bp}
    if dask_image:
        cli_out = root / "bp-cli-labels.zarr"
        engines["batchproc label only (CLI)"] = run_engine(
            "batchproc-cli", None, {}, args, root, command=[*batchproc_cli(), "run", mask, str(cli_out), "--step", "label", "-q"], clean=(cli_out,)
        )
        compare["batchproc label only (CLI)"] = {"labels": str(cli_out)}
        di = {"labels": str(root / "di-labels.zarr"), "result": str(root / "di.pkl")}
        engines["dask-image label"] = run_engine("dask-image", DASK_IMAGE_LABEL, {"mask": mask, **di}, args, root, clean=(Path(di["labels"]),))
        compare["dask-image"] = {**di, "partition": True}
        n_di = engines["dask-image label"]["report"].get("n")
        if n_di:
            engines["dask-image sum_labels"] = dask_image_sum(args, root, inten, di["labels"], int(n_di))
            if args.dask_image_timeout > 0:
                engines["dask-image find_objects"] = run_engine(
                    "dask-image-find", DASK_IMAGE_FIND, {"labels": di["labels"]}, args, root, timeout=args.dask_image_timeout
                )
            else:
                engines["dask-image find_objects"] = {"status": "not run (--dask-image-timeout 0)", "seconds": None, "peak_mb": None, "report": {}}
    engines["scipy"] = run_engine("scipy", SCIPY, {"mask": mask, "intensity": inten, "compare": compare}, args, root)
    return {
        "shape": vol["shape"],
        "mask_mb": float(np.prod(vol["shape"])) / 1e6,
        "volume": vol,
        "engines": engines,
        "sizes_mb": {name: _du_mb(root / f) for name, f in (("mask", "mask.zarr"), ("intensity", "intensity.zarr"), ("batchproc labels", "bp-labels.zarr"))},
    }


def dask_image_sum(args: argparse.Namespace, root: Path, inten: str, labels: str, n: int) -> dict[str, Any]:
    """dask-image's sum_labels builds one reduction over the whole volume per label:
    timed on the first PROBE_LABELS labels, extrapolated, and run whole only when
    that estimate fits the timeout."""
    probe = run_engine("dask-image-sum-probe", DASK_IMAGE_SUM, {"labels": labels, "intensity": inten, "count": min(n, PROBE_LABELS)}, args, root)
    per_label = probe["report"].get("phases", {}).get("sum_labels")
    if per_label is None:
        return {**probe, "status": "probe " + probe["status"]}
    estimate = per_label * n / min(n, PROBE_LABELS)
    row = {"probe": probe, "estimate_seconds": estimate, "seconds": None, "peak_mb": None, "report": {}}
    if estimate > max(args.dask_image_timeout, 1):
        row["status"] = (
            f"not run: its sum_labels over the first {PROBE_LABELS} labels took {per_label:.1f} s (probe process "
            f"{probe['seconds']:.1f} s, peak {probe['peak_mb']:.0f} MB); all {n:,} labels: about {estimate / 3600:.1f} h"
        )
        return row
    return {
        **run_engine("dask-image-sum", DASK_IMAGE_SUM, {"labels": labels, "intensity": inten, "count": n}, args, root, timeout=args.dask_image_timeout),
        "estimate_seconds": estimate,
    }


def part_large(part: str, depth: int, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """4GB: label through the CLI, checked against scipy's label; the distance transform."""
    free = shutil.disk_usage(root).free
    need = depth * PLANE[0] * PLANE[1] * (8 + 4 + 1) * 0.8  # the distance map and labels, compressed somewhat
    if free < need:
        raise SystemExit(f"{part}: {free / 1e9:.0f} GB free in {root}, about {need / 1e9:.0f} GB needed; pass --dir or a smaller --large-depth")
    vol = make_volumes(root, depth, intensity=False)
    print(f"{part}: {vol['shape']} built in {vol['build_seconds']:.0f} s, foreground {vol['foreground']:.3f}", flush=True)
    mask = vol["mask"]
    out = root / "bp-cli-labels.zarr"
    engines: dict[str, Any] = {}
    engines["batchproc run --step label"] = run_engine(
        "batchproc-cli", None, {}, args, root, command=[*batchproc_cli(), "run", mask, str(out), "--step", "label", "-q"], clean=(out,)
    )
    sizes = {"mask": _du_mb(root / "mask.zarr"), "batchproc labels": _du_mb(out)}
    if args.large_scipy:
        engines["scipy label"] = run_engine("scipy", SCIPY, {"mask": mask, "compare": {"batchproc run --step label": {"labels": str(out)}}}, args, root)
    shutil.rmtree(out, ignore_errors=True)
    # label and measure in one command, as a user counts the objects of a mask
    table, labels = root / "objects.csv", root / "objects.labels.ome.zarr"
    engines["batchproc measure (label + measurements)"] = run_engine(
        "batchproc-measure",
        None,
        {},
        args,
        root,
        command=[*batchproc_cli(), "measure", mask, "-o", str(table), "--step", "threshold:above=0", "-q"],
        clean=(labels,),
    )
    if table.exists():
        with table.open() as rows:
            engines["batchproc measure (label + measurements)"]["report"] = {"rows": sum(1 for _ in rows) - 1}
    shutil.rmtree(labels, ignore_errors=True)
    edt = root / "edt.zarr"
    engines["batchproc distance_transform_edt"] = run_engine("edt", EDT, {"mask": mask, "out": str(edt)}, args, root, clean=(edt,))
    sizes["distance map"] = _du_mb(edt)
    shutil.rmtree(edt, ignore_errors=True)
    return {"shape": vol["shape"], "mask_mb": float(np.prod(vol["shape"])) / 1e6, "volume": vol, "engines": engines, "sizes_mb": sizes}


# ------------------------------------------------------------------ the report


def _scipy(part: dict[str, Any]) -> dict[str, Any]:
    return next((row.get("report", {}) for name, row in part["engines"].items() if name.startswith("scipy")), {})


def _objects(name: str, row: dict[str, Any], part: dict[str, Any]) -> str:
    scipy = _scipy(part)
    check = scipy.get("checks", {}).get(name.replace(" label", "") if name == "dask-image label" else name, {})
    n = row.get("report", {}).get("n") or row.get("report", {}).get("rows") or check.get("n") or check.get("max_label")
    return f"{n:,}" if n else ""


def _equal(name: str, part: dict[str, Any]) -> str:
    scipy = _scipy(part)
    if name.startswith("scipy"):
        return "(reference)"
    key = "dask-image" if name == "dask-image label" else name
    check = scipy.get("checks", {}).get(key)
    if check is None:
        return "not checked"
    bits = [f"labels {'equal' if check['labels_equal'] else 'NOT equal'}"]
    if "find_objects_equal" in check:
        bits.append(f"find_objects {'equal' if check['find_objects_equal'] else 'NOT equal'}")
    if "sums_equal" in check:
        bits.append(f"sums {'equal' if check['sums_equal'] else 'NOT equal'}")
    bits.append(f"count {'equal' if check['count_equal'] else 'NOT equal'}")
    if "same_objects_renumbered" in check:
        bits.append(f"same objects up to numbering: {'yes' if check['same_objects_renumbered'] else 'no'}")
    return "; ".join(bits)


def markdown(results: dict[str, Any]) -> str:
    runs = "One run each" if results["repeat"] == 1 else f"Medians of {results['repeat']} runs, highest peaks"
    lines = [
        f"Command: `{results['command']}`  ",
        f"Date: {results['date']}; {results['machine']}  ",
        f"Code: {results['code']}",
        "",
        f"Each engine is a whole process (imports included), timed from start to the end of its work; peak RSS is that of its process tree "
        f"(sampled every 20 ms). Engines run one after another. {runs}. "
        f"MB/s is of the uint8 mask. The mask: gaussian σ={SIGMA} of uniform noise above its {PERCENTILE:g}th percentile, zarr chunks {'x'.join(map(str, CHUNKS))}.",
        "",
    ]
    for name, part in results["parts"].items():
        if "error" in part:
            lines += [f"## {name}: failed", "", f"    {part['error']}", ""]
            continue
        shape = "x".join(map(str, part["shape"]))
        vol = part["volume"]
        lines += [
            f"## {name}: {shape} ({part['mask_mb']:.0f} MB of mask), foreground {vol['foreground']:.1%}",
            "",
            "| engine | seconds | MB/s | peak RSS MB | objects | equal to scipy | phases (s, in the process) |",
            "|---|---:|---:|---:|---:|---|---|",
        ]
        for engine, row in part["engines"].items():
            phases = ", ".join(f"{k} {v:.1f}" for k, v in row.get("report", {}).get("phases", {}).items())
            if row.get("status") != "ok" or row.get("seconds") is None:
                peak = f"{row['peak_mb']:.0f}" if row.get("peak_mb") is not None else "—"
                lines.append(f"| {engine} | — | — | {peak} |  | {row['status']} | {phases} |")
                continue
            lines.append(
                f"| {engine} | {row['seconds']:.1f} | {part['mask_mb'] / row['seconds']:.1f} | {row['peak_mb']:.0f} | {_objects(engine, row, part)} | "
                f"{_equal(engine, part)} | {phases} |"
            )
        lines.append("")
        e = part["engines"]

        def ratio(a: str, b: str, what: str, e: dict[str, Any] = e, lines: list[str] = lines) -> None:
            if a in e and b in e and e[a].get("status") == "ok" and e[b].get("status") == "ok" and e[a].get("seconds") and e[b].get("seconds"):
                lines.append(
                    f"- {what}: {e[a]['seconds']:.1f} s vs {e[b]['seconds']:.1f} s, {e[a]['peak_mb']:.0f} MB vs {e[b]['peak_mb']:.0f} MB: "
                    f"batchproc takes {e[a]['seconds'] / e[b]['seconds']:.2f}x the time and {e[a]['peak_mb'] / e[b]['peak_mb']:.2f}x the peak RSS"
                )

        ratio("batchproc", "scipy", "batchproc vs scipy (label, find_objects, sum_labels)")
        ratio("batchproc label only (CLI)", "dask-image label", "batchproc vs dask-image (label and write the labels)")
        ratio("batchproc run --step label", "scipy label", "batchproc vs scipy (label; batchproc also writes the labels)")
        sizes = ", ".join(f"{k} {v:.0f} MB" for k, v in part.get("sizes_mb", {}).items())
        lines += [f"- on disk: {sizes}; volume built in {vol['build_seconds']:.0f} s (not timed above)", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="256MB,1GB,4GB")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--dir", default=None, help="where the temporary volumes go (default: a temporary folder under /tmp)")
    parser.add_argument("--out", default="benchmarks/results/labels")
    parser.add_argument("--large-depth", type=int, default=2048, help="planes of 1024x1024 in the 4GB part")
    parser.add_argument("--large-scipy", action=argparse.BooleanOptionalAction, default=True, help="check the 4GB part's labels against scipy's")
    parser.add_argument("--dask-image-timeout", type=float, default=600, help="seconds for dask-image's sum_labels and find_objects (0: find_objects not run)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for any other engine process")
    parser.add_argument("--plane", type=int, default=1024, help="the planes' side (smaller for a quick trial)")
    parser.add_argument("--rss-limit-gb", type=float, default=19.0, help="stop an engine whose process tree passes this")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1; got {args.repeat}")
    global PLANE
    PLANE = (args.plane, args.plane)
    parts = args.parts.split(",")
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; valid: {', '.join(PARTS)}")
    results: dict[str, Any] = {
        **provenance("benchmarks/labels.py", sys.argv[1:]),
        "repeat": args.repeat,
        "parts": {},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="batchproc-labels-", dir=args.dir))
    try:
        for part in parts:
            root = base / part
            root.mkdir()
            depth = PARTS[part] or args.large_depth
            try:
                if PARTS[part] is None:
                    results["parts"][part] = part_large(part, depth, args, root)
                else:
                    results["parts"][part] = part_measure(part, depth, args, root, dask_image=(part == "256MB"))
            except Exception as error:  # noqa: BLE001 - one part failing still reports the others
                results["parts"][part] = {"error": f"{type(error).__name__}: {error}"}
            finally:
                shutil.rmtree(root, ignore_errors=True)
            (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
            (out / "results.md").write_text(markdown(results))
            print(markdown({**results, "parts": {part: results["parts"][part]}}), flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
