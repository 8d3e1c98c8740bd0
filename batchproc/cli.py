"""The ``batchproc`` command line: parse, call the library, render.

Exit codes: 0 success; 2 bad usage or bad input (one paragraph, no traceback;
``--debug`` shows it); 1 anything unexpected.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from batchproc.errors import BatchprocError, SchedulerLost

app = typer.Typer(
    name="batchproc",
    help="scipy.ndimage, exact, on image data sets too big for one call.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
STATE = {"debug": False}

Scheduler = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="threads (default), processes, synchronous, local (a LocalCluster), tcp://HOST:PORT, or slurm/pbs/sge/lsf/… with --cluster-config; or BATCHPROC_SCHEDULER",
    ),
]
Workers = Annotated[int | None, typer.Option("--workers", help="local: worker processes (default: one per core); batch on threads/processes: items at once")]
ThreadsPerWorker = Annotated[int | None, typer.Option("--threads-per-worker", help="local: threads in each worker (default 1)")]
MemoryLimit = Annotated[str | None, typer.Option("--memory-limit", help="local: memory per worker, such as 4GiB")]
ClusterConfig = Annotated[
    Path | None,
    typer.Option(
        "--cluster-config", help="slurm/pbs/…: YAML with dask-jobqueue settings (cores, memory, queue, walltime, job_extra_directives; jobs or adaptive)"
    ),
]
Chunks = Annotated[
    str | None,
    typer.Option("--chunks", help="chunk shape, e.g. 64,256,256 (default: about 32 MiB); run and batch: the output's chunks, computed in blocks of several"),
]
PipelineFile = Annotated[Path | None, typer.Option("--pipeline", "-p", help="pipeline file (YAML or JSON)")]
Steps = Annotated[list[str] | None, typer.Option("--step", "-s", help="OP[:name=value,...], repeatable")]
Shards = Annotated[
    str | None,
    typer.Option(
        "--shards",
        help="shard shape in voxels, whole multiples of --chunks (zarr's shards=), or none; default: shards the size of a compute block when the output would have more than 10,000 chunk files",
    ),
]
OmeVersion = Annotated[
    str, typer.Option("--ome-version", help="OME-Zarr 0.5 on zarr v3 (default), or 0.4 on zarr v2 (no shards) for viewers that read only that")
]
Codec = Annotated[str, typer.Option(help="blosc-lz4 (default), zstd or none")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")]
ReportPath = Annotated[Path | None, typer.Option("--report", help="also write a self-contained HTML report of the output here (see batchproc report)")]


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
    kernels: Annotated[str | None, typer.Option("--kernels", help="compiled (default) or scipy: the per-block kernels; or BATCHPROC_KERNELS")] = None,
    anonymous: Annotated[bool, typer.Option("--anonymous", help="read s3:// and gs:// without credentials (public data); or BATCHPROC_ANONYMOUS=1")] = False,
) -> None:
    STATE["debug"] = debug
    if anonymous:  # the environment carries it to worker processes
        os.environ["BATCHPROC_ANONYMOUS"] = "1"
    if kernels is not None:
        from batchproc.kernels import checked

        with guarded():
            checked(kernels, "--kernels")
        # The environment carries the choice to worker processes and bench's engines.
        os.environ["BATCHPROC_KERNELS"] = kernels


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """Turn the project's errors into exit code 2 and a one-paragraph message."""
    try:
        yield
    except BatchprocError as error:
        if STATE["debug"]:
            traceback.print_exc()
        err.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except (typer.Exit, typer.Abort):
        raise
    except SchedulerLost as error:  # not the input's fault: exit 1, and how to go on
        if STATE["debug"]:
            traceback.print_exc()
        err.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None
    except Exception as error:  # the unexpected: exit 1, traceback only on --debug
        if STATE["debug"]:
            traceback.print_exc()
        err.print(f"[bold red]unexpected error:[/] {type(error).__name__}: {error} (run with --debug for the traceback)", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def parse_chunks(text: str | None, option: str = "--chunks") -> Any:
    if text is None or text == "auto":
        return None
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise BatchprocError(f"{option} must be integers separated by commas, such as 64,256,256; got {text!r}.") from None
    if any(v < 1 for v in values):
        raise BatchprocError(f"{option} must be positive; got {text!r}.")
    return values


def _shards_for(shards: Any, ome_version: str) -> Any:
    """zarr v2 (OME-Zarr 0.4) has no shards: none unless asked (then the writer says why not)."""
    return False if ome_version == "0.4" and shards is None else shards


def parse_shards(text: str | None) -> Any:
    """``--shards``: None (the default rule), False (``none``) or a shape."""
    return False if text is not None and text.strip().lower() == "none" else parse_chunks(text, "--shards")


@contextlib.contextmanager
def _on_cluster(
    scheduler: str | None,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    memory_limit: str | None = None,
    cluster_config: Path | None = None,
) -> Iterator[Any]:
    """The ``--scheduler`` context, printing the dashboard address when there is one."""
    from batchproc.engine import scheduler as use_scheduler

    with use_scheduler(
        scheduler,
        workers=workers,
        threads_per_worker=threads_per_worker,
        memory_limit=memory_limit,
        cluster_config=cluster_config,
        on_dashboard=lambda link: err.print(f"dashboard: {link}", highlight=False),
    ) as session:
        if session.client is not None and not STATE["debug"]:
            # distributed logs its client's connection errors with tracebacks (set
            # up when it is imported); the CLI says what happened in its own words.
            import logging

            for name in [n for n in logging.root.manager.loggerDict if n.split(".")[0] == "distributed"]:
                logging.getLogger(name).setLevel(logging.CRITICAL)
        yield session


def _compute(array: Any, description: str, quiet: bool) -> Any:
    from batchproc.engine import compute, progress

    with progress(description, enabled=not quiet):
        return compute([array])[0]


@app.command()
def run(
    input: Annotated[str, typer.Argument(help="image, volume, folder, glob or store")],
    output: Annotated[str, typer.Argument(help="OME-Zarr store to write: a path, or an s3:// or gs:// URL")],
    pipeline: PipelineFile = None,
    step: Steps = None,
    scheduler: Scheduler = None,
    workers: Workers = None,
    threads_per_worker: ThreadsPerWorker = None,
    memory_limit: MemoryLimit = None,
    cluster_config: ClusterConfig = None,
    chunks: Chunks = None,
    shards: Shards = None,
    ome_version: OmeVersion = "0.5",
    overwrite: Annotated[bool, typer.Option(help="replace an existing output store")] = False,
    resume: Annotated[bool, typer.Option(help="finish an interrupted store: write only missing chunks")] = False,
    codec: Codec = "default",
    levels: Annotated[int, typer.Option(help="extra pyramid levels for viewers")] = 0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan (stages, halo, blocks, files, memory); read and write nothing")] = False,
    report: ReportPath = None,
    quiet: Quiet = False,
) -> None:
    """Run a pipeline on INPUT and write OUTPUT as OME-Zarr."""
    from batchproc.engine import progress
    from batchproc.engine.jobs import plan_run, run_pipeline

    with guarded():
        pipeline = _pipeline(pipeline, step, "run")
        _report_target(report, dry_run)
        plan = plan_run(pipeline, input, parse_chunks(chunks), _shards_for(parse_shards(shards), ome_version))
        if dry_run:
            chosen = scheduler or os.environ.get("BATCHPROC_SCHEDULER") or "threads"
            threads = {"threads": os.cpu_count() or 1, "synchronous": 1, "processes": 1, "local": threads_per_worker or 1}.get(chosen)
            for label, text in plan.describe(str(output), threads, processes=chosen not in ("threads", "synchronous")):
                out.print(f"{label:8s} {text}", highlight=False)
            return
        with _on_cluster(scheduler, workers, threads_per_worker, memory_limit, cluster_config), progress(f"writing {output}", enabled=not quiet):
            path = run_pipeline(pipeline, input, output, plan=plan, overwrite=overwrite, resume=resume, codec=codec, levels=levels, ome_version=ome_version)
        if not quiet:
            out.print(f"wrote {path}")
        _write_report(path, report, quiet)


def _report_target(report: Path | None, dry_run: bool = False, out_dir: str | None = None) -> None:
    """Refuse a --report that cannot be written before anything runs (one inside
    a batch's --out folder is checked when the batch has made that folder)."""
    if report is None:
        return
    if dry_run:
        raise BatchprocError("--report: a --dry-run writes nothing, so there is no output to report on; leave out one of the two.")
    if out_dir is not None and "://" not in out_dir and report.parent.resolve() == Path(out_dir).resolve():
        return
    from batchproc.report import check_writable

    check_writable(report, "--report")


def _write_report(job: str | Path, report: Path | None, quiet: bool) -> None:
    if report is None:
        return
    from batchproc.report import write_report

    path = write_report(job, report, option="--report")
    if not quiet:
        err.print(f"report {path}", highlight=False)


def _pipeline(pipeline: Path | None, step: list[str] | None, command: str) -> Any:
    from batchproc.pipeline import Pipeline

    if (pipeline is None) == (not step):
        raise BatchprocError(f"{command}: give either --pipeline FILE or one or more --step OP[:name=value,...].")
    return Pipeline.load(pipeline) if pipeline is not None else Pipeline.from_strings(step or [])


@app.command()
def batch(
    inputs: Annotated[list[str] | None, typer.Argument(help="files, globs (quoted) or folders; a folder stands for its entries")] = None,
    out_dir: Annotated[
        str, typer.Option("--out", "-o", help="output folder or object store prefix (s3://, gs://): one OME-Zarr store per input, and the manifest")
    ] = "batchproc-out",
    list_file: Annotated[Path | None, typer.Option("--list", help="a file with one input per line")] = None,
    pipeline: PipelineFile = None,
    step: Steps = None,
    scheduler: Scheduler = None,
    workers: Workers = None,
    threads_per_worker: ThreadsPerWorker = None,
    memory_limit: MemoryLimit = None,
    cluster_config: ClusterConfig = None,
    chunks: Chunks = None,
    shards: Shards = None,
    ome_version: OmeVersion = "0.5",
    overwrite: Annotated[bool, typer.Option(help="start unfinished items again instead of resuming their stores")] = False,
    codec: Codec = "default",
    measure: Annotated[
        bool,
        typer.Option("--measure", help="label each output (the steps end in a mask) and measure its objects: a table per input and OUT/objects.csv of all"),
    ] = False,
    report: ReportPath = None,
    quiet: Quiet = False,
) -> None:
    """Run a pipeline on every input, one store each under --out, with a manifest.

    Re-running the same command skips the items already done and retries those
    that failed or never finished. Exit code 3 when any item failed.
    """
    from rich.progress import Progress

    from batchproc.batch import collect_inputs, run_batch
    from batchproc.engine.progress import columns

    with guarded():
        plan = _pipeline(pipeline, step, "batch")
        _report_target(report, out_dir=out_dir)
        if measure and (not plan.steps or plan.steps[-1].op.name != "label"):
            from batchproc.pipeline import Pipeline

            document = plan.to_dict()
            plan = Pipeline.from_dict({**document, "steps": [*document["steps"], {"op": "label"}]})
        items = collect_inputs(inputs or [], list_file, exclude=out_dir)
        parsed_chunks, parsed_shards = parse_chunks(chunks), _shards_for(parse_shards(shards), ome_version)
        with _on_cluster(scheduler, workers, threads_per_worker, memory_limit, cluster_config), Progress(*columns(), disable=quiet, console=err) as bar:
            task = bar.add_task("items", total=len(items))

            def started(todo: int, skipped: int) -> None:
                bar.update(task, total=todo)
                if skipped and not quiet:
                    err.print(f"skipping {skipped} item(s) already done", highlight=False)

            def finished(record: dict[str, Any]) -> None:
                bar.advance(task)
                if record["status"] != "done":
                    bar.console.print(f"[red]failed[/] {record['input']}: {record['error']}", highlight=False)

            summary = run_batch(
                plan,
                items,
                out_dir,
                chunks=parsed_chunks,
                overwrite=overwrite,
                workers=workers,
                on_item=finished,
                on_start=started,
                codec=codec,
                shards=parsed_shards,
                ome_version=ome_version,
                **({"measure": True} if measure else {}),
            )
        rate = f", {summary.items_per_second:.2f} items/s" if summary.done else ""
        out_line = f"{len(summary.done)} done, {len(summary.skipped)} skipped (already done), {len(summary.failed)} failed in {summary.seconds:.1f} s{rate}; manifest {summary.manifest}"
        if summary.objects:
            out_line += f"; objects {summary.objects}"
        # Written before the exit code 3: the failures are what a report is for.
        _write_report(out_dir, report, quiet)
        if summary.failed:
            err.print(out_line, highlight=False)
            for record in summary.failed:
                err.print(f"  {record['input']}: {record['error']}", highlight=False)
            raise typer.Exit(3)
        if not quiet:
            out.print(out_line, highlight=False)


@app.command()
def bench(
    input: Annotated[str, typer.Argument(help="image, volume, folder, glob or store")],
    pipeline: PipelineFile = None,
    step: Steps = None,
    engines: Annotated[str, typer.Option(help="comma-separated: scipy, dask-image, batchproc, batchproc-local")] = "scipy,dask-image,batchproc",
    max_mb: Annotated[float, typer.Option("--max-mb", help="quick: use the leading slabs of INPUT up to this size")] = 64.0,
    full: Annotated[bool, typer.Option("--full", help="use the whole input")] = False,
    chunks: Chunks = None,
    report: Annotated[Path | None, typer.Option("--report", help="also write results.md/.json/.png to this folder")] = None,
    repeat: Annotated[int, typer.Option("--repeat", help="runs per engine, taking turns; medians are shown")] = 1,
) -> None:
    """Time scipy.ndimage, dask-image and batchproc on INPUT with your pipeline, side by side."""
    from batchproc.bench import compare_input, markdown, write_report

    with guarded():
        plan = _pipeline(pipeline, step, "bench")
        if max_mb <= 0:
            raise BatchprocError(f"--max-mb must be positive; got {max_mb}.")
        names = [e.strip() for e in engines.split(",") if e.strip()]
        err.print(f"running {', '.join(names)}, each in its own process…", highlight=False)
        results = compare_input(input, plan.to_dict()["steps"], engines=names, max_mb=None if full else max_mb, chunks=parse_chunks(chunks), repeat=repeat)
        out.print(f"input: {results[0].mbytes:.1f} MB of {input}" + ("" if full else f" (at most {max_mb:g} MB; --full for all)"), highlight=False)
        print(markdown(results))
        if report is not None:
            out.print(f"report: {write_report(results, report)}", highlight=False)


@app.command()
def jobscript(
    kind: Annotated[str, typer.Argument(help="slurm, pbs, sge, lsf, htcondor, moab or oar")],
    cluster_config: ClusterConfig = None,
) -> None:
    """Print the worker job script dask-jobqueue would submit for --cluster-config (submits nothing)."""
    from batchproc.engine import JOBQUEUE, job_script

    with guarded():
        if kind not in JOBQUEUE:
            raise BatchprocError(f"jobscript: the system must be one of {', '.join(JOBQUEUE)}; got {kind!r}.")
        print(job_script(kind, cluster_config))


@app.command()
def info(
    input: Annotated[str, typer.Argument(help="image, volume, folder, glob or store")], chunks: Chunks = None, scheduler: Scheduler = None, quiet: Quiet = False
) -> None:
    """Shape, dtype, bytes, chunks, spacing and intensity range of INPUT."""
    import dask
    import numpy as np

    from batchproc.io import open_image

    with guarded():
        image = open_image(input, parse_chunks(chunks))
        x = image.data
        with _on_cluster(scheduler):
            low, high = _compute(dask.array.stack([x.min(), x.max()]) if x.dtype != bool else x.astype(np.uint8).max()[None].repeat(2), "range", quiet)
        rows = [
            ("source", image.source),
            ("format", str(image.meta.get("format", "?"))),
            ("shape", str(x.shape)),
            ("axes", image.axes),
            ("dtype", str(x.dtype)),
            ("bytes", f"{x.nbytes:,} ({x.nbytes / 2**20:.1f} MiB)"),
            ("chunks", f"{x.chunksize} ({x.npartitions} blocks)"),
            ("spacing", str(tuple(round(s, 6) for s in image.spacing))),
            ("range", f"{low} .. {high}"),
        ]
        for name, value in rows:
            out.print(f"{name:8s} {value}", highlight=False)


@app.command()
def measure(
    input: Annotated[str, typer.Argument(help="the image to measure: a file, folder, store or URL")],
    output: Annotated[str, typer.Option("-o", "--output", help="the table to write (one row per object)")],
    labels: Annotated[str | None, typer.Option("--labels", help="a label image of the same shape (a run ending in label makes one)")] = None,
    pipeline: PipelineFile = None,
    step: Steps = None,
    labels_out: Annotated[
        str | None, typer.Option("--labels-out", help="with --pipeline/--step: where the label image goes (default: beside the table, NAME.labels.ome.zarr)")
    ] = None,
    table_format: Annotated[str, typer.Option("--format", help="csv (default) or parquet")] = "csv",
    scheduler: Scheduler = None,
    chunks: Chunks = None,
    overwrite: Annotated[bool, typer.Option(help="replace the label image made from the pipeline")] = False,
    quiet: Quiet = False,
) -> None:
    """Measure every object of INPUT: one row per label with its voxel count, physical
    volume, bounding box, centroid (voxels and physical) and the image's sum, mean,
    minimum and maximum there. The labels come from --labels, or from pipeline steps
    that end in a mask (labelled here, written as an OME-Zarr label image)."""
    from batchproc.engine import progress
    from batchproc.engine.jobs import measure_objects, run_pipeline
    from batchproc.io import open_image
    from batchproc.pipeline import Pipeline
    from batchproc.tables import FORMATS, write_table

    with guarded():
        if table_format not in FORMATS:
            raise BatchprocError(f"--format must be one of {', '.join(FORMATS)}; got {table_format!r}.")
        if (labels is None) == (pipeline is None and not step):
            raise BatchprocError("measure: give either --labels IMAGE, or --pipeline FILE / --step OP[:...] ending in a mask.")
        open_image(input, parse_chunks(chunks))  # the input opens, before any label image is made
        with _on_cluster(scheduler), progress(f"measuring {input}", enabled=not quiet):
            if labels is None:
                made = _pipeline(pipeline, step, "measure").to_dict()
                if not made["steps"] or made["steps"][-1]["op"] != "label":
                    made["steps"].append({"op": "label"})
                labels = labels_out or str(Path(output).with_suffix("")) + ".labels.ome.zarr"
                run_pipeline(Pipeline.from_dict(made), input, labels, overwrite=overwrite, label_image=True)
            columns = measure_objects(input, labels, parse_chunks(chunks))
        path = write_table(columns, output, table_format)
        if not quiet:
            out.print(f"wrote {path}: {len(columns['label']):,} objects", highlight=False)


@app.command()
def distance(
    input: Annotated[str, typer.Argument(help="the mask (non-zero: object), or the image the steps make a mask of")],
    output: Annotated[str, typer.Argument(help="the OME-Zarr store of distances (float64)")],
    pipeline: PipelineFile = None,
    step: Steps = None,
    sampling: Annotated[
        str | None, typer.Option("--sampling", help="spacing per axis, e.g. 2,0.5,0.5, or 'voxels' for 1 (default: the input's voxel spacing)")
    ] = None,
    scheduler: Scheduler = None,
    chunks: Chunks = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing output store")] = False,
    quiet: Quiet = False,
) -> None:
    """Distance of every non-zero voxel of INPUT (or of the mask that --pipeline or
    --step make of it) to the nearest zero voxel, as
    scipy.ndimage.distance_transform_edt computes it, in the input's physical units
    unless --sampling says otherwise. Out of core: the passes go through a scratch
    file in dask's temporary-directory."""
    from batchproc import ndimage
    from batchproc.engine import progress
    from batchproc.engine.jobs import write
    from batchproc.io import open_image

    with guarded():
        image = open_image(input, parse_chunks(chunks))
        mask = _pipeline(pipeline, step, "distance").apply(image.data) if pipeline is not None or step else image.data
        if sampling is None:
            spacing: Any = tuple(image.spacing)
        elif sampling.strip().lower() == "voxels":
            spacing = None
        else:
            try:
                spacing = tuple(float(v) for v in sampling.split(","))
            except ValueError:
                raise BatchprocError(f"--sampling must be spacings such as 2,0.5,0.5 (one, or one per axis), or 'voxels'; got {sampling!r}.") from None
        distances = ndimage.distance_transform_edt(mask, sampling=spacing)
        with _on_cluster(scheduler), progress(f"distances of {input}", enabled=not quiet):
            path = write(distances, output, axes=image.axes, spacing=image.spacing, units=image.units, overwrite=overwrite)
        if not quiet:
            out.print(f"wrote {path}", highlight=False)


@app.command()
def histogram(
    input: Annotated[str, typer.Argument(help="image, volume, folder, glob or store")],
    bins: Annotated[int, typer.Option(help="number of bins")] = 256,
    min: Annotated[float | None, typer.Option("--min", help="lowest edge (default: data minimum)")] = None,
    max: Annotated[float | None, typer.Option("--max", help="highest edge (default: data maximum)")] = None,
    plot: Annotated[Path | None, typer.Option(help="write a PNG bar chart, titled with INPUT's file name")] = None,
    log: Annotated[
        bool | None,
        typer.Option(
            "--log/--linear",
            help="y-scale of the --plot picture; default: log when the tallest bar is at least 20x the next (the plot says so)",
            show_default=False,
        ),
    ] = None,
    csv: Annotated[Path | None, typer.Option(help="write bins and counts as CSV")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    chunks: Chunks = None,
    scheduler: Scheduler = None,
    quiet: Quiet = False,
) -> None:
    """Histogram of INPUT's intensities (scipy.ndimage.histogram, exact)."""
    import dask
    import numpy as np

    import batchproc
    from batchproc.io import open_image
    from batchproc.render import display_name, histogram_png

    with guarded():
        x = open_image(input, parse_chunks(chunks)).data
        with _on_cluster(scheduler):
            if min is None or max is None:
                lo, hi = _compute(dask.array.stack([x.min(), x.max()]), "range", True)
                min = float(lo) if min is None else min
                max = float(hi) if max is None else max
            counts = batchproc.ndimage.histogram(x, min, max, bins)
        edges = np.linspace(min, max, bins + 1)
        if csv is not None:
            _writable(csv)
            lines = ["bin_start,bin_end,count"] + [f"{a},{b},{n}" for a, b, n in zip(edges[:-1], edges[1:], counts, strict=True)]
            csv.write_text("\n".join(lines) + "\n")
        if plot is not None:
            _writable(plot)
            histogram_png(edges, counts, plot, title=display_name(input), log=log)
        if as_json:
            print(json.dumps({"min": min, "max": max, "bins": bins, "edges": edges.tolist(), "counts": counts.tolist()}))
        elif not quiet or (csv is None and plot is None):
            for a, b, n in zip(edges[:-1], edges[1:], counts, strict=True):
                print(f"{a:.6g}\t{b:.6g}\t{n}")


def _writable(path: Path) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise BatchprocError(f"cannot write {str(path)!r}: the folder {str(folder)!r} does not exist.")


@app.command()
def preview(
    input: Annotated[str, typer.Argument(help="an input, or an output store (shown beside its recorded input)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG to write")],
    compare: Annotated[str | None, typer.Option(help="another image to show beside INPUT")] = None,
    slice_: Annotated[
        str | None, typer.Option("--slice", help="AXIS=INDEX for volumes, the axis by number or name (z=12); default: the middle of the axes not shown")
    ] = None,
) -> None:
    """A before/after PNG of one slice, like the course's figures.

    The slice shows the last two axes in NGFF order (z, y, x: rows y, columns x
    for a volume), each voxel at its physical size from the input's spacing.
    """
    from batchproc.render import preview_png

    with guarded():
        _writable(output)
        preview_png(input, output, compare=compare, slice_spec=slice_)
        out.print(f"wrote {output}")


@app.command()
def report(
    out: Annotated[str, typer.Argument(help="an output of batchproc run (its OME-Zarr store) or of batchproc batch (its --out folder)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write")],
    pictures: Annotated[int, typer.Option("--pictures", help="items shown with thumbnails and histograms; past it, a sample (failures first)")] = 24,
    quiet: Quiet = False,
) -> None:
    """A self-contained HTML page of a job: inputs, pipeline, provenance, each
    item's status, time and error (failures first), with before/after thumbnails
    and histograms."""
    from batchproc.report import write_report

    with guarded():
        path = write_report(out, output, pictures=pictures)
        if not quiet:
            typer.echo(f"wrote {path}")  # (`out` is the argument here, not the console)


@app.command()
def ops(
    name: Annotated[str | None, typer.Argument(help="one operation to describe")] = None,
    schema: Annotated[bool, typer.Option("--schema", help="print the pipeline file's JSON Schema")] = False,
) -> None:
    """The operations, their parameters and help, from the registry."""
    from batchproc.ops import REGISTRY, get
    from batchproc.pipeline import pipeline_schema

    with guarded():
        if schema:
            print(json.dumps(pipeline_schema(), indent=2))
            return
        if name is None:
            for op_name, op in sorted(REGISTRY.items()):
                out.print(f"[bold]{op_name:28s}[/] {op.kind:9s} {op.summary}", highlight=False)
            return
        op = get(name)
        out.print(f"[bold]{op.name}[/] ({op.kind}) {op.summary}", highlight=False)
        for p in op.params:
            default = "required" if p.required else f"default {p.default!r}"
            note = " (Python API only: an array)" if p.array else ""
            out.print(f"  {p.name:14s} {default:22s} {p.help}{note}", highlight=False)


@app.command()
def warm(
    dtypes: Annotated[str, typer.Option(help="comma-separated dtypes to compile for")] = "uint8,uint16,int16,float32,float64",
    only: Annotated[str | None, typer.Option("--only", help="comma-separated operations (default: every one with a compiled kernel)")] = None,
    quiet: Quiet = False,
) -> None:
    """Compile the kernels into numba's cache (NUMBA_CACHE_DIR) now, so that no run waits for numba later."""
    import os

    import numpy as np

    from batchproc.engine.warm import WARM_STEPS
    from batchproc.engine.warm import warm as warm_kernels

    with guarded():
        names = [n.strip() for n in only.split(",")] if only else None
        unknown = sorted(set(names or ()) - set(WARM_STEPS))
        if unknown:
            raise BatchprocError(f"--only: unknown {', '.join(map(repr, unknown))}; valid: {', '.join(WARM_STEPS)}.")
        kinds = [d.strip() for d in dtypes.split(",") if d.strip()]
        try:
            if not kinds or any(np.dtype(d).kind not in "iuf" for d in kinds):
                raise TypeError
        except TypeError:
            raise BatchprocError(f"--dtypes: expected integer or float dtypes such as uint16,float32; got {dtypes!r}.") from None
        where = os.environ.get("NUMBA_CACHE_DIR") or "numba's default cache (beside the installed package)"
        runs = warm_kernels(kinds, names, on_done=None if quiet else lambda name, dtype: err.print(f"compiled {name} for {dtype}", highlight=False))
        if not quiet:
            out.print(f"{runs} kernel runs; cache: {where}", highlight=False)


def main() -> None:
    """Entry point: typer's own usage errors exit 2 already; ours are mapped in guarded().

    Settings for a process that runs one command and ends (not made where
    ``app`` is called from Python): OpenBLAS gets one thread unless the user
    says otherwise, as no operation calls BLAS on more than a few numbers and
    its idle threads take a core while they start; the cyclic collector runs a
    young collection every 100,000 new objects rather than 700, as the imports
    alone make about 150,000 and held the GIL through hundreds of collections;
    and the objects left at the end are frozen out of the collector, which would
    otherwise walk them all once more as the interpreter ends
    (docs/concepts/startup.md)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    gc.set_threshold(100_000, 20, 10)
    try:
        app()
    finally:
        gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
